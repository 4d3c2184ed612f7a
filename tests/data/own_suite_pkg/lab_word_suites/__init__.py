"""A suite kind in another package: ``capitals:COUNTRY1,COUNTRY2`` asks for each country's capital."""

from memento_lab.tasks import Suite, Task, suite
from memento_lab.tasks.judges import exact_match

CAPITALS = {"France": "Paris", "Peru": "Lima", "Japan": "Tokyo", "Kenya": "Nairobi"}


class Capitals(Suite):
    def __init__(self, countries: list[str]):
        self.name, self.countries = "capitals", countries

    def tasks(self) -> list[Task]:
        return [
            Task(
                id=f"capital:{c}",
                question=f"Capital of {c}?",
                answer=CAPITALS[c],
                family="capitals",
                suite="capitals",
            )
            for c in self.countries
        ]

    async def verdicts(self, task, answer, ctx, calls):
        return [exact_match(answer, task.answer)]


@suite("capitals", forms=("capitals:COUNTRY1,COUNTRY2",), summary="the capital of each country named")
def capitals(spec, *, n, seed):
    return Capitals([c.strip() for c in spec.arg.split(",") if c.strip()] or sorted(CAPITALS)[:n])


def first_word(answer, task):
    """A judge of one's own (``judge=lab_word_suites:first_word``): the answer's first word is the gold."""
    return bool(answer) and answer.split()[0].strip(".,").lower() == task.answer.lower()

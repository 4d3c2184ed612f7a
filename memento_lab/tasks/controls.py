"""Controls that prove the instrument: suites where memory must help, and where it must not.

    load_suite("control:positive", n=12, seed=0)    # memory must help
    load_suite("control:negative", n=12, seed=0)    # memory must not help

Both are multiple-choice questions about *invented* facts ("In the fictional land of Velmora, what
is the national animal? A) otter B) heron C) lynx D) ibex"): no model knows them, so without
memory a model can only guess (about 1 in 4; ``trivial_baseline`` gives the best constant letter).

- ``control:positive``: the same questions come back every iteration, so a remembered case of the
  question itself gives the answer (a positive case) or rules an option out (a negative case).
  With a capable-enough model, memory on beats memory off by the last iteration. It measures
  *recall*: with ``exclude_question`` it must show no gain.
- ``control:negative``: every question is about a different invented land and memory never shows a
  task its own question (the suite forces ``exclude_question``), so nothing in memory is about the
  task: the paired difference must cover 0.

Reward: 1 when the answer picks the right option (its letter, or its text alone), else 0.
"""

from __future__ import annotations

import random
import re
from typing import Any

from memento_lab.tasks.base import JudgeContext, Suite, Task
from memento_lab.tasks.prompts import instruction
from memento_lab.tasks.registry import SuiteSpec, suite
from memento_lab.trace import JudgeVerdict, LLMCall

LETTERS = "ABCD"
SYLLABLES = ("vel", "mor", "ka", "zun", "dri", "tal", "on", "bre", "shi", "quo", "ran", "ith", "pel", "gor")
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "national animal": ("otter", "heron", "lynx", "ibex", "badger", "falcon", "marten", "crane"),
    "official colour": ("teal", "amber", "crimson", "ochre", "violet", "indigo", "olive", "coral"),
    "oldest river": ("Sarn", "Ulvo", "Peth", "Mirra", "Kolde", "Ashe", "Tiber-Nor", "Vash"),
    "traditional instrument": ("lute", "zither", "oboe", "gong", "harp", "fiddle", "bagpipe", "marimba"),
    "staple grain": ("millet", "barley", "sorghum", "rye", "spelt", "oats", "teff", "quinoa"),
}
KINDS = ("positive", "negative")


def _land(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
        if name not in taken:
            taken.add(name)
            return name


def control_tasks(kind: str, n: int, seed: int) -> list[Task]:
    """``n`` invented-fact multiple-choice tasks (deterministic in ``kind`` and ``seed``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown control {kind!r}; choose control:positive or control:negative")
    if n < 1:
        raise ValueError(f"control:{kind} needs n >= 1 tasks, got {n}")
    rng = random.Random(f"control:{kind}:{seed}")
    taken: set[str] = set()
    out = []
    attributes = sorted(ATTRIBUTES)
    for i in range(n):
        land = _land(rng, taken)
        attribute = attributes[i % len(attributes)]
        options = rng.sample(ATTRIBUTES[attribute], len(LETTERS))
        correct = rng.randrange(len(LETTERS))
        listed = " ".join(f"{letter}) {opt}" for letter, opt in zip(LETTERS, options, strict=True))
        question = instruction("control").format(land=land, attribute=attribute, listed=listed)
        out.append(
            Task(
                id=f"control:{kind}:s{seed}:{i}",
                question=question,
                answer=LETTERS[correct],
                family=f"control-{kind}",
                suite=f"control:{kind}",
                metadata={"options": options, "correct": correct},
            )
        )
    return out


def chosen_option(answer: str | None, options: list[str]) -> int | None:
    """Which option an answer picks: a standalone capital letter A-D first, else the only option
    whose text it contains; None when it picks none or several."""
    if not answer:
        return None
    letters = set(re.findall(r"(?<![A-Za-z])([A-D])(?![A-Za-z])", answer))
    if len(letters) == 1:
        return LETTERS.index(letters.pop())
    if letters:
        return None
    named = [i for i, opt in enumerate(options) if opt.lower() in answer.lower()]
    return named[0] if len(named) == 1 else None


class ControlSuite(Suite):
    """``control:positive`` / ``control:negative`` (see the module docstring)."""

    def __init__(self, kind: str, *, n: int = 12, seed: int = 0):
        self.kind = kind.strip().lower()
        self._tasks = control_tasks(self.kind, n, seed)
        self.name = f"control:{self.kind}"

    @property
    def forces(self) -> dict[str, Any]:
        # the negative control must never show a task its own question: memory holds nothing about it
        return {"exclude_question": True} if self.kind == "negative" else {}

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        picked = chosen_option(answer, task.metadata["options"])
        ok = picked == task.metadata["correct"]
        detail = "no option picked" if picked is None else f"picked {LETTERS[picked]}"
        return [JudgeVerdict(judge="choice", score=float(ok), correct=ok, detail=detail)]


@suite(
    "control",
    forms=("control:positive or control:negative (controls of the instrument)",),
    summary="invented-fact multiple choice: memory must help (positive) / must not help (negative)",
)
def control(spec: SuiteSpec, *, n: int, seed: int) -> ControlSuite:
    return ControlSuite(spec.arg, n=n, seed=seed)

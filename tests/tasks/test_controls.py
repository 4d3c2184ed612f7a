"""The control suites (deterministic invented-fact tasks, an option scorer, the negative control's
forced question exclusion), the direct agent profile, and token-level partial match."""

from __future__ import annotations

import pytest

from memento_lab.tasks.controls import chosen_option
from memento_lab.tasks.judges import partial_match
from memento_lab.tasks.suites import load_suite, trivial_baseline


def test_control_tasks_are_deterministic_distinct_and_balanced() -> None:
    a = load_suite("control:positive", n=40, seed=3).tasks()
    assert [t.question for t in a] == [
        t.question for t in load_suite("control:positive", n=40, seed=3).tasks()
    ]
    assert len({t.question for t in a}) == 40
    assert {t.answer for t in a} == {"A", "B", "C", "D"}  # the right letter varies: no constant wins
    neg = load_suite("control:negative", n=40, seed=3)
    assert not {t.question for t in a} & {t.question for t in neg.tasks()}
    assert neg.forces == {"exclude_question": True} and load_suite("control:positive").forces == {}
    assert trivial_baseline(a, leave_one_out=True)["control-positive"] < 0.5
    with pytest.raises(ValueError, match="control:positive or control:negative"):
        load_suite("control:maybe")


@pytest.mark.parametrize(
    ("answer", "picked"),
    [
        ("B", 1),
        ("(C)", 2),
        ("D) heron", 3),
        ("The answer is A.", 0),
        ("lynx", 2),
        ("A or B", None),  # two options: none picked
        ("a lynx or an ibex", None),
        ("I don't know", None),
        (None, None),
    ],
)
def test_chosen_option(answer: str | None, picked: int | None) -> None:
    assert chosen_option(answer, ["otter", "heron", "lynx", "ibex"]) == picked


@pytest.mark.anyio
async def test_control_scoring() -> None:
    suite = load_suite("control:positive", n=4, seed=0)
    task = suite.tasks()[0]
    right = task.answer
    wrong = next(x for x in "ABCD" if x != right)
    assert (await suite.score(task, right)).reward == 1.0
    assert (await suite.score(task, f"{wrong}")).reward == 0.0
    text = task.metadata["options"][task.metadata["correct"]]
    assert (await suite.score(task, text)).reward == 1.0


@pytest.mark.parametrize(
    ("pred", "gold", "pm"),
    [
        ("1", "1945", 0.0),  # a character substring is not a match
        ("in 1945", "1945", 1.0),
        ("Paris, France", "Paris", 1.0),
        ("Paris", "Paris, France", 1.0),
        ("Parisian", "Paris", 0.0),
        ("new york city", "york new", 0.0),
    ],
)
def test_partial_match_is_token_level(pred: str, gold: str, pm: float) -> None:
    assert partial_match(pred, gold).score == pm

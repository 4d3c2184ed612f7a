"""Judges: string matches (EM/F1/PM), the LLM judge's parsing and failures, the unit-test judge
through the real sandbox, and judge agreement."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeChat, reply

from memento_lab.agent.judges import (
    JUDGE_SCHEMA,
    agreement,
    exact_match,
    f1,
    judge_agreement,
    llm_judge,
    normalize_answer,
    partial_match,
    unit_test_judge,
)
from memento_lab.trace import JudgeVerdict


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  an  Apple, a day ", "apple day"),
        ("Theodore", "theodore"),  # 'the' only as a word
        ("U.S.A.", "usa"),
    ],
)
def test_normalize_answer(text: str, norm: str):
    assert normalize_answer(text) == norm


@pytest.mark.parametrize(
    ("pred", "gold", "em", "f1_score", "pm"),
    [
        ("Paris", "paris", 1.0, 1.0, 1.0),
        ("The Paris.", ["London", "paris"], 1.0, 1.0, 1.0),  # best alias counts
        ("Paris, France", "Paris", 0.0, 2 / 3, 1.0),  # gold inside prediction
        ("Paris", "Paris, France", 0.0, 2 / 3, 1.0),  # prediction inside gold
        ("Lyon", "Paris", 0.0, 0.0, 0.0),
        ("the the", "Paris", 0.0, 0.0, 0.0),  # normalises to nothing: no PM by emptiness
        ("new york city", "york new", 0.0, 0.8, 0.0),
        (None, "Paris", 0.0, 0.0, 0.0),
    ],
)
def test_string_judges(pred: str | None, gold: Any, em: float, f1_score: float, pm: float):
    assert exact_match(pred, gold).score == em
    assert f1(pred, gold).score == pytest.approx(f1_score)
    assert partial_match(pred, gold).score == pm
    assert exact_match(pred, gold).correct == (em == 1.0)
    assert partial_match(pred, gold).correct == (pm == 1.0)


def test_f1_threshold_sets_correct():
    assert f1("Paris, France", "Paris").correct  # 0.67 >= 0.5
    assert not f1("Paris, France", "Paris", threshold=0.8).correct
    with pytest.raises(ValueError, match="gold"):
        exact_match("x", [])


# --------------------------------------------------------------------------- agreement
def test_agreement_matches_hand_computed_kappa():
    # 10 items: both yes 4, both no 3, a-yes/b-no 2, a-no/b-yes 1
    a = [True] * 4 + [False] * 3 + [True] * 2 + [False]
    b = [True] * 4 + [False] * 3 + [False] * 2 + [True]
    # p_o = 0.7; p_yes(a)=0.6, p_yes(b)=0.5 -> p_e = 0.3 + 0.2 = 0.5; kappa = 0.2/0.5 = 0.4
    out = agreement(a, b)
    assert out["agreement"] == pytest.approx(0.7)
    assert out["kappa"] == pytest.approx(0.4)
    assert out["n"] == 10


def test_agreement_edge_cases():
    assert agreement([True, True], [True, True]) == {"n": 2.0, "agreement": 1.0, "kappa": 1.0}
    opposite = agreement([True, False], [False, True])
    assert opposite["agreement"] == 0.0 and opposite["kappa"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="equally long"):
        agreement([True], [True, False])
    with pytest.raises(ValueError, match="at least one"):
        agreement([], [])


def test_judge_agreement_pairs_judges_on_shared_answers():
    def v(judge: str, ok: bool) -> JudgeVerdict:
        return JudgeVerdict(judge=judge, score=float(ok), correct=ok)

    per_answer = [
        [v("em", True), v("pm", True), v("llm", True)],
        [v("em", False), v("pm", True), v("llm", True)],
        [v("em", False), v("pm", False)],  # the LLM judge did not run here
    ]
    out = judge_agreement(per_answer)
    assert set(out) == {"em~llm", "em~pm", "llm~pm"}
    assert out["em~pm"]["agreement"] == pytest.approx(2 / 3)
    assert out["llm~pm"] == {"n": 2.0, "agreement": 1.0, "kappa": 1.0}
    assert out["em~llm"]["n"] == 2


# --------------------------------------------------------------------------- LLM judge
@pytest.mark.anyio
async def test_llm_judge_uses_parsed_verdict_and_shows_golds():
    client = FakeChat([reply(content="{}", parsed={"reasoning": "same city", "verdict": "correct"})])
    v = await llm_judge("Capital of France?", "It is Paris.", ["Paris", "Paname"], client)
    assert (v.judge, v.score, v.correct, v.detail) == ("llm", 1.0, True, "same city")
    req = client.requests[0]
    prompt = req["messages"][0]["content"]
    assert "Capital of France?" in prompt and '["Paris", "Paname"]' in prompt and "It is Paris." in prompt
    assert req["json_schema"] == JUDGE_SCHEMA and req["temperature"] == 0.0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "score", "detail_part"),
    [
        (reply(content='```json\n{"reasoning": "r", "verdict": "Incorrect"}\n```'), 0.0, "r"),
        (reply(content='{"reasoning": "cut off... "verdict": "correct"'), 1.0, "cut off"),  # torn JSON
        (reply(content="I think it is right."), 0.0, "no correct/incorrect verdict"),
        (reply(content="", parsed={"reasoning": "x", "verdict": "maybe"}), 0.0, "no correct/incorrect"),
        (reply(error="timeout after 120 s"), 0.0, "judge error: timeout"),
        (ConnectionError("refused"), 0.0, "ConnectionError: refused"),
    ],
)
async def test_llm_judge_parses_text_and_turns_failures_into_zero(reply, score: float, detail_part: str):
    v = await llm_judge("q", "a", "a", FakeChat([reply]))
    assert v.score == score and v.correct == (score == 1.0)
    assert detail_part in v.detail


@pytest.mark.anyio
async def test_llm_judge_skips_the_call_without_an_answer():
    client = FakeChat([])
    v = await llm_judge("q", "   ", "a", client)
    assert v.score == 0.0 and v.detail == "no answer" and client.requests == []


# --------------------------------------------------------------------------- unit-test judge
TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


@pytest.mark.anyio
async def test_unit_test_judge_runs_in_the_sandbox(tmp_path):
    good = await unit_test_judge("def add(a, b):\n    return a + b\n", TESTS, "add", workspace=tmp_path)
    assert good.correct and good.score == 1.0
    wrong = await unit_test_judge("def add(a, b):\n    return a - b\n", TESTS, "add", workspace=tmp_path)
    assert not wrong.correct and "AssertionError" in wrong.detail
    broken = await unit_test_judge("def add(a, b) return a\n", TESTS, "add", workspace=tmp_path)
    assert not broken.correct and "SyntaxError" in broken.detail
    hangs = await unit_test_judge(
        "def add(a, b):\n    while True: pass\n", TESTS, "add", workspace=tmp_path, timeout_s=2
    )
    assert not hangs.correct and "timed out" in hangs.detail

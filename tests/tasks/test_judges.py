"""Judges: string matches (EM/F1/PM), the LLM judge's parsing and failures, the unit-test judge
through the real sandbox, and judge agreement."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeChat, reply

from memento_lab.tasks.judges import (
    JUDGE_SCHEMA,
    agreement,
    cheap_first,
    exact_match,
    f1,
    judge_agreement,
    llm_judge,
    normalize_answer,
    partial_match,
    unit_test_judge,
)
from memento_lab.trace import JudgeError, JudgeVerdict


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
    pairs = judge_agreement(per_answer)["pairs"]
    assert set(pairs) == {"em~llm", "em~pm", "llm~pm"}
    assert pairs["em~pm"]["agreement"] == pytest.approx(2 / 3)
    assert pairs["llm~pm"] == {"n": 2.0, "agreement": 1.0, "kappa": 1.0}
    assert pairs["em~llm"]["n"] == 2


def test_judge_agreement_on_result_rows_matches_hand_computed_numbers():
    # 8 episodes with em and llm labels (as result rows carry them: a JSON object per row)
    #   em=T llm=T: 3   em=T llm=F: 1   em=F llm=T: 2   em=F llm=F: 2
    # p_o = 5/8; p(em=T) = 4/8, p(llm=T) = 5/8 -> p_e = 4/8*5/8 + 4/8*3/8 = 1/2; kappa = (5/8-1/2)/(1/2) = 1/4
    labels = [(True, True)] * 3 + [(True, False)] + [(False, True)] * 2 + [(False, False)] * 2
    rows = [
        {"judges": json.dumps({"em": em, "llm": llm}), "decided_by": "em" if em else "llm"}
        for em, llm in labels
    ]
    rows.append({"judges": None, "decided_by": None})  # an old row without judges: counted nowhere
    out = judge_agreement(rows)
    assert out["pairs"]["em~llm"] == pytest.approx({"n": 8.0, "agreement": 5 / 8, "kappa": 0.25})
    assert out["llm_vs_em"] == {
        "n": 8,
        "exact": 4,
        "rejects_exact": 1,
        "share": 0.25,  # the LLM judge contradicts one exact match in four
        "non_exact": 4,
        "accepts_non_exact": 2,
    }
    assert out["decided_by"] == {"em": 4, "llm": 4}
    assert judge_agreement([])["llm_vs_em"]["share"] is None  # nothing to compare: no number


# --------------------------------------------------------------------------- LLM judge
@pytest.mark.anyio
async def test_llm_judge_decides_first_and_shows_golds():
    client = FakeChat([reply(content="{}", parsed={"verdict": "correct", "reason": "same city"})])
    v = await llm_judge("Capital of France?", "It is Paris.", ["Paris", "Paname"], client)
    assert (v.judge, v.score, v.correct, v.detail) == ("llm", 1.0, True, "same city")
    req = client.requests[0]
    prompt = req["messages"][0]["content"]
    assert "Capital of France?" in prompt and '["Paris", "Paname"]' in prompt and "It is Paris." in prompt
    assert req["json_schema"] == JUDGE_SCHEMA and req["temperature"] == 0.0
    # llama.cpp generates properties in schema order: the verdict must come before the reason,
    # and the reason is bounded so that both fit the budget
    assert list(JUDGE_SCHEMA["properties"]) == ["verdict", "reason"]
    assert JUDGE_SCHEMA["properties"]["reason"]["maxLength"] + 40 <= req["max_tokens"]  # even at 1 token/char
    assert prompt.index('"verdict"') < prompt.index('"reason"')


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "score", "detail_part"),
    [
        (reply(content='```json\n{"verdict": "Incorrect", "reason": "r"}\n```'), 0.0, "r"),
        (
            reply(content='{"verdict": "correct", "reason": "cut off mid-senten'),
            1.0,
            "cut off",
        ),  # decided, then torn
        (reply(content='{"reasoning": "old layout", "verdict": "incorrect"}'), 0.0, "old layout"),
    ],
)
async def test_llm_judge_reads_fenced_torn_and_old_replies(reply, score: float, detail_part: str):
    client = FakeChat([reply])
    v = await llm_judge("q", "a", "a", client)
    assert v.score == score and v.correct == (score == 1.0)
    assert detail_part in v.detail and client.calls == 1


TRUNCATED = reply(  # what the real client returns when the budget ends inside the JSON
    content='{"verdict": "corr', error='judge: reply is not a JSON object: \'{"verdict": "corr\''
)


@pytest.mark.anyio
async def test_truncated_reply_is_retried_once_then_a_judge_error():
    client = FakeChat([TRUNCATED, reply(content="I think it is right.")])
    with pytest.raises(JudgeError, match="no verdict") as err:
        await llm_judge("q", "a", "a", client, max_tokens=256)
    assert client.calls == 2  # one retry, no more
    first, second = client.requests
    assert second["max_tokens"] == 2 * first["max_tokens"] == 512
    assert "Second attempt" in second["messages"][0]["content"]  # a different request (a cassette keeps both)
    assert "attempt 1" in str(err.value) and "attempt 2" in str(err.value)


@pytest.mark.anyio
async def test_retry_that_succeeds_is_a_verdict_and_both_calls_are_recorded():
    calls: list = []
    good = reply(content="", parsed={"verdict": "incorrect", "reason": "another country"})
    v = await llm_judge("q", "a", "b", FakeChat([TRUNCATED, good]), calls=calls)
    assert v.score == 0.0 and "another country" in v.detail and "second attempt" in v.detail
    assert len(calls) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        reply(content="", parsed={"verdict": "maybe", "reason": "x"}),
        reply(error="judge: request to http://127.0.0.1:1/v1 timed out after 120s"),
        ConnectionError("refused"),
    ],
)
async def test_a_judge_that_keeps_failing_raises_never_scores(failure):
    client = FakeChat([failure, failure])
    with pytest.raises(JudgeError):
        await llm_judge("q", "a", "a", client)
    assert client.calls == 2


@pytest.mark.anyio
async def test_llm_judge_skips_the_call_without_an_answer():
    client = FakeChat([])
    v = await llm_judge("q", "   ", "a", client)
    assert v.score == 0.0 and v.detail == "no answer" and client.requests == []


# --------------------------------------------------------------------------- cheap judges first
@pytest.mark.anyio
@pytest.mark.parametrize("answer", ["Canada", "  the canada. ", "Dominion of Canada", "CAN"])
async def test_an_exact_alias_match_never_calls_the_llm(answer: str):
    client = FakeChat([])
    verdicts = await cheap_first("In what country is Moore Park, Toronto?", answer, MOORE_GOLD, client)
    assert client.calls == 0
    assert verdicts[0].judge == "em" and verdicts[0].score == 1.0
    assert [v.judge for v in verdicts] == ["em", "f1", "pm"]


MOORE_GOLD = ["Canada", "Dominion of Canada", "British North America", "CAN", "CA"]


@pytest.mark.anyio
async def test_the_llm_decides_only_what_cheap_judges_cannot():
    client = FakeChat([reply(parsed={"verdict": "incorrect", "reason": "Mexico is not Canada"})])
    verdicts = await cheap_first("q", "Mexico", MOORE_GOLD, client)
    assert client.calls == 1 and verdicts[0].judge == "llm" and verdicts[0].score == 0.0
    assert {v.judge for v in verdicts} == {"llm", "em", "f1", "pm"}
    none = FakeChat([])
    assert (await cheap_first("q", None, MOORE_GOLD, none))[0].judge == "em" and none.calls == 0
    # the LLM accepts what exact match cannot: the reward follows the LLM
    yes = FakeChat([reply(parsed={"verdict": "correct", "reason": "same country"})])
    assert (await cheap_first("q", "It is in Canada, in Ontario", MOORE_GOLD, yes))[0].score == 1.0
    # without a client F1 decides; an explicit judge decides alone, the LLM only as an audit
    assert (await cheap_first("q", "Mexico", MOORE_GOLD, None, judge="f1"))[0].judge == "f1"
    audit = FakeChat([reply(parsed={"verdict": "incorrect", "reason": "wrong"})])
    verdicts = await cheap_first("q", "Canada", MOORE_GOLD, audit, audit=True)
    assert verdicts[0].judge == "em" and verdicts[-1].judge == "llm" and not verdicts[-1].correct


@pytest.mark.anyio
async def test_a_failing_llm_audit_is_left_out_but_a_failing_decider_raises():
    broken = FakeChat(always=TRUNCATED)
    verdicts = await cheap_first("q", "Canada", MOORE_GOLD, broken, audit=True)
    assert [v.judge for v in verdicts] == ["em", "f1", "pm"] and broken.calls == 2
    with pytest.raises(JudgeError):
        await cheap_first("q", "Mexico", MOORE_GOLD, broken)


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


# ------------------------------------------------------------- unit-test judge: hacks score 0
def _proven_sandbox() -> None:
    """Skip unless sandboxed code provably runs in its own pid namespace (bubblewrap, system or packaged)."""
    from memento_lab.sandbox.isolation import bwrap_available, run_python

    if not bwrap_available():
        pytest.skip("bwrap is missing or cannot create namespaces here (see its WARNING)")
    probe = run_python("import os\nprint(os.getpid())")
    assert probe.ok and probe.isolation == "bwrap" and int(probe.stdout.split()[0]) < 10, probe


WRONG = "    return None\n"  # a wrong body for HumanEval/0: the hacks below must not rescue it
HACKS = {
    "sys.exit(0) at import": ("import sys\nsys.exit(0)\n", WRONG),
    "candidate raises SystemExit(0)": ("", "    raise SystemExit(0)\n"),
    "os._exit(0) at import": ("import os\nos._exit(0)\n", WRONG),
    "result whose __eq__ is always true": (
        "",
        "    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n",
    ),
    "int subclass with a lying __eq__": (
        "",
        "    class Yes(int):\n        def __eq__(self, other):\n            return True\n    return Yes(7)\n",
    ),
    "sys.excepthook = os._exit(0)": ("import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n", WRONG),
    "atexit os._exit(0)": ("import atexit, os\natexit.register(lambda: os._exit(0))\n", WRONG),
    "prints a fake pass line": (
        "print('passed')\nimport sys\nsys.stdout.flush()\nimport os\nos._exit(0)\n",
        WRONG,
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("hack", list(HACKS))
async def test_every_hack_scores_zero_on_humaneval_0(hack: str):
    from memento_lab.tasks.suites import load_suite

    _proven_sandbox()
    task = load_suite("humaneval:0-1").tasks()[0]
    m = task.metadata
    prefix, body = HACKS[hack]
    v = await unit_test_judge(prefix + m["prompt"] + body, m["test"], m["entry_point"])
    assert v.score == 0.0 and not v.correct, (hack, v.detail)


@pytest.mark.anyio
async def test_the_canonical_solution_passes_with_what_the_tests_report():
    from memento_lab.tasks.suites import load_suite

    _proven_sandbox()
    task = load_suite("humaneval:0-1").tasks()[0]
    m = task.metadata
    v = await unit_test_judge(task.answer or "", m["test"], m["entry_point"])
    assert v.correct and v.detail == "check() returned after 7 calls"
    # results of builtin subclasses reach the tests as the plain values they hold
    floats = "def f(x):\n    class F(float):\n        def __eq__(self, o):\n            return True\n    return F(x / 2)\n"
    tests = "def check(candidate):\n    assert candidate(3) == 1.5\n    assert candidate(4) != 1.5\n"
    assert (await unit_test_judge(floats, tests, "f")).correct  # the lying __eq__ is gone, the value stays
    lies = "def f(x):\n    class F(float):\n        def __eq__(self, o):\n            return True\n    return F(0)\n"
    assert not (await unit_test_judge(lies, tests, "f")).correct


def test_only_plain_data_crosses_between_candidate_and_checker():
    import json
    import math

    from memento_lab.tasks.unit_harness import decode, encode

    class Lying(int):
        def __eq__(self, other):
            return True

    values = [
        None,
        True,
        3,
        -0.0,
        1e300,
        "s",
        b"\x00b",
        2 + 3j,
        (1, [2, {3}]),
        frozenset({4}),
        {(1, 2): {"k": [5]}},
    ]
    for v in values:
        assert decode(json.loads(json.dumps(encode(v)))) == v
        assert type(decode(json.loads(json.dumps(encode(v))))) is type(v)
    assert math.isnan(decode(json.loads(json.dumps(encode(float("nan"))))))
    plain = decode(json.loads(json.dumps(encode(Lying(7)))))
    assert type(plain) is int and plain == 7 and plain != 8
    for bad in [{"x": 1}, {"t": 1}, {"d": [[1]]}, {"t": [1], "s": [2]}, {"b": "zz"}]:
        with pytest.raises(ValueError):
            decode(bad)
    with pytest.raises(TypeError, match="not plain data"):
        encode(object())


@pytest.mark.anyio
async def test_the_candidate_is_called_with_and_answers_plain_values():
    """Types survive the exchange (a tuple is not a list), exceptions come back as exceptions."""
    _proven_sandbox()
    tests = (
        "def check(candidate):\n"
        "    assert candidate((1, 2), key={'a': [1]}) == ((2, 1), {'a': [1]})\n"
        "    try:\n        candidate(None)\n        raise AssertionError('no error')\n"
        "    except RuntimeError as e:\n        assert 'TypeError' in str(e)\n"
    )
    good = "def f(pair, key=None):\n    return (pair[::-1], key)\n"
    v = await unit_test_judge(good, tests, "f")
    assert v.correct, v.detail
    as_list = "def f(pair, key=None):\n    return (list(pair[::-1]), key)\n"
    assert not (await unit_test_judge(as_list, tests, "f")).correct


def test_result_rows_carry_the_deciding_judge_and_the_report_shows_agreement(tmp_path):
    from memento_lab.experiments.config import ExperimentConfig, ResultRow
    from memento_lab.experiments.report import build_report
    from memento_lab.jsonl import append_jsonl
    from memento_lab.trace import Trace

    def v(judge: str, ok: bool) -> JudgeVerdict:
        return JudgeVerdict(judge=judge, score=float(ok), correct=ok)

    cfg = ExperimentConfig(suite="deepresearcher:/nonexistent.jsonl", out=str(tmp_path))
    traces = [
        Trace(
            task_id="a", question="q", run_id="r", decided_by="em", verdicts=[v("em", True), v("llm", False)]
        ),
        Trace(
            task_id="b", question="q", run_id="r", decided_by="llm", verdicts=[v("llm", True), v("em", False)]
        ),
    ]
    rows = [ResultRow.of(t, cfg) for t in traces]
    assert rows[0].decided_by == "em" and json.loads(rows[0].judges) == {"em": True, "llm": False}
    append_jsonl(tmp_path / "results.jsonl", [r.model_dump() for r in rows])
    judges = build_report([tmp_path]).judges
    assert judges["decided_by"] == {"em": 1, "llm": 1}
    assert judges["llm_vs_em"]["rejects_exact"] == 1 and judges["llm_vs_em"]["share"] == 1.0
    assert judges["pairs"]["em~llm"]["agreement"] == 0.0

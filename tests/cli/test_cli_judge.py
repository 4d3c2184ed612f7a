"""``memento-lab judge``: every judge's verdict on one answer, which one decided, no model unless needed.

The LLM judge here is a loopback OpenAI-compatible endpoint (the test double for a remote service);
the embedded-model path is measured in benchmarks/bench_judge_agreement.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion

from memento_lab.cli import main

MOORE = {
    "question": "In what country is Moore Park, Toronto?",
    "ground_truth": "Canada<|answer_split|>Dominion of Canada<|answer_split|>CAN",
    "data_source": "popqa",
}


@pytest.fixture
def dr_file(tmp_path: Path) -> Path:
    path = tmp_path / "dr.jsonl"
    other = {"question": "Capital of France?", "ground_truth": "Paris", "data_source": "nq"}
    path.write_text(json.dumps(other) + "\n" + json.dumps(MOORE) + "\n")
    return path


def judge(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["judge", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def endpoint(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("MEMENTO_JUDGE_MODEL", "fake-model")


def test_an_exact_alias_is_scored_without_any_model(dr_file, capsys, monkeypatch):
    with FakeOpenAI(lambda req: (500, {"error": {"message": "must not be called"}}, {})) as fake:
        endpoint(monkeypatch, fake)
        code, out = judge(
            capsys, "--suite", f"deepresearcher:{dr_file}", "--task", "dr:dr:2", "--answer", "Canada"
        )
        assert fake.requests == []
    assert code == 0
    assert (out["score"], out["passed"], out["decided_by"], out["llm_calls"]) == (1.0, True, "em", 0)
    assert [v["judge"] for v in out["verdicts"]] == ["em", "f1", "pm"]
    assert out["question"] == MOORE["question"] and out["judge_model"] is None


def test_a_wrong_answer_goes_to_the_llm_judge(dr_file, capsys, monkeypatch):
    verdict = json.dumps({"verdict": "incorrect", "reason": "Mexico is another country"})
    with FakeOpenAI(lambda req: (200, completion(verdict), {})) as fake:
        endpoint(monkeypatch, fake)
        code, out = judge(
            capsys, "--suite", f"deepresearcher:{dr_file}", "--task", "dr:dr:2", "--answer", "Mexico"
        )
        assert len(fake.requests) == 1
        assert (
            list(fake.requests[0]["response_format"]["json_schema"]["schema"]["properties"])[0] == "verdict"
        )
    assert (code, out["score"], out["passed"], out["decided_by"], out["llm_calls"]) == (
        0,
        0.0,
        False,
        "llm",
        1,
    )
    assert out["detail"] == "Mexico is another country" and out["judge_model"] == "fake-model"
    assert {v["judge"] for v in out["verdicts"]} == {"llm", "em", "f1", "pm"}


def test_a_judge_that_gives_no_verdict_is_an_error_not_a_score(dr_file, capsys, monkeypatch):
    with FakeOpenAI(lambda req: (200, completion('{"verdict": "cor'), {})) as fake:
        endpoint(monkeypatch, fake)
        code, out = judge(
            capsys, "--suite", f"deepresearcher:{dr_file}", "--task", "dr:dr:2", "--answer", "Toronto"
        )
        assert len(fake.requests) == 2  # the retry
    assert code == 1 and "score" not in out and out["error"].startswith("judge_error:")


def test_without_an_llm_f1_decides(dr_file, capsys):
    code, out = judge(
        capsys, "--suite", f"deepresearcher:{dr_file}", "--task", "dr:dr:2", "--answer", "Mexico", "--no-llm"
    )
    assert (code, out["score"], out["decided_by"], out["llm_calls"]) == (0, 0.0, "f1", 0)


def test_unknown_task_names_close_ids(dr_file, capsys):
    assert main(["judge", "--suite", f"deepresearcher:{dr_file}", "--task", "dr:dr:7", "--answer", "x"]) == 1
    assert "close ids" in capsys.readouterr().err


def test_humaneval_by_its_own_id_from_an_answer_file(tmp_path, capsys):
    from memento_lab.tasks.suites import load_suite

    task = load_suite("humaneval:0-1").tasks()[0]
    good = tmp_path / "good.py"
    good.write_text(f"```python\n{task.answer}```\n")
    code, out = judge(
        capsys, "--suite", "humaneval", "--task", "HumanEval/0", "--answer-file", str(good), "--no-llm"
    )
    assert code == 0 and out["task_id"] == "humaneval:0"
    assert (out["score"], out["passed"], out["decided_by"]) == (1.0, True, "unit_tests")
    assert out["detail"].startswith("check() returned after")
    hack = tmp_path / "hack.py"
    hack.write_text("import os\nos._exit(0)\n")
    code, out = judge(
        capsys, "--suite", "humaneval", "--task", "HumanEval/0", "--answer-file", str(hack), "--no-llm"
    )
    assert (code, out["score"], out["passed"]) == (0, 0.0, False) and "the candidate's process ended" in out[
        "detail"
    ]


def test_report_text_shows_judge_agreement(tmp_path, capsys):
    from memento_lab.experiments.config import ExperimentConfig, ResultRow
    from memento_lab.jsonl import append_jsonl
    from memento_lab.trace import JudgeVerdict, Trace

    def v(judge: str, ok: bool) -> JudgeVerdict:
        return JudgeVerdict(judge=judge, score=float(ok), correct=ok)

    cfg = ExperimentConfig(suite="deepresearcher:/nonexistent.jsonl", out=str(tmp_path))
    labels = [(True, True), (True, False), (False, False), (False, True)]
    traces = [
        Trace(
            task_id=str(i),
            question="q",
            run_id="r",
            decided_by="em" if em else "llm",
            verdicts=[v("em", em), v("llm", llm)],
        )
        for i, (em, llm) in enumerate(labels)
    ]
    append_jsonl(tmp_path / "results.jsonl", [ResultRow.of(t, cfg).model_dump() for t in traces])
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "decided by: em 2, llm 2" in out
    assert "judges em~llm: kappa 0.00, agreement 0.50 (n=4)" in out
    assert "LLM judge rejects 1 of 2 exact matches (50%); accepts 1 of 2 non-matches" in out

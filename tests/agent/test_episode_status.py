"""Failures are not outcomes: each injected failure (endpoint 500, empty choices, timeout, a cassette
miss, a dead tool server, a failing judge) gives its status, is never scored nor written to memory,
is counted, and is retried on resume; bad model output is an outcome, counted as such."""

from __future__ import annotations

import json
import os
import signal

import pytest
from loopback import FakeOpenAI, completion
from support import bank_size, config, endpoint, good, tasks_file

from memento_lab.agent.models.cassette import Cassette, CassetteMiss
from memento_lab.agent.status import settle
from memento_lab.config import Settings
from memento_lab.experiments.results import read_rows
from memento_lab.experiments.run import run_experiment
from memento_lab.tasks.base import Suite
from memento_lab.trace import JudgeError, Trace


@pytest.mark.anyio
@pytest.mark.parametrize(
    "handler, delay, status",
    [
        (lambda req: (500, {"error": {"message": "boom"}}, {}), 0.0, "endpoint_error"),
        (lambda req: (200, {**completion("x"), "choices": []}, {}), 0.0, "endpoint_error"),
        (good, 1.0, "timeout"),
    ],
    ids=["http-500", "empty-choices", "timeout"],
)
async def test_endpoint_failures_are_statuses_not_scores_and_resume_retries_them(
    tmp_path, handler, delay, status
) -> None:
    cfg = config(tmp_path, memory="random", cassette="record")
    with FakeOpenAI(handler, delay=delay) as fake:
        result = await run_experiment(cfg, settings=endpoint(fake, llm_timeout_s=0.3), progress=False)
    rows = read_rows(tmp_path / "run")
    assert [r.status for r in rows] == [status, status]
    assert result.status_counts == {status: 2} and result.accuracy_by_iteration == {}
    assert bank_size(tmp_path) == 0  # no negative case learned from an outage
    assert (
        not (tmp_path / "run" / "pairs.jsonl").exists() or not (tmp_path / "run" / "pairs.jsonl").read_text()
    )
    assert all(r.error for r in rows)

    # resume against a healthy endpoint: the failed episodes are retried (nothing replays the failure)
    with FakeOpenAI(good) as fake:
        again = await run_experiment(cfg, settings=endpoint(fake), progress=False)
    assert again.accuracy_by_iteration == {0: 1.0}
    assert again.status_counts == {status: 2, "ok": 2}
    assert bank_size(tmp_path) == 2


@pytest.mark.anyio
async def test_bad_json_from_the_model_is_an_outcome_counted_as_such(tmp_path) -> None:
    with FakeOpenAI(lambda req: (200, completion("I will not use JSON"), {})) as fake:
        result = await run_experiment(
            config(tmp_path, memory="random"), settings=endpoint(fake), progress=False
        )
    rows = read_rows(tmp_path / "run")
    assert [r.status for r in rows] == ["ok", "ok"]
    assert all(r.model_output_errors == 1 and r.reward == 0.0 for r in rows)
    assert result.accuracy_by_iteration == {0: 0.0} and bank_size(tmp_path) == 2


@pytest.mark.anyio
async def test_a_cassette_miss_stops_the_run_naming_the_request(tmp_path, monkeypatch, capsys) -> None:
    with FakeOpenAI(good) as fake:
        await run_experiment(config(tmp_path, cassette="record"), settings=endpoint(fake), progress=False)
    # a replay of a run with one more task than was recorded: the new request is not on the tape
    extra = tmp_path / "more.jsonl"
    extra.write_text(
        tasks_file(tmp_path).read_text() + json.dumps({"question": "Unrecorded?", "answer": "x"}) + "\n"
    )
    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / "cassette.sqlite").write_bytes((tmp_path / "run" / "cassette.sqlite").read_bytes())
    cfg = config(tmp_path, suite=f"jsonl:{extra}", cassette="replay", out=str(replay))
    settings = Settings(
        openai_base_url="http://127.0.0.1:9/v1", openai_api_key="k", planner_model="fake-model"
    )
    with pytest.raises(
        CassetteMiss,
        match=r"task more:3 \(iteration 0\): CassetteMiss: .*no recorded 'chat' call for request [0-9a-f]{12}",
    ):
        await run_experiment(cfg, settings=settings, progress=False)
    statuses = {r.task_id: r.status for r in read_rows(replay)}
    assert sorted(statuses.values()) == ["cassette_miss", "ok", "ok"]

    # the CLI exits non-zero with the request named
    import anyio

    from memento_lab.cli import main

    for var, value in (
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("OPENAI_API_KEY", "k"),
        ("MEMENTO_PLANNER_MODEL", "fake-model"),
    ):
        monkeypatch.setenv(var, value)
    argv = ["run", "--suite", f"jsonl:{extra}", "--n", "1", "--iterations", "1", "--memory", "none"]
    argv += ["--agent", "direct", "--tools", "", "--cassette", "replay", "--out", str(replay)]
    code = await anyio.to_thread.run_sync(main, argv)
    assert code == 1
    assert "task more:3 (iteration 0): CassetteMiss" in capsys.readouterr().err


class FailingJudgeSuite(Suite):
    """A suite whose judge cannot reach a verdict."""

    name = "failing"

    def __init__(self, inner):
        self.inner = inner

    def tasks(self):
        return self.inner.tasks()

    async def score(self, task, answer, *, ctx=None):
        raise JudgeError("judge endpoint returned no verdict")


@pytest.mark.anyio
async def test_a_failing_judge_is_a_judge_error_never_a_zero(tmp_path, monkeypatch) -> None:
    import memento_lab.experiments.run as run_mod

    real = run_mod.load_suite
    monkeypatch.setattr(run_mod, "load_suite", lambda spec, **kw: FailingJudgeSuite(real(spec, **kw)))
    with FakeOpenAI(good) as fake:
        result = await run_experiment(
            config(tmp_path, memory="random"), settings=endpoint(fake), progress=False
        )
    rows = read_rows(tmp_path / "run")
    assert [r.status for r in rows] == ["judge_error", "judge_error"]
    assert "no verdict" in (rows[0].error or "") and result.accuracy_by_iteration == {}
    assert bank_size(tmp_path) == 0


@pytest.mark.anyio
async def test_a_dead_tool_server_is_a_tool_server_error_and_is_not_recorded(tmp_path) -> None:
    from memento_lab.agent.tools.mcp_client import ToolBox
    from memento_lab.agent.tools.servers import builtin

    tape = Cassette(tmp_path / "cassette.sqlite", "record")
    async with ToolBox(["math"], workspace=tmp_path, cassette=tape) as tb:
        ok = await tb.call("calculate", {"expression": "6 * 7"})
        (pid,) = tb.pids("math")
        tb._procs["math"].spec = builtin("no_such_module")  # the restart cannot bring it back
        os.kill(pid, signal.SIGKILL)
        dead = await tb.call("calculate", {"expression": "1 + 1"})
    assert ok.ok and not ok.server_failed
    assert dead.server_failed and "could not be restarted" in (dead.error or "")
    # only the good call is on the tape: a resumed run retries the failed one
    assert tape.get("tool", {"name": "calculate", "arguments": {"expression": "6 * 7"}}) is not None
    assert tape.get("tool", {"name": "calculate", "arguments": {"expression": "1 + 1"}}) is None
    # a tool error the model caused (bad expression) stays an outcome
    trace = Trace(task_id="t", question="q")
    from memento_lab.trace import ExecStep

    trace.steps = [ExecStep(cycle=0, step_id=1, description="calc", tool_calls=[ok, dead])]
    assert settle(trace).status == "tool_server_error" and "math" in (trace.error or "")


def test_exceptions_map_to_statuses() -> None:
    import openai

    from memento_lab.agent.status import status_of_exception

    assert status_of_exception(CassetteMiss("x")) == "cassette_miss"
    assert status_of_exception(JudgeError("x")) == "judge_error"
    assert status_of_exception(TimeoutError()) == "timeout"
    assert status_of_exception(openai.APIConnectionError(request=None)) == "endpoint_error"  # type: ignore[arg-type]
    assert status_of_exception(KeyError("bug")) == "agent_error"
    t = Trace(task_id="t", question="q")
    settle(t, ValueError("judge blew up"), judging=True)
    assert t.status == "judge_error" and "judge: ValueError" in (t.error or "")


def test_a_judge_retry_that_reached_a_verdict_is_no_failure() -> None:
    from memento_lab.trace import LLMCall

    t = Trace(task_id="t", question="q")
    t.judge_calls = [
        LLMCall(role="judge", model="m", error="judge: HTTP 500", error_kind="endpoint_error"),
        LLMCall(role="judge", model="m"),  # the retry answered
    ]
    assert settle(t).status == "ok"

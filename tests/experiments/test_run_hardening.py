"""Runs that must not lie: an exit code that says nothing was scored, one process per run folder,
a task file edited under the same path is neither resumed nor pooled, and a run killed during a
counterfactual probe and resumed writes each case once. (Probes of issue 24; the slow random-kill
test is tests/experiments/test_fault_injection.py.)"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from kill_runs import check_run, run_argv, start_run
from loopback import FakeOpenAI
from support import QUESTIONS, config, endpoint, good, tasks_file

from memento_lab.cli import main
from memento_lab.experiments.report import build_report
from memento_lab.experiments.run import run_experiment
from memento_lab.memory.bank.bank import Case, CaseBank


def _env(monkeypatch, fake: FakeOpenAI) -> None:
    for var, value in (
        ("OPENAI_BASE_URL", fake.base_url),
        ("OPENAI_API_KEY", "sk-test"),
        ("MEMENTO_LLM_MAX_RETRIES", "0"),
    ):
        monkeypatch.setenv(var, value)


# ------------------------------------------------------------------------------------- exit codes
def test_run_exits_non_zero_when_no_episode_was_scored(tmp_path, monkeypatch, capsys):
    argv = run_argv(tasks_file(tmp_path), tmp_path / "run")
    with FakeOpenAI(lambda req: (500, {"error": {"message": "the model is down"}}, {})) as fake:
        _env(monkeypatch, fake)
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "no episode was scored" in err and "endpoint_error 2" in err and str(tmp_path / "run") in err
    with FakeOpenAI(good) as fake:  # the same command retries the failures; now something is scored
        _env(monkeypatch, fake)
        assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["scored"] == 2


# ------------------------------------------------------------------------------------ the run lock
def test_a_second_run_on_the_same_folder_fails_at_once_naming_the_holder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = run_argv(tasks_file(tmp_path), out, iterations=3)
    with FakeOpenAI(good, delay=2.0) as fake:
        _env(monkeypatch, fake)
        first = start_run(argv, fake.base_url)
        deadline = time.monotonic() + 60
        while not fake.requests and time.monotonic() < deadline:  # the first run is under way
            time.sleep(0.1)
        assert fake.requests, "the first run never reached the endpoint"
        t0 = time.monotonic()
        assert main(argv) == 1
        assert time.monotonic() - t0 < 2.0  # at once, not after the first run's episodes
        err = capsys.readouterr().err
        assert "another run is using this folder" in err and f"pid {first.pid}" in err and "started" in err
        os.killpg(first.pid, signal.SIGKILL)  # the holder dies mid-run: its lock is stale now
        first.wait()
    assert json.loads((out / ".run.lock").read_text())["pid"] == first.pid
    with FakeOpenAI(good) as fake:
        _env(monkeypatch, fake)
        assert main(argv) == 0  # the stale lock is taken over
    counts = check_run(out)
    assert counts["scored"] == counts["rows"] == 2 * 3
    assert (out / ".run.lock").read_text() == ""  # a clean exit leaves no holder behind


def test_the_run_lock_is_refused_inside_one_process_too(tmp_path):
    from memento_lab.experiments.run_lock import run_lock

    with run_lock(tmp_path) as me, pytest.raises(RuntimeError, match=f"pid {me.pid} on"), run_lock(tmp_path):
        pass
    with run_lock(tmp_path):  # released
        pass


# ------------------------------------------------------------------------------- task set contents
@pytest.mark.anyio
async def test_an_edited_task_file_is_refused_on_resume_and_never_pooled_in_a_report(tmp_path) -> None:
    runs = tmp_path / "runs"
    a, r, b = (
        config(tmp_path, out=str(runs / "none-a")),
        config(tmp_path, memory="random", out=str(runs / "random")),
        config(tmp_path, out=str(runs / "none-b")),
    )  # (each call writes the original task file)
    path = tasks_file(tmp_path)
    with FakeOpenAI(good) as fake:
        await run_experiment(a, settings=endpoint(fake), progress=False)
        await run_experiment(r, settings=endpoint(fake), progress=False)
        path.write_text(path.read_text().replace('"amber"', '"crimson"'))  # same path, another gold answer
        with pytest.raises(
            ValueError, match=r"tasks of suite .* changed .*tasks_fingerprint: stored \w+, now \w+"
        ):
            await run_experiment(
                a.model_copy(update={"iterations": 2}), settings=endpoint(fake), progress=False
            )
        await run_experiment(b, settings=endpoint(fake), progress=False)
    name = {json.loads((d / "config.json").read_text())["run_id"]: d.name for d in runs.iterdir()}
    stored = {
        d.name: json.loads((d / "config.json").read_text())["tasks_fingerprint"] for d in runs.iterdir()
    }
    assert stored["none-a"] == stored["random"] != stored["none-b"]
    rep = build_report([runs])
    assert sorted(name[arm.runs[0]] for arm in rep.arms) == ["none-a", "none-b", "random"]  # a and b apart
    assert all("tasks=" in arm.label for arm in rep.arms if arm.config["memory"] == "none")
    assert len({arm.label for arm in rep.arms}) == 3  # the labels tell the arms apart
    arm_run = {arm.id: name[arm.runs[0]] for arm in rep.arms}
    # only tasks scored against the same contents are paired: none-b shares one task with the others
    assert [(arm_run[c.a], arm_run[c.b], c.tasks) for c in rep.comparisons] == [("random", "none-a", 2)]
    # a config that names a fingerprint refuses other contents
    with pytest.raises(ValueError, match=f"the config asks for {stored['none-b']}"):
        pinned = config(tmp_path, out=str(tmp_path / "pinned"), tasks_fingerprint=stored["none-b"])
        await run_experiment(pinned, progress=False)


# ---------------------------------------------------------------------- killed during a probe
@pytest.mark.parametrize("kill_at", [2, 3, 4])
def test_a_run_killed_during_a_probe_and_resumed_writes_each_case_once(tmp_path, monkeypatch, kill_at):
    """Requests: 1 task A, 2 its probe, 3 task B, 4 its probe. A SIGKILL while the endpoint answers
    request ``kill_at`` lands after a case was written and before its row."""
    seed = CaseBank(tmp_path / "seed")
    seed.add(Case.from_episode("What is the capital of an unrelated place?", 1.0, answer="x"))
    out = tmp_path / "run"
    argv = run_argv(
        tasks_file(tmp_path),
        out,
        memory="random",
        k=1,
        counterfactual_every=1,
        initial_bank=tmp_path / "seed",
    )
    child: dict[str, object] = {}

    def killing(req: dict) -> tuple[int, dict, dict]:
        n = len(fake.requests)
        if n == kill_at:
            os.killpg(child["proc"].pid, signal.SIGKILL)  # type: ignore[attr-defined]
        return good(req)

    with FakeOpenAI(killing) as fake:
        child["proc"] = proc = start_run(argv, fake.base_url)
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL
    with FakeOpenAI(good) as fake:
        _env(monkeypatch, fake)
        assert main(argv) == 0
    counts = check_run(out)
    assert counts == {"rows": 2, "scored": 2, "cases": 2, "probes": 2}
    questions = [c.question for c in CaseBank(out / "bank").cases()]
    assert sorted(questions[1:]) == sorted(QUESTIONS)  # the seed case, then one case per task


@pytest.mark.anyio
async def test_resume_rolls_back_what_an_interrupted_attempt_wrote(tmp_path) -> None:
    """The same crash written by hand: a case, its pairs and its trace, but no row."""
    cfg = config(tmp_path, memory="random", k=1, iterations=1)
    with FakeOpenAI(good) as fake:
        await run_experiment(cfg, settings=endpoint(fake), progress=False)
    out = tmp_path / "run"
    results = (out / "results.jsonl").read_bytes()
    last = results.splitlines(keepends=True)[-1]
    (out / "results.jsonl").write_bytes(results[: -len(last)] + last[: len(last) // 2])  # row torn
    with FakeOpenAI(good) as fake:
        again = await run_experiment(cfg, settings=endpoint(fake), progress=False)
        assert len(fake.requests) == 1  # only the interrupted attempt is redone
    assert check_run(out) == {"rows": 2, "scored": 2, "cases": 2, "probes": 0} and again.scored == 2
    removed = [json.loads(line) for line in (out / "bank" / "log.jsonl").read_text().splitlines()]
    assert [r["op"] for r in removed] == ["add", "add", "remove", "add"]
    assert "rolled back" in removed[2]["reason"]


def test_a_torn_result_row_does_not_swallow_the_next_one(tmp_path):
    """Rows appended after a writer died mid-row start on a line of their own (jsonl.append_jsonl)."""
    from memento_lab.jsonl import append_jsonl, read_jsonl

    path = tmp_path / "results.jsonl"
    append_jsonl(path, [{"n": 1}])
    with path.open("ab") as f:
        f.write(b'{"n": 2, "half')
    append_jsonl(path, [{"n": 3}])
    assert [obj["n"] for _, obj in read_jsonl(path)] == [1, 3]
    assert [p.read_bytes() for p in tmp_path.glob("results.jsonl.torn-*")] == [b'{"n": 2, "half']


@pytest.mark.anyio
async def test_a_crash_while_copying_the_initial_bank_leaves_no_half_bank(tmp_path, monkeypatch) -> None:
    import shutil

    seed = CaseBank(tmp_path / "seed")
    for i in range(6):
        seed.add(Case.from_episode(f"An unrelated solved task {i}", 1.0, answer="x"))
    cfg = config(tmp_path, memory="random", initial_bank=str(tmp_path / "seed"), leakage="off")
    copy = shutil.copytree

    def dies_midway(src, dst, **kw):  # the process is killed after half of the log was copied
        copy(src, dst, **kw)
        log = Path(dst) / "log.jsonl"
        log.write_bytes(log.read_bytes()[: log.stat().st_size // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copytree", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        await run_experiment(cfg, progress=False)
    monkeypatch.setattr(shutil, "copytree", copy)
    with FakeOpenAI(good) as fake:
        await run_experiment(cfg, settings=endpoint(fake), progress=False)
    bank = CaseBank(tmp_path / "run" / "bank")
    assert sum(c.source.run_id is None for c in bank.cases()) == 6  # the whole seed bank, once


@pytest.mark.anyio
async def test_two_runs_at_once_on_one_session_are_refused_not_mixed(tmp_path) -> None:
    """The session's cassette is the running run's: a second run started on it while the first runs
    would record into the first's cassette, so it is refused with one clear error; the first finishes."""
    import anyio

    from memento_lab.agent.session import open_session

    with FakeOpenAI(good) as fake:
        async with open_session(tmp_path, settings=endpoint(fake), cassette_path=None) as session:
            first = config(tmp_path, n=2, iterations=2, out=str(tmp_path / "a"), cassette="record")
            second = config(tmp_path, out=str(tmp_path / "b"))
            results: list = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _collect(results, run_experiment(first, session=session)))
                await anyio.lowlevel.checkpoint()  # the first run has taken the session
                refused = r"the session is running .*[/\\]a; runs on one session take turns"
                with pytest.raises(RuntimeError, match=refused):
                    await run_experiment(second, session=session)
            assert results[0].scored == 2 * len(QUESTIONS)
            assert session.running is None  # released: the second run may go now
            assert (await run_experiment(second, session=session)).scored == len(QUESTIONS)


async def _collect(into: list, run) -> None:
    into.append(await run)

"""Fault injection: the real ``memento-lab run`` SIGKILLed at random points, resumed, killed again.

A seeded schedule (``SEED``) kills child processes running the CLI against a loopback endpoint
(tests/loopback.py), each kill either at a random time after the start (while the run imports,
opens and rolls back its folder, writes its config, runs episodes, writes cases, rows, parquet or a
snapshot) or from inside the endpoint at a random request (while an episode or its counterfactual
probe waits for the model, right after the writes of the attempt before). After every resume that
finishes, and at the end, the folder must hold: no duplicate (task, iteration) rows, no duplicate
cases, every acknowledged write (a row and the case it names) still there, pairs and traces only of
committed attempts (``kill_runs.check_run``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kill_runs import check_run, run_argv, start_run
from loopback import FakeOpenAI, completion
from support import asked

from memento_lab.memory.bank.bank import Case, CaseBank

SEED = 24
KILLS = 24
TASKS = 8
ITERATIONS = 3


def _tasks(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    lines = [{"question": f"What is the code word of item {i}?", "answer": f"w{i}"} for i in range(TASKS)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


class Endpoint:
    """Answers every task (wrong for every third, so the bank holds negative cases too), after a
    short seeded delay; can SIGKILL the running child when its n-th request arrives."""

    def __init__(self, rng: random.Random):
        self.rng, self.child, self.kill_at, self.seen = rng, None, 0, 0
        self.fake = FakeOpenAI(self.reply)

    def reply(self, request: dict) -> tuple[int, dict, dict]:
        self.seen += 1
        if self.kill_at and self.seen == self.kill_at and self.child is not None:
            os.killpg(self.child.pid, signal.SIGKILL)
        time.sleep(self.rng.uniform(0.01, 0.08))
        if "messages" not in request:  # a child killed while sending its request: an empty body
            return 400, {"error": {"message": "no messages"}}, {}
        i = int(asked(request).rsplit(" ", 1)[1].rstrip("?"))
        return 200, completion(json.dumps({"final_answer": f"w{i}" if i % 3 else "wrong"})), {}


def _run_once(ep: Endpoint, argv: list[str], mode: str, when: float) -> bool:
    """Start the CLI; kill it as scheduled. True when it was killed, False when it finished first."""
    ep.seen, ep.kill_at = 0, int(when) if mode == "request" else 0
    ep.child = proc = start_run(argv, ep.fake.base_url)
    try:
        proc.wait(timeout=when if mode == "timer" else 180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    ep.child = None
    if proc.returncode == -signal.SIGKILL:
        return True
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, err
    return False


def _acknowledged(out: Path) -> set[tuple[str, int, str | None]]:
    """(task, iteration, case id) of every ok row durably in results.jsonl (a torn tail is not one)."""
    path = out / "results.jsonl"
    if not path.exists():
        return set()
    data = path.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    rows = [json.loads(line) for line in lines]
    return {(r["task_id"], r["iteration"], r["case_id"]) for r in rows if r["status"] == "ok"}


def _check_finished(out: Path, acked: set[tuple[str, int, str | None]], schedule: list) -> None:
    """A run that finished after its kills holds every episode once, and every acknowledged one."""
    counts = check_run(out)
    assert counts["scored"] == counts["cases"] == counts["probes"] == TASKS * ITERATIONS, (counts, schedule)
    final = _acknowledged(out)
    assert acked <= final, (acked - final, schedule)  # no acknowledged row lost, none replaced
    live = {
        (c.source.task_id, c.source.iteration, c.id)
        for c in CaseBank(out / "bank").cases()
        if c.source.run_id
    }
    assert final == live, schedule  # and the case each row names is the live one


@pytest.mark.slow
def test_random_sigkills_of_real_runs_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    seed_bank = CaseBank(tmp_path / "seed")
    seed_bank.add([Case.from_episode(f"An unrelated solved task {i}", 1.0, answer="x") for i in range(2)])
    tasks = _tasks(tmp_path)
    schedule: list[tuple[str, str, float]] = []
    kills, runs, acked = 0, 0, set()
    ep = Endpoint(rng)
    with ep.fake:
        while True:
            out = tmp_path / f"run{runs}"
            argv = run_argv(
                tasks,
                out,
                memory="random",
                k=2,
                iterations=ITERATIONS,
                concurrency=2,
                counterfactual_every=1,
                initial_bank=tmp_path / "seed",
            )
            if kills >= KILLS:  # resume the last run to the end, with no kill
                assert not _run_once(ep, argv, "request", 0), schedule
                _check_finished(out, acked, schedule)
                break
            mode = rng.choice(["timer", "request"])
            when = rng.uniform(0.5, 7.0) if mode == "timer" else rng.randint(1, 2 * TASKS)
            schedule.append((out.name, mode, round(when, 2)))
            if _run_once(ep, argv, mode, when):
                kills += 1
                acked |= _acknowledged(out)
                continue
            _check_finished(out, acked, schedule)
            runs, acked = runs + 1, set()
    print(f"{kills} kills over {runs + 1} run folders; schedule (run, mode, when): {schedule}")

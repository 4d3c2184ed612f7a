"""Test helpers (not tests) for runs killed and resumed: start the real ``memento-lab run`` in a child
process against a loopback endpoint, and check what a run folder holds after any crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from memento_lab.experiments.config import ResultRow
from memento_lab.jsonl import read_jsonl
from memento_lab.memory.bank.bank import CaseBank

ROOT = Path(__file__).resolve().parent.parent


def run_argv(tasks: Path, out: Path, **flags: object) -> list[str]:
    """``memento-lab run`` flags: a direct agent with no tools over the task file, no cassette."""
    base: dict[str, object] = {
        "suite": f"jsonl:{tasks}",
        "n": 1,
        "iterations": 1,
        "memory": "none",
        "agent": "direct",
        "tools": "",
        "cassette": "off",
        "leakage": "off",
        "out": out,
    }
    argv = ["run"]
    for name, value in {**base, **flags}.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def start_run(argv: list[str], base_url: str) -> subprocess.Popen[bytes]:
    """The real CLI in a child process (its own session, so a kill reaches only it)."""
    env = {
        **os.environ,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-test",
        "MEMENTO_LLM_MAX_RETRIES": "0",
        "MEMENTO_LLM_TIMEOUT": "10",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "memento_lab.cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def check_run(out: Path) -> dict[str, int]:
    """Assert what any run folder holds after crashes and resumes; returns counts.

    One row per (task, iteration) whose last attempt is ok, and no second ok row; one live case per
    scored (task, iteration) of the train stream, the very case its row names (an acknowledged write
    is never lost); pairs and traces only of committed attempts; every log line parses."""
    # strict: a line that is not a ResultRow (glued to a torn one, damaged) is an error here
    rows = [ResultRow.model_validate(obj) for _, obj in read_jsonl(out / "results.jsonl")]
    ok = Counter((r.task_id, r.iteration) for r in rows if r.status == "ok")
    assert all(n == 1 for n in ok.values()), [k for k, n in ok.items() if n > 1]
    run_ids = {r.run_id for r in rows}
    assert len(run_ids) <= 1, run_ids
    bank = CaseBank(out / "bank", readonly=True)
    assert not bank.load_report.errors, bank.load_report.errors
    mine = [c for c in bank.cases() if c.source.run_id in run_ids]
    keys = Counter((c.source.task_id, c.source.iteration) for c in mine)
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    written = {r.case_id for r in rows if r.status == "ok" and r.case_id}
    assert written <= {c.id for c in mine}, written - {c.id for c in mine}  # acknowledged, then kept
    assert set(keys) <= set(ok), set(keys) - set(ok)  # no case without its row
    attempts = Counter((r.task_id, r.iteration) for r in rows)
    traces = (
        Counter((t["task_id"], t["iteration"]) for _, t in read_jsonl(out / "traces.jsonl"))
        if (out / "traces.jsonl").exists()
        else Counter()
    )
    assert traces == attempts, (traces, attempts)
    probes: Counter[tuple[str, int]] = Counter()
    pairs = list(read_jsonl(out / "pairs.jsonl")) if (out / "pairs.jsonl").exists() else []
    for _, p in pairs:
        key = (p["task_id"], p["iteration"])
        assert key in ok, key
        probes[key] += p["source"] == "counterfactual"
    assert all(n <= 1 for n in probes.values()), probes
    episode_pairs = Counter((p["task_id"], p["iteration"]) for _, p in pairs if p["source"] == "episode")
    shown = {(r.task_id, r.iteration): len(json.loads(r.retrieved_ids)) for r in rows if r.status == "ok"}
    assert all(episode_pairs[k] == shown[k] for k in episode_pairs), (episode_pairs, shown)
    return {"rows": len(rows), "scored": len(ok), "cases": len(mine), "probes": sum(probes.values())}

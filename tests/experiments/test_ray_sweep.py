"""Sweeps on Ray: each run a Ray task on an embedded local Ray, against a loopback OpenAI-compatible endpoint;
every run's results land, failures are reported without stopping the others, a re-run skips what is done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion


def _handler(req: dict) -> tuple:
    name = (req.get("response_format") or {}).get("json_schema", {}).get("name")
    if name == "reply":  # planner: a one-step plan
        plan = {"plan": [{"id": 1, "description": "reverse the word"}], "final_answer": ""}
        return 200, completion(json.dumps(plan)), {}
    if name == "final_answer":
        return 200, completion('{"final_answer": "olleh"}'), {}
    return 200, completion("olleh"), {}


@pytest.mark.slow
def test_sweep_on_local_ray_runs_every_run_reports_failures_and_resumes(tmp_path: Path, monkeypatch):
    from memento_lab.cli import main

    out = tmp_path / "sweep"
    missing = tmp_path / "missing.ckpt"  # only the parametric runs read it: they fail
    (tmp_path / "sweep.toml").write_text(
        'suite = "reasoning-gym:spell_backward"\nn = 1\niterations = 1\ntools = []\ncassette = "record"\n'
        f'max_cycles = 1\nmax_steps = 1\ncheckpoint = "{missing}"\nout = "{out}"\n\n'
        '[sweep]\nmemories = ["none", "similarity", "parametric"]\norders = [0, 1]\n'
    )
    with FakeOpenAI(_handler) as fake:
        for key, value in {
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-test",
            "MEMENTO_TOOL_MODE": "schema",
            "MEMENTO_PLANNER_MODEL": "fake-model",
            "MEMENTO_LLM_TIMEOUT": "20",
        }.items():
            monkeypatch.setenv(key, value)
        args = ["sweep", "--config", str(tmp_path / "sweep.toml"), "--ray", "--num-cpus", "2"]
        assert main(args) == 1  # some runs failed
        report = json.loads((out / "sweep.json").read_text())
        by_status: dict[str, list[dict]] = {}
        for r in report["runs"]:
            by_status.setdefault(r["status"], []).append(r)
        assert len(by_status["done"]) == 4 and len(by_status["failed"]) == 2
        assert all(Path(r["out"]).name.startswith("parametric") for r in by_status["failed"])
        assert all("missing.ckpt" in r["error"] for r in by_status["failed"])
        for r in by_status["done"]:
            assert r["rows"] == 1 and (Path(r["out"]) / "results.jsonl").exists()
            assert (Path(r["out"]) / "cassette.sqlite").exists()  # each run its own cassette
        served = len(fake.requests)
        assert served > 0

        assert main(args) == 1  # again: done runs are skipped, failed ones retried (and fail again)
        again = json.loads((out / "sweep.json").read_text())
        assert sorted(r["status"] for r in again["runs"]) == ["failed"] * 2 + ["skipped"] * 4
        assert len(fake.requests) == served  # nothing done was run twice

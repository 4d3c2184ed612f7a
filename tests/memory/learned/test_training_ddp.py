"""Retriever training under DDP: 2 CPU processes (gloo) through the real CLI give the same report shape as one."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import DEMO, family_pairs

from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.retrieval.pairs import PairLog

ROOT = Path(__file__).resolve().parents[3]


def _train(pairs: Path, out: Path, cache: Path, *extra: str) -> tuple[list[dict], str]:
    env = {
        **os.environ,
        "MEMENTO_CACHE_DIR": str(cache),
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MASTER_PORT", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memento_lab.cli",
            "retriever",
            "train",
            "--pairs",
            str(pairs),
            "--out",
            str(out),
        ]
        + ["--freeze-encoder", "--epochs", "3", "--target", "delta", "--no-progress", "--json", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports, text, at = [], proc.stdout, proc.stdout.find("{")
    while at >= 0:  # every JSON document printed (pretty-printed ones span lines)
        doc, end = json.JSONDecoder().raw_decode(text, at)
        reports.append(doc)
        at = text.find("{", end)
    return reports, proc.stderr


def _shape(report: dict) -> dict:
    def kind(v):
        return "none" if v is None or (isinstance(v, float) and math.isnan(v)) else type(v).__name__

    return {part: {k: kind(v) for k, v in report[part].items()} for part in ("learned", "similarity")}


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path: Path):
    pairs = PairLog(tmp_path / "pairs.jsonl")
    pairs.append(family_pairs(import_file(DEMO).cases))
    cache = tmp_path / "cache"
    one, _ = _train(pairs.path, tmp_path / "one", cache, "--devices", "1")
    two, err = _train(pairs.path, tmp_path / "two", cache, "--strategy", "ddp", "--devices", "2")
    assert "distributed_backend=gloo" in err and "Starting with 2 processes" in err
    assert len(one) == len(two) == 1  # rank 1 trains but does not report
    a, b = one[0], two[0]
    assert a["rank"] == b["rank"] == 0
    assert _shape(a) == _shape(b) and set(a["learned"]) >= {"auc", "f1", "acc", "wq_auc", "p_at_1"}
    assert a["split"] == b["split"]  # the same split by query, whatever the world size
    assert b["epochs"] == 3 and Path(b["best_checkpoint"]).exists()
    assert 0.0 <= b["learned"]["auc"] <= 1.0
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["learned"] == b["learned"]

"""Results of runs as data: load result rows, summarize them, and the report a reader wants first.

df = load_results(["data/runs/sweep"])        # one row per task x iteration, every run
report(["data/runs/sweep"])                    # accuracy per memory x iteration, per family, baselines
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.jsonl import atomic_write_bytes, read_jsonl


def read_rows(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    return [row for _, row in read_jsonl(path, strict=False)] if path.exists() else []


def finished(out: Path) -> set[tuple[str, int]]:
    return {(r["task_id"], r["iteration"]) for r in read_rows(out)}


def write_results_parquet(out: Path) -> Path:
    df = load_results([out])
    buf = io.BytesIO()
    df.write_parquet(buf)
    atomic_write_bytes(out / "results.parquet", buf.getvalue())
    return out / "results.parquet"


def load_results(runs: Sequence[str | Path]) -> pl.DataFrame:
    """All result rows of the given run folders (or folders of runs) as one dataframe."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        run = Path(run)
        dirs = (
            [run]
            if (run / "results.jsonl").exists()
            else sorted(p.parent for p in run.glob("*/results.jsonl"))
        )
        for d in dirs:
            rows.extend(read_rows(d))
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None)


def summarize(df: pl.DataFrame, by: Sequence[str] = ("memory", "iteration")) -> pl.DataFrame:
    """Mean reward per group with a 95% confidence interval over runs (seed x order)."""
    if df.is_empty():
        return df
    per_run = df.group_by([*by, "run_id"]).agg(pl.col("reward").mean().alias("acc"))
    return (
        per_run.group_by(list(by))
        .agg(
            pl.col("acc").mean().alias("accuracy"),
            pl.col("acc").std().fill_null(0.0).alias("std"),
            pl.len().alias("runs"),
        )
        .with_columns((1.96 * pl.col("std") / pl.col("runs").sqrt()).alias("ci95"))
        .sort(list(by))
    )


def report(runs: Sequence[str | Path]) -> dict[str, Any]:
    """The numbers a reader wants first: accuracy per memory mode and iteration, per family, and
    the honest baselines (no memory, and always answering the most common answer of the family's
    other tasks: ``trivial_baseline(..., leave_one_out=True)``)."""
    from memento_lab.agent.judges import judge_agreement
    from memento_lab.agent.suites import load_suite, trivial_baseline

    df = load_results(runs)
    if df.is_empty():
        return {"runs": 0}
    overall = summarize(df)
    by_family = summarize(df, by=("family", "memory", "iteration"))
    baselines: dict[str, float] = {}
    seen: set[tuple[str, int, int]] = set()
    for cfg in _configs(runs):
        key = (cfg.suite, cfg.n, cfg.seed)
        if key in seen:
            continue
        seen.add(key)
        try:
            # leave-one-out: with a handful of distinct answers the plain constant matches its own task (1/n)
            baselines.update(
                trivial_baseline(load_suite(cfg.suite, n=cfg.n, seed=cfg.seed).tasks(), leave_one_out=True)
            )
        except (FileNotFoundError, ValueError):  # a suite not rebuildable here (missing data) has no baseline
            continue
    return {
        "runs": df["run_id"].n_unique(),
        "episodes": df.height,
        "overall": overall.to_dicts(),
        "by_family": by_family.to_dicts(),
        "trivial_baseline": baselines,
        "judges": judge_agreement(df.to_dicts()),
    }


def _configs(runs: Sequence[str | Path]) -> list[ExperimentConfig]:
    out = []
    for run in runs:
        run = Path(run)
        for p in [run / "config.json", *run.glob("*/config.json")]:
            if p.exists():
                out.append(ExperimentConfig.model_validate_json(p.read_text()))
    return out

"""Results of runs as data: result rows of any mix of runs, each labelled with its arm.

    df = load_results(["data/runs/sweep"])    # one row per attempt; arm_id / arm / measures / task columns
    summarize(df, by=("arm", "iteration"))     # mean reward with 95% bootstrap CIs over tasks (and runs)

Rows are read back as ``ResultRow``s (a row that is not one is an error naming file, line and
field). A task is its id *and* its contents: the ``task`` column is ``task_id@task_hash``, so runs
that scored one task id against different contents (an edited task file) are never paired on it,
and an arm whose runs did so is split by the runs' task-set fingerprint.

The full report (comparisons, learning gain, forgetting, errors) is ``experiments.report``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from memento_lab.experiments import stats
from memento_lab.experiments.config import NOT_ARM, ExperimentConfig, ResultRow
from memento_lab.jsonl import atomic_write_bytes, read_jsonl, validate_record

TASK = "task"  # the column that identifies a task in comparisons: task_id@task_hash (see the docstring)


def read_rows(out: Path) -> list[ResultRow]:
    """The rows of a run's results.jsonl (a torn last line, a crash mid-append, is skipped)."""
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [validate_record(ResultRow, row, path, line) for line, row in read_jsonl(path)]


def latest_rows(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """The last attempt of each (run, task, iteration): a resumed run appends the retry of a failure."""
    last: dict[tuple[str | None, str, int], ResultRow] = {}
    for r in rows:
        last[(r.run_id, r.task_id, r.iteration)] = r
    return list(last.values())


def models_of(run_info: dict[str, Any]) -> dict[str, Any]:
    """The models of a run (from its run.json): what answers, whatever address serves it."""
    llms = run_info.get("llms") or {}
    models = {k: llms.get(k) for k in ("planner", "executor", "judge", "embedded")}
    return {**models, "memory": llms.get("memory") or llms.get("planner")}  # runs before the memory role


def finished(out: Path) -> set[tuple[str, int]]:
    """(task, iteration) pairs whose last attempt is ok; the others are retried on resume."""
    return {(r.task_id, r.iteration) for r in latest_rows(read_rows(out)) if r.status == "ok"}


def write_results_parquet(out: Path) -> Path:
    df = load_results([out])
    buf = io.BytesIO()
    df.write_parquet(buf)
    atomic_write_bytes(out / "results.parquet", buf.getvalue())
    return out / "results.parquet"


def run_dirs(runs: Sequence[str | Path]) -> list[Path]:
    """Run folders: each path that is a run, or the runs directly inside it."""
    out: list[Path] = []
    for run in runs:
        run = Path(run)
        if not run.exists():
            raise FileNotFoundError(f"{run}: no such run folder")
        if (run / "config.json").exists() or (run / "results.jsonl").exists():
            out.append(run)
        else:
            out.extend(sorted(p.parent for p in run.glob("*/config.json")))
    return out


def arm_key(config: ExperimentConfig, run_info: dict[str, Any]) -> dict[str, Any]:
    """What defines an arm: every config key but the replications and execution details, and the models."""
    key = {k: v for k, v in config.model_dump().items() if k not in NOT_ARM}
    key["models"] = models_of(run_info) if run_info else {"model": config.model}
    return key


def run_configs(
    runs: Sequence[str | Path], rows: pl.DataFrame | None = None
) -> dict[str, tuple[ExperimentConfig, dict[str, Any]]]:
    """run id -> (its config, its arm key), for every run folder with a config.json. With the runs'
    ``rows`` (``load_results``), an arm whose runs scored a task id against different contents is
    split by each run's task-set fingerprint (``tasks`` in the key)."""
    out = {}
    for d in run_dirs(runs):
        if not (d / "config.json").exists():
            continue
        cfg = ExperimentConfig.model_validate_json((d / "config.json").read_text())
        info = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else {}
        out[str(cfg.run_id)] = (cfg, arm_key(cfg, info))
    if rows is not None and not rows.is_empty():
        _split_by_contents(out, rows)
    return out


def _split_by_contents(
    configs: dict[str, tuple[ExperimentConfig, dict[str, Any]]], rows: pl.DataFrame
) -> None:
    """Add the task-set fingerprint to the arm key of every run of an arm whose runs disagree on
    the contents of a task id (seeds of a generated suite have other ids, so they stay pooled)."""
    arms: dict[str, list[str]] = {}
    for rid, (_, key) in configs.items():
        arms.setdefault(json.dumps(key, sort_keys=True, default=str), []).append(rid)
    hashes = rows.select("run_id", "task_id", "task_hash").drop_nulls().unique()
    for members in arms.values():
        part = hashes.filter(pl.col("run_id").is_in(members))
        if (
            part.is_empty()
            or part.group_by("task_id").agg(pl.col("task_hash").n_unique())["task_hash"].max() == 1
        ):
            continue
        for rid in members:
            configs[rid][1]["tasks"] = configs[rid][0].tasks_fingerprint


def _arm_labels(keys: dict[str, dict[str, Any]]) -> dict[str, str]:
    """arm id -> a readable label: the agent profile (with its samples when it votes), then the keys
    whose values differ between the arms."""
    names = list(dict.fromkeys(k for v in keys.values() for k in v))  # some arms have keys others lack
    varying = [k for k in names if len({json.dumps(v.get(k), sort_keys=True) for v in keys.values()}) > 1]
    varying = [k for k in varying if k not in ("agent", "samples")] or ["memory"]

    def profile(v: dict[str, Any]) -> list[str]:
        voting = (v.get("samples") or 1) > 1
        return [f"agent={v.get('agent')}"] * ("agent" in v) + [f"samples={v.get('samples')}"] * voting

    return {
        arm: " ".join(
            profile(v)
            + [
                f"{k}={v.get(k)}" if not isinstance(v.get(k), dict) else f"{k}={json.dumps(v.get(k))}"
                for k in varying
            ]
        )
        for arm, v in keys.items()
    }


def _measures(cfg: ExperimentConfig, split: str) -> str:
    """recall: memory may show the very question being scored; transfer: it never does (the test
    stream of the transfer protocol, or ``exclude_question`` with a method that can honour it: one
    whose memory distils several tasks into one item cannot leave a question out)."""
    from memento_lab.memory.methods.registry import method_spec

    if split == "test":
        return "transfer"
    if cfg.protocol == "recall" and cfg.exclude_question:
        try:
            safe = getattr(method_spec(cfg.memory).factory, "transfer_safe", True)
        except ValueError:  # a method not registered here: say what the config asked for
            safe = True
        return "transfer" if safe else "recall"
    return "recall"


def load_results(runs: Sequence[str | Path]) -> pl.DataFrame:
    """Every attempt of the given runs (folders, or folders of runs) as one dataframe, with the
    columns ``arm_id`` (a hash of the arm's config), ``arm`` (its readable label) and ``measures``."""
    rows: list[ResultRow] = []
    for d in run_dirs(runs):
        rows.extend(read_rows(d))
    if not rows:
        return pl.DataFrame()
    df = pl.DataFrame([r.model_dump() for r in rows], infer_schema_length=None)
    df = df.with_columns(
        pl.when(pl.col("task_hash").is_null())
        .then(pl.col("task_id"))
        .otherwise(pl.concat_str("task_id", pl.lit("@"), "task_hash"))
        .alias(TASK)
    )
    configs = run_configs(runs, df)
    ids = {
        rid: hashlib.sha256(json.dumps(k, sort_keys=True, default=str).encode()).hexdigest()[:8]
        for rid, (_, k) in configs.items()
    }
    labels = _arm_labels({ids[rid]: k for rid, (_, k) in configs.items()}) if configs else {}
    arm_of = {rid: ids[rid] for rid in configs}
    df = df.with_columns(
        pl.col("run_id").replace_strict(arm_of, default="unknown").alias("arm_id"),
    )
    measures = [
        _measures(configs[r][0], s) if r in configs else "recall"
        for r, s in df.select("run_id", "split").iter_rows()
    ]
    return df.with_columns(
        pl.col("arm_id").replace_strict(labels, default="unknown").alias("arm"),
        pl.Series("measures", measures),
    )


def task_matrix(part: pl.DataFrame, tasks: list[str], value: str = "reward") -> tuple[np.ndarray, list[str]]:
    """runs x tasks matrix of ``value`` (nan where missing), columns in ``tasks`` order; and the runs."""
    runs = sorted(part["run_id"].unique().to_list())
    m = np.full((len(runs), len(tasks)), np.nan)
    col = {t: j for j, t in enumerate(tasks)}
    row = {r: i for i, r in enumerate(runs)}
    for r, t, v in part.select("run_id", TASK, value).iter_rows():
        if t in col:
            m[row[r], col[t]] = float(v)
    return m, runs


def task_ids(part: pl.DataFrame) -> list[str]:
    """The tasks of a frame (``TASK``: id and contents), sorted."""
    return sorted(part[TASK].unique().to_list())


def scored(df: pl.DataFrame) -> pl.DataFrame:
    """The rows that count: the last attempt of each (run, task, iteration), when it is ok."""
    latest = df.unique(subset=["run_id", "task_id", "iteration"], keep="last", maintain_order=True)
    return latest.filter(pl.col("status") == "ok")


def summarize(df: pl.DataFrame, by: Sequence[str] = ("arm", "iteration"), *, seed: int = 0) -> pl.DataFrame:
    """Mean reward of the scored episodes per group, with a 95% bootstrap interval over tasks (and
    over runs when a group has several): ``accuracy``, ``ci_low``, ``ci_high``, ``tasks``, ``runs``."""
    if df.is_empty():
        return df
    ok = scored(df)
    task = TASK if TASK in df.columns else "task_id"  # a frame built by hand, not by load_results
    out = []
    for key, part in ok.group_by(list(by)):
        tasks = sorted(part[task].unique().to_list())
        runs = sorted(part["run_id"].unique().to_list())
        m = np.full((len(runs), len(tasks)), np.nan)
        ti, ri = {t: j for j, t in enumerate(tasks)}, {r: i for i, r in enumerate(runs)}
        for r, t, v in part.select("run_id", task, "reward").iter_rows():
            m[ri[r], ti[t]] = v
        acc, lo, hi = stats.bootstrap_mean(m, seed=seed)
        out.append(
            {
                **dict(zip(by, key, strict=True)),
                "accuracy": acc,
                "ci_low": lo,
                "ci_high": hi,
                "tasks": len(tasks),
                "runs": len(runs),
            }
        )
    return pl.DataFrame(out).sort(list(by))

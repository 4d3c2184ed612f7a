"""Runs into MLflow: one MLflow run per workbench run, under one run for the report that covers them.

    export_mlflow(["data/runs/sweep"], "data/mlflow")     # a local MLflow file store (a folder)
    export_mlflow(runs, "sqlite:///mlflow.db")            # or any tracking URI (a server: http://...)

Each workbench run becomes an MLflow run named by its run id: its config as params (a list or table
as JSON), its models from run.json, per iteration (the MLflow step) the accuracy of its scored
episodes with the 95% bootstrap interval of ``build_report`` and what the episodes cost (mean
prompt, completion and memory tokens, seconds, tool calls; attempts that failed), once the
cost-per-reward figures and the trivial baseline of each family; its own report (JSON), config.json
and run.json as artifacts. A parent run holds the report of all of them and, when given, the
dashboard page. Exporting the same runs again replaces their MLflow runs (found by the tag
``memento.run_id``), so a resumed run is never there twice. Needs ``mlflow-skinny`` (the
``tracking`` extra). MLflow calls its folder store "in maintenance mode" and refuses it unless
``MLFLOW_ALLOW_FILE_STORE=true``: a folder target sets that for this process (a database or server
URI needs nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.report import Report, build_report
from memento_lab.experiments.results import load_results, models_of, run_dirs

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = "memento-lab"
MAX_PARAM = 6000  # MLflow's limit on a param value
COSTS = ("prompt_tokens", "completion_tokens", "memory_tokens", "latency_s", "n_tool_calls")


def tracking_uri(target: str | Path) -> str:
    """A folder -> the file URI of a local MLflow file store (allowed for this process); a URI as is."""
    text = str(target)
    if "://" in text or text.startswith(("sqlite:", "databricks")):
        return text
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    path = Path(text).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def _client(target: str | Path) -> MlflowClient:
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ImportError(
            "exporting to MLflow needs mlflow-skinny: pip install -e '.[tracking]' (make install does)"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri(target))


def run_params(config: ExperimentConfig, run_info: dict[str, Any]) -> dict[str, str]:
    """The run's config and models as MLflow params (strings; lists and tables as JSON)."""
    values: dict[str, Any] = config.model_dump(mode="json") | {"models": models_of(run_info)}
    out = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[key] = text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 12] + "…[truncated]"
    return out


def run_metrics(report: Report, rows: pl.DataFrame) -> list[tuple[str, float, int]]:
    """(name, value, step) of one run: accuracy and costs per iteration, summaries at step 0."""
    out: list[tuple[str, float, int]] = []
    for p in report.curves:
        prefix = "" if p.split == "stream" else f"{p.split}/"
        out += [
            (f"{prefix}accuracy", p.accuracy, p.iteration),
            (f"{prefix}accuracy_ci_low", p.ci_low, p.iteration),
            (f"{prefix}accuracy_ci_high", p.ci_high, p.iteration),
            (f"{prefix}tasks", float(p.tasks), p.iteration),
        ]
    if not rows.is_empty():
        per_iteration = rows.group_by("split", "iteration").agg(  # every attempt, failures included
            (pl.col("status") == "ok").sum().alias("episodes"),
            (pl.col("status") != "ok").sum().alias("failed_attempts"),
            *[pl.col(c).filter(pl.col("status") == "ok").mean().alias(c) for c in COSTS if c in rows.columns],
        )
        for rec in per_iteration.iter_rows(named=True):
            split, step = rec.pop("split"), int(rec.pop("iteration"))
            prefix = "" if split == "stream" else f"{split}/"
            out += [(f"{prefix}{k}", float(v), step) for k, v in rec.items() if v is not None]
    for c in report.costs:
        prefix = "" if c.split == "stream" else f"{c.split}/"
        out.append((f"{prefix}reward_per_1k_prompt_tokens", c.reward_per_1k_prompt_tokens, 0))
        if c.reward_per_stored_case is not None:
            out.append((f"{prefix}reward_per_stored_case", c.reward_per_stored_case, 0))
    out += [(f"trivial_baseline/{_key(fam)}", acc, 0) for fam, acc in sorted(report.trivial_baseline.items())]
    return out


def _key(name: str) -> str:
    """A name MLflow accepts as a metric key (letters, digits, _ - . space /)."""
    return re.sub(r"[^\w\-. /]", "_", name)


def _replace(client: MlflowClient, experiment_id: str, tag: str, value: str) -> None:
    """Delete the MLflow runs an earlier export made for the same thing (tag = value)."""
    for old in client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'"):
        client.delete_run(old.info.run_id)


def _log(
    client: MlflowClient,
    run_id: str,
    metrics: list[tuple[str, float, int]],
    params: dict[str, str],
    artifacts: Sequence[Path],
) -> None:
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    points = [Metric(k, v, stamp, step) for k, v, step in metrics]
    pairs = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(points), 1000):  # MLflow's limits per request: 1000 metrics, 100 params
        client.log_batch(run_id, metrics=points[i : i + 1000])
    for i in range(0, len(pairs), 100):
        client.log_batch(run_id, params=pairs[i : i + 100])
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)


def export_mlflow(
    runs: Sequence[str | Path],
    target: str | Path,
    *,
    experiment: str = EXPERIMENT,
    seed: int = 0,
    artifacts: Sequence[str | Path] = (),
) -> dict[str, str]:
    """Write the runs under ``runs`` to MLflow at ``target`` (a folder or a tracking URI); returns
    workbench run id -> MLflow run id. ``artifacts`` (e.g. the dashboard page) go to the report's run."""
    client = _client(target)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    folders = [d for d in run_dirs(runs) if (d / "config.json").exists()]
    if not folders:
        raise ValueError(f"no run folders (with a config.json) in {' '.join(map(str, runs))}")
    configs = {d: ExperimentConfig.model_validate_json((d / "config.json").read_text()) for d in folders}
    combined = build_report(folders, seed=seed)
    labels = {rid: arm.label for arm in combined.arms for rid in arm.runs}
    covered = hashlib.sha256(
        json.dumps(sorted(str(c.run_id) for c in configs.values())).encode()
    ).hexdigest()[:16]

    _replace(client, experiment_id, "memento.report_of", covered)
    parent = client.create_run(
        experiment_id,
        run_name=f"report of {len(folders)} run(s)",
        tags={"memento.kind": "report", "memento.report_of": covered},
    ).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        report_json = Path(tmp) / "report.json"
        report_json.write_text(combined.model_dump_json(indent=2))
        _log(
            client,
            parent,
            [("runs", float(combined.runs), 0), ("episodes", float(combined.episodes), 0)],
            {},
            [report_json, *map(Path, artifacts)],
        )

    out = {}
    for d, cfg in configs.items():
        rid = str(cfg.run_id)
        info = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else {}
        own = build_report([d], seed=seed)
        _replace(client, experiment_id, "memento.run_id", rid)
        tags = {
            "memento.kind": "run",
            "memento.run_id": rid,
            "memento.arm": labels.get(rid, ""),
            "memento.folder": str(d.resolve()),
            "mlflow.parentRunId": parent,
        }
        mlflow_id = client.create_run(experiment_id, run_name=rid, tags=tags).info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            own_json = Path(tmp) / "report.json"
            own_json.write_text(own.model_dump_json(indent=2))
            files = [own_json, *(p for p in (d / "config.json", d / "run.json") if p.exists())]
            _log(client, mlflow_id, run_metrics(own, load_results([d])), run_params(cfg, info), files)
        out[rid] = mlflow_id
    return out

"""Sweeps on Ray: every run of a sweep is one Ray task, on an embedded local Ray or on a cluster.

``run_sweep_ray`` takes the same base ``ExperimentConfig`` and axes as ``sweep.run_sweep`` (memory
modes x K x seeds x orders, ``sweep.sweep_configs``) and submits the runs that are not done yet;
each task runs ``run_experiment`` in its own run folder (bank, results, traces, its own cassette)
and opens its own session: with an OpenAI-compatible endpoint configured (``OPENAI_BASE_URL``;
vLLM/SGLang serve many workers) every worker talks to it, otherwise each worker starts the
embedded model. A finished run leaves ``run_result.json``: a re-run skips it. A failed run is
reported (``sweep.json``) and does not stop the others; it is retried on the next call.

Without ``address`` Ray starts embedded in this process (nothing to install or start); with
``address`` (``ray://host:10001`` or ``auto``) the runs go to that cluster, whose nodes must have
this package installed and see the output folder (a shared filesystem).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from tqdm.auto import tqdm

from memento_lab.config import PROJECT_ROOT
from memento_lab.experiments.config import ExperimentConfig, RunResult
from memento_lab.experiments.sweep import sweep_configs
from memento_lab.jsonl import atomic_write_text

log = logging.getLogger(__name__)

DONE_FILE = "run_result.json"
REPORT_FILE = "sweep.json"
FORWARDED_ENV = ("OPENAI_", "MEMENTO_", "HF_", "TRANSFORMERS_OFFLINE", "OMP_")


class RunStatus(BaseModel):
    out: str
    status: Literal["done", "skipped", "failed"]  # skipped: done by an earlier call
    rows: int | None = None
    accuracy_by_iteration: dict[int, float] | None = None
    error: str | None = None
    seconds: float = 0.0


class SweepReport(BaseModel):
    runs: list[RunStatus]
    ray_address: str | None

    @property
    def failed(self) -> list[RunStatus]:
        return [r for r in self.runs if r.status == "failed"]


def _run_one(config: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: one run, in its own folder and its own event loop."""
    from memento_lab.experiments.run import run_experiment

    cfg = ExperimentConfig.model_validate(config)
    result = asyncio.run(run_experiment(cfg, progress=False))
    atomic_write_text(Path(cfg.out) / DONE_FILE, result.model_dump_json())
    return result.model_dump()


def _forwarded_env(local: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    if local:  # workers import the same checkout as the driver
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def run_sweep_ray(
    base: ExperimentConfig,
    *,
    memories: Sequence[str] = ("none", "similarity"),
    seeds: Sequence[int] = (0,),
    orders: Sequence[int] = (0, 1, 2),
    ks: Sequence[int] | None = None,
    vary: Mapping[str, Sequence[Any]] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_run: float = 1.0,
    progress: bool = True,
) -> SweepReport:
    """Run every not-yet-done run of the sweep as a Ray task; write and return the sweep report."""
    from memento_lab.extras import require

    ray = require("ray", extra="ray", what="a sweep on Ray")

    configs = sweep_configs(base, memories=memories, seeds=seeds, orders=orders, ks=ks, vary=vary)
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    statuses: dict[str, RunStatus] = {}
    todo = []
    for cfg in configs:
        done = Path(cfg.out) / DONE_FILE
        if done.exists():
            prev = RunResult.model_validate_json(done.read_text())
            statuses[cfg.out] = RunStatus(
                out=cfg.out,
                status="skipped",
                rows=prev.rows,
                accuracy_by_iteration=prev.accuracy_by_iteration,
            )
        else:
            todo.append(cfg)
    bar = tqdm(total=len(configs), initial=len(statuses), desc="sweep", disable=not progress)
    if todo:
        started = not ray.is_initialized()
        if started:
            _init_ray(address, num_cpus)
        try:
            task = ray.remote(num_cpus=cpus_per_run, max_retries=0)(_run_one)
            pending = {task.remote(cfg.model_dump()): (cfg, time.perf_counter()) for cfg in todo}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                cfg, t0 = pending.pop(ready[0])
                try:
                    res = RunResult.model_validate(ray.get(ready[0]))
                    st = RunStatus(
                        out=cfg.out,
                        status="done",
                        rows=res.rows,
                        accuracy_by_iteration=res.accuracy_by_iteration,
                    )
                except Exception as e:  # one run's failure is reported, the others go on
                    st = RunStatus(out=cfg.out, status="failed", error=_last_line(e))
                st.seconds = round(time.perf_counter() - t0, 2)
                statuses[cfg.out] = st
                bar.update(1)
                bar.set_postfix(failed=sum(s.status == "failed" for s in statuses.values()))
        finally:
            if started:
                ray.shutdown()
    bar.close()
    report = SweepReport(runs=[statuses[c.out] for c in configs], ray_address=address)
    atomic_write_text(out / REPORT_FILE, report.model_dump_json(indent=2))
    return report


def _init_ray(address: str | None, num_cpus: int | None, attempts: int = 3) -> None:
    import ray

    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": _forwarded_env(local=address is None)},
                object_store_memory=100 * 1024**2 if address is None else None,
            )
            return
        except Exception as e:
            # On a busy machine the embedded raylet can miss Ray's fixed 30 s start window: try again.
            if address is not None or "timed out during startup" not in str(e) or attempt == attempts:
                raise
            log.warning("embedded Ray did not start in time (attempt %d of %d); retrying", attempt, attempts)
            ray.shutdown()


def _last_line(e: BaseException) -> str:
    """The root error of a Ray task failure (its traceback's last non-empty line)."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(e).__name__

"""Continual-learning experiments: the agent over a task stream, epoch after epoch, memory growing.

    result = await run_experiment(ExperimentConfig(suite="reasoning-gym:spell_backward", n=5,
                                                   iterations=3, memory="similarity", out="data/runs/x"))

A run directory holds everything needed to read, resume or replay the run::

    .run.lock         held while a process runs the folder (a second run on it fails at once, naming it)
    config.json       the ExperimentConfig (a resume with a different config, or a task set whose
                      contents changed, is refused, naming the fields; ``tasks_fingerprint``)
    run.json          what ran it: the endpoint and models of each role, the tools
    results.jsonl     one row per task x iteration, appended durably as tasks finish
    results.parquet   the same rows (rewritten atomically after each iteration)
    traces.jsonl      one Trace per episode
    bank/             the run's case bank (versioned: each row records the version it started from)
    pairs.jsonl       retrieval pairs (task, shown case, reward, advantage, propensity; probe deltas)
    retriever/        the learned retriever's weights after its latest online update (online.py)
    cassette.sqlite   recorded model and tool calls (replay re-executes the run offline)

Each episode ends ``ok`` or with an infrastructure failure (``memento_lab.trace.EpisodeStatus``).
Only ok episodes are scored, written to the bank and the pair log; every attempt is a row of
results.jsonl with its status. The row is written last and commits its attempt: resuming first
rolls back what an interrupted attempt wrote before its row (its case, pairs, probe pair, trace:
``recovery.py``), then skips (task, iteration) pairs whose last row is ok and retries the others, so
a run killed at any point and resumed holds one row and one case per (task, iteration). A cassette miss (replay of a request never recorded) stops the run: it raises
``CassetteMiss`` naming the request. Protocols: ``recall`` (one stream, repeated every iteration)
and ``transfer`` (each family's tasks split into a train stream that writes memory and a disjoint
test stream that only reads it, run after the train stream in every iteration).
Sweeps (``run_sweep``) vary memory mode, K, seed and task order and share one model server and
one set of tool servers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from memento_lab.agent.loop import AgentConfig
from memento_lab.agent.models.cassette import CassetteMiss
from memento_lab.agent.session import CASSETTE_FILE, Session, open_session
from memento_lab.config import Settings
from memento_lab.experiments.config import ExperimentConfig, ResultRow, RunResult
from memento_lab.experiments.fingerprint import task_hash, tasks_fingerprint
from memento_lab.experiments.online import learn_from_probe, probe_choice, probe_due, probe_memory
from memento_lab.experiments.recovery import roll_back
from memento_lab.experiments.results import finished, latest_rows, models_of, read_rows, write_results_parquet
from memento_lab.experiments.run_lock import run_lock
from memento_lab.experiments.run_memory import RunMemory, open_run_memory
from memento_lab.jsonl import append_jsonl, atomic_write_text
from memento_lab.memory.methods.cases import CaseMemory
from memento_lab.memory.read_write import counterfactual_pair
from memento_lab.provenance import code_version
from memento_lab.tasks.suites import Suite, Task, load_suite
from memento_lab.trace import Counterfactual, Trace, write_traces

RUN_INFO = "run.json"
log = logging.getLogger(__name__)


def _ordered(tasks: list[Any], order: int) -> list[Any]:
    if order == 0:
        return list(tasks)
    shuffled = list(tasks)
    random.Random(order).shuffle(shuffled)
    return shuffled


def split_streams(tasks: list[Task], config: ExperimentConfig) -> dict[str, list[Task]]:
    """The streams of a run, each in the run's task order: ``{"stream": all}`` (recall), or
    ``{"train", "test"}`` (transfer: ``test_fraction`` of each family's tasks, drawn with the seed)."""
    if config.protocol == "recall":
        return {"stream": _ordered(tasks, config.order)}
    test_ids: set[str] = set()
    families = sorted({t.family for t in tasks})
    for fam in families:
        ids = [t.id for t in tasks if t.family == fam]
        n_test = min(len(ids) - 1, max(1, round(config.test_fraction * len(ids))))
        if n_test < 1:
            raise ValueError(f"transfer protocol: family {fam!r} has {len(ids)} task(s); it needs at least 2")
        test_ids.update(random.Random(config.seed).sample(ids, n_test))
    return {
        "train": _ordered([t for t in tasks if t.id not in test_ids], config.order),
        "test": _ordered([t for t in tasks if t.id in test_ids], config.order),
    }


def _resolve_config(
    config: ExperimentConfig, out: Path, suite: Suite, hashes: dict[str, str]
) -> ExperimentConfig:
    """The config of this run: the suite's forced settings and its task set's fingerprint applied;
    on resume the stored run id, after checking that the tasks' contents and nothing but the
    resumable fields changed."""
    fingerprint = tasks_fingerprint(hashes.values())
    if config.tasks_fingerprint not in (None, fingerprint):
        raise ValueError(
            f"suite {config.suite!r}: its tasks have fingerprint {fingerprint}, the config asks for "
            f"{config.tasks_fingerprint} (the task contents are not the ones the config names)"
        )
    config = config.model_copy(update={**suite.forces, "tasks_fingerprint": fingerprint})
    config_path = out / "config.json"
    if config_path.exists():
        stored = ExperimentConfig.model_validate_json(config_path.read_text())
        if stored.tasks_fingerprint is None:  # a run started before task sets had fingerprints
            log.warning("%s: no tasks_fingerprint stored; the task contents cannot be checked", config_path)
        elif stored.tasks_fingerprint != fingerprint:
            raise ValueError(
                f"{config_path}: the tasks of suite {config.suite!r} changed since this run started "
                f"(tasks_fingerprint: stored {stored.tasks_fingerprint}, now {fingerprint}); resuming would "
                "score later iterations against other contents. Restore the tasks, or use another --out."
            )
        update = {"run_id": stored.run_id, "tasks_fingerprint": stored.tasks_fingerprint}
        bad = config.model_copy(update=update).mismatch(stored)
        if bad:
            raise ValueError(
                f"{config_path}: this run was started with a different configuration; resuming it would mix "
                f"two experiments ({'; '.join(bad)}). Use another --out, or the stored values."
            )
        config = config.model_copy(update=update)
    return config.model_copy(update={"run_id": config.run_id or uuid.uuid4().hex[:12]})


def _record_run_info(out: Path, session: Session, config: ExperimentConfig) -> None:
    """run.json: the endpoint and models that answer, and the code (version, git commit) that started
    the run; a resume on other models is refused (the endpoint's address may change: the same models
    served elsewhere)."""
    info = {
        "run_id": config.run_id,
        "llms": session.llms.describe(),
        "tools": list(config.tools),
        **code_version(),
    }
    path = out / RUN_INFO
    if path.exists() and not session.cassette.replaying:
        stored = models_of(json.loads(path.read_text()))
        if stored != models_of(info):
            raise ValueError(
                f"{path}: this run was made with models {stored}; resuming it with {models_of(info)} "
                "would mix two models in one run"
            )
    if not path.exists():
        atomic_write_text(path, json.dumps(info, indent=2))


def _check_leakage(memory: CaseMemory, tasks: list[Task], config: ExperimentConfig, out: Path) -> None:
    """Eval questions already in the bank, not counting the cases this run wrote itself (resume)."""
    from memento_lab.memory.bank.dedupe import leakage_report

    bank = memory.memory.bank
    outside = [c for c in bank.cases() if c.source.run_id != config.run_id]
    if config.leakage == "off" or not outside:
        return
    report = leakage_report(
        outside, [t.question for t in tasks], bank.encoder, threshold=config.leakage_threshold
    )
    atomic_write_text(out / "leakage.json", report.model_dump_json(indent=2))
    if config.leakage == "refuse":
        report.raise_if_contaminated()


@dataclass
class RunParts:
    """One run, ready to execute: its resolved config, tasks, memory and what is already done."""

    config: ExperimentConfig
    out: Path
    suite: Suite
    streams: dict[str, list[Task]]
    hashes: dict[str, str]  # task id -> task_hash
    memory: RunMemory
    done: set[tuple[str, int]]

    @property
    def run_id(self) -> str:
        return str(self.config.run_id)


def prepare_run(config: ExperimentConfig, out: Path) -> RunParts:
    """Everything before the first episode (under the run lock): the config checked and stored, the
    memory opened, interrupted attempts rolled back, leakage checked, rewards of done tasks replayed."""
    suite = load_suite(config.suite, n=config.n, seed=config.seed)
    hashes = {t.id: task_hash(t) for t in suite.tasks()}
    config = _resolve_config(config, out, suite, hashes)
    atomic_write_text(out / "config.json", config.model_dump_json(indent=2))
    streams = split_streams(suite.tasks(), config)
    memory = open_run_memory(config, out)
    rows = read_rows(out)
    roll_back(out, memory.method, str(config.run_id), rows)
    if memory.cases is not None:
        _check_leakage(memory.cases, streams.get("test", streams.get("stream", [])), config, out)
        memory.cases.memory.restore_rewards(
            [(r.task_id, r.reward) for r in latest_rows(rows) if r.status == "ok"]
        )
    return RunParts(config, out, suite, streams, hashes, memory, finished(out))


def agent_config(config: ExperimentConfig) -> AgentConfig:
    return AgentConfig(
        max_cycles=config.max_cycles,
        max_steps=config.max_steps,
        max_tool_calls=config.max_tool_calls,
        profile=config.agent,
        samples=config.samples,
        sample_temperature=config.sample_temperature,
        memory_style=config.memory_style,
        memory_tokens=config.memory_tokens,
        feedback=config.feedback,
    )


class Episodes:
    """The episodes of one run: each (task, iteration) not yet done, its probe, its trace, its row."""

    def __init__(self, run: RunParts, session: Session, *, progress: bool):
        self.run, self.session, self.config = run, session, run.config
        self.agent_config = agent_config(run.config)
        self.agent = session.agent(
            memory=run.memory.method, suite=run.suite, config=self.agent_config, run_id=run.run_id
        )
        self.sem = asyncio.Semaphore(run.config.concurrency)
        total = sum(len(ts) for ts in run.streams.values()) * run.config.iterations
        self.bar = tqdm(total=total, desc=f"{run.config.memory} k={run.config.k}", disable=not progress)
        self.bar.update(len(run.done))
        self.counter = itertools.count()
        self.misses: list[str] = []  # cassette misses: the run stops

    async def probe(self, trace: Trace, task: Task, iteration: int) -> None:
        """The counterfactual "without" episode: the bank as the with-episode saw it (its version),
        never a case of the same question, minus one shown case (drawn at random, seeded; or the top)."""
        cases = self.run.memory.cases
        assert cases is not None  # the config allows probes only for a case memory
        memory, dropped = cases.memory, probe_choice(self.config, trace)
        past = probe_memory(memory, trace, **self.run.memory.memory_kw)
        prober = self.session.agent(
            memory=past, suite=self.run.suite, config=self.agent_config, run_id=self.run.run_id
        )
        without = await prober.arun(task, iteration=iteration, learn=False, drop_case_ids={dropped.case_id})
        if without.status == "cassette_miss":
            self.misses.append(f"task {task.id} (iteration {iteration}, counterfactual): {without.error}")
        if without.status != "ok":
            return
        plan = memory.bank.get(dropped.case_id).plan_json if dropped.case_id in memory.bank else ""
        learn_from_probe(memory, counterfactual_pair(trace, without, dropped, plan))
        trace.counterfactual = Counterfactual(
            case_id=dropped.case_id,
            reward_without=without.reward,
            rank=dropped.rank,
            shown=len(trace.retrieved),
            choice=self.config.counterfactual_drop,
        )

    async def one(self, task: Task, iteration: int, split: str, position: int) -> None:
        """One attempt; its row, written last, commits it (recovery.py undoes an attempt without one)."""
        async with self.sem:
            if self.misses:  # the run is stopping: start nothing new
                return
            trace = await self.agent.arun(task, iteration=iteration, learn=split != "test")
            if trace.status == "cassette_miss":
                self.misses.append(f"task {task.id} (iteration {iteration}): {trace.error}")
            elif (
                trace.status == "ok"
                and split != "test"
                and trace.retrieved
                and probe_due(self.config, next(self.counter), task.id, iteration)
            ):
                await self.probe(trace, task, iteration)
        out = self.run.out
        write_traces(out / "traces.jsonl", [trace])
        row = ResultRow.of(
            trace, self.config, split=split, position=position, task_hash=self.run.hashes.get(task.id)
        )
        append_jsonl(out / "results.jsonl", [row.model_dump()])
        self.bar.update(1)
        self.bar.set_postfix(reward=f"{trace.reward:.2f}", status=trace.status)

    async def run_all(self) -> None:
        """Every iteration over every stream (transfer: train first, then test on the grown memory)."""
        for iteration in range(self.config.iterations):
            for split, tasks in self.run.streams.items():
                todo = [(i, t) for i, t in enumerate(tasks) if (t.id, iteration) not in self.run.done]
                await asyncio.gather(*(self.one(t, iteration, split, i) for i, t in todo))
                if self.misses:
                    break
            write_results_parquet(self.run.out)
            if self.misses:
                break
        self.bar.close()


async def run_experiment(
    config: ExperimentConfig,
    *,
    session: Session | None = None,
    settings: Settings | None = None,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) one experiment; a sweep passes its open ``session`` (model and tool servers).
    The run folder is locked while it runs (``run_lock.RunLocked`` if another process has it)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        run = prepare_run(config, out)
        config = run.config
        async with AsyncExitStack() as stack:
            if session is None:
                session = await stack.enter_async_context(
                    open_session(
                        out,
                        tools=config.tools,
                        tool_servers=config.tool_servers,
                        cassette=config.cassette,
                        model=config.model,
                        settings=settings,
                        concurrency=config.concurrency,
                    )
                )
            else:  # one run at a time: the session's cassette is the run's, swapped at its start
                if session.running is not None:
                    raise RuntimeError(
                        f"the session is running {session.running}; runs on one session take turns "
                        f"(await it first, or give {out} its own session)"
                    )
                session.running = out
                stack.callback(setattr, session, "running", None)
                session.use_cassette(out / CASSETTE_FILE, config.cassette)
            _record_run_info(out, session, config)
            episodes = Episodes(run, session, progress=progress)
            await episodes.run_all()
        run.memory.method.close()
        if episodes.misses:
            raise CassetteMiss(f"run {out} stopped: {episodes.misses[0]}")
        return run_result(out, run.run_id)


def run_result(out: Path, run_id: str) -> RunResult:
    """The summary of a run folder: mean reward of the ok episodes per iteration, attempts by status,
    how many (task, iteration) pairs are scored and how many failed at their last attempt."""
    rows = read_rows(out)
    status_counts: dict[str, int] = {}
    for r in rows:
        status_counts[r.status] = status_counts.get(r.status, 0) + 1
    acc: dict[int, list[float]] = {}
    latest = latest_rows(rows)
    for r in latest:
        if r.status == "ok":
            acc.setdefault(r.iteration, []).append(r.reward)
    failed = [r for r in latest if r.status != "ok"]
    return RunResult(
        out=str(out),
        run_id=run_id,
        rows=len(rows),
        accuracy_by_iteration={i: sum(v) / len(v) for i, v in sorted(acc.items())},
        status_counts=status_counts,
        scored=len(latest) - len(failed),
        unresolved=len(failed),
        first_error=next((f"{r.status}: {r.error}" for r in failed), None),
    )


def run_experiment_sync(config: ExperimentConfig, **kw: Any) -> RunResult:
    """``run_experiment`` from synchronous code: a script, or a Jupyter cell without ``await``
    (``memento_lab.asyncio_compat.run_sync``). In a notebook prefer ``await run_experiment(...)``."""
    from memento_lab.asyncio_compat import run_sync

    return run_sync(run_experiment(config, **kw))

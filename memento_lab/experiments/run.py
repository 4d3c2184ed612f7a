"""Continual-learning experiments: the agent over a task stream, epoch after epoch, memory growing.

    result = await run_experiment(ExperimentConfig(suite="reasoning-gym:spell_backward", n=5,
                                                   iterations=3, memory="similarity", out="data/runs/x"))

A run directory holds everything needed to read, resume or replay the run::

    config.json       the ExperimentConfig
    results.jsonl     one row per task x iteration, appended durably as tasks finish
    results.parquet   the same rows (rewritten atomically after each iteration)
    traces.jsonl      one Trace per episode
    bank/             the run's case bank (versioned: each row records the version it started from)
    pairs.jsonl       retrieval pairs (task, shown case, reward, advantage)
    cassette.sqlite   recorded model and tool calls (replay re-executes the run offline)

Resuming skips (task, iteration) pairs already in results.jsonl. Sweeps (``run_sweep``) vary
memory mode, K, seed and task order and share one model server and one set of tool servers.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from memento_lab.agent.loop import AgentConfig
from memento_lab.agent.session import CASSETTE_FILE, Session, open_session
from memento_lab.agent.suites import load_suite
from memento_lab.config import Settings
from memento_lab.experiments.config import ExperimentConfig, ResultRow, RunResult
from memento_lab.experiments.results import finished, read_rows, write_results_parquet
from memento_lab.jsonl import append_jsonl, atomic_write_text
from memento_lab.memory.memory import counterfactual_pair, open_memory
from memento_lab.trace import Counterfactual, write_traces


def _ordered(tasks: list[Any], order: int) -> list[Any]:
    if order == 0:
        return list(tasks)
    shuffled = list(tasks)
    random.Random(order).shuffle(shuffled)
    return shuffled


async def run_experiment(
    config: ExperimentConfig,
    *,
    session: Session | None = None,
    settings: Settings | None = None,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) one experiment; a sweep passes its open ``session`` (model and tool servers)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.json"
    if config_path.exists():  # resume: the stored run id wins, the config must match
        stored = ExperimentConfig.model_validate_json(config_path.read_text())
        config = config.model_copy(update={"run_id": stored.run_id})
    run_id = config.run_id or uuid.uuid4().hex[:12]
    config = config.model_copy(update={"run_id": run_id})
    atomic_write_text(config_path, config.model_dump_json(indent=2))

    suite = load_suite(config.suite, n=config.n, seed=config.seed)
    tasks = _ordered(suite.tasks(), config.order)

    bank_dir = out / "bank"
    if config.initial_bank and not bank_dir.exists():
        shutil.copytree(config.initial_bank, bank_dir, ignore=shutil.ignore_patterns(".lock"))
    memory = open_memory(
        bank_dir,
        config.memory,
        pairs=out / "pairs.jsonl",
        checkpoint=config.checkpoint,
        seed=config.seed,
        k=config.k,
        k_positive=config.k_positive,
        k_negative=config.k_negative,
        temperature=config.temperature,
        exclude_question=config.exclude_question,
    )
    bank = memory.bank
    if config.leakage != "off" and len(bank):
        from memento_lab.memory.dedupe import leakage_report

        report = leakage_report(
            bank.cases(), [t.question for t in tasks], bank.encoder, threshold=config.leakage_threshold
        )
        atomic_write_text(out / "leakage.json", report.model_dump_json(indent=2))
        if config.leakage == "refuse":
            report.raise_if_contaminated()
    if config.memory == "parametric" and config.online_update:
        from memento_lab.memory.parametric import ParametricRetriever

        assert isinstance(memory.retriever, ParametricRetriever)
        memory.retriever.config = memory.retriever.config.model_copy(update={"every": 1, "seed": config.seed})

    done = finished(out)
    memory.restore_rewards([(row["task_id"], row["reward"]) for row in read_rows(out)])

    async with AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(
                open_session(
                    out,
                    tools=config.tools,
                    cassette=config.cassette,
                    model=config.model,
                    settings=settings,
                    concurrency=config.concurrency,
                )
            )
        else:
            session.use_cassette(out / CASSETTE_FILE, config.cassette)
        agent = session.agent(
            memory=memory,
            suite=suite,
            config=AgentConfig(
                max_cycles=config.max_cycles, max_steps=config.max_steps, max_tool_calls=config.max_tool_calls
            ),
            run_id=run_id,
        )
        sem = asyncio.Semaphore(config.concurrency)
        bar = tqdm(
            total=len(tasks) * config.iterations, desc=f"{config.memory} k={config.k}", disable=not progress
        )
        bar.update(len(done))

        counter = iter(range(1 << 30))

        async def one(task: Any, iteration: int) -> None:
            async with sem:
                trace = await agent.arun(task, iteration=iteration)
                if (
                    config.counterfactual_every
                    and trace.retrieved
                    and next(counter) % config.counterfactual_every == 0
                ):
                    top = trace.retrieved[0]
                    without = await agent.arun(
                        task, iteration=iteration, learn=False, drop_case_ids={top.case_id}
                    )
                    plan = bank.get(top.case_id).plan_json if top.case_id in bank else ""
                    if memory.pairs is not None:
                        memory.pairs.append([counterfactual_pair(trace, without, top, plan)])
                    trace.counterfactual = Counterfactual(case_id=top.case_id, reward_without=without.reward)
            write_traces(out / "traces.jsonl", [trace])
            append_jsonl(out / "results.jsonl", [ResultRow.of(trace, config).model_dump()])
            bar.update(1)
            bar.set_postfix(reward=f"{trace.reward:.2f}")

        for iteration in range(config.iterations):
            todo = [t for t in tasks if (t.id, iteration) not in done]
            await asyncio.gather(*(one(t, iteration) for t in todo))
            write_results_parquet(out)
        bar.close()
    bank.snapshot()
    rows = read_rows(out)
    acc: dict[int, list[float]] = {}
    for r in rows:
        acc.setdefault(r["iteration"], []).append(r["reward"])
    return RunResult(
        out=str(out),
        run_id=run_id,
        rows=len(rows),
        accuracy_by_iteration={i: sum(v) / len(v) for i, v in sorted(acc.items())},
    )

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
import json
import random
import shutil
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from memento_lab.agent.loop import Agent, AgentConfig
from memento_lab.config import CassetteMode, Settings
from memento_lab.jsonl import append_jsonl, atomic_write_bytes, atomic_write_text, read_jsonl
from memento_lab.memory.cases import CaseBank
from memento_lab.memory.memory import Memory, counterfactual_pair
from memento_lab.memory.pairs import PairLog
from memento_lab.trace import Trace, write_traces


class ExperimentConfig(BaseModel):
    """Everything that defines a run (primitives only, so it is a papermill parameter set too)."""

    suite: str = "reasoning-gym:spell_backward,chain_sum"
    n: int = 4  # tasks per family
    seed: int = 0  # which tasks (suite generator seed)
    order: int = 0  # task order: 0 = the suite's order, else a seeded shuffle
    iterations: int = 2  # epochs over the stream
    memory: Literal["none", "random", "similarity", "parametric"] = "similarity"
    k: int = 4
    k_positive: int | None = None
    k_negative: int | None = None
    temperature: float | None = None  # soft retrieval policy (softmax over scores)
    exclude_question: bool = False  # never show a case of the very same task
    checkpoint: str | None = None  # parametric retriever checkpoint
    online_update: bool = False  # parametric: update the head after each episode
    counterfactual_every: int = 0  # every Nth episode, re-run without its top case (0 = off)
    initial_bank: str | None = None  # a bank folder to start from (copied into the run)
    leakage: Literal["off", "flag", "refuse"] = "flag"
    leakage_threshold: float = 0.95
    concurrency: int = 1
    tools: list[str] = Field(default_factory=lambda: ["code", "math"])
    model: str | None = None  # embedded model name or GGUF path (default: Settings.local_model)
    cassette: CassetteMode = "record"
    max_cycles: int = 2
    max_steps: int = 3
    max_tool_calls: int = 2
    out: str = "data/runs/run"
    run_id: str | None = None

    def key(self) -> dict[str, Any]:
        """The sweep keys every result row carries."""
        return {
            "memory": self.memory,
            "k": self.k,
            "seed": self.seed,
            "order": self.order,
            "suite": self.suite,
        }


class RunResult(BaseModel):
    out: str
    run_id: str
    rows: int
    accuracy_by_iteration: dict[int, float]


def _ordered(tasks: list[Any], order: int) -> list[Any]:
    if order == 0:
        return list(tasks)
    shuffled = list(tasks)
    random.Random(order).shuffle(shuffled)
    return shuffled


def result_row(trace: Trace, config: ExperimentConfig) -> dict[str, Any]:
    usage = trace.usage
    primary = trace.verdicts[0] if trace.verdicts else None
    return {
        "run_id": trace.run_id,
        **config.key(),
        "iteration": trace.iteration,
        "task_id": trace.task_id,
        "family": trace.metadata.get("family"),
        "reward": trace.reward,
        "correct": bool(primary.correct) if primary else False,
        "answer": trace.final_answer,
        "expected": trace.expected,
        "error": trace.error,
        "latency_s": trace.latency_s,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "n_cycles": len(trace.cycles),
        "n_tool_calls": len(trace.tool_calls),
        "n_retrieved": len(trace.retrieved),
        "n_retrieved_positive": sum(r.label == "positive" for r in trace.retrieved),
        "retrieved_ids": json.dumps([r.case_id for r in trace.retrieved]),
        "bank_version": trace.metadata.get("bank_version"),
        "case_id": trace.case_id,
    }


async def run_experiment(
    config: ExperimentConfig,
    *,
    llms: Any = None,
    tools: Any = None,
    settings: Settings | None = None,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) one experiment; ``llms``/``tools`` may be shared by the caller across runs."""
    from memento_lab.agent.suites import JudgeContext, load_suite
    from memento_lab.memory.encoders import bank_encoder
    from memento_lab.memory.memory import make_retriever

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
    encoder = bank_encoder(bank_dir)
    bank = CaseBank(bank_dir, encoder=encoder)
    if config.leakage != "off" and len(bank):
        from memento_lab.memory.dedupe import leakage_report

        report = leakage_report(
            bank.cases(), [t.question for t in tasks], encoder, threshold=config.leakage_threshold
        )
        atomic_write_text(out / "leakage.json", report.model_dump_json(indent=2))
        if config.leakage == "refuse":
            report.raise_if_contaminated()
    retriever = make_retriever(
        config.memory, bank, encoder=encoder, checkpoint=config.checkpoint, seed=config.seed
    )
    if config.memory == "parametric" and config.online_update:
        from memento_lab.memory.parametric import ParametricRetriever

        assert isinstance(retriever, ParametricRetriever)
        retriever.config = retriever.config.model_copy(update={"every": 1, "seed": config.seed})
    memory = Memory(
        bank,
        retriever,
        pairs=PairLog(out / "pairs.jsonl"),
        k=config.k,
        k_positive=config.k_positive,
        k_negative=config.k_negative,
        temperature=config.temperature,
        exclude_question=config.exclude_question,
    )

    done = _finished(out)
    for row in _read_rows(out):  # restore the per-task reward history that baselines use
        memory._rewards[row["task_id"]].append(row["reward"])

    async with AsyncExitStack() as stack:
        llms, tools = await _open_io(stack, config, settings, out, llms=llms, tools=tools)
        agent = Agent(
            llms,
            tools=tools,
            memory=memory,
            suite=suite,
            judge_ctx=JudgeContext(judge=llms.judge),
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
                    trace.metadata["counterfactual"] = {
                        "case_id": top.case_id,
                        "reward_without": without.reward,
                    }
            write_traces(out / "traces.jsonl", [trace])
            append_jsonl(out / "results.jsonl", [result_row(trace, config)])
            bar.update(1)
            bar.set_postfix(reward=f"{trace.reward:.2f}")

        for iteration in range(config.iterations):
            todo = [t for t in tasks if (t.id, iteration) not in done]
            await asyncio.gather(*(one(t, iteration) for t in todo))
            write_results_parquet(out)
        bar.close()
    bank.snapshot()
    rows = _read_rows(out)
    acc: dict[int, list[float]] = {}
    for r in rows:
        acc.setdefault(r["iteration"], []).append(r["reward"])
    return RunResult(
        out=str(out),
        run_id=run_id,
        rows=len(rows),
        accuracy_by_iteration={i: sum(v) / len(v) for i, v in sorted(acc.items())},
    )


async def _open_io(
    stack: AsyncExitStack,
    config: ExperimentConfig,
    settings: Settings | None,
    out: Path,
    *,
    llms: Any = None,
    tools: Any = None,
) -> tuple[Any, Any]:
    """The model clients and tool servers of a run, opening those not given; both record into the
    one cassette ``<out>/cassette.sqlite``."""
    need_tools = tools is None and bool(config.tools)
    if llms is not None and not need_tools:
        return llms, tools
    from memento_lab.agent.cassette import Cassette

    cassette = Cassette(out / "cassette.sqlite", mode=config.cassette)
    if llms is None:
        from memento_lab.agent.llm import open_llms

        settings = settings or Settings()
        settings = settings.model_copy(
            update={"local_parallel": max(settings.local_parallel, config.concurrency)}
        )
        llms = await stack.enter_async_context(
            open_llms(settings, local_model=config.model, cassette=cassette)
        )
    if need_tools:
        from memento_lab.agent.mcp_client import ToolBox

        (out / "workspace").mkdir(exist_ok=True)
        tools = await stack.enter_async_context(
            ToolBox(config.tools, workspace=out / "workspace", cassette=cassette, settings=settings)
        )
    return llms, tools


def _read_rows(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    return [row for _, row in read_jsonl(path, strict=False)] if path.exists() else []


def _finished(out: Path) -> set[tuple[str, int]]:
    return {(r["task_id"], r["iteration"]) for r in _read_rows(out)}


def write_results_parquet(out: Path) -> Path:
    import io

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
            rows.extend(_read_rows(d))
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None)


async def run_sweep(
    base: ExperimentConfig,
    *,
    memories: Sequence[str] = ("none", "similarity"),
    seeds: Sequence[int] = (0,),
    orders: Sequence[int] = (0, 1, 2),
    ks: Sequence[int] | None = None,
    settings: Settings | None = None,
    progress: bool = True,
) -> list[Path]:
    """Every combination of memory mode x K x seed x order, sharing one model server and tool set.

    Each run gets its own folder ``<base.out>/<memory>-k<k>-s<seed>-o<order>``.
    """
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    combos = [(m, k, s, o) for m in memories for k in (ks or [base.k]) for s in seeds for o in orders]
    paths: list[Path] = []
    async with AsyncExitStack() as stack:
        llms, tools = await _open_io(stack, base, settings, out)
        for m, k, s, o in tqdm(combos, desc="sweep", disable=not progress):
            cfg = base.model_copy(
                update={
                    "memory": m,
                    "k": k,
                    "seed": s,
                    "order": o,
                    "out": str(out / f"{m}-k{k}-s{s}-o{o}"),
                    "run_id": None,
                }
            )
            await run_experiment(cfg, llms=llms, tools=tools, settings=settings, progress=progress)
            paths.append(Path(cfg.out))
    return paths


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
    }


def _configs(runs: Sequence[str | Path]) -> list[ExperimentConfig]:
    out = []
    for run in runs:
        run = Path(run)
        for p in [run / "config.json", *run.glob("*/config.json")]:
            if p.exists():
                out.append(ExperimentConfig.model_validate_json(p.read_text()))
    return out

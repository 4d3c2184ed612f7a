"""Sweeps: every memory mode x K x seed x task order, one run folder each, one model server for all."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from memento_lab.agent.session import CASSETTE_FILE, open_session
from memento_lab.config import Settings
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.run import run_experiment


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

    Each run gets its own folder ``<base.out>/<memory>-k<k>-s<seed>-o<order>`` with its own cassette.
    """
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    combos = [(m, k, s, o) for m in memories for k in (ks or [base.k]) for s in seeds for o in orders]
    paths: list[Path] = []
    # one model server and one set of tool servers; each run records into its own cassette
    root_cassette = (out / _run_name(*combos[0]) / CASSETTE_FILE) if base.cassette == "replay" else None
    async with open_session(
        out if root_cassette is None else root_cassette.parent,
        tools=base.tools,
        cassette=base.cassette if root_cassette is not None else "off",
        model=base.model,
        settings=settings,
        concurrency=base.concurrency,
        cassette_path=CASSETTE_FILE if root_cassette is not None else None,
    ) as session:
        bar = tqdm(
            sweep_configs(base, memories=memories, seeds=seeds, orders=orders, ks=ks),
            desc="sweep",
            unit="run",
            disable=not progress,
        )
        for cfg in bar:  # one bar for the sweep; the runs' own bars would pile up in a notebook
            bar.set_postfix_str(Path(cfg.out).name)
            await run_experiment(cfg, session=session, settings=settings, progress=False)
            paths.append(Path(cfg.out))
    return paths


def sweep_configs(
    base: ExperimentConfig,
    *,
    memories: Sequence[str] = ("none", "similarity"),
    seeds: Sequence[int] = (0,),
    orders: Sequence[int] = (0, 1, 2),
    ks: Sequence[int] | None = None,
) -> list[ExperimentConfig]:
    """One config per run of the sweep, each with its own folder under ``base.out``."""
    out = Path(base.out)
    return [
        base.model_copy(
            update={
                "memory": m,
                "k": k,
                "seed": s,
                "order": o,
                "out": str(out / _run_name(m, k, s, o)),
                "run_id": None,
            }
        )
        for m in memories
        for k in (ks or [base.k])
        for s in seeds
        for o in orders
    ]


def _run_name(memory: str, k: int, seed: int, order: int) -> str:
    return f"{memory}-k{k}-s{seed}-o{order}"

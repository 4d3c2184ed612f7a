"""Sweeps: every memory mode x K x seed x task order, one run folder each, one model server for all."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from memento_lab.agent.session import CASSETTE_FILE, open_session
from memento_lab.config import Settings
from memento_lab.experiments.config import CASE_ONLY, ExperimentConfig
from memento_lab.experiments.run import run_experiment
from memento_lab.memory.methods.registry import method_spec


async def run_sweep(
    base: ExperimentConfig,
    *,
    memories: Sequence[str] = ("none", "similarity"),
    seeds: Sequence[int] = (0,),
    orders: Sequence[int] = (0, 1, 2),
    ks: Sequence[int] | None = None,
    vary: Mapping[str, Sequence[Any]] | None = None,
    settings: Settings | None = None,
    progress: bool = True,
) -> list[Path]:
    """Every combination of memory mode x K x seed x order, sharing one model server and tool set.

    Each run gets its own folder ``<base.out>/<memory>-k<k>-s<seed>-o<order>`` with its own cassette;
    ``vary`` crosses any other ``ExperimentConfig`` fields too (e.g. ``{"bank_policy": ["keep-all",
    "lru"], "memory_tokens": [150, 400]}``), each value in the folder name.
    """
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = sweep_configs(base, memories=memories, seeds=seeds, orders=orders, ks=ks, vary=vary)
    paths: list[Path] = []
    # one model server and one set of tool servers; each run records into its own cassette
    root_cassette = (Path(configs[0].out) / CASSETTE_FILE) if base.cassette == "replay" else None
    async with open_session(
        out if root_cassette is None else root_cassette.parent,
        tools=base.tools,
        tool_servers=base.tool_servers,
        cassette=base.cassette if root_cassette is not None else "off",
        model=base.model,
        settings=settings,
        concurrency=base.concurrency,
        cassette_path=CASSETTE_FILE if root_cassette is not None else None,
    ) as session:
        bar = tqdm(
            configs,
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
    vary: Mapping[str, Sequence[Any]] | None = None,
) -> list[ExperimentConfig]:
    """One config per run of the sweep, each with its own folder under ``base.out``."""
    out = Path(base.out)
    extra = dict(vary or {})
    unknown = sorted(set(extra) - set(ExperimentConfig.model_fields))
    if unknown:
        raise ValueError(f"sweep: {unknown} are not ExperimentConfig fields")
    configs = []
    for m, k, s, o, *values in itertools.product(memories, ks or [base.k], seeds, orders, *extra.values()):
        fields = dict(zip(extra, values, strict=True))
        name = _run_name(m, k, s, o) + "".join(f"-{key}={_name_part(value)}" for key, value in fields.items())
        update = {
            "memory": m,
            "k": k,
            "seed": s,
            "order": o,
            **fields,
            "out": str(out / name),
            "run_id": None,
        }
        configs.append(ExperimentConfig.model_validate({**_base_for(base, m, swept=fields), **update}))
    return configs


def _base_for(base: ExperimentConfig, memory: str, *, swept: Mapping[str, Any]) -> dict[str, Any]:
    """The base's fields for one memory of the sweep: the case memories' own options (a checkpoint, a
    bank policy, ...) stay with the case memories; another method gets their defaults (unless the
    sweep itself varies one, which that method then refuses)."""
    values = base.model_dump()
    if method_spec(memory).keeps == "cases":
        return values
    fields = ExperimentConfig.model_fields
    return values | {
        name: fields[name].get_default(call_default_factory=True) for name in CASE_ONLY if name not in swept
    }


def _run_name(memory: str, k: int, seed: int, order: int) -> str:
    return f"{memory}-k{k}-s{seed}-o{order}"


def _name_part(value: Any) -> str:
    """A swept value in a folder name: as it is when short and plain, else a readable part and a hash
    (a suite spec holds slashes, '?' and '&': it must not make sub-folders, and two specs never share one)."""
    text = str(value)
    if re.fullmatch(r"[\w.,+=-]{1,40}", text):
        return text
    plain = re.sub(r"[^\w.,+=-]+", "_", text.rsplit("/", 1)[-1])[:24]
    return f"{plain}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"

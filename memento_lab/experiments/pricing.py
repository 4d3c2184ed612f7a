"""What a memory costs and what it returns, beside the compute-matched baseline: no memory with voting.

    prices = memory_prices(scored, arms, seed=0)     # one MemoryPrice per memory arm and split

For each arm over a whole split (every iteration; each task's mean reward over them, paired by task):
accuracy with its bootstrap CI; the paired difference against ``none`` and against Memento's cases
(``similarity``); the maintenance calls and tokens (the memory's own model calls, counted apart from
the agent's); the read tokens (the block in the prompt); the agent's tokens; seconds per episode
(the episode plus the memory's write); and accuracy gained per 1M maintenance tokens and per 1M extra
tokens (everything the arm spends beyond ``none``).

The compute-matched baseline: ``none`` with self-consistency voting (``samples`` > 1) spends extra
tokens too. ``matched_samples`` is the number of votes that would spend what the memory spends
beyond ``none``; when the report holds voting arms, the one whose extra tokens are closest stands
beside the memory, with its own paired difference against ``none``. ``verdict`` then says which
buys more accuracy for its tokens: a memory that costs more than voting and gains less shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import polars as pl
from pydantic import BaseModel

from memento_lab.experiments import stats
from memento_lab.experiments.results import TASK, task_ids, task_matrix

CASES = "similarity"  # Memento's cases, the reference memory
MAINTENANCE = (
    "maintenance_calls",
    "maintenance_prompt_tokens",
    "maintenance_completion_tokens",
    "memory_write_s",
)


class ArmLike(Protocol):
    id: str
    label: str
    config: dict[str, Any]


class Paired(BaseModel):
    """The arm minus another on the tasks both scored (each task's mean over the split's iterations)."""

    against: str  # the other arm's label
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    tasks: int


class MemoryPrice(BaseModel):
    arm: str
    label: str
    memory: str
    samples: int  # votes per task (1: no voting)
    split: str
    episodes: int
    accuracy: float
    ci_low: float
    ci_high: float
    vs_none: Paired | None = None
    vs_cases: Paired | None = None
    maintenance_calls: float  # per episode
    maintenance_tokens: float  # per episode (prompt + completion of the memory's calls)
    read_tokens: float  # per episode: the memory block in the agent's prompt
    agent_tokens: float  # per episode: the agent's own prompt + completion tokens
    extra_tokens: float | None  # per episode, beyond ``none``'s agent tokens (maintenance included)
    seconds: float  # per episode: the episode and the memory's write
    gain_per_1m_maintenance: float | None  # accuracy points vs none per 1M maintenance tokens an episode
    gain_per_1m_extra: float | None  # accuracy points vs none per 1M extra tokens an episode
    matched_samples: float | None  # votes of ``none`` that would spend the same extra tokens
    voting: str | None = None  # the label of the voting arm closest in extra tokens
    voting_extra_tokens: float | None = None
    voting_vs_none: Paired | None = None
    verdict: str = ""


def _samples(arm: ArmLike) -> int:
    return int(arm.config.get("samples") or 1)


def _with_defaults(part: pl.DataFrame) -> pl.DataFrame:
    """Rows written before the memory's columns existed count no maintenance."""
    missing = [pl.lit(0).alias(c) for c in MAINTENANCE if c not in part.columns]
    return part.with_columns(missing) if missing else part


def _per_task(part: pl.DataFrame) -> pl.DataFrame:
    return part.group_by(["run_id", TASK]).agg(pl.col("reward").mean())


def paired(a: pl.DataFrame, b: pl.DataFrame, label: str, seed: int) -> Paired | None:
    """A's per-task mean reward minus B's on their common tasks (None with fewer than 2)."""
    common = sorted(set(task_ids(a)) & set(task_ids(b)))
    if len(common) < 2:
        return None
    ma, mb = task_matrix(_per_task(a), common)[0], task_matrix(_per_task(b), common)[0]
    diff, lo, hi = stats.paired_bootstrap(ma, mb, seed=seed)
    p = stats.permutation_p(stats.task_means(ma) - stats.task_means(mb), seed=seed)
    return Paired(against=label, diff=diff, ci_low=lo, ci_high=hi, p_value=p, tasks=len(common))


def _mean(part: pl.DataFrame, expr: pl.Expr) -> float:
    value = part.select(expr.mean()).item()
    return float(value) if value is not None else 0.0


def _reference(
    parts: Mapping[str, pl.DataFrame], arms: Mapping[str, ArmLike], part: pl.DataFrame, memory: str
) -> str | None:
    """The arm of ``memory`` without voting that shares the most tasks with ``part``."""
    mine = set(task_ids(part))
    candidates = [a for a in parts if arms[a].config.get("memory") == memory and _samples(arms[a]) == 1]
    return max(candidates, key=lambda a: len(mine & set(task_ids(parts[a]))), default=None)


def _verdict(price: MemoryPrice) -> str:
    if price.vs_none is None:
        return "no paired none arm"
    gain = price.vs_none.diff
    if price.voting_vs_none is None or price.voting_extra_tokens is None or price.extra_tokens is None:
        return (
            f"run none with --samples {price.matched_samples:.0f} to compare" if price.matched_samples else ""
        )
    cheaper = price.extra_tokens <= price.voting_extra_tokens
    better = gain > price.voting_vs_none.diff
    if better and cheaper:
        return "memory gains more than voting for fewer tokens"
    if not better and not cheaper:
        return "voting gains at least as much for fewer tokens: the memory costs more and gains less"
    if better:
        return "memory gains more than voting, for more tokens"
    return "voting gains at least as much, for more tokens"


def memory_prices(scored: pl.DataFrame, arms: Mapping[str, ArmLike], *, seed: int = 0) -> list[MemoryPrice]:
    """One price per arm and split of the scored episodes (see the module docstring)."""
    if scored.is_empty():
        return []
    scored = _with_defaults(scored)
    out: list[MemoryPrice] = []
    for (split,), by_split in sorted(scored.group_by(["split"]), key=lambda g: str(g[0])):
        parts = {str(a): p for (a,), p in by_split.group_by(["arm_id"])}
        agent = {a: _mean(p, pl.col("prompt_tokens") + pl.col("completion_tokens")) for a, p in parts.items()}
        for arm_id, part in sorted(parts.items(), key=lambda kv: arms[kv[0]].label):
            out.append(_price(arm_id, part, parts, arms, agent, str(split), seed))
        _match_voting([p for p in out if p.split == split], arms)
    return out


def _price(
    arm_id: str,
    part: pl.DataFrame,
    parts: Mapping[str, pl.DataFrame],
    arms: Mapping[str, ArmLike],
    agent_tokens_of: Mapping[str, float],
    split: str,
    seed: int,
) -> MemoryPrice:
    arm = arms[arm_id]
    m, _ = task_matrix(_per_task(part), task_ids(part))
    acc, lo, hi = stats.bootstrap_mean(m, seed=seed)
    none_id = _reference(parts, arms, part, "none")
    cases_id = _reference(parts, arms, part, CASES)
    maintenance = _mean(part, pl.col("maintenance_prompt_tokens") + pl.col("maintenance_completion_tokens"))
    agent = agent_tokens_of[arm_id]
    vs_none = (
        paired(part, parts[none_id], arms[none_id].label, seed) if none_id and none_id != arm_id else None
    )
    extra = agent + maintenance - agent_tokens_of[none_id] if none_id else None
    base = agent_tokens_of[none_id] if none_id else 0.0
    return MemoryPrice(
        arm=arm_id,
        label=arm.label,
        memory=str(arm.config.get("memory", "?")),
        samples=_samples(arm),
        split=split,
        episodes=part.height,
        accuracy=acc,
        ci_low=lo,
        ci_high=hi,
        vs_none=vs_none,
        vs_cases=paired(part, parts[cases_id], arms[cases_id].label, seed)
        if cases_id and cases_id != arm_id
        else None,
        maintenance_calls=_mean(part, pl.col("maintenance_calls")),
        maintenance_tokens=maintenance,
        read_tokens=_mean(part, pl.col("memory_tokens")),
        agent_tokens=agent,
        extra_tokens=extra,
        seconds=_mean(part, pl.col("latency_s") + pl.col("memory_write_s")),
        gain_per_1m_maintenance=vs_none.diff / (maintenance / 1e6) if vs_none and maintenance > 0 else None,
        gain_per_1m_extra=vs_none.diff / (extra / 1e6) if vs_none and extra and extra > 0 else None,
        matched_samples=1 + extra / base if extra is not None and base > 0 and extra > 0 else None,
    )


def _match_voting(prices: list[MemoryPrice], arms: Mapping[str, ArmLike]) -> None:
    """Beside each memory arm, the voting arm (none, samples > 1) closest to it in extra tokens."""
    voting = [p for p in prices if p.memory == "none" and p.samples > 1 and p.extra_tokens is not None]
    for p in prices:
        if p.memory != "none" and voting and p.extra_tokens is not None:
            extra = p.extra_tokens
            best = min(voting, key=lambda v: abs(float(v.extra_tokens or 0.0) - extra))
            p.voting, p.voting_extra_tokens, p.voting_vs_none = best.label, best.extra_tokens, best.vs_none
        p.verdict = _verdict(p) if p.memory != "none" else ""


def prices_frame(prices: list[MemoryPrice]) -> pl.DataFrame:
    """The price table (one row per arm and split), CIs as columns, for a notebook or a page."""
    rows = []
    for p in prices:
        row: dict[str, Any] = p.model_dump(exclude={"vs_none", "vs_cases", "voting_vs_none"})
        for name in ("vs_none", "vs_cases", "voting_vs_none"):
            d = getattr(p, name)
            row[f"{name}"] = d.diff if d else np.nan
            row[f"{name}_ci"] = f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}]" if d else ""
        rows.append(row)
    return pl.DataFrame(rows)

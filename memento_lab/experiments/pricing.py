"""What a memory costs and what it returns, beside the compute-matched baseline: no memory with voting.

    prices = memory_prices(scored, arms, seed=0)     # one MemoryPrice per arm and split
    for p in build_report(runs).prices:
        print(p.label, p.vs_none, p.matched_samples, p.voting, p.vs_voting, p.verdict)

Each arm's **base** is the arm with memory ``none`` and one attempt that agrees with it on every other
config key (the same profile, suite, models, ... ; only the keys that say how memory is used,
``MEMORY_KEYS``, may differ); its **voting arms** are that base with ``samples`` > 1. For each arm over
a whole split (every iteration; each task's mean reward over them, paired by task): accuracy with
its bootstrap CI; the paired difference against its base and against Memento's cases
(``similarity`` on the same base); the maintenance calls and tokens (the memory's own model calls,
counted apart from the agent's) and the share of their replies the memory could not use (no
cheatsheet block, no items, no operations: paid for, thrown away); the read tokens (the block in the
prompt); the agent's tokens (every attempt when it votes); seconds per episode (the episode plus the
memory's write); and accuracy gained per 1M maintenance tokens and per 1M extra tokens (everything
spent beyond the base).

The compute-matched baseline: voting (``--samples N``) spends extra tokens on more attempts instead
of a memory. ``matched_samples`` is the number of votes of the base that would spend what the arm
spends (agent + maintenance tokens / the base's); when the report holds voting arms of the base,
the one closest in extra tokens stands beside the memory: its own difference against the base, and
memory − voting paired over the tasks both scored (``vs_voting``). ``verdict`` then says which buys
more accuracy for its tokens: a memory that costs more than voting and gains less shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import polars as pl
from pydantic import BaseModel

from memento_lab.experiments import stats
from memento_lab.experiments.config import CASE_ONLY
from memento_lab.experiments.results import TASK, task_ids, task_matrix

CASES = "similarity"  # Memento's cases, the reference memory
MAINTENANCE = (
    "maintenance_calls",
    "maintenance_prompt_tokens",
    "maintenance_completion_tokens",
    "memory_write_s",
)
# the keys that say how memory is used; every other key of an arm and its base must agree
MEMORY_KEYS = frozenset(CASE_ONLY) | {
    "memory",
    "memory_options",
    "feedback",
    "k",
    "exclude_question",
    "online_target",
    "min_q",
    "none_option",
    "shortlist",
    "counterfactual_drop",
    "memory_tokens",
    "memory_style",
}
_ATTEMPT_KEYS = frozenset({"samples", "sample_temperature"})


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
    base: str | None = None  # the label of the arm's base: memory none, one attempt, every other key equal
    vs_none: Paired | None = None  # the arm minus its base
    vs_cases: Paired | None = None
    maintenance_calls: float  # per episode
    maintenance_tokens: float  # per episode (prompt + completion of the memory's calls)
    maintenance_unusable: float | None = None  # share of those calls whose reply the memory threw away
    read_tokens: float  # per episode: the memory block in the agent's prompt
    agent_tokens: float  # per episode: the agent's own prompt + completion tokens (every attempt)
    extra_tokens: float | None  # per episode, beyond the base's agent tokens (maintenance included)
    seconds: float  # per episode: the episode and the memory's write
    gain_per_1m_maintenance: float | None  # accuracy points vs none per 1M maintenance tokens an episode
    gain_per_1m_extra: float | None  # accuracy points vs none per 1M extra tokens an episode
    matched_samples: float | None  # votes of the base that would spend the same tokens (agent + maintenance)
    voting: str | None = None  # the label of the base's voting arm closest in extra tokens
    voting_samples: int | None = None
    voting_accuracy: float | None = None
    voting_extra_tokens: float | None = None
    voting_vs_none: Paired | None = None  # the voting arm minus the base
    vs_voting: Paired | None = None  # the arm minus that voting arm, paired over the tasks both scored
    verdict: str = ""


def _samples(arm: ArmLike) -> int:
    return int(arm.config.get("samples") or 1)


def _rest(arm: ArmLike) -> dict[str, Any]:
    """The keys an arm and its base share: everything but memory and voting."""
    return {k: v for k, v in arm.config.items() if k not in MEMORY_KEYS | _ATTEMPT_KEYS}


def _with_defaults(part: pl.DataFrame) -> pl.DataFrame:
    """Rows written before the memory's columns existed count no maintenance."""
    missing = [pl.lit(0).alias(c) for c in MAINTENANCE if c not in part.columns]
    return part.with_columns(missing) if missing else part


def unusable_share(part: pl.DataFrame) -> float | None:
    """The share of the maintenance calls whose reply the memory could not use, over the episodes
    that counted them (rows written before the count existed are left out); None without calls."""
    if "maintenance_unusable" not in part.columns:
        return None
    counted = part.filter(pl.col("maintenance_unusable").is_not_null())
    calls = int(counted["maintenance_calls"].sum())
    return float(counted["maintenance_unusable"].sum()) / calls if calls else None


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
    parts: Mapping[str, pl.DataFrame], arms: Mapping[str, ArmLike], arm_id: str, memory: str
) -> str | None:
    """The arm of ``memory`` with one attempt that agrees with ``arm_id`` on every non-memory key
    (of several, the one sharing the most tasks)."""
    rest, mine = _rest(arms[arm_id]), set(task_ids(parts[arm_id]))
    candidates = [
        a
        for a in parts
        if arms[a].config.get("memory") == memory and _samples(arms[a]) == 1 and _rest(arms[a]) == rest
    ]
    return max(candidates, key=lambda a: len(mine & set(task_ids(parts[a]))), default=None)


def _verdict(price: MemoryPrice) -> str:
    if price.vs_none is None:
        return "no paired none arm"
    gain = price.vs_none.diff
    if price.voting_vs_none is None or price.voting_extra_tokens is None or price.extra_tokens is None:
        votes = round(price.matched_samples or 0)
        return f"run none with --samples {votes} to compare" if votes >= 2 else ""
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
        prices = {
            arm_id: _price(arm_id, parts, arms, agent, str(split), seed)
            for arm_id in sorted(parts, key=lambda a: arms[a].label)
        }
        _match_voting(prices, parts, arms, seed)
        out += prices.values()
    return out


def _price(
    arm_id: str,
    parts: Mapping[str, pl.DataFrame],
    arms: Mapping[str, ArmLike],
    agent_tokens_of: Mapping[str, float],
    split: str,
    seed: int,
) -> MemoryPrice:
    arm, part = arms[arm_id], parts[arm_id]
    m, _ = task_matrix(_per_task(part), task_ids(part))
    acc, lo, hi = stats.bootstrap_mean(m, seed=seed)
    none_id = _reference(parts, arms, arm_id, "none")
    cases_id = _reference(parts, arms, arm_id, CASES)
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
        base=arms[none_id].label if none_id else None,
        vs_none=vs_none,
        vs_cases=paired(part, parts[cases_id], arms[cases_id].label, seed)
        if cases_id and cases_id != arm_id
        else None,
        maintenance_calls=_mean(part, pl.col("maintenance_calls")),
        maintenance_tokens=maintenance,
        maintenance_unusable=unusable_share(part),
        read_tokens=_mean(part, pl.col("memory_tokens")),
        agent_tokens=agent,
        extra_tokens=extra,
        seconds=_mean(part, pl.col("latency_s") + pl.col("memory_write_s")),
        gain_per_1m_maintenance=vs_none.diff / (maintenance / 1e6) if vs_none and maintenance > 0 else None,
        gain_per_1m_extra=vs_none.diff / (extra / 1e6) if vs_none and extra and extra > 0 else None,
        matched_samples=(agent + maintenance) / base if none_id and base > 0 else None,
    )


def _match_voting(
    prices: Mapping[str, MemoryPrice],
    parts: Mapping[str, pl.DataFrame],
    arms: Mapping[str, ArmLike],
    seed: int,
) -> None:
    """Beside each memory arm, its base's voting arm closest to it in extra tokens, paired against it."""
    voting = [
        p for p in prices.values() if p.memory == "none" and p.samples > 1 and p.extra_tokens is not None
    ]
    for arm_id, p in prices.items():
        if p.memory == "none":
            continue
        mine = [v for v in voting if _rest(arms[v.arm]) == _rest(arms[arm_id])]
        if mine and p.extra_tokens is not None:
            extra = p.extra_tokens
            best = min(mine, key=lambda v: abs(float(v.extra_tokens or 0.0) - extra))
            p.voting, p.voting_samples, p.voting_accuracy = best.label, best.samples, best.accuracy
            p.voting_extra_tokens, p.voting_vs_none = best.extra_tokens, best.vs_none
            p.vs_voting = paired(parts[arm_id], parts[best.arm], best.label, seed)
        p.verdict = _verdict(p)


def prices_frame(prices: list[MemoryPrice]) -> pl.DataFrame:
    """The price table (one row per arm and split), CIs as columns, for a notebook or a page."""
    nested = ("vs_none", "vs_cases", "voting_vs_none", "vs_voting")
    rows = []
    for p in prices:
        row: dict[str, Any] = p.model_dump(exclude=set(nested))
        for name in nested:
            d = getattr(p, name)
            row[f"{name}"] = d.diff if d else np.nan
            row[f"{name}_ci"] = f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}]" if d else ""
        rows.append(row)
    return pl.DataFrame(rows)

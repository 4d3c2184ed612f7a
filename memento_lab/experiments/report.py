"""The report of any mix of runs: arms, curves with bootstrap CIs, paired comparisons, continual-
learning measures, errors, trivial baselines. ``memento-lab report RUNS --json`` prints ``Report``.

Rules that keep the numbers honest:

- **Arms, never pooled across configs or task contents.** Runs are grouped by a hash of every config
  key except the replications (seed, order) and how a run executes (``config.NOT_ARM``), plus the
  models from run.json; an arm whose runs scored one task id against different contents (an edited
  task file) is split by their task-set fingerprint. ``Arm.label`` names the keys that differ.
- **A task is its id and its contents** (the ``task`` column): comparisons pair only tasks that
  both arms scored against the same contents.
- **Only ok episodes are scored**; failures are counted per run in ``errors`` (and retried on resume).
- **Intervals come from a bootstrap over tasks** (and over runs when an arm has several), so a
  single run has an honest interval.
- **Comparisons are paired**: two arms on the same tasks, difference A - B with a paired bootstrap
  CI and a sign-flip permutation p-value (exact for up to 16 tasks with a non-zero difference).
- **Recall or transfer**: every number says what it measures (``measures``): ``recall`` when memory
  may show the very same question, ``transfer`` when it never does (``exclude_question``, or the
  test stream of the ``transfer`` protocol).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from memento_lab.experiments import stats
from memento_lab.experiments.pricing import MemoryPrice, memory_prices
from memento_lab.experiments.results import TASK, load_results, run_configs, task_ids, task_matrix
from memento_lab.tasks.judges import judge_agreement


class Arm(BaseModel):
    id: str  # hash of the arm's config keys
    label: str  # the keys that differ between the report's arms, e.g. "memory=similarity"
    config: dict[str, Any]  # every key that defines the arm
    runs: list[str]  # run ids (seeds x orders)


class Point(BaseModel):
    """Mean reward of an arm at one iteration (one split), with its 95% bootstrap interval."""

    arm: str
    label: str
    split: str  # stream (recall protocol) | train | test (transfer protocol)
    measures: str  # recall | transfer
    iteration: int
    family: str | None = None
    accuracy: float
    ci_low: float
    ci_high: float
    tasks: int
    runs: int


class Comparison(BaseModel):
    """Arm A minus arm B on the tasks both scored at one iteration: paired difference, CI, p-value."""

    a: str
    b: str
    a_label: str
    b_label: str
    split: str
    measures: str
    iteration: int
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    tasks: int


class Gain(BaseModel):
    """Learning gain of an arm: its last iteration minus its first, paired over tasks."""

    arm: str
    label: str
    split: str
    first_iteration: int
    last_iteration: int
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    tasks: int


class Forgetting(BaseModel):
    """Of the (run, task) pairs solved at some iteration before the last, how many fail at the last."""

    arm: str
    label: str
    split: str
    solved_before_last: int
    forgotten: int
    rate: float | None


class Cumulative(BaseModel):
    """Cumulative success over the stream: mean reward of every scored episode up to the end of
    ``iteration`` (in stream order), averaged over the arm's runs."""

    arm: str
    label: str
    split: str
    iteration: int
    episodes: int
    success: float


class RunErrors(BaseModel):
    """Attempts of one run by status; ``unresolved``: (task, iteration) whose last attempt failed."""

    run_id: str
    arm: str
    attempts: int
    by_status: dict[str, int]
    unresolved: int
    model_output_errors: int  # unusable model replies inside ok (scored) episodes


class Cost(BaseModel):
    """What an arm's memory cost and returned over its scored episodes (all iterations of a split).

    ``reward_per_1k_prompt_tokens``: total reward / total prompt tokens x 1000, with a bootstrap
    interval over tasks. ``reward_per_stored_case``: total reward of a run / cases in its bank at the
    run's last episode, averaged over runs (what each kept case returned). Tokens are every call of
    the episode (all its attempts when it votes): the arm's whole spend is ``total_*_tokens``."""

    arm: str
    label: str
    split: str
    episodes: int
    accuracy: float
    seconds: float  # mean per episode
    prompt_tokens: float  # mean per episode
    completion_tokens: float  # mean per episode
    tokens_per_episode: float  # prompt + completion, mean per episode
    total_prompt_tokens: int
    total_completion_tokens: int
    memory_tokens: float  # mean prompt tokens of the memory block
    cache_share: float | None  # share of prompt tokens the server served from its prompt cache
    bank_size: float | None  # mean live cases when an episode retrieved
    reward_per_1k_prompt_tokens: float
    ci_low: float
    ci_high: float
    reward_per_stored_case: float | None


class Report(BaseModel):
    runs: int = 0
    episodes: int = 0  # scored (ok) episodes
    arms: list[Arm] = Field(default_factory=list)
    curves: list[Point] = Field(default_factory=list)
    by_family: list[Point] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    learning_gain: list[Gain] = Field(default_factory=list)
    forgetting: list[Forgetting] = Field(default_factory=list)
    cumulative: list[Cumulative] = Field(default_factory=list)
    errors: list[RunErrors] = Field(default_factory=list)
    costs: list[Cost] = Field(default_factory=list)
    trivial_baseline: dict[str, float] = Field(default_factory=dict)  # family -> best constant answer
    judges: dict[str, Any] = Field(default_factory=dict)  # agreement of the judges on the scored episodes
    prices: list[MemoryPrice] = Field(default_factory=list)  # what each arm cost, beside voting (pricing.py)


def _points(scored: pl.DataFrame, arms: dict[str, Arm], seed: int, *, family: bool = False) -> list[Point]:
    keys = ["arm_id", "split", "measures", "iteration"] + (["family"] if family else [])
    out = []
    groups = scored.group_by(keys)
    for group, part in sorted(groups, key=lambda g: (arms[str(g[0][0])].label, *(str(x) for x in g[0][1:]))):
        m, runs = task_matrix(part, task_ids(part))
        acc, lo, hi = stats.bootstrap_mean(m, seed=seed)
        out.append(
            Point(
                arm=group[0],
                label=arms[group[0]].label,
                split=group[1],
                measures=group[2],
                iteration=group[3],
                family=group[4] if family else None,
                accuracy=acc,
                ci_low=lo,
                ci_high=hi,
                tasks=m.shape[1],
                runs=len(runs),
            )
        )
    return out


def _comparisons(scored: pl.DataFrame, arms: dict[str, Arm], seed: int) -> list[Comparison]:
    out = []
    ordered = sorted(arms.values(), key=lambda a: (a.config.get("memory") == "none", a.label))
    for a, b in itertools.combinations(ordered, 2):  # B is "none" when one of them is: diff = memory - none
        for (split, measures, it), pa in sorted(
            scored.filter(pl.col("arm_id") == a.id).group_by(["split", "measures", "iteration"]),
            key=lambda g: tuple(str(x) for x in g[0]),
        ):
            pb = scored.filter(
                (pl.col("arm_id") == b.id) & (pl.col("split") == split) & (pl.col("iteration") == it)
            )
            common = sorted(set(task_ids(pa)) & set(pb[TASK].to_list()))
            if len(common) < 2:
                continue
            ma, mb = task_matrix(pa, common)[0], task_matrix(pb, common)[0]
            diff, lo, hi = stats.paired_bootstrap(ma, mb, seed=seed)
            p = stats.permutation_p(stats.task_means(ma) - stats.task_means(mb), seed=seed)
            measures_b = pb["measures"][0]
            out.append(
                Comparison(
                    a=a.id,
                    b=b.id,
                    a_label=a.label,
                    b_label=b.label,
                    split=split,
                    measures=measures if measures == measures_b else f"{measures} vs {measures_b}",
                    iteration=it,
                    diff=diff,
                    ci_low=lo,
                    ci_high=hi,
                    p_value=p,
                    tasks=len(common),
                )
            )
    return out


def _stream_measures(
    scored: pl.DataFrame, arms: dict[str, Arm], seed: int
) -> tuple[list[Gain], list[Forgetting], list[Cumulative]]:
    gains, forgets, cumulative = [], [], []
    for (arm_id, split), part in sorted(scored.group_by(["arm_id", "split"]), key=lambda g: tuple(g[0])):
        label = arms[arm_id].label
        its = sorted(part["iteration"].unique().to_list())
        for it in its:
            upto = part.filter(pl.col("iteration") <= it)
            per_run = upto.group_by("run_id").agg(pl.col("reward").mean())
            cumulative.append(
                Cumulative(
                    arm=arm_id,
                    label=label,
                    split=split,
                    iteration=it,
                    episodes=upto.height,
                    success=float(per_run["reward"].mean()),  # type: ignore[arg-type]
                )
            )
        if len(its) < 2:
            continue
        first, last = part.filter(pl.col("iteration") == its[0]), part.filter(pl.col("iteration") == its[-1])
        common = sorted(set(task_ids(first)) & set(task_ids(last)))
        if len(common) >= 2:
            ml, mf = task_matrix(last, common)[0], task_matrix(first, common)[0]
            diff, lo, hi = stats.paired_bootstrap(ml, mf, seed=seed)
            p = stats.permutation_p(stats.task_means(ml) - stats.task_means(mf), seed=seed)
            gains.append(
                Gain(
                    arm=arm_id,
                    label=label,
                    split=split,
                    first_iteration=its[0],
                    last_iteration=its[-1],
                    diff=diff,
                    ci_low=lo,
                    ci_high=hi,
                    p_value=p,
                    tasks=len(common),
                )
            )
        wide = part.with_columns(pl.col("correct").cast(pl.Float64)).pivot(
            on="iteration", index=["run_id", TASK], values="correct", aggregate_function="last"
        )
        cols = [str(i) for i in its if str(i) in wide.columns]
        solved, forgotten = stats.forgetting(wide.select(cols).to_numpy().astype(float))
        forgets.append(
            Forgetting(
                arm=arm_id,
                label=label,
                split=split,
                solved_before_last=solved,
                forgotten=forgotten,
                rate=forgotten / solved if solved else None,
            )
        )
    return gains, forgets, cumulative


def _costs(scored: pl.DataFrame, arms: dict[str, Arm], seed: int) -> list[Cost]:
    out = []
    for (arm_id, split), part in sorted(scored.group_by(["arm_id", "split"]), key=lambda g: str(g[0])):
        tasks = task_ids(part)
        per_task = part.group_by(["run_id", TASK]).agg(pl.col("reward").sum(), pl.col("prompt_tokens").sum())
        reward, _ = task_matrix(per_task, tasks, "reward")
        tokens, _ = task_matrix(per_task, tasks, "prompt_tokens")
        ratio, lo, hi = stats.bootstrap_ratio(reward, tokens / 1000.0, seed=seed)
        sizes = (
            part["bank_size"].drop_nulls() if "bank_size" in part.columns else pl.Series([], dtype=pl.Int64)
        )
        per_run = []
        if not sizes.is_empty():
            for (_,), run in part.group_by(["run_id"]):
                stored = run["bank_size"].drop_nulls().max()
                if stored:
                    per_run.append(float(run["reward"].sum()) / float(stored))  # type: ignore[arg-type]

        mean = {
            col: float(part[col].mean()) if col in part.columns else 0.0  # type: ignore[arg-type]
            for col in ("reward", "latency_s", "prompt_tokens", "completion_tokens", "memory_tokens")
        }
        out.append(
            Cost(
                arm=arm_id,
                label=arms[arm_id].label,
                split=split,
                episodes=part.height,
                accuracy=mean["reward"],
                seconds=mean["latency_s"],
                prompt_tokens=mean["prompt_tokens"],
                completion_tokens=mean["completion_tokens"],
                tokens_per_episode=mean["prompt_tokens"] + mean["completion_tokens"],
                total_prompt_tokens=int(part["prompt_tokens"].sum()),
                total_completion_tokens=int(part["completion_tokens"].sum()),
                memory_tokens=mean["memory_tokens"],
                bank_size=float(sizes.mean()) if not sizes.is_empty() else None,  # type: ignore[arg-type]
                reward_per_1k_prompt_tokens=ratio,
                ci_low=lo,
                ci_high=hi,
                reward_per_stored_case=float(np.mean(per_run)) if per_run else None,
                cache_share=(
                    float(part["cached_tokens"].sum()) / float(part["prompt_tokens"].sum())
                    if "cached_tokens" in part.columns and part["prompt_tokens"].sum()
                    else None
                ),
            )
        )
    return out


def _errors(df: pl.DataFrame) -> list[RunErrors]:
    out = []
    for (run_id,), part in sorted(df.group_by(["run_id"]), key=lambda g: str(g[0])):
        latest = part.unique(subset=["task_id", "iteration"], keep="last", maintain_order=True)
        by_status = dict(part.group_by("status").len().iter_rows())
        ok = latest.filter(pl.col("status") == "ok")
        out.append(
            RunErrors(
                run_id=str(run_id),
                arm=str(part["arm_id"][0]),
                attempts=part.height,
                by_status={str(k): int(v) for k, v in sorted(by_status.items())},
                unresolved=latest.height - ok.height,
                model_output_errors=int(ok["model_output_errors"].sum()),
            )
        )
    return out


def _baselines(runs: Sequence[str | Path]) -> dict[str, float]:
    from memento_lab.tasks.suites import load_suite, trivial_baseline

    out: dict[str, float] = {}
    seen: set[tuple[str, int, int]] = set()
    for cfg, _ in run_configs(runs).values():
        key = (cfg.suite, cfg.n, cfg.seed)
        if key in seen:
            continue
        seen.add(key)
        try:  # leave-one-out: with few distinct answers the plain constant matches its own task
            out.update(
                trivial_baseline(load_suite(cfg.suite, n=cfg.n, seed=cfg.seed).tasks(), leave_one_out=True)
            )
        except (FileNotFoundError, ValueError):  # a suite not rebuildable here (missing data)
            continue
    return out


def build_report(runs: Sequence[str | Path], *, seed: int = 0) -> Report:
    """The report of any mix of run folders (or folders of runs)."""
    df = load_results(runs)
    if df.is_empty():
        return Report()
    configs = run_configs(runs, df)  # a folder without config.json (hand-made rows) is the arm "unknown"
    arms = {
        arm_id: Arm(
            id=arm_id,
            label=part["arm"][0],
            config=configs[rid][1] if (rid := part["run_id"][0]) in configs else {},
            runs=sorted(part["run_id"].unique().to_list()),
        )
        for (arm_id,), part in df.group_by(["arm_id"])
    }
    latest = df.unique(subset=["run_id", "task_id", "iteration"], keep="last", maintain_order=True)
    scored = latest.filter(pl.col("status") == "ok")
    gains, forgets, cumulative = _stream_measures(scored, arms, seed)
    comparisons, costs = _comparisons(scored, arms, seed), _costs(scored, arms, seed)
    return Report(
        runs=df["run_id"].n_unique(),
        episodes=scored.height,
        arms=sorted(arms.values(), key=lambda a: a.label),
        curves=_points(scored, arms, seed),
        by_family=_points(scored.filter(pl.col("family").is_not_null()), arms, seed, family=True),
        comparisons=comparisons,
        learning_gain=gains,
        forgetting=forgets,
        cumulative=cumulative,
        errors=_errors(df),
        costs=costs,
        trivial_baseline=_baselines(runs),
        judges=judge_agreement(scored.to_dicts()),
        prices=memory_prices(scored, arms, seed=seed),
    )

"""The price of a memory, computed by hand: paired gains against its base and cases, maintenance and
extra tokens, accuracy per 1M tokens, and the voting arm that spends as much beside it; the base is
the none arm that agrees on every key but memory and voting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest

from memento_lab.experiments.pricing import memory_prices, prices_frame
from memento_lab.experiments.results import TASK


@dataclass
class Arm:
    id: str
    label: str
    config: dict[str, Any] = field(default_factory=dict)


ARMS = {  # rewards on 8 tasks, agent tokens and maintenance tokens per episode
    "none": ([1, 0, 0, 1, 0, 0, 1, 0], 100, 0, {"memory": "none"}),
    "expel": ([1, 1, 0, 1, 1, 0, 1, 0], 150, 250, {"memory": "expel"}),
    "cases": ([1, 1, 1, 1, 0, 0, 1, 0], 200, 0, {"memory": "similarity"}),
    "vote3": ([1, 1, 1, 1, 1, 0, 1, 1], 300, 0, {"memory": "none", "samples": 3}),
}


def frame() -> pl.DataFrame:
    rows = []
    for arm, (rewards, agent, upkeep, _) in ARMS.items():
        for iteration in (0, 1):  # the same on both iterations: per-task means equal the rewards
            for t, r in enumerate(rewards):
                rows.append(
                    {
                        "arm_id": arm,
                        "run_id": f"run-{arm}",
                        "split": "stream",
                        TASK: f"t{t}",
                        "iteration": iteration,
                        "reward": float(r),
                        "prompt_tokens": agent - 10,
                        "completion_tokens": 10,
                        "memory_tokens": 40 if arm in ("expel", "cases") else 0,
                        "latency_s": 2.0,
                        "memory_write_s": 0.5 if arm == "expel" else 0.0,
                        "maintenance_calls": 1 if upkeep else 0,
                        "maintenance_prompt_tokens": upkeep - 50 if upkeep else 0,
                        "maintenance_completion_tokens": 50 if upkeep else 0,
                    }
                )
    return pl.DataFrame(rows)


def test_prices_by_hand() -> None:
    arms = {a: Arm(a, a, cfg) for a, (*_, cfg) in ARMS.items()}
    prices = {p.label: p for p in memory_prices(frame(), arms, seed=0)}
    expel, cases, vote = prices["expel"], prices["cases"], prices["vote3"]
    assert expel.accuracy == 5 / 8 and expel.episodes == 16
    assert (
        expel.vs_none is not None and expel.vs_none.diff == pytest.approx(2 / 8) and expel.vs_none.tasks == 8
    )
    assert expel.vs_cases is not None and expel.vs_cases.diff == pytest.approx(0.0)
    assert (expel.maintenance_calls, expel.maintenance_tokens, expel.read_tokens) == (1.0, 250.0, 40.0)
    assert expel.extra_tokens == 150 + 250 - 100 and expel.seconds == 2.5
    assert expel.gain_per_1m_maintenance == pytest.approx(0.25 / 250e-6)
    assert expel.gain_per_1m_extra == pytest.approx(0.25 / 300e-6)
    assert expel.matched_samples == pytest.approx(4.0)  # 1 + 300 extra / 100 per vote
    # voting (none, 3 samples): +0.5 for 200 extra tokens; the memory costs more and gains less
    assert vote.samples == 3 and vote.extra_tokens == 200 and vote.verdict == ""
    assert expel.voting == "vote3" and expel.voting_vs_none is not None and expel.voting_vs_none.diff == 0.5
    assert expel.voting_samples == 3 and expel.voting_accuracy == 7 / 8 and expel.base == "none"
    assert expel.vs_voting is not None and expel.vs_voting.diff == pytest.approx(-2 / 8)
    assert "costs more and gains less" in expel.verdict
    assert cases.extra_tokens == 100 and cases.verdict == "voting gains at least as much, for more tokens"
    assert prices["none"].vs_none is None and prices["none"].extra_tokens == 0
    table = prices_frame(list(prices.values()))
    assert table.filter(pl.col("label") == "expel")["vs_none"][0] == pytest.approx(0.25)


def test_without_voting_the_matched_sample_count_is_the_advice() -> None:
    arms = {a: Arm(a, a, cfg) for a, (*_, cfg) in ARMS.items() if a != "vote3"}
    df = frame().filter(pl.col("arm_id") != "vote3")
    expel = next(p for p in memory_prices(df, arms) if p.label == "expel")
    assert expel.voting is None and expel.verdict == "run none with --samples 4 to compare"


def test_the_base_agrees_on_every_key_but_memory_and_voting() -> None:
    """Two none arms of two profiles: each memory arm is priced against its own profile's none, and
    voting of another profile is never set beside it; memory keys (k, options) may differ."""
    cfg = {a: c for a, (*_, c) in ARMS.items()}
    arms = {
        "none": Arm("none", "none", {**cfg["none"], "agent": "direct"}),
        "expel": Arm(
            "expel", "expel", {**cfg["expel"], "agent": "direct", "k": 2, "memory_options": {"a": 1}}
        ),
        "cases": Arm("cases", "none-instant", {"memory": "none", "agent": "direct-instant"}),
        "vote3": Arm("vote3", "vote3-instant", {**cfg["vote3"], "agent": "direct-instant"}),
    }
    prices = {p.label: p for p in memory_prices(frame(), arms)}
    expel = prices["expel"]
    assert expel.base == "none" and expel.vs_none is not None and expel.vs_none.diff == pytest.approx(2 / 8)
    assert expel.voting is None and expel.vs_voting is None  # the only voting arm is the other profile's
    assert expel.vs_cases is None  # no similarity arm of its profile
    vote = prices["vote3-instant"]
    assert vote.base == "none-instant" and vote.extra_tokens == 300 - 200


def test_the_share_of_unusable_maintenance_replies_counts_only_rows_that_counted_them() -> None:
    arms = {a: Arm(a, a, cfg) for a, (*_, cfg) in ARMS.items()}
    df = frame()
    old = memory_prices(df, arms, seed=0)  # rows written before the count: unknown, not 0
    assert all(p.maintenance_unusable is None for p in old)
    # expel's 16 calls: 3 unusable among the 12 counted rows; 4 rows written before the count existed
    flags = iter([None] * 4 + [1, 1, 1] + [0] * 9)
    column = [next(flags) if arm == "expel" else 0 for arm in df["arm_id"]]
    counted = df.with_columns(pl.Series("maintenance_unusable", column, dtype=pl.Int64))
    prices = {p.label: p for p in memory_prices(counted, arms, seed=0)}
    assert prices["expel"].maintenance_unusable == pytest.approx(3 / 12)
    assert prices["none"].maintenance_unusable is None  # no maintenance call: no share

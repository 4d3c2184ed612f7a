"""The compute-matched baseline: a memory arm beside its profile voting over attempts that cost as much.

    rep = build_report(["data/runs/sim", "data/runs/none", "data/runs/vote5"])
    for m in rep.token_matched:
        print(m.label, m.samples_for_same_tokens, m.voting_label, m.diff, m.ci_low, m.ci_high)

A memory block costs tokens (the cases in the prompt, and what the model writes with them);
self-consistency (``--samples N``) spends tokens on more attempts instead. For each memory arm the
report finds its **base** (the same profile, suite, models and every other key, memory none, one
attempt) and states how many voted attempts of that base would spend the memory arm's tokens per
episode (``samples_for_same_tokens``: prompt + completion tokens of the memory arm / the base's). When
the report also holds voting arms of that base (``samples`` > 1), the one whose tokens per episode
come closest is set beside it, with the paired comparison memory − voting at the last iteration: a
memory method is worth its tokens when it beats voting that costs the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from memento_lab.experiments.config import CASE_ONLY

if TYPE_CHECKING:
    from memento_lab.experiments.report import Arm, Comparison, Cost

# the keys that say how memory is used; every other key of two arms must agree for them to match
# (every field only the case memories read is one of them)
MEMORY_KEYS = frozenset(
    {
        "memory",
        "k",
        "exclude_question",
        "online_target",
        "min_q",
        "none_option",
        "shortlist",
        "memory_tokens",
        "memory_style",
        *CASE_ONLY,
    }
)
_ATTEMPT_KEYS = frozenset({"samples", "sample_temperature"})


class TokenMatch(BaseModel):
    """A memory arm, its base (the same profile without memory, one attempt) and voting beside it."""

    arm: str
    label: str
    split: str
    accuracy: float
    tokens_per_episode: float  # prompt + completion tokens, mean per scored episode
    base: str
    base_label: str
    base_accuracy: float
    base_tokens_per_episode: float
    samples_for_same_tokens: float  # voted attempts of the base that spend the memory arm's tokens
    voting: str | None = None  # the report's voting arm of that base closest in tokens per episode
    voting_label: str | None = None
    voting_samples: int | None = None
    voting_accuracy: float | None = None
    voting_tokens_per_episode: float | None = None
    iteration: int | None = None  # the last iteration both scored: memory - voting, paired over tasks
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None


def _rest(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in MEMORY_KEYS | _ATTEMPT_KEYS}


def _samples(arm: Arm) -> int:
    return int(arm.config.get("samples") or 1)


def token_matched(
    arms: Sequence[Arm], costs: Sequence[Cost], comparisons: Sequence[Comparison]
) -> list[TokenMatch]:
    """Every memory arm with a base in the report, matched against voting (see the module doc)."""
    cost = {(c.arm, c.split): c for c in costs}
    out = []
    for arm in arms:
        if arm.config.get("memory", "none") == "none" or _samples(arm) > 1:
            continue
        others = [
            a for a in arms if a.config.get("memory") == "none" and _rest(a.config) == _rest(arm.config)
        ]
        base = next((a for a in others if _samples(a) == 1), None)
        for (arm_id, split), mine in sorted(cost.items()):
            if arm_id != arm.id or base is None or (base.id, split) not in cost:
                continue
            own = cost[(base.id, split)]
            match = TokenMatch(
                arm=arm.id,
                label=arm.label,
                split=split,
                accuracy=mine.accuracy,
                tokens_per_episode=mine.tokens_per_episode,
                base=base.id,
                base_label=base.label,
                base_accuracy=own.accuracy,
                base_tokens_per_episode=own.tokens_per_episode,
                samples_for_same_tokens=mine.tokens_per_episode / own.tokens_per_episode
                if own.tokens_per_episode
                else float("nan"),
            )
            voting = [(a, cost[(a.id, split)]) for a in others if _samples(a) > 1 and (a.id, split) in cost]
            if voting:
                best, spent = min(
                    voting, key=lambda v: abs(v[1].tokens_per_episode - mine.tokens_per_episode)
                )
                match.voting, match.voting_label, match.voting_samples = best.id, best.label, _samples(best)
                match.voting_accuracy, match.voting_tokens_per_episode = (
                    spent.accuracy,
                    spent.tokens_per_episode,
                )
                paired = [c for c in comparisons if (c.a, c.b, c.split) == (arm.id, best.id, split)]
                if paired:
                    last = max(paired, key=lambda c: c.iteration)
                    match.iteration, match.diff, match.p_value = last.iteration, last.diff, last.p_value
                    match.ci_low, match.ci_high = last.ci_low, last.ci_high
            out.append(match)
    return out

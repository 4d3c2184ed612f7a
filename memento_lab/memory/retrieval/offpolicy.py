"""Logged propensities and off-policy evaluation of a retriever from old logs.

A soft retrieval policy draws the shown cases one after another from softmax(score / T) over the
cases not drawn yet (Plackett-Luce, what Gumbel-top-K sampling does); with abstention the draw also
holds a "no memory" option scored at the retriever's floor, and drawing it stops the slate. Each shown
case logs the probability it had of being drawn at its slot given the earlier draws, and a stop logs
its own probability, so the probability of the whole slate is the product of its logged propensities.

``ips_estimate`` evaluates a *new* retriever from such logs: the mean over episodes of
``pi_new(slate) / pi_old(slate) * reward`` (inverse propensity weighting, unbiased whenever the old
policy could show every slate the new one shows), its self-normalised variant and the effective
sample size, beside the logging policy's own on-policy mean reward.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x)
    if not np.isfinite(m):
        return np.full_like(x, -np.inf)
    z = x - m
    return z - np.log(np.exp(z).sum())


def slate_propensities(
    scores: np.ndarray,
    chosen: Sequence[int],
    k: int,
    *,
    temperature: float | None,
    floor: float | None = None,
) -> list[float]:
    """The probability of each draw of the slate ``chosen`` (indices into ``scores``, in order) under
    the policy; with a ``floor``, one more entry for the stop when fewer than ``k`` cases were shown.

    ``temperature=None`` is the greedy policy: 1.0 for each draw of its own slate, 0.0 at the first
    draw where ``chosen`` differs from it."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    ext = np.append(s, floor) if floor is not None else s
    stop = n if floor is not None else None
    draws = list(chosen) + ([stop] if stop is not None and len(chosen) < k else [])
    left = np.ones(len(ext), dtype=bool)
    out: list[float] = []
    for d in draws:
        if temperature is None:
            avail = np.flatnonzero(left)
            best = avail[np.argmax(ext[avail])]  # argmax takes the first of ties: a case before the stop
            p = 1.0 if best == d or ext[d] == ext[best] else 0.0
        else:
            logp = _log_softmax(np.where(left, ext / temperature, -np.inf))
            p = float(np.exp(logp[d]))
        out.append(p)
        left[d] = False
    return out


def draw_slate(
    scores: np.ndarray,
    k: int,
    *,
    temperature: float | None,
    floor: float | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, list[float]]:
    """The shown indices (best draw first) and their logged propensities (plus the stop's, if any).

    Cases with a non-finite score (outside a shortlist) are never shown."""
    s = np.asarray(scores, dtype=np.float64)
    ext = np.append(s, floor) if floor is not None else s
    if temperature is not None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        rng = rng or np.random.default_rng(0)
        keys = ext / temperature + rng.gumbel(size=ext.shape)  # Gumbel-top-k = sequential softmax draws
    else:
        keys = ext
    order = np.argsort(-keys, kind="stable")
    shown: list[int] = []
    for i in order:
        if i == len(s) or len(shown) == k or not np.isfinite(ext[i]):
            break
        shown.append(int(i))
    idx = np.asarray(shown, dtype=np.int64)
    return idx, slate_propensities(s, shown, k, temperature=temperature, floor=floor)


class OffPolicyEstimate(BaseModel):
    """A new policy's value estimated from logs of an old one, beside the old one's on-policy value."""

    episodes: int
    on_policy: float  # mean reward of the logged episodes (the logging policy's value)
    ips: float  # mean of w * reward, w = pi_new(slate) / pi_old(slate)
    snips: float | None  # self-normalised: sum(w * reward) / sum(w) (None when every w is 0)
    effective_n: float  # (sum w)^2 / sum w^2: how many logged episodes the estimate really rests on
    matched: int  # episodes whose slate the new policy could show (w > 0)


def ips_estimate(
    rewards: Sequence[float], p_old: Sequence[float], p_new: Sequence[float]
) -> OffPolicyEstimate:
    """IPS estimate of the new policy's mean reward from per-episode slate probabilities."""
    r = np.asarray(rewards, dtype=np.float64)
    po, pn = np.asarray(p_old, dtype=np.float64), np.asarray(p_new, dtype=np.float64)
    if not len(r) == len(po) == len(pn):
        raise ValueError("rewards, p_old and p_new must have one entry per episode")
    if len(r) == 0:
        raise ValueError("no logged episodes")
    if np.any(po <= 0):
        raise ValueError("a logged slate has propensity 0: the log was not made by the stated policy")
    w = pn / po
    sw = float(w.sum())
    return OffPolicyEstimate(
        episodes=len(r),
        on_policy=float(r.mean()),
        ips=float((w * r).mean()),
        snips=float((w * r).sum() / sw) if sw > 0 else None,
        effective_n=float(sw**2 / (w**2).sum()) if sw > 0 else 0.0,
        matched=int((w > 0).sum()),
    )

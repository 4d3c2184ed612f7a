"""Statistics of runs that do not mislead: bootstrap intervals over tasks (and runs), paired
comparisons with a permutation p-value, and the continual-learning measures (gain, forgetting).

The unit of resampling is the *task*: a single run of 10 tasks has an honest interval (the tasks
are a sample), and when an arm has several runs (seeds x orders) the runs are resampled too
(a two-level bootstrap). Every function is seeded and pure: numbers are reproducible.

Inputs are ``R x T`` matrices (runs x tasks) of rewards, ``nan`` where a run has no scored episode
of that task (a failure, or a task of another seed).
"""

from __future__ import annotations

import itertools

import numpy as np

B_DEFAULT = 2000
LEVEL = 0.95


def _nanmean(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        count = np.sum(~np.isnan(x), axis=axis)
        total = np.nansum(x, axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def task_means(m: np.ndarray) -> np.ndarray:
    """Per task, the mean over the runs that scored it."""
    return _nanmean(np.asarray(m, dtype=float), axis=0)


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    reps = reps[~np.isnan(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def bootstrap_mean(
    m: np.ndarray, *, b: int = B_DEFAULT, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high): the mean reward of an ``R x T`` matrix and its percentile bootstrap
    interval, resampling tasks, and runs too when there are several."""
    m = np.atleast_2d(np.asarray(m, dtype=float))
    mean = float(_nanmean(task_means(m)))
    r, t = m.shape
    rng = np.random.default_rng(seed)
    reps = np.empty(b)
    for i in range(b):
        rows = rng.integers(0, r, r) if r > 1 else np.zeros(1, dtype=int)
        cols = rng.integers(0, t, t)
        reps[i] = _nanmean(task_means(m[np.ix_(rows, cols)]))
    lo, hi = _interval(reps, level)
    return mean, lo, hi


def paired_bootstrap(
    a: np.ndarray, b_: np.ndarray, *, b: int = B_DEFAULT, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """(difference, low, high) of mean(a) - mean(b) over the tasks both arms scored (columns aligned),
    resampling tasks jointly (the pairing) and each arm's runs independently."""
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b_ = np.atleast_2d(np.asarray(b_, dtype=float))
    if a.shape[1] != b_.shape[1]:
        raise ValueError(f"paired arms need the same tasks (columns): {a.shape[1]} vs {b_.shape[1]}")
    diff = float(_nanmean(task_means(a) - task_means(b_)))
    rng = np.random.default_rng(seed)
    t = a.shape[1]
    reps = np.empty(b)
    for i in range(b):
        cols = rng.integers(0, t, t)
        ra = rng.integers(0, a.shape[0], a.shape[0]) if a.shape[0] > 1 else np.zeros(1, dtype=int)
        rb = rng.integers(0, b_.shape[0], b_.shape[0]) if b_.shape[0] > 1 else np.zeros(1, dtype=int)
        reps[i] = _nanmean(task_means(a[np.ix_(ra, cols)]) - task_means(b_[np.ix_(rb, cols)]))
    lo, hi = _interval(reps, level)
    return diff, lo, hi


def permutation_p(d: np.ndarray, *, n: int = 20000, seed: int = 0, exact_up_to: int = 16) -> float:
    """Two-sided p-value of a paired sign-flip permutation test on per-task differences ``d``
    (H0: the two arms are exchangeable on each task). Exact enumeration for up to ``exact_up_to``
    non-zero differences, else ``n`` seeded random flips (with the +1 correction)."""
    d = np.asarray(d, dtype=float)
    d = d[~np.isnan(d)]
    d = d[d != 0]  # zero differences are the same under any flip
    if d.size == 0:
        return 1.0
    observed = abs(d.mean()) - 1e-12
    if d.size <= exact_up_to:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        stats = np.abs(signs @ d) / d.size
        return float(np.mean(stats >= observed))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n, d.size))
    stats = np.abs(signs @ d) / d.size
    return float((1 + np.sum(stats >= observed)) / (n + 1))


def forgetting(correct: np.ndarray) -> tuple[int, int]:
    """(solved_before_last, forgotten) from an ``N x I`` boolean matrix (one row per run x task, one
    column per iteration, ``nan`` allowed as missing): of the rows solved at some iteration before
    the last, how many are not solved at the last iteration."""
    c = np.asarray(correct, dtype=float)
    if c.ndim != 2 or c.shape[1] < 2:
        return 0, 0
    last = c[:, -1]
    before = np.nanmax(np.where(np.isnan(c[:, :-1]), -1, c[:, :-1]), axis=1) >= 1
    known = ~np.isnan(last)
    solved = before & known
    return int(solved.sum()), int((solved & (last < 1)).sum())


def bootstrap_ratio(
    num: np.ndarray, den: np.ndarray, *, b: int = B_DEFAULT, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """(ratio, low, high): sum(num) / sum(den) over tasks (e.g. reward per prompt token) and its
    percentile bootstrap interval, resampling tasks (columns) of the ``R x T`` matrices jointly."""
    num = np.nan_to_num(np.atleast_2d(np.asarray(num, dtype=float)))
    den = np.nan_to_num(np.atleast_2d(np.asarray(den, dtype=float)))
    tn, td = num.sum(axis=0), den.sum(axis=0)
    if td.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    ratio = float(tn.sum() / td.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, tn.size, size=(b, tn.size))
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = tn[idx].sum(axis=1) / td[idx].sum(axis=1)
    return (ratio, *_interval(np.where(np.isfinite(reps), reps, np.nan), level))

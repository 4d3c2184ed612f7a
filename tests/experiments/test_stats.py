"""The statistics against answers known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from memento_lab.experiments.stats import bootstrap_mean, forgetting, paired_bootstrap, permutation_p


def test_bootstrap_of_constant_data_is_a_point() -> None:
    assert bootstrap_mean(np.full((1, 12), 0.25)) == (0.25, 0.25, 0.25)
    assert bootstrap_mean(np.full((3, 5), 1.0)) == (1.0, 1.0, 1.0)


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_tasks() -> None:
    small = np.array([[1, 0] * 5], dtype=float)
    big = np.array([[1, 0] * 200], dtype=float)
    m, lo, hi = bootstrap_mean(small)
    assert m == 0.5 and lo < 0.5 < hi
    _, lo2, hi2 = bootstrap_mean(big)
    assert hi2 - lo2 < (hi - lo) / 3
    # a single run still has an honest (non-zero) interval: the tasks are the sample
    assert hi - lo > 0.3


def test_missing_cells_are_ignored_not_zero() -> None:
    m = np.array([[1.0, np.nan, 1.0], [1.0, 1.0, np.nan]])
    assert bootstrap_mean(m)[0] == 1.0


def test_paired_bootstrap_and_permutation_on_a_known_separation() -> None:
    a = np.ones((1, 10))
    b = np.zeros((1, 10))
    diff, lo, hi = paired_bootstrap(a, b)
    assert (diff, lo, hi) == (1.0, 1.0, 1.0)
    # 10 tasks all better: only the all-plus and all-minus sign patterns reach |mean| = 1
    assert permutation_p(np.ones(10)) == pytest.approx(2 / 1024)
    # no difference at all: p = 1 and the interval is the point 0
    assert permutation_p(np.zeros(10)) == 1.0
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)


def test_pairing_removes_task_difficulty() -> None:
    rng = np.random.default_rng(1)
    difficulty = rng.random(40)
    a, b = (difficulty + 0.1)[None, :], difficulty[None, :]
    diff, lo, hi = paired_bootstrap(a, b)
    assert diff == pytest.approx(0.1) and hi - lo < 1e-9  # every task shows the same +0.1
    assert permutation_p(np.full(40, 0.1)) < 1e-3  # random flips: (1 + hits) / (n + 1)


def test_symmetric_noise_is_not_significant() -> None:
    d = np.array([1, -1] * 6, dtype=float)
    assert permutation_p(d) == 1.0
    diff, lo, hi = paired_bootstrap(np.array([[1, 0] * 6], float), np.array([[0, 1] * 6], float))
    assert diff == 0.0 and lo < 0 < hi


def test_forgetting_by_hand() -> None:
    correct = np.array(
        [
            [1, 1, 0],  # solved, then forgotten
            [0, 1, 1],  # learned, kept
            [0, 0, 0],  # never solved: not counted
            [1, 0, 1],  # forgotten in between, solved at the end: kept
            [1, 1, np.nan],  # last iteration missing (an error): not counted
        ],
        dtype=float,
    )
    assert forgetting(correct) == (3, 1)
    assert forgetting(np.array([[1.0]])) == (0, 0)

"""Retrieval metrics over scored (query, case) pairs: pair-level binary metrics and within-query ranking."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from memento_lab.memory.retrieval.retrievers import DEFAULT_K


def nan_to_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def binary_metrics(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Pair AUC, F1 and accuracy (threshold 0.5 on Q); soft targets count > 0.5 as helpful, 0.5 is left out."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    targets, scores = np.asarray(targets, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    keep = targets != 0.5
    y, s = targets[keep] > 0.5, scores[keep]
    if len(y) == 0:
        return {"auc": float("nan"), "f1": float("nan"), "acc": float("nan")}
    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    pred = s >= 0.5
    return {
        "auc": auc,
        "f1": float(f1_score(y, pred, zero_division=0)),
        "acc": float(accuracy_score(y, pred)),
    }


def ranking_metrics(
    groups: Sequence[Any], targets: np.ndarray, scores: np.ndarray, k: int = DEFAULT_K
) -> dict[str, float]:
    """Per-query ranking over queries whose cases have both helpful and unhelpful labels.

    ``wq_auc``: mean within-query AUC; ``p_at_1`` / ``p_at_k``: mean share of helpful cases among the
    top 1 / top k by score; ``p_random``: the same share for a random order (the chance level).
    """
    from sklearn.metrics import roc_auc_score

    by_q: dict[Any, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_q[g].append(i)
    aucs, p1, pk, pr = [], [], [], []
    for idx in by_q.values():
        t = np.asarray(targets)[idx]
        keep = t != 0.5
        y, s = t[keep] > 0.5, np.asarray(scores, dtype=np.float64)[idx][keep]
        if not 0 < y.sum() < len(y):
            continue
        aucs.append(roc_auc_score(y, s))
        order = np.argsort(-s, kind="stable")
        p1.append(float(y[order[0]]))
        pk.append(float(y[order[:k]].mean()))
        pr.append(float(y.mean()))
    nan = float("nan")
    return {
        "n_queries": len(by_q),
        "n_mixed_queries": len(aucs),
        "wq_auc": float(np.mean(aucs)) if aucs else nan,
        "p_at_1": float(np.mean(p1)) if p1 else nan,
        f"p_at_{k}": float(np.mean(pk)) if pk else nan,
        "p_random": float(np.mean(pr)) if pr else nan,
    }

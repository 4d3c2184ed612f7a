"""What a run's logs say about retrieval: within-query ranking of the cases that were shown (where
per-case labels vary: probe deltas, advantages) and an off-policy estimate of another retriever.

    report = retriever_report("data/runs/x", checkpoint="data/runs/x/retriever/online.ckpt")

``logged``: the run's own retriever scores (what it ranked by) against the target; ``learned``: a
checkpoint's Q on the same pairs beside cosine similarity (``training.evaluate``); ``off_policy``:
the mean reward the checkpoint's policy would have had on the run's episodes, by inverse propensity
weighting of the logged slates (``memory.offpolicy``), beside the run's on-policy mean reward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.learned.metrics import nan_to_none, ranking_metrics
from memento_lab.memory.retrieval.offpolicy import OffPolicyEstimate, ips_estimate, slate_propensities
from memento_lab.memory.retrieval.pairs import NO_CASE, PairLog, RetrievalPair
from memento_lab.memory.retrieval.retrievers import DEFAULT_K, Retriever
from memento_lab.trace import read_traces


def case_pairs(pairs: list[RetrievalPair], target: str) -> tuple[list[RetrievalPair], np.ndarray]:
    """The pairs of shown cases (not the "no memory" option) that have a value for ``target``."""
    from memento_lab.memory.learned.pair_data import pair_targets

    pairs = [p for p in pairs if p.case_id != NO_CASE]
    y = pair_targets(pairs, target) if pairs else np.zeros(0, dtype=np.float32)
    keep = ~np.isnan(y)
    return [p for p, m in zip(pairs, keep, strict=True) if m], y[keep]


def logged_ranking(pairs: list[RetrievalPair], target: str = "delta", k: int = DEFAULT_K) -> dict[str, Any]:
    """Within-query AUC and precision@k of the scores the run's retriever logged (same-query cases)."""
    plist, y = case_pairs(pairs, target)
    scored = [i for i, p in enumerate(plist) if p.score is not None]
    out: dict[str, Any] = {"target": target, "pairs": len(plist), "scored": len(scored)}
    if scored:
        out.update(
            ranking_metrics(
                [plist[i].query for i in scored], y[scored], np.array([plist[i].score for i in scored]), k
            )
        )
    return nan_to_none(out)


def off_policy(
    run: str | Path, retriever: Retriever, *, k: int = DEFAULT_K, temperature: float | None = None
) -> OffPolicyEstimate:
    """IPS estimate of ``retriever`` (greedy, or sampling at ``temperature``) from the run's episodes
    whose slates carry logged propensities; each episode is re-scored on the bank version it saw."""
    run = Path(run)
    stops = {
        (p.task_id, p.iteration): p.propensity
        for p in PairLog(run / "pairs.jsonl").read()
        if p.case_id == NO_CASE and p.source == "episode"
    }
    bank = CaseBank(run / "bank", readonly=True, encoder=retriever.bank.encoder)
    rewards, p_old, p_new = [], [], []
    for t in read_traces(run / "traces.jsonl", strict=False):
        if t.bank_version is None or getattr(t, "status", "ok") != "ok":
            continue
        logged = [r.propensity for r in t.retrieved]
        stop = stops.get((t.task_id, t.iteration))
        if any(p is None for p in logged):
            continue
        old = float(np.prod([p for p in logged if p is not None])) * (stop if stop is not None else 1.0)
        cases = bank.at(t.bank_version).cases()
        if not cases or old <= 0:
            continue
        row = {c.id: i for i, c in enumerate(cases)}
        chosen = [row[r.case_id] for r in t.retrieved if r.case_id in row]
        scores = retriever.score(t.question, cases)
        floor = retriever.floor(t.question)
        new = slate_propensities(scores, chosen, k, temperature=temperature, floor=floor)
        rewards.append(t.reward)
        p_old.append(old)
        p_new.append(float(np.prod(new)))
    return ips_estimate(rewards, p_old, p_new)


def retriever_report(
    run: str | Path,
    *,
    checkpoint: str | Path | None = None,
    target: str = "delta",
    k: int = DEFAULT_K,
    temperature: float | None = None,
) -> dict[str, Any]:
    """Ranking on the run's pair log (logged scores; a checkpoint's Q and cosine) and, with a
    checkpoint, its off-policy value from the run's logged propensities."""
    run = Path(run)
    pairs = PairLog(run / "pairs.jsonl").read()
    out: dict[str, Any] = {"run": str(run), "logged": logged_ranking(pairs, target, k)}
    if checkpoint is None:
        return out
    from memento_lab.memory.bank.encoders import bank_encoder
    from memento_lab.memory.learned.parametric import ParametricRetriever
    from memento_lab.memory.learned.training import evaluate

    plist, _ = case_pairs(pairs, target)
    out["learned"] = evaluate(checkpoint, plist, split="all", target=target, k=k) if plist else None
    bank = CaseBank(run / "bank", readonly=True, encoder=bank_encoder(run / "bank"))
    retriever = ParametricRetriever.from_checkpoint(bank, checkpoint, encoder=bank.encoder)
    try:
        out["off_policy"] = off_policy(run, retriever, k=k, temperature=temperature).model_dump()
    except ValueError as e:  # no episode with logged propensities
        out["off_policy"] = {"error": str(e)}
    return out

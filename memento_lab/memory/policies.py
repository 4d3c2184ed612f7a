"""Bank policies: what a case bank keeps as the stream runs (keep all, cap by recency or utility,
merge near-duplicates, one case per task).

    policy = make_policy("utility", cap=200)
    evicted = policy.apply(bank, pairs)     # ids removed, one append-only ``remove`` in the log

Each policy looks only at the bank's live cases and the pair log (which cases were shown, and
whether the episode that saw them went well), so it needs no state of its own and a resumed run
decides exactly as a fresh one. Every eviction is a tombstone in the bank's log: ``bank.at(v)``
still returns the bank as it was before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import numpy as np

from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.retrieval.pairs import RetrievalPair

POLICIES = ("keep-all", "lru", "utility", "merge-duplicates", "one-per-task")
PolicyName = Literal["keep-all", "lru", "utility", "merge-duplicates", "one-per-task"]


class BankPolicy:
    """Keep everything (the default). Subclasses choose ids to evict with ``select``."""

    name = "keep-all"
    needs_pairs = False  # whether ``select`` reads the pair log (read only for policies that do)

    def select(self, cases: list[Case], pairs: Sequence[RetrievalPair], bank: CaseBank) -> list[str]:
        """Ids of live cases to evict, given the bank's live ``cases`` and the pair log."""
        return []

    def apply(self, bank: CaseBank, pairs: Sequence[RetrievalPair] = ()) -> list[str]:
        """Evict what ``select`` chooses, as one ``remove`` write; returns the evicted ids."""
        evict = self.select(bank.cases(), pairs, bank)
        if evict:
            bank.remove(evict, reason=f"policy {self.name}")
        return evict


class _Cap(BankPolicy):
    """Evict the lowest-ranked cases until at most ``cap`` remain."""

    def __init__(self, cap: int):
        if cap < 1:
            raise ValueError(f"a bank cap must be at least 1, got {cap}")
        self.cap = cap

    def rank(self, cases: list[Case], pairs: Sequence[RetrievalPair]) -> dict[str, tuple[float, ...]]:
        raise NotImplementedError

    def select(self, cases: list[Case], pairs: Sequence[RetrievalPair], bank: CaseBank) -> list[str]:
        if len(cases) <= self.cap:
            return []
        keys = self.rank(cases, pairs)
        ordered = sorted(cases, key=lambda c: keys[c.id])  # lowest first: evicted first
        return [c.id for c in ordered[: len(cases) - self.cap]]


class LRUCap(_Cap):
    """Keep the ``cap`` most recently used cases: used = written, or shown to an episode."""

    name = "lru"
    needs_pairs = True

    def rank(self, cases: list[Case], pairs: Sequence[RetrievalPair]) -> dict[str, tuple[float, ...]]:
        last = {c.id: c.created_at for c in cases}
        for p in pairs:
            if p.case_id in last and p.created_at > last[p.case_id]:
                last[p.case_id] = p.created_at
        return {cid: (t,) for cid, t in last.items()}


class UtilityCap(_Cap):
    """Keep the ``cap`` most useful cases. A case's utility is the mean signal of the episodes it
    was shown to (counterfactual ``delta`` when probed, else ``advantage``, else helped = +1 /
    not helped = -1); a case never shown has ``prior`` utility, so new cases get a chance.
    Ties go to the newer case."""

    name = "utility"
    needs_pairs = True

    def __init__(self, cap: int, prior: float = 0.0):
        super().__init__(cap)
        self.prior = prior

    def rank(self, cases: list[Case], pairs: Sequence[RetrievalPair]) -> dict[str, tuple[float, ...]]:
        signals: dict[str, list[float]] = defaultdict(list)
        for p in pairs:
            signals[p.case_id].append(pair_signal(p))
        return {
            c.id: (float(np.mean(signals[c.id])) if signals[c.id] else self.prior, c.created_at)
            for c in cases
        }


def pair_signal(p: RetrievalPair) -> float:
    """How much showing the case helped that episode, in -1..1."""
    if p.delta is not None:
        return p.delta
    if p.advantage is not None:
        return p.advantage
    return 1.0 if p.helped else -1.0


class MergeDuplicates(BankPolicy):
    """Near-duplicate questions (cosine >= ``threshold``) with the same label keep one case: the one
    with the higher reward, then the newer."""

    name = "merge-duplicates"

    def __init__(self, threshold: float = 0.95):
        self.threshold = threshold

    def select(self, cases: list[Case], pairs: Sequence[RetrievalPair], bank: CaseBank) -> list[str]:
        from memento_lab.memory.bank.dedupe import find_duplicates

        if bank.encoder is None or len(cases) < 2:
            return []
        by_id = {c.id: c for c in cases}
        evict: list[str] = []
        for group in find_duplicates(cases, bank.encoder, threshold=self.threshold, same_label=True):
            members = [by_id[i] for i in (group.keep, *group.duplicates)]
            keep = max(members, key=lambda c: (c.reward, c.created_at))
            evict.extend(c.id for c in members if c.id != keep.id)
        return evict


class OnePerTask(BankPolicy):
    """One case per task id (cases without one are kept): the ``latest`` or the ``best`` (highest
    reward, then newest)."""

    name = "one-per-task"

    def __init__(self, keep: Literal["latest", "best"] = "latest"):
        self.keep = keep

    def select(self, cases: list[Case], pairs: Sequence[RetrievalPair], bank: CaseBank) -> list[str]:
        by_task: dict[str, list[Case]] = defaultdict(list)
        for c in cases:
            if c.source.task_id:
                by_task[c.source.task_id].append(c)
        evict: list[str] = []
        for group in by_task.values():
            keep = max(
                group, key=lambda c: (c.created_at,) if self.keep == "latest" else (c.reward, c.created_at)
            )
            evict.extend(c.id for c in group if c.id != keep.id)
        return evict


def make_policy(
    name: str = "keep-all", *, cap: int | None = None, threshold: float = 0.95
) -> BankPolicy | None:
    """A bank policy by name: keep-all | lru | utility | merge-duplicates | one-per-task[:best].
    ``keep-all`` is ``None``: nothing to apply after a write."""
    base, _, option = name.partition(":")
    if base in ("lru", "utility") and cap is None:
        raise ValueError(f"bank policy {base!r} needs a cap (--bank-cap N)")
    if base == "keep-all":
        return None
    if base == "lru":
        return LRUCap(cap)  # type: ignore[arg-type]
    if base == "utility":
        return UtilityCap(cap)  # type: ignore[arg-type]
    if base == "merge-duplicates":
        return MergeDuplicates(threshold)
    if base == "one-per-task":
        return OnePerTask("best" if option == "best" else "latest")
    raise ValueError(f"unknown bank policy {name!r}; expected one of {POLICIES} (one-per-task:best too)")

"""Retrieval pairs as training data: pair files (the original ``training_data.jsonl`` or a workbench
pair log), targets, the split by query, and the Lightning DataModule that ``training.fit`` uses.

Targets (``target=``): ``"helped"`` (the original ``truth_label``: the *query's* outcome copied onto
every case it saw), ``"reward"``, ``"advantage"`` (reward minus the query's baseline) and ``"delta"``
(a counterfactual probe: reward with the case minus reward without it). Signed targets become soft
labels ``(1 + x) / 2``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from pydantic import BaseModel
from torch.utils.data import DataLoader, Dataset, TensorDataset

from memento_lab.jsonl import FormatError, read_jsonl
from memento_lab.memory.bank.encoders import CachedEncoder
from memento_lab.memory.learned.config import TARGETS
from memento_lab.memory.learned.qnet import case_text
from memento_lab.memory.retrieval.pairs import PairLog, RetrievalPair, read_memento_pairs


def load_pairs(path: str | Path, *, strict: bool = True) -> list[RetrievalPair]:
    """Pairs from a file: the original ``training_data.jsonl`` or a workbench ``PairLog`` (auto-detected)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such pair file")
    first = next(iter(read_jsonl(path, strict=strict)), None)
    if first is None:
        raise FormatError(path, None, "no pairs in the file")
    if "truth_label" in first[1]:
        return read_memento_pairs(path, strict=strict)
    return PairLog(path).read(strict=strict)


def with_advantage(pairs: Sequence[RetrievalPair]) -> list[RetrievalPair]:
    """Pairs with ``advantage`` filled where missing: reward minus ``baseline``, or minus the query's mean reward."""
    mean: dict[str, list[float]] = defaultdict(list)
    for p in pairs:
        mean[p.query].append(p.reward)
    out = []
    for p in pairs:
        if p.advantage is None:
            base = p.baseline if p.baseline is not None else float(np.mean(mean[p.query]))
            p = p.model_copy(update={"advantage": p.reward - base})
        out.append(p)
    return out


def pair_targets(pairs: Sequence[RetrievalPair], target: str) -> np.ndarray:
    """Soft labels in [0, 1] per pair: ``helped`` as 0/1, ``reward`` clipped to [0, 1], a signed advantage/delta x as (1 + x) / 2; NaN if absent."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "helped":
        return np.array([float(p.helped) for p in pairs], dtype=np.float32)
    if target == "reward":
        return np.array([min(1.0, max(0.0, p.reward)) for p in pairs], dtype=np.float32)
    if target == "advantage":
        pairs = with_advantage(pairs)
    vals = [getattr(p, target) for p in pairs]
    return np.array(
        [np.nan if v is None else (1.0 + max(-1.0, min(1.0, v))) / 2 for v in vals], dtype=np.float32
    )


def query_set_sha(pairs: Sequence[RetrievalPair]) -> str:
    """A fingerprint of the set of queries (tells ``evaluate`` whether a file is the one trained on)."""
    return hashlib.sha256("\x1f".join(sorted({p.query for p in pairs})).encode()).hexdigest()[:16]


class SplitReport(BaseModel):
    train_pairs: int
    val_pairs: int
    train_queries: int
    val_queries: int
    train_positive: int
    val_positive: int
    overlap_queries: int  # always 0: the split is by query
    dropped_no_target: int = 0


def split_by_query(
    pairs: Sequence[RetrievalPair], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices of train and validation pairs; whole queries go to one side (seeded shuffle of the query set)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be within (0, 1), got {val_fraction}")
    queries = sorted({p.query for p in pairs})
    if len(queries) < 2:
        raise ValueError(f"need at least 2 distinct queries to split by query, got {len(queries)}")
    order = np.random.default_rng(seed).permutation(len(queries))
    n_val = min(len(queries) - 1, max(1, round(len(queries) * val_fraction)))
    val_q = {queries[i] for i in order[:n_val]}
    train = [i for i, p in enumerate(pairs) if p.query not in val_q]
    val = [i for i, p in enumerate(pairs) if p.query in val_q]
    return train, val


def _split_report(
    pairs: Sequence[RetrievalPair], y: np.ndarray, train: list[int], val: list[int], dropped: int
) -> SplitReport:
    tq, vq = {pairs[i].query for i in train}, {pairs[i].query for i in val}
    return SplitReport(
        train_pairs=len(train),
        val_pairs=len(val),
        train_queries=len(tq),
        val_queries=len(vq),
        train_positive=int((y[train] > 0.5).sum()),
        val_positive=int((y[val] > 0.5).sum()),
        overlap_queries=len(tq & vq),
        dropped_no_target=dropped,
    )


# ---------------------------------------------------------------------------- data
class _TextPairs(Dataset):
    def __init__(self, q: list[str], c: list[str], y: np.ndarray, g: np.ndarray):
        self.q, self.c, self.y, self.g = q, c, torch.from_numpy(y), torch.from_numpy(g)

    def __len__(self) -> int:
        return len(self.q)

    def __getitem__(self, i: int) -> tuple[str, str, torch.Tensor, torch.Tensor]:
        return self.q[i], self.c[i], self.y[i], self.g[i]


class PairDataModule(L.LightningDataModule):
    """Pairs split by query; batches of precomputed vectors (frozen encoder) or of texts (fine-tuning)."""

    def __init__(
        self,
        pairs: Sequence[RetrievalPair],
        encoder: CachedEncoder | None = None,
        *,
        target: str = "helped",
        case_text: str = "question",
        val_fraction: float = 0.2,
        seed: int = 0,
        batch_size: int = 64,
        precompute: bool = True,
    ):
        super().__init__()
        if precompute and encoder is None:
            raise ValueError("precompute=True needs an encoder")
        self.all_pairs = list(pairs)
        self.encoder, self.target, self.case_text = encoder, target, case_text
        self.val_fraction, self.seed, self.batch_size, self.precompute = (
            val_fraction,
            seed,
            batch_size,
            precompute,
        )
        self.report: SplitReport | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        y_all = pair_targets(self.all_pairs, self.target)
        keep = ~np.isnan(y_all)
        self.pairs = [p for p, k in zip(self.all_pairs, keep, strict=True) if k]
        if not self.pairs:
            raise ValueError(
                f"no pair has a {self.target!r} target (fill it in the pair log, or use target='helped')"
            )
        self.y = y_all[keep]
        self.train_idx, self.val_idx = split_by_query(self.pairs, self.val_fraction, self.seed)
        self.report = _split_report(self.pairs, self.y, self.train_idx, self.val_idx, int((~keep).sum()))
        group_of = {q: i for i, q in enumerate(dict.fromkeys(p.query for p in self.pairs))}
        self.groups = np.array([group_of[p.query] for p in self.pairs], dtype=np.int64)
        self.q_texts = [p.query for p in self.pairs]
        self.c_texts = [case_text(p.case_question, p.case_plan, self.case_text) for p in self.pairs]
        if self.precompute:
            assert self.encoder is not None
            self.q_vecs = torch.from_numpy(self.encoder.encode(self.q_texts))
            self.c_vecs = torch.from_numpy(self.encoder.encode(self.c_texts))
        self.train_set, self.val_set = self._subset(self.train_idx), self._subset(self.val_idx)

    def batch_texts(self) -> None:
        """Batches of texts from now on, not vectors (fine-tuning: the encoder being trained embeds them)."""
        self.precompute = False
        self.train_set, self.val_set = self._subset(self.train_idx), self._subset(self.val_idx)

    def _subset(self, idx: list[int]) -> Dataset:
        y, g = self.y[idx], self.groups[idx]
        if self.precompute:
            ix = torch.as_tensor(idx, dtype=torch.long)
            return TensorDataset(self.q_vecs[ix], self.c_vecs[ix], torch.from_numpy(y), torch.from_numpy(g))
        return _TextPairs([self.q_texts[i] for i in idx], [self.c_texts[i] for i in idx], y, g)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 256), shuffle=False)

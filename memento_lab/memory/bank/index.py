"""An approximate-nearest-neighbour index over a bank's case vectors (FAISS), kept beside the bank.

Below ``ANN_THRESHOLD`` live cases retrieval stays an exact scan; at or above it retrievers ask the
index for a shortlist. One index per label (positive, negative), so quotas of each label are
searched directly rather than filtered out of a mixed list. A label with fewer than ``FLAT_BELOW``
cases keeps an exact flat index; a larger one an IVF-Flat index (``4 sqrt(n)`` lists, ``NPROBE``
searched; scores are exact inner products of the candidates), retrained when it has grown 4x since.

Vectors are keyed by the bank's write-order row. ``sync`` applies the bank's writes since the
index's version (adds and removals, incrementally); ``save`` writes ``index/<encoder>/`` atomically
(versioned files, then ``meta.json``). ``meta.json`` is the index's fingerprint: the bank id and
version it was built from, the id of its last row, and a checksum of every label file's bytes
(the vectors). ``open_index`` loads it, catches up from the bank, and rebuilds from the bank with a
warning naming the file when it is missing, damaged (zeroed vectors with the header intact too),
or does not match the bank. The bank's log stays the truth: a lost index costs a rebuild, never a case.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel, Field

from memento_lab.jsonl import atomic_write_text, file_checksum
from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, Encoder

log = logging.getLogger(__name__)

ANN_THRESHOLD = 20_000  # live cases from which retrievers, dedupe and leakage checks use the index
FLAT_BELOW = 20_000  # a label with fewer cases keeps an exact (flat) index
NPROBE = 96  # IVF lists searched per query (recall vs. latency; see benchmarks/bench_bank_scale.py)
SHORTLIST = 64  # candidates per label handed to a re-ranker / sampler
SAVE_EVERY = 1000  # bank writes between automatic saves (a reopened index catches up from the bank)
ENCODE_CHUNK = 50_000
LABELS = {"positive": True, "negative": False}


class IndexMeta(BaseModel):
    """``meta.json``: what the saved label files hold and what they were built from."""

    encoder: str
    dim: int
    version: int  # the bank version the saved files cover
    rows: int  # bank rows (write order) covered
    last_id: str | None  # id of row ``rows - 1``: the files belong to this bank
    bank_id: str | None = None  # CaseBank.bank_id (None in older indexes: they are rebuilt)
    files: dict[str, str]
    checksums: dict[str, str] = Field(default_factory=dict)  # label -> checksum of its file (the vectors)
    counts: dict[str, int]
    trained: dict[str, int]  # vectors an IVF label was trained on (0: flat)


def _flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _ivf(vecs: np.ndarray, seed: int = 0) -> faiss.Index:
    n, dim = vecs.shape
    nlist = max(16, int(4 * np.sqrt(n)))
    ix = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ix.cp.niter = 10
    ix.cp.min_points_per_centroid = 5  # small labels: fewer points per list is fine
    ix.cp.seed = seed
    sample = (
        vecs if n <= 40 * nlist else vecs[np.random.default_rng(seed).choice(n, 40 * nlist, replace=False)]
    )
    ix.train(sample)
    ix.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # cheap remove_ids
    return ix


def _probe(nprobe: int) -> faiss.SearchParametersIVF:
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    return params


class BankIndex:
    """Per-label FAISS indexes over one bank's live case vectors (see the module docstring)."""

    def __init__(self, bank: CaseBank, encoder: CachedEncoder | Encoder, *, nprobe: int = NPROBE):
        self.bank, self.encoder, self.nprobe = bank, encoder, nprobe
        self.version = -1
        self.rows = 0
        self.saved_version = -1
        self.trained: dict[str, int] = {}
        self._ix: dict[str, faiss.Index] = {}

    # ------------------------------------------------------------------ building and syncing
    @property
    def folder(self) -> Path | None:
        if self.bank.path is None:
            return None
        return self.bank.path / "index" / re.sub(r"[^A-Za-z0-9._-]+", "_", self.encoder.name)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The encoder's vectors for the questions of bank ``rows`` (in chunks; cached encoders read them back)."""
        qs = self.bank.row_questions(rows)
        parts = [self.encoder.encode(qs[i : i + ENCODE_CHUNK]) for i in range(0, len(qs), ENCODE_CHUNK)]
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros((0, 0)), dtype=np.float32)

    def build(self) -> BankIndex:
        """(Re)build every label from the bank's live cases."""
        rows = self.bank.live_rows()
        pos = self.bank.row_positive(rows)
        vecs = self.vectors(rows)
        dim = vecs.shape[1] if len(vecs) else self.encoder.dim
        for label, flag in LABELS.items():
            mask = pos == flag
            self._build_label(label, vecs[mask], rows[mask], dim)
        self.version, self.rows = self.bank.version, self.bank.row_count
        return self

    def _build_label(self, label: str, vecs: np.ndarray, rows: np.ndarray, dim: int) -> None:
        ix = _ivf(vecs) if len(vecs) >= FLAT_BELOW else _flat(dim)
        if len(vecs):
            ix.add_with_ids(vecs, rows.astype(np.int64))
        self._ix[label], self.trained[label] = ix, (len(vecs) if len(vecs) >= FLAT_BELOW else 0)

    def sync(self) -> int:
        """Apply the bank's writes since this index's version; returns how many rows changed."""
        if self.version == self.bank.version:
            return 0
        added, removed = self.bank.changes_since(self.version)
        if len(removed):
            ids = np.ascontiguousarray(removed, dtype=np.int64)
            for label, ix in self._ix.items():  # a hashtable direct map (IVF) takes only an id array
                ix.remove_ids(
                    faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
                    if self.trained.get(label)
                    else faiss.IDSelectorBatch(ids)
                )
        if len(added):
            pos, vecs = self.bank.row_positive(added), self.vectors(added)
            for label, flag in LABELS.items():
                mask = pos == flag
                if mask.any():
                    self._ix[label].add_with_ids(vecs[mask], added[mask])
        self.version, self.rows = self.bank.version, self.bank.row_count
        self._regrow()
        if self.folder is not None and self.version - self.saved_version >= SAVE_EVERY:
            self.save()
        return len(added) + len(removed)

    def _regrow(self) -> None:
        """A flat label that grew past FLAT_BELOW, or an IVF label 4x its training size, is rebuilt."""
        for label, flag in LABELS.items():
            n, trained = self._ix[label].ntotal, self.trained.get(label, 0)
            if (trained == 0 and n >= FLAT_BELOW) or (trained and n > 4 * trained):
                rows = self.bank.live_rows()
                rows = rows[self.bank.row_positive(rows) == flag]
                self._build_label(label, self.vectors(rows), rows, self.encoder.dim)

    def __len__(self) -> int:
        return sum(ix.ntotal for ix in self._ix.values())

    # ------------------------------------------------------------------ searching
    def search(self, qvec: np.ndarray, k: int, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` bank rows by inner product (one label, or both merged), best first, with scores."""
        labels = [label] if label is not None else list(LABELS)
        q = np.ascontiguousarray(qvec, dtype=np.float32).reshape(1, -1)
        rows, scores = [], []
        for name in labels:
            ix = self._ix[name]
            if ix.ntotal == 0 or k <= 0:
                continue
            params = _probe(self.nprobe) if self.trained.get(name) else None
            d, i = ix.search(q, min(k, ix.ntotal), params=params)
            ok = i[0] >= 0
            rows.append(i[0][ok])
            scores.append(d[0][ok])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        r, s = np.concatenate(rows), np.concatenate(scores)
        order = np.argsort(-s, kind="stable")[:k]
        return r[order], s[order]

    def shortlist(
        self,
        qvec: np.ndarray,
        sizes: dict[str | None, int],
        keep: Callable[[int], bool] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows (and scores) for each ``{label or None: size}``; rows failing ``keep`` are skipped,
        searching deeper until ``size`` pass or the label is exhausted."""
        out_r, out_s = [], []
        for label, size in sizes.items():
            total = self._ix[label].ntotal if label else len(self)
            fetch = size
            while True:
                r, s = self.search(qvec, fetch, label)
                ok = np.fromiter((keep(int(x)) for x in r), dtype=bool, count=len(r)) if keep else None
                if ok is None or ok.sum() >= size or fetch >= total:
                    if ok is not None:
                        r, s = r[ok], s[ok]
                    out_r.append(r[:size])
                    out_s.append(s[:size])
                    break
                fetch = min(total, fetch * 4)
        if not out_r:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        r, s = np.concatenate(out_r), np.concatenate(out_s)
        _, first = np.unique(r, return_index=True)  # None + a label can overlap
        first.sort()
        return r[first], s[first]

    # ------------------------------------------------------------------ persistence
    def save(self) -> Path | None:
        """Write the label indexes (versioned names) and then ``meta.json``, each atomically."""
        folder = self.folder
        if folder is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        files = {label: f"{label}-{self.version}.faiss" for label in LABELS}
        sums = {label: _atomic_write_index(self._ix[label], folder / name) for label, name in files.items()}
        rows = self.rows
        meta = IndexMeta(
            encoder=self.encoder.name,
            dim=self._ix["positive"].d,
            version=self.version,
            rows=rows,
            last_id=self.bank.row_id(rows - 1) if rows else None,
            bank_id=self.bank.bank_id,
            files=files,
            checksums=sums,
            counts={label: int(ix.ntotal) for label, ix in self._ix.items()},
            trained=self.trained,
        )
        atomic_write_text(folder / "meta.json", meta.model_dump_json())
        for old in folder.glob("*.faiss"):
            if old.name not in files.values():
                old.unlink(missing_ok=True)
        self.saved_version = self.version
        return folder

    def load(self) -> bool:
        """Read the saved index if it matches this bank; False (and nothing changed) otherwise."""
        folder = self.folder
        if folder is None or not (folder / "meta.json").exists():
            return False
        where = folder / "meta.json"
        try:
            meta = IndexMeta.model_validate_json(where.read_text())
            bad = self._mismatch(meta)
            if bad:
                raise ValueError(", ".join(bad))
            ixs = {}
            for label in LABELS:
                where = folder / meta.files[label]
                if file_checksum(where) != meta.checksums.get(label):
                    raise ValueError("its bytes do not match the checksum in meta.json (damaged vectors?)")
                ix = ixs[label] = faiss.read_index(str(where))
                if ix.ntotal != meta.counts[label] or ix.d != meta.dim:
                    raise ValueError(f"{ix.ntotal} vectors of dim {ix.d}, meta says {meta.counts[label]}")
        except Exception as e:  # a damaged index is only a cache: the caller rebuilds it from the bank
            log.warning("%s: index unusable (%s); rebuilding from the bank", where, e)
            return False
        self._ix, self.trained = ixs, dict(meta.trained)
        self.version, self.rows, self.saved_version = meta.version, meta.rows, meta.version
        return True

    def _mismatch(self, meta: IndexMeta) -> list[str]:
        """Why saved files do not belong to this bank and encoder (empty: they do)."""
        bank, rows = self.bank, self.bank.row_count
        problems = [
            meta.encoder != self.encoder.name and f"encoder {meta.encoder!r}",
            not meta.checksums and "no checksums (an older index)",
            meta.bank_id != bank.bank_id and f"built for bank {meta.bank_id}, this is bank {bank.bank_id}",
            meta.version > bank.version and f"version {meta.version} > bank {bank.version}",
            meta.rows > rows and f"{meta.rows} rows > bank {rows}",
            0 < meta.rows <= rows and bank.row_id(meta.rows - 1) != meta.last_id and "another bank",
        ]
        return [p for p in problems if p]


def _atomic_write_index(ix: faiss.Index, path: Path) -> str:
    """Write ``ix`` to ``path`` atomically; returns the checksum of the written bytes."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        faiss.write_index(ix, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        written = file_checksum(tmp)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    return written


_OPEN: weakref.WeakKeyDictionary[CaseBank, dict[str, BankIndex]] = weakref.WeakKeyDictionary()


def open_index(bank: CaseBank, encoder: CachedEncoder | Encoder, *, nprobe: int = NPROBE) -> BankIndex:
    """The bank's index for ``encoder``: shared per bank object, loaded or built once, synced on every call."""
    per_bank = _OPEN.setdefault(bank, {})
    ix = per_bank.get(encoder.name)
    if ix is None:
        ix = BankIndex(bank, encoder, nprobe=nprobe)
        if not ix.load():
            ix.build()
            ix.save()
        per_bank[encoder.name] = ix
    ix.sync()
    return ix


def use_index(bank: CaseBank, threshold: int | None = None) -> bool:
    """Whether a bank this size is searched through the index (else an exact scan)."""
    return len(bank) >= (ANN_THRESHOLD if threshold is None else threshold)


def neighbours_above(
    vectors: np.ndarray,
    queries: np.ndarray,
    threshold: float,
    *,
    groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    k: int = 16,
    nprobe: int = NPROBE,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query row: (indices, scores) of ``vectors`` with inner product >= ``threshold``, best first.

    Exact below ``FLAT_BELOW`` vectors per group, IVF above; ``groups``/``query_groups`` restrict
    each query to vectors of its own group (e.g. same label). Searches deeper (4x) for a query
    whose k-th neighbour still passes, so no match is cut off by ``k``. Dedupe and leakage checks
    use this instead of an N x M similarity matrix.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    out: list[tuple[np.ndarray, np.ndarray]] = [empty] * len(queries)
    if groups is None or query_groups is None:
        groups, query_groups = np.zeros(len(vectors), dtype=np.int64), np.zeros(len(queries), dtype=np.int64)
    for g in np.unique(groups):
        members, todo = np.flatnonzero(groups == g), np.flatnonzero(query_groups == g)
        if not len(members) or not len(todo):
            continue
        ivf = len(members) >= FLAT_BELOW
        ix = _ivf(vectors[members]) if ivf else _flat(vectors.shape[1])
        ix.add_with_ids(vectors[members], members.astype(np.int64))
        params = _probe(nprobe) if ivf else None
        kk = min(k, len(members))
        while len(todo):
            d, i = ix.search(queries[todo], kk, params=params)
            deeper = (d[:, -1] >= threshold) & (kk < len(members))
            for row, qi in enumerate(todo):
                if not deeper[row]:
                    ok = (i[row] >= 0) & (d[row] >= threshold)
                    out[qi] = (i[row][ok], d[row][ok])
            todo, kk = todo[deeper], min(len(members), kk * 4)
    return out

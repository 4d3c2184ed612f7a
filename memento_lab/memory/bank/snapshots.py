"""A bank's Parquet snapshot: its case table at one version, tied to the log it was built from.

``snapshot.json`` (``SnapshotMeta``) names the Parquet file and its fingerprint: the bank id (a hash
of the log's first line), the version and log offset it covers, a hash of the log line ending at
that offset, and a checksum of the file's own bytes. ``load`` refuses a snapshot whose fingerprint
does not match the log, saying why; the bank then replays its log (cases.py).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from memento_lab.jsonl import checksum, first_line, line_before
from memento_lab.memory.bank.columns import CaseTable


def digest(data: bytes) -> str:
    """A short content hash (bank ids, log lines)."""
    return hashlib.sha256(data).hexdigest()[:16]


def log_identity(log_path: Path) -> str | None:
    """A bank's id: the hash of its log's first line (None while the log has no complete line)."""
    line = first_line(log_path) if log_path.exists() else b""
    return digest(line) if line else None


class SnapshotMeta(BaseModel):
    """``snapshot.json``: which Parquet file covers the log up to where, and what it was built from."""

    version: int
    log_offset: int  # log bytes the snapshot covers
    log_lines: int = 0
    file: str
    rows: int | None = None  # cases ever added (the fingerprint fields are None in older snapshots)
    bank_id: str | None = None  # the bank it was written for (None: an empty log)
    tail: str | None = None  # hash of the log line ending at log_offset
    checksum: str | None = None  # of the Parquet file's bytes (jsonl.checksum)


def build(
    table: CaseTable, *, version: int, log_path: Path, log_offset: int, log_lines: int, bank_id: str | None
) -> tuple[SnapshotMeta, bytes]:
    """The Parquet bytes of ``table`` and their meta (the table covers the log up to ``log_offset``)."""
    buf = io.BytesIO()
    table.to_frame().write_parquet(buf)
    data = buf.getvalue()
    meta = SnapshotMeta(
        version=version,
        log_offset=log_offset,
        log_lines=log_lines,
        file=f"snapshot-{version}.parquet",
        rows=table.rows,
        bank_id=bank_id,
        tail=digest(line_before(log_path, log_offset)) if log_offset else None,
        checksum=checksum(data),
    )
    return meta, data


def problem(meta: SnapshotMeta, data: bytes, log_path: Path, bank_id: str | None) -> str | None:
    """Why a snapshot does not belong to this log, or None."""
    if meta.checksum is None or meta.rows is None:
        return "it has no fingerprint (written by an older version)"
    if checksum(data) != meta.checksum:
        return "its bytes do not match its checksum (damaged or replaced)"
    size = log_path.stat().st_size if log_path.exists() else 0
    if meta.log_offset > size:
        return f"it covers {meta.log_offset} bytes of a {size}-byte log"
    if meta.log_offset == 0:
        return None if meta.rows == 0 and meta.version == 0 else "it holds cases but covers no log"
    if meta.bank_id != bank_id:
        return f"it was written for bank {meta.bank_id}, this log is bank {bank_id}"
    if digest(line_before(log_path, meta.log_offset)) != meta.tail:
        return "the log line it ends at has changed (another copy of this bank?)"
    return None


def read_meta(folder: Path) -> SnapshotMeta | None:
    """The folder's ``snapshot.json``, or None when it is missing or unreadable."""
    path = folder / "snapshot.json"
    try:
        return SnapshotMeta.model_validate_json(path.read_text()) if path.exists() else None
    except ValueError:
        return None


def load(folder: Path, log_path: Path, bank_id: str | None) -> tuple[CaseTable, SnapshotMeta]:
    """The snapshot's table; a ``ValueError`` naming the file and why when it does not match the log."""
    where = folder / "snapshot.json"
    try:
        meta = SnapshotMeta.model_validate_json(where.read_text())
        where = folder / meta.file
        data = where.read_bytes()
        why = problem(meta, data, log_path, bank_id)
        if why:
            raise ValueError(why)
        table = CaseTable.from_frame(pl.read_parquet(io.BytesIO(data)))
        if table.rows != meta.rows:
            raise ValueError(f"{table.rows} rows, its meta says {meta.rows}")
    except Exception as e:
        raise ValueError(f"{where}: snapshot unusable ({e})") from e
    return table, meta

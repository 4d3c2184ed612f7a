"""Cases and the case bank: what the agent experienced, stored append-only with time travel.

A bank is a folder::

    log.jsonl         one line per write: {"version": v, "op": "add", "cases": [...]}
                                       or {"version": v, "op": "remove", "ids": [...], "reason": ...}
    snapshot.json     which Parquet snapshot covers the log up to where, and its fingerprint (``SnapshotMeta``)
    snapshot-<v>.parquet  every case ever added, with added/removed versions (fast load)
    index/            the approximate-nearest-neighbour index over case vectors (see index.py)
    embeddings.sqlite case vectors keyed by (encoder, text hash): see encoders.py

The log is the truth; the snapshot is a cache that a load validates and tops up from the log.
Every write is one line (so a batch is all-or-nothing), appended with flush + fsync under a file
lock, and bumps the version; ``bank.at(v)`` is the bank as it was after write ``v``. Before every
append the log's tail is checked under the lock: a partial line left by a writer killed mid-append
is moved aside (``log.jsonl.torn-<offset>``), so an acknowledged write is never glued onto it.

A bank's identity (``bank_id``) is a hash of its log's first line. A snapshot records the bank id,
the version and log offset it covers, a hash of the log line it ends at and a checksum of its own
bytes; a snapshot that does not match the log (damaged, or copied from another bank or another
copy of this one) is ignored with a warning naming the file, the log is replayed and a new
snapshot replaces it. The index files beside the bank do the same (index.py).

Loading is columnar: the snapshot is read with Polars and each case stays a JSON string until it is
asked for (``get``, ``cases()``), so opening a million-case bank does not validate a million rows.
Rows keep write order (row ``i`` = the i-th case ever added); indexes key vectors by that row.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from memento_lab.jsonl import (
    FormatError,
    ReadReport,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_text,
    parse_jsonl,
    repair_torn_tail,
)
from memento_lab.memory.bank import snapshots
from memento_lab.memory.bank.case import (  # the model, re-exported: the bank's users import it from here
    DEFAULT_THRESHOLD,
    Case,
    Label,
    Source,
    Trajectory,
    content_id,
    label_for,
    max_case_chars,
    non_finite,
    validate_case,
)
from memento_lab.memory.bank.columns import CaseTable

if TYPE_CHECKING:
    from memento_lab.memory.bank.encoders import CachedEncoder

__all__ = [
    "DEFAULT_THRESHOLD",
    "Case",
    "CaseBank",
    "Label",
    "Source",
    "Trajectory",
    "content_id",
    "is_bank",
    "label_for",
    "max_case_chars",
    "validate_case",
]
log = logging.getLogger(__name__)


def is_bank(path: str | Path) -> bool:
    """True when ``path`` is a bank folder (it has a log or a snapshot)."""
    return (Path(path) / "log.jsonl").is_file() or (Path(path) / "snapshot.json").is_file()


class CaseBank:
    """Append-only, crash-safe, versioned store of cases (see module docstring for the layout).

    ``CaseBank(path)`` opens or creates a bank folder (``create=False``: a missing bank is a
    ``FileNotFoundError``); ``CaseBank.in_memory(cases)`` and
    ``bank.at(v)`` give read-only banks without a folder. ``encoder``, when given, embeds new
    cases as they are written (each text once; vectors are stored in the bank).
    """

    SNAPSHOT_EVERY = 50  # writes between automatic snapshots

    def __init__(
        self,
        path: str | Path | None,
        *,
        encoder: CachedEncoder | None = None,
        readonly: bool = False,
        create: bool = True,
    ):
        self.path = Path(path) if path is not None else None
        self.readonly = readonly or path is None
        self.encoder = encoder
        self.version = 0
        self._table = CaseTable()
        self._bank_id: str | None = None
        self._log_offset = 0
        self._log_lines = 0
        self._writes_since_snapshot = 0
        self.load_report = ReadReport()
        if self.path is not None:
            if not create and not is_bank(self.path):
                raise FileNotFoundError(
                    f"{self.path}: no bank there (no log.jsonl or snapshot.json); "
                    "`memento-lab bank import FILE --out FOLDER` creates one"
                )
            self.path.mkdir(parents=True, exist_ok=True)
            if not self.readonly:
                # under the lock: a line being appended by another writer is not torn, only unfinished
                with self._locked():
                    torn = repair_torn_tail(self.log_path)
                if torn:
                    log.warning("%s: a torn last write (%d bytes) was moved aside", self.log_path, len(torn))
                    self.load_report.torn_line, self.load_report.torn_bytes = -1, len(torn)
            self._load()

    # ------------------------------------------------------------------ construction
    @classmethod
    def in_memory(cls, cases: Iterable[Case]) -> CaseBank:
        bank = cls(None)
        bank._table.add(list(cases), version=1)
        bank.version = 1
        return bank

    @property
    def log_path(self) -> Path:
        assert self.path is not None
        return self.path / "log.jsonl"

    @property
    def bank_id(self) -> str | None:
        """This bank's identity: a hash of its log's first line (None in memory or while the log is empty)."""
        if self._bank_id is None and self.path is not None:
            self._bank_id = snapshots.log_identity(self.log_path)
        return self._bank_id

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases())

    def __contains__(self, case_id: str) -> bool:
        return case_id in self._table

    def cases(self) -> list[Case]:
        """Live cases in write order (the same list object until the next write: do not mutate)."""
        return self._table.live_cases()

    def get(self, case_id: str) -> Case:
        if case_id not in self:
            raise KeyError(f"no case {case_id!r} in bank {self.path or '(in memory)'}")
        return self._table.case(case_id)

    def at(self, version: int) -> CaseBank:
        """The bank as it was right after write ``version`` (read-only, in memory)."""
        if not 0 <= version <= self.version:
            raise ValueError(f"version {version} not in 0..{self.version}")
        view = CaseBank(None)
        view.encoder = self.encoder
        view.version = version
        view._table = self._table.until(version)
        view._bank_id = self.bank_id
        return view

    def versions(self) -> list[int]:
        return list(range(self.version + 1))

    def refresh(self) -> int:
        """Read writes made by other processes since this bank was loaded; returns how many."""
        if self.path is None:
            return 0
        before = self.version
        self._read_log(self._log_offset)
        return self.version - before

    # ------------------------------------------------------------------ rows (write order; see columns.py)
    @property
    def row_count(self) -> int:
        """Cases ever added, live or removed: rows are numbered 0 .. row_count - 1 in write order."""
        return self._table.rows

    def live_rows(self) -> np.ndarray:
        """Rows of the live cases, in write order."""
        return self._table.live_rows()

    def row_of(self, case_id: str) -> int:
        """The write-order row of a case (live or removed); KeyError if never added."""
        r = self._table.row_of(case_id)
        if r < 0:
            raise KeyError(f"no case {case_id!r} in bank {self.path or '(in memory)'}")
        return r

    def row_id(self, row: int) -> str:
        return self._table.row_id(row)

    def row_question(self, row: int) -> str:
        return self._table.row_question(row)

    def row_ids(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return self._table.row_ids(rows)

    def row_questions(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return self._table.row_questions(rows)

    def row_positive(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._table.row_positive(rows)

    def changes_since(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows added after ``version`` and still live, and rows removed after it that were added by it."""
        return self._table.changes_since(version)

    def to_polars(self) -> pl.DataFrame:
        """One row per live case (nested fields as JSON strings) for dataframe work."""
        return pl.DataFrame(
            [
                {
                    "id": c.id,
                    "question": c.question,
                    "label": c.label,
                    "reward": c.reward,
                    "answer": c.answer,
                    "n_steps": len(c.plan),
                    "benchmark": c.source.benchmark,
                    "family": c.source.family,
                    "run_id": c.source.run_id,
                    "iteration": c.source.iteration,
                    "added_version": self._table.added_version(c.id),
                    "created_at": c.created_at,
                }
                for c in self.cases()
            ],
            schema_overrides={
                "answer": pl.String,
                "benchmark": pl.String,
                "family": pl.String,
                "run_id": pl.String,
                "iteration": pl.Int64,
            },
        )

    def stats(self) -> dict[str, Any]:
        cases = self.cases()
        by_source: dict[str, int] = {}
        for c in cases:
            key = c.source.benchmark or "unknown"
            by_source[key] = by_source.get(key, 0) + 1
        return {
            "path": str(self.path) if self.path else None,
            "version": self.version,
            "cases": len(cases),
            "positive": sum(c.positive for c in cases),
            "negative": sum(not c.positive for c in cases),
            "removed": self._table.removed,
            "by_source": by_source,
        }

    # ------------------------------------------------------------------ writing
    def add(self, cases: Case | Sequence[Case]) -> int:
        """Append one write of one or more cases; returns the new version."""
        batch = [cases] if isinstance(cases, Case) else list(cases)
        if not batch:
            return self.version
        dupes = [c.id for c in batch if self._table.ever_added(c.id)]
        if dupes or len({c.id for c in batch}) != len(batch):
            raise ValueError(f"case ids already in the bank or repeated in the batch: {dupes[:5]}")
        records = [c.model_dump(mode="json") for c in batch]
        for c, rec in zip(batch, records, strict=True):  # a field assigned after validation
            where = non_finite(rec)
            if where is not None:
                raise ValueError(f"case {c.id}: field {where} is not a finite number")
        if self.encoder is not None:  # embed at write time, once per text
            self.encoder.encode([c.question for c in batch])
        return self._write({"op": "add", "cases": records})

    def remove(self, ids: Sequence[str], reason: str = "") -> int:
        """Append a tombstone for ``ids`` (earlier versions still see them); returns the new version."""
        missing = [i for i in ids if i not in self]
        if missing:
            raise KeyError(f"not live in this bank: {missing[:5]}")
        return self._write({"op": "remove", "ids": list(ids), "reason": reason})

    def _write(self, record: dict[str, Any]) -> int:
        if self.readonly:
            raise PermissionError("this bank is read-only (an in-memory bank or a past version)")
        with self._locked():
            self._read_log(self._log_offset)  # catch up with other writers first
            version = self.version + 1
            # append_jsonl re-checks the tail: a dead writer's partial line is moved aside, so the
            # file ends exactly where the complete lines just read end (self._log_offset)
            written = append_jsonl(self.log_path, [{"version": version, **record}])
            self._apply(record, version, path=self.log_path, line=None)
            self.version = version
            self._log_offset += written
            self._log_lines += 1
        self._writes_since_snapshot += 1
        # A big bank rewrites its snapshot less often: every SNAPSHOT_EVERY writes, or one per 1000 cases.
        if self._writes_since_snapshot >= max(self.SNAPSHOT_EVERY, self._table.rows // 1000):
            self.snapshot()
        return version

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        with (self.path / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, *, replace: bool = False) -> Path | None:
        """Write a Parquet snapshot covering the log so far (atomic); the next load starts there.
        A newer snapshot another writer made stays, unless ``replace`` (it did not match the log)."""
        if self.path is None:
            return None
        meta, data = snapshots.build(
            self._table,
            version=self.version,
            log_path=self.log_path,
            log_offset=self._log_offset,
            log_lines=self._log_lines,
            bank_id=self.bank_id,
        )
        with self._locked():  # another writer's newer snapshot is neither replaced nor deleted
            atomic_write_bytes(self.path / meta.file, data)
            current = snapshots.read_meta(self.path)
            if replace or current is None or current.version <= meta.version:
                atomic_write_text(self.path / "snapshot.json", meta.model_dump_json())
                current = meta
            for old in self.path.glob("snapshot-*.parquet"):
                if old.name != current.file:
                    old.unlink(missing_ok=True)
        self._writes_since_snapshot = 0
        return self.path / current.file

    def _load(self) -> None:
        assert self.path is not None
        offset, stale = 0, False
        if (self.path / "snapshot.json").exists():
            try:
                self._table, meta = snapshots.load(self.path, self.log_path, self.bank_id)
                self.version, offset, self._log_lines = meta.version, meta.log_offset, meta.log_lines
            except ValueError as e:  # a damaged or foreign snapshot is only a cache: rebuild from the log
                log.warning("%s; replaying the whole log", e)
                self._table, self.version, self._log_lines, stale = CaseTable(), 0, 0, True
        self._log_offset = offset
        if self.log_path.exists():
            self._read_log(offset)
        if stale and not self.readonly:
            self.snapshot(replace=True)  # the rebuilt snapshot replaces the one that did not match

    def _read_log(self, offset: int) -> None:
        """Apply whole log lines from byte ``offset``; a partial last line is left for later."""
        if self.path is None or not self.log_path.exists():
            return
        with self.log_path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        report = ReadReport()
        if len(complete) < len(chunk):  # a torn write (crash) or another writer mid-append
            report.torn_line, report.torn_bytes = (
                self._log_lines + complete.count(b"\n") + 1,
                len(chunk) - len(complete),
            )
        for line, rec in parse_jsonl(
            complete, self.log_path, strict=False, report=report, first_line=self._log_lines + 1
        ):
            version = rec.get("version")
            if not isinstance(version, int):
                report.errors.append(
                    FormatError(self.log_path, line, "missing or not an integer", field="version")
                )
                continue
            try:
                self._apply(rec, version, path=self.log_path, line=line)
            except FormatError as e:
                report.errors.append(e)
                continue
            self.version = max(self.version, version)
        self._log_offset = offset + len(complete)
        self._log_lines += complete.count(b"\n")
        for err in report.errors:
            log.error("%s (skipped; the rest of the bank is intact)", err)
        if report.torn_line is not None:
            log.warning(
                "%s: line %s is a torn write (%d bytes), ignored",
                self.log_path,
                report.torn_line,
                report.torn_bytes,
            )
            self.load_report.torn_line, self.load_report.torn_bytes = report.torn_line, report.torn_bytes
        self.load_report.errors.extend(report.errors)

    def _apply(self, rec: dict[str, Any], version: int, *, path: Path, line: int | None) -> None:
        op = rec.get("op")
        if op == "add":
            raw = rec.get("cases")
            if not isinstance(raw, list):
                raise FormatError(path, line, "expected a list of cases", field="cases")
            self._table.add([validate_case(c, path, line) for c in raw], version)
        elif op == "remove":
            ids = rec.get("ids")
            if not isinstance(ids, list):
                raise FormatError(path, line, "expected a list of ids", field="ids")
            for cid in ids:
                self._table.remove(cid, version)
        else:
            raise FormatError(path, line, f"unknown op {op!r}", field="op")

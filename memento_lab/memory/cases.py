"""Cases and the case bank: what the agent experienced, stored append-only with time travel.

A bank is a folder::

    log.jsonl         one line per write: {"version": v, "op": "add", "cases": [...]}
                                       or {"version": v, "op": "remove", "ids": [...], "reason": ...}
    snapshot.json     {"version", "log_offset", "file"}: which Parquet snapshot covers the log up to where
    snapshot-<v>.parquet  every case ever added, with added/removed versions (fast load)
    index/            the approximate-nearest-neighbour index over case vectors (see index.py)
    embeddings.sqlite case vectors keyed by (encoder, text hash): see encoders.py

The log is the truth; the snapshot is a cache that a load validates and tops up from the log.
Every write is one line (so a batch is all-or-nothing), appended with flush + fsync under a file
lock, and bumps the version; ``bank.at(v)`` is the bank as it was after write ``v``.

Loading is columnar: the snapshot is read with Polars and each case stays a JSON string until it is
asked for (``get``, ``cases()``), so opening a million-case bank does not validate a million rows.
Rows keep write order (row ``i`` = the i-th case ever added); indexes key vectors by that row.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from memento_lab.memory.case import (  # the model, re-exported: the bank's users import it from here
    DEFAULT_THRESHOLD,
    Case,
    Label,
    Source,
    Trajectory,
    content_id,
    label_for,
    max_case_chars,
    validate_case,
)
from memento_lab.memory.columns import BankColumns

if TYPE_CHECKING:
    from memento_lab.memory.encoders import CachedEncoder

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


class CaseBank(BankColumns):
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
        self._cases: dict[
            str, Case | str | int
        ] = {}  # JSON or snapshot row until first asked for: columns.py
        self._added: dict[str, int] = {}
        self._removed: dict[str, int] = {}
        self._init_columns()
        self._live: tuple[int, list[Case]] | None = None
        self._log_offset = 0
        self._log_lines = 0
        self._writes_since_snapshot = 0
        self._live_seen = (0, 0)  # (rows, removals) when the live list was built
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
        bank._apply_add(list(cases), version=1)
        bank.version = 1
        return bank

    @property
    def log_path(self) -> Path:
        assert self.path is not None
        return self.path / "log.jsonl"

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._cases) - len(self._removed)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases())

    def __contains__(self, case_id: str) -> bool:
        return case_id in self._cases and case_id not in self._removed

    def cases(self) -> list[Case]:
        """Live cases in write order (the same list object until the next write: do not mutate)."""
        if self._live is None or self._live[0] != self.version:
            old = self._live[1] if self._live is not None else None
            seen = self._live_seen
            rows = self.live_rows()
            if old is not None and seen[1] == len(self._removed):  # only adds since: extend a copy
                fresh = [self._case(cid) for cid in self._row_ids[seen[0] :] if cid not in self._removed]
                live = old + fresh
            else:
                live = [self._case(self._row_ids[r]) for r in rows]
            self._live, self._live_seen = (self.version, live), (len(self._row_ids), len(self._removed))
        return self._live[1]

    def get(self, case_id: str) -> Case:
        if case_id not in self:
            raise KeyError(f"no case {case_id!r} in bank {self.path or '(in memory)'}")
        return self._case(case_id)

    def _case(self, case_id: str) -> Case:
        c = self._case_json(self._cases[case_id])
        if isinstance(c, str):  # validated once, on first use
            c = self._cases[case_id] = Case.model_validate_json(c)
        return c

    def at(self, version: int) -> CaseBank:
        """The bank as it was right after write ``version`` (read-only, in memory)."""
        if not 0 <= version <= self.version:
            raise ValueError(f"version {version} not in 0..{self.version}")
        view = CaseBank(None)
        view.encoder = self.encoder
        view.version = version
        view._snapshot_json = self._snapshot_json  # rows not yet parsed point into it
        for r in range(self._first_row_after(version)):
            cid = self._row_ids[r]
            if not (cid in self._removed and self._removed[cid] <= version):
                view._put(cid, self._cases[cid], self._questions[r], self._positive[r], self._added[cid])
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
                    "added_version": self._added[c.id],
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
            "removed": len(self._removed),
            "by_source": by_source,
        }

    # ------------------------------------------------------------------ writing
    def add(self, cases: Case | Sequence[Case]) -> int:
        """Append one write of one or more cases; returns the new version."""
        batch = [cases] if isinstance(cases, Case) else list(cases)
        if not batch:
            return self.version
        dupes = [c.id for c in batch if c.id in self._cases]
        if dupes or len({c.id for c in batch}) != len(batch):
            raise ValueError(f"case ids already in the bank or repeated in the batch: {dupes[:5]}")
        if self.encoder is not None:  # embed at write time, once per text
            self.encoder.encode([c.question for c in batch])
        return self._write({"op": "add", "cases": [c.model_dump(mode="json") for c in batch]})

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
            written = append_jsonl(self.log_path, [{"version": version, **record}])
            self._apply(record, version, path=self.log_path, line=None)
            self.version = version
            self._log_offset += written
            self._log_lines += 1
        self._writes_since_snapshot += 1
        # A big bank rewrites its snapshot less often: every SNAPSHOT_EVERY writes, or one per 1000 cases.
        if self._writes_since_snapshot >= max(self.SNAPSHOT_EVERY, len(self._row_ids) // 1000):
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
    def snapshot(self) -> Path | None:
        """Write a Parquet snapshot covering the log so far (atomic); the next load starts there."""
        if self.path is None:
            return None
        df = self._snapshot_frame()
        name = f"snapshot-{self.version}.parquet"
        buf = io.BytesIO()
        df.write_parquet(buf)
        atomic_write_bytes(self.path / name, buf.getvalue())
        meta = {
            "version": self.version,
            "log_offset": self._log_offset,
            "log_lines": self._log_lines,
            "file": name,
        }
        atomic_write_text(self.path / "snapshot.json", json.dumps(meta))
        for old in self.path.glob("snapshot-*.parquet"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self._writes_since_snapshot = 0
        return self.path / name

    def _load(self) -> None:
        assert self.path is not None
        meta_path = self.path / "snapshot.json"
        offset = 0
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                size = self.log_path.stat().st_size if self.log_path.exists() else 0
                if meta["log_offset"] <= size:
                    self._load_snapshot(pl.read_parquet(self.path / meta["file"]))
                    self.version, offset = meta["version"], meta["log_offset"]
                    self._log_lines = meta.get("log_lines", 0)
            except Exception as e:  # a damaged snapshot is only a cache: rebuild from the log
                log.warning("%s: snapshot unusable (%s); replaying the whole log", self.path, e)
                self._cases, self._added, self._removed = {}, {}, {}
                self._init_columns()
                self.version, offset, self._log_lines = 0, 0, 0
        self._log_offset = offset
        if self.log_path.exists():
            self._read_log(offset)

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
            cases = [validate_case(c, path, line) for c in raw]
            self._apply_add(cases, version)
        elif op == "remove":
            ids = rec.get("ids")
            if not isinstance(ids, list):
                raise FormatError(path, line, "expected a list of ids", field="ids")
            for cid in ids:
                self._removed.setdefault(cid, version)
        else:
            raise FormatError(path, line, f"unknown op {op!r}", field="op")

    def _apply_add(self, cases: list[Case], version: int) -> None:
        for case in cases:
            if case.id not in self._cases:
                self._put(case.id, case, case.question, case.positive, version)

"""The columnar side of a case bank: write-order rows, the Parquet snapshot frame, a change feed.

Row ``i`` is the i-th case ever added to the bank (removed ones keep their row). Questions and
labels are kept as plain columns so indexes and scans never need ``Case`` objects; the live rows
are extended per write, not recomputed. ``CaseBank`` (cases.py) inherits this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

SNAPSHOT_SCHEMA = {
    "id": pl.String,
    "case_json": pl.String,
    "question": pl.String,
    "positive": pl.Boolean,
    "added_version": pl.Int64,
    "removed_version": pl.Int64,
}


class BankColumns:
    """Row columns over a bank's ``_cases`` / ``_added`` / ``_removed`` dicts (see the module docstring)."""

    path: Any
    version: int
    _cases: dict[str, Any]  # id -> Case, or its JSON until first asked for
    _added: dict[str, int]
    _removed: dict[str, int]

    def _init_columns(self) -> None:
        self._row_ids: list[str] = []
        self._questions: list[str] = []
        self._positive: list[bool] = []
        self._row_index: dict[str, int] = {}
        self._live_rows: tuple[int, np.ndarray] | None = None
        self._rows_seen = (0, 0)  # (rows, removals) when live_rows was built
        self._snapshot_json: pl.Series | None = None

    def _case_json(self, case: Any) -> Any:
        """A case, its JSON, or (an int) its row in the loaded snapshot, resolved to JSON."""
        if isinstance(case, int):
            assert self._snapshot_json is not None
            return self._snapshot_json[case]
        return case

    def _put(self, case_id: str, case: Any, question: str, positive: bool, added: int) -> None:
        self._cases[case_id] = case
        self._added[case_id] = added
        self._row_index[case_id] = len(self._row_ids)
        self._row_ids.append(case_id)
        self._questions.append(question)
        self._positive.append(positive)

    def live_rows(self) -> np.ndarray:
        """Rows (write order) of the live cases; kept up to date per write, not rebuilt from the dict."""
        if self._live_rows is None or self._live_rows[0] != self.version:
            n, (seen_rows, seen_removed) = len(self._row_ids), self._rows_seen
            if self._live_rows is not None and seen_removed == len(self._removed):  # only adds since
                rows = np.concatenate([self._live_rows[1], np.arange(seen_rows, n)])
            else:
                dead = np.fromiter((self._row_index.get(i, -1) for i in self._removed), dtype=np.int64)
                keep = np.ones(n, dtype=bool)
                keep[dead[dead >= 0]] = False
                rows = np.flatnonzero(keep)
            self._live_rows, self._rows_seen = (self.version, rows), (n, len(self._removed))
        return self._live_rows[1]

    def _row_of(self, case_id: str) -> int:
        return self._row_index.get(case_id, -1)

    def row_ids(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._row_ids[int(r)] for r in rows]

    def row_questions(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._questions[int(r)] for r in rows]

    def row_positive(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        pos = self._positive
        return np.fromiter((pos[int(r)] for r in rows), dtype=bool, count=len(rows))

    def row_of(self, case_id: str) -> int:
        """The write-order row of a case (live or removed); KeyError if never added."""
        r = self._row_of(case_id)
        if r < 0:
            raise KeyError(f"no case {case_id!r} in bank {self.path or '(in memory)'}")
        return r

    def changes_since(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows added after ``version`` and still live, and rows removed after it that were added by it."""
        added = [r for r in range(self._first_row_after(version), len(self._row_ids))]
        live_added = [r for r in added if self._row_ids[r] not in self._removed]
        removed = [
            self._row_of(cid)
            for cid, v in self._removed.items()
            if v > version and self._added[cid] <= version
        ]
        return np.asarray(live_added, dtype=np.int64), np.asarray(removed, dtype=np.int64)

    def _first_row_after(self, version: int) -> int:
        lo, hi = 0, len(self._row_ids)  # rows are in write order, so added versions never decrease
        while lo < hi:
            mid = (lo + hi) // 2
            if self._added[self._row_ids[mid]] <= version:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _snapshot_frame(self) -> pl.DataFrame:
        ids = self._row_ids
        values = [self._cases[cid] for cid in ids]
        fresh = pl.Series(
            [
                None if isinstance(c, int) else c if isinstance(c, str) else c.model_dump_json()
                for c in values
            ],
            dtype=pl.String,
        )
        # rows still as loaded (ints into the loaded column) are copied column to column, never as
        # Python strings; an empty loaded column has no such rows (and nothing to gather from)
        if self._snapshot_json is not None and len(self._snapshot_json):
            rows = pl.Series([c if isinstance(c, int) else 0 for c in values], dtype=pl.Int64)
            fresh = pl.select(pl.coalesce(fresh, self._snapshot_json.gather(rows))).to_series()
        return pl.DataFrame(
            {
                "id": ids,
                "case_json": fresh,
                "question": self._questions,
                "positive": self._positive,
                "added_version": [self._added[cid] for cid in ids],
                "removed_version": [self._removed.get(cid) for cid in ids],
            },
            schema=SNAPSHOT_SCHEMA,
        )

    def _load_snapshot(self, df: pl.DataFrame) -> None:
        """Columns straight into the bank; cases stay JSON until asked for (see module docstring)."""
        missing = set(SNAPSHOT_SCHEMA) - set(df.columns)
        if missing:
            raise ValueError(f"snapshot lacks columns {sorted(missing)} (an older format)")
        if df["id"].n_unique() != df.height:
            raise ValueError("snapshot repeats case ids")
        ids = df["id"].to_list()
        self._row_ids, self._questions = ids, df["question"].to_list()
        self._row_index = dict(zip(ids, range(len(ids)), strict=True))
        self._positive = df["positive"].to_list()
        # An int is the case's row in the snapshot's JSON column (kept as Arrow data, not 1M Python strings).
        self._snapshot_json = df["case_json"].rechunk()
        self._cases = self._row_index.copy()
        self._added = dict(zip(ids, df["added_version"].to_list(), strict=True))
        gone = df.filter(pl.col("removed_version").is_not_null())
        self._removed = dict(zip(gone["id"].to_list(), gone["removed_version"].to_list(), strict=True))

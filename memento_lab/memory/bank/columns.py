"""The in-memory table of a case bank: every case ever added, in write order, with its versions.

Row ``i`` is the i-th case ever added to the bank (removed ones keep their row). Questions and
labels are kept as plain columns so indexes and scans never need ``Case`` objects; the live rows
and the live case list are extended per write, not recomputed. A case is held as a ``Case``, its
JSON, or (an int) its row in the loaded snapshot's JSON column until it is first asked for, so
opening a million-case bank validates nothing. ``CaseBank`` (cases.py) owns one table and adds the
log, the lock, versions and the snapshot files; the table knows nothing of files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from memento_lab.memory.bank.case import Case

SNAPSHOT_SCHEMA = {
    "id": pl.String,
    "case_json": pl.String,
    "question": pl.String,
    "positive": pl.Boolean,
    "added_version": pl.Int64,
    "removed_version": pl.Int64,
}
Stored = Case | str | int  # a case, its JSON, or its row in the snapshot's JSON column


class CaseTable:
    """Cases by id and by write-order row, with the version each was added and removed at."""

    def __init__(self, snapshot_json: pl.Series | None = None) -> None:
        self._stored: dict[str, Stored] = {}
        self._added: dict[str, int] = {}
        self._removed: dict[str, int] = {}
        self._row_ids: list[str] = []
        self._questions: list[str] = []
        self._positive: list[bool] = []
        self._row_index: dict[str, int] = {}
        self._snapshot_json = snapshot_json  # the loaded snapshot's case_json column (int rows point here)
        self._live_rows: tuple[tuple[int, int], np.ndarray] | None = None
        self._live_cases: tuple[tuple[int, int], list[Case]] | None = None

    # ------------------------------------------------------------------ size and membership
    def __len__(self) -> int:
        return len(self._row_ids) - len(self._removed)

    def __contains__(self, case_id: str) -> bool:
        """Live: added and not removed."""
        return case_id in self._stored and case_id not in self._removed

    def ever_added(self, case_id: str) -> bool:
        return case_id in self._stored

    @property
    def rows(self) -> int:
        """Cases ever added (live or removed): the number of rows."""
        return len(self._row_ids)

    @property
    def removed(self) -> int:
        return len(self._removed)

    def added_version(self, case_id: str) -> int:
        return self._added[case_id]

    def _state(self) -> tuple[int, int]:
        """(rows, removals): it changes with every write that changes the table, so caches key on it."""
        return len(self._row_ids), len(self._removed)

    # ------------------------------------------------------------------ writes
    def put(self, case_id: str, case: Stored, question: str, positive: bool, added: int) -> None:
        """A new row (the caller checks the id is new)."""
        self._stored[case_id] = case
        self._added[case_id] = added
        self._row_index[case_id] = len(self._row_ids)
        self._row_ids.append(case_id)
        self._questions.append(question)
        self._positive.append(positive)

    def add(self, cases: Sequence[Case], version: int) -> None:
        """Add cases at ``version``; an id already added (a replayed write) is left as it is."""
        for case in cases:
            if case.id not in self._stored:
                self.put(case.id, case, case.question, case.positive, version)

    def remove(self, case_id: str, version: int) -> None:
        """Mark a case removed at ``version`` (the first removal counts; unknown ids are ignored)."""
        if case_id in self._stored:
            self._removed.setdefault(case_id, version)

    # ------------------------------------------------------------------ reading
    def case(self, case_id: str) -> Case:
        """The case (validated from its JSON once, on first use)."""
        c = self._stored[case_id]
        if isinstance(c, int):
            assert self._snapshot_json is not None
            c = self._snapshot_json[c]
        if isinstance(c, str):
            c = self._stored[case_id] = Case.model_validate_json(c)
        return c

    def live_cases(self) -> list[Case]:
        """Live cases in write order (the same list object until the next write: do not mutate)."""
        state = self._state()
        if self._live_cases is None or self._live_cases[0] != state:
            if self._live_cases is not None and self._live_cases[0][1] == state[1]:  # only adds since
                seen, old = self._live_cases[0][0], self._live_cases[1]
                live = old + [self.case(cid) for cid in self._row_ids[seen:] if cid not in self._removed]
            else:
                live = [self.case(self._row_ids[r]) for r in self.live_rows()]
            self._live_cases = (state, live)
        return self._live_cases[1]

    def live_rows(self) -> np.ndarray:
        """Rows (write order) of the live cases; kept up to date per write, not rebuilt from the dict."""
        state = self._state()
        if self._live_rows is None or self._live_rows[0] != state:
            n = state[0]
            if self._live_rows is not None and self._live_rows[0][1] == state[1]:  # only adds since
                rows = np.concatenate([self._live_rows[1], np.arange(self._live_rows[0][0], n)])
            else:
                dead = np.fromiter((self._row_index[i] for i in self._removed), dtype=np.int64)
                keep = np.ones(n, dtype=bool)
                keep[dead] = False
                rows = np.flatnonzero(keep)
            self._live_rows = (state, rows)
        return self._live_rows[1]

    def row_of(self, case_id: str) -> int:
        """The write-order row of a case (live or removed), or -1 if never added."""
        return self._row_index.get(case_id, -1)

    def row_id(self, row: int) -> str:
        return self._row_ids[row]

    def row_question(self, row: int) -> str:
        return self._questions[row]

    def row_ids(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._row_ids[int(r)] for r in rows]

    def row_questions(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [self._questions[int(r)] for r in rows]

    def row_positive(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        pos = self._positive
        return np.fromiter((pos[int(r)] for r in rows), dtype=bool, count=len(rows))

    def changes_since(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows added after ``version`` and still live, and rows removed after it that were added by it."""
        added = range(self.first_row_after(version), len(self._row_ids))
        live_added = [r for r in added if self._row_ids[r] not in self._removed]
        removed = [
            self._row_index[cid]
            for cid, v in self._removed.items()
            if v > version and self._added[cid] <= version
        ]
        return np.asarray(live_added, dtype=np.int64), np.asarray(removed, dtype=np.int64)

    def first_row_after(self, version: int) -> int:
        """The first row added after ``version`` (rows are in write order: added versions never decrease)."""
        lo, hi = 0, len(self._row_ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._added[self._row_ids[mid]] <= version:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def until(self, version: int) -> CaseTable:
        """The table as it was right after write ``version`` (rows not yet parsed keep pointing
        into the same snapshot column)."""
        view = CaseTable(self._snapshot_json)
        for r in range(self.first_row_after(version)):
            cid = self._row_ids[r]
            if not (cid in self._removed and self._removed[cid] <= version):
                view.put(cid, self._stored[cid], self._questions[r], self._positive[r], self._added[cid])
        return view

    # ------------------------------------------------------------------ the snapshot frame
    def to_frame(self) -> pl.DataFrame:
        """Every row as the snapshot's columns (see ``SNAPSHOT_SCHEMA``)."""
        ids = self._row_ids
        values = [self._stored[cid] for cid in ids]
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

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> CaseTable:
        """A table straight from snapshot columns; cases stay JSON until asked for."""
        missing = set(SNAPSHOT_SCHEMA) - set(df.columns)
        if missing:
            raise ValueError(f"snapshot lacks columns {sorted(missing)} (an older format)")
        if df["id"].n_unique() != df.height:
            raise ValueError("snapshot repeats case ids")
        # An int is the case's row in the snapshot's JSON column (kept as Arrow data, not 1M Python strings).
        table = cls(df["case_json"].rechunk())
        ids = df["id"].to_list()
        table._row_ids, table._questions = ids, df["question"].to_list()
        table._row_index = dict(zip(ids, range(len(ids)), strict=True))
        table._positive = df["positive"].to_list()
        table._stored = dict(table._row_index)
        table._added = dict(zip(ids, df["added_version"].to_list(), strict=True))
        gone = df.filter(pl.col("removed_version").is_not_null())
        table._removed = dict(zip(gone["id"].to_list(), gone["removed_version"].to_list(), strict=True))
        return table

"""Record / replay of model and tool calls in a content-addressed SQLite store (a "cassette").

    cassette = Cassette("run/cassette.sqlite", mode="record")
    response = await cassette.through("chat", request, lambda: client.call(request))

The key is the sha256 of the call kind and the canonical JSON of the request, so the same request
always maps to the same stored response. Modes:

- ``off``     call, store nothing
- ``record``  call and store (overwriting an older answer to the same request)
- ``replay``  return the stored response; a missing one raises ``CassetteMiss`` (never a live call)
- ``auto``    stored response if present, else call and store

A run recorded with ``record`` re-executes bit-for-bit offline with ``replay``: same prompts in,
same answers out, no model server and no tool server started.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

from memento_lab.config import CassetteMode
from memento_lab.trace import CassetteMiss

__all__ = ["Cassette", "CassetteMiss", "request_key"]


def request_key(kind: str, request: dict[str, Any]) -> str:
    """sha256 of ``kind`` and the canonical JSON of ``request`` (sorted keys, no whitespace)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{kind}\n{canonical}".encode()).hexdigest()


def _summary(request: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class Cassette:
    """A SQLite store of (kind, request) -> response, shared by model and tool calls."""

    def __init__(self, path: str | Path | None, mode: CassetteMode = "off"):
        if mode not in get_args(CassetteMode):
            raise ValueError(f"cassette mode {mode!r} is not one of {get_args(CassetteMode)}")
        self.mode: CassetteMode = mode
        self.path = Path(path) if path is not None else None
        self.hits = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if mode != "off":
            if self.path is None:
                raise ValueError(f"cassette mode {mode!r} needs a path")
            if mode == "replay" and not self.path.exists():
                raise FileNotFoundError(f"{self.path}: no cassette to replay")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # the default rollback journal, not WAL: every committed call is inside the one .sqlite
            # file, so a run's cassette can be copied or shared while the run is still open
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                "request TEXT NOT NULL, response TEXT NOT NULL, recorded_at REAL NOT NULL)"
            )

    @property
    def replaying(self) -> bool:
        """True when no live call may be made (servers need not start)."""
        return self.mode == "replay"

    def get(self, kind: str, request: dict[str, Any]) -> dict[str, Any] | None:
        if self._db is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT response FROM calls WHERE key = ?", (request_key(kind, request),)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, request: dict[str, Any], response: dict[str, Any]) -> str:
        key = request_key(kind, request)
        if self._db is None:
            return key
        payload = json.dumps(response, sort_keys=True, ensure_ascii=False)
        with self._lock:  # one statement = one atomic SQLite transaction
            self._db.execute(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    kind,
                    json.dumps(request, sort_keys=True, ensure_ascii=False, default=str),
                    payload,
                    time.time(),
                ),
            )
        return key

    async def through(
        self, kind: str, request: dict[str, Any], call: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """The response to ``request``: live, stored, or both, depending on the mode."""
        if self.mode in ("replay", "auto"):
            stored = self.get(kind, request)
            if stored is not None:
                self.hits += 1
                return stored
            if self.mode == "replay":
                raise CassetteMiss(
                    f"{self.path}: no recorded {kind!r} call for request {request_key(kind, request)[:12]} "
                    f"{_summary(request)} (replay never makes live calls; record the run first)"
                )
        response = await call()
        if self.mode in ("record", "auto"):
            self.put(kind, request, response)
        return response

    def __bool__(
        self,
    ) -> bool:  # an empty cassette is still a cassette (``cassette or default`` must not drop it)
        return True

    def __len__(self) -> int:
        if self._db is None:
            return 0
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

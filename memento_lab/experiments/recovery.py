"""Resuming after a crash: undo what an interrupted attempt wrote before its result row.

An attempt at a (task, iteration) writes, in order: its case (the bank) or its memory write (another
method's op log), its retrieval pairs (pairs.jsonl), its counterfactual probe's pair, its trace
(traces.jsonl), and last its row (results.jsonl). The row commits the attempt. A run killed anywhere before the row leaves some of
those writes behind and retries the attempt on resume, so before anything else runs (under the run
lock) ``roll_back`` removes them:

- cases of this run whose (task, iteration) has no ok row, or that are not the case its row names
  (tombstones in the bank's log: earlier versions still show them); for another memory method, its
  writes whose (task, iteration) has no ok row (the inverse ops appended: ``MemoryMethod.roll_back``);
- pairs of this run whose (task, iteration) has no ok row;
- traces beyond the number of rows of their (task, iteration) (a trace is written just before its row).

Each step is atomic and idempotent, so a crash during the roll-back is rolled back again next time.
Not undone: an online update of a learned retriever already saved (``retriever/online.ckpt``), and
cases a bank policy evicted during the interrupted attempt.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memento_lab.experiments.config import ResultRow
from memento_lab.experiments.results import latest_rows
from memento_lab.jsonl import atomic_write_bytes
from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.methods.base import MemoryMethod
from memento_lab.memory.methods.cases import CaseMemory

log = logging.getLogger(__name__)
Key = tuple[str, int]  # (task id, iteration)


class RollBack(BaseModel):
    """What a resume removed: writes of attempts that never reached their result row."""

    cases: int = 0
    pairs: int = 0
    traces: int = 0
    memory_writes: int = 0  # writes of another memory method undone

    def __bool__(self) -> bool:
        return bool(self.cases or self.pairs or self.traces or self.memory_writes)


def _drop_lines(path: Path, drop: Callable[[dict[str, Any]], bool]) -> int:
    """Rewrite ``path`` (atomically) without the complete JSON lines ``drop`` selects; returns how many.
    Lines that are not JSON objects and a torn last line are kept as they are."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    kept, dropped = [], 0
    for raw in data[:end].splitlines(keepends=True):
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and drop(obj):
            dropped += 1
        else:
            kept.append(raw)
    if dropped:
        atomic_write_bytes(path, b"".join(kept) + data[end:])
    return dropped


def _extra_traces(rows: Sequence[ResultRow], run_id: str) -> Callable[[dict[str, Any]], bool]:
    """A selector of the traces of this run beyond the rows of their (task, iteration), in file order."""
    allowed = Counter((r.task_id, r.iteration) for r in rows if r.run_id == run_id)
    seen: Counter[Key] = Counter()

    def extra(trace: dict[str, Any]) -> bool:
        if trace.get("run_id") != run_id:
            return False
        key = (trace.get("task_id"), trace.get("iteration"))
        seen[key] += 1  # type: ignore[index]
        return seen[key] > allowed[key]  # type: ignore[index]

    return extra


def roll_back(out: Path, memory: CaseBank | MemoryMethod, run_id: str, rows: Sequence[ResultRow]) -> RollBack:
    """Remove the writes of this run's attempts that have no result row (see the module docstring);
    ``memory``: the run's case bank, or its memory method."""
    committed: dict[Key, str | None] = {
        (r.task_id, r.iteration): r.case_id
        for r in latest_rows(rows)
        if r.run_id == run_id and r.status == "ok"
    }
    done = RollBack()
    done.traces = _drop_lines(out / "traces.jsonl", _extra_traces(rows, run_id))
    done.pairs = _drop_lines(
        out / "pairs.jsonl",
        lambda p: p.get("run_id") == run_id and (p.get("task_id"), p.get("iteration")) not in committed,
    )
    if isinstance(memory, CaseMemory):
        memory = memory.memory.bank
    if not isinstance(memory, CaseBank):
        done.memory_writes = memory.roll_back(committed, run_id)
        _warn(out, done)
        return done
    bank = memory
    orphans = []
    for case in bank.cases():
        src = case.source
        if src.run_id == run_id and src.task_id is not None and src.iteration is not None:
            key = (src.task_id, src.iteration)
            if key not in committed or committed[key] != case.id:
                orphans.append(case.id)
    if orphans:
        bank.remove(
            orphans, reason="rolled back on resume: its attempt was interrupted before its result row"
        )
        done.cases = len(orphans)
    _warn(out, done)
    return done


def _warn(out: Path, done: RollBack) -> None:
    if done:
        log.warning(
            "%s: resumed after an interrupted attempt; rolled back %d case(s), %d memory write(s), %d "
            "pair(s), %d trace(s) written before their result row (the attempts are retried)",
            out,
            done.cases,
            done.memory_writes,
            done.pairs,
            done.traces,
        )

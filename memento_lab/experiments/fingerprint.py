"""What a run is scored against: a content hash per task, and one for the whole task set.

A run names its suite by a spec (``jsonl:tasks.jsonl``, ``reasoning-gym:chain_sum``), but the file
behind a path can change. ``task_hash`` hashes what a task *is*: its id, question, gold answer,
family, answer kind, entry point, metadata (without the path it was read from) and the bytes of its
attached files. ``tasks_fingerprint`` hashes the sorted task hashes of a set. ``config.json`` keeps
the fingerprint (a resume on other contents is refused) and every result row its task's hash (a
report never pools or pairs runs scored against different contents).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from memento_lab.tasks.base import Task

WHERE_READ = frozenset({"file"})  # metadata saying where a task was read from, not what it is


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def task_hash(task: Task) -> str:
    """A hash of the task's contents (16 hex digits); the same task read from another path hashes the same."""
    content = {
        "id": task.id,
        "question": task.question,
        "answer": task.answer,
        "family": task.family,
        "answer_kind": task.answer_kind,
        "entry_point": task.entry_point,
        "metadata": {k: v for k, v in task.metadata.items() if k not in WHERE_READ},
        "files": [_sha(Path(f).read_bytes()) for f in task.files],
    }
    return _sha(json.dumps(content, sort_keys=True, default=str).encode())[:16]


def tasks_fingerprint(hashes: Iterable[str]) -> str:
    """One hash for a task set, from its tasks' ``task_hash`` values (order does not matter)."""
    return _sha("\n".join(sorted(hashes)).encode())[:16]

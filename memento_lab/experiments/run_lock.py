"""One process per run folder: an exclusive lock on ``<run>/.run.lock`` that names its holder.

    with run_lock(out):   # a second `memento-lab run` on the same folder fails at once
        ...

The lock is an ``flock`` on the file, which the kernel releases when its holder dies, however it
dies: a lock left by a killed run is simply free, and the next run takes it (the dead holder's
details, still in the file, are logged and replaced). The file says who holds the lock (pid, host,
start time, command) so the refusal can name them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ValidationError

LOCK_FILE = ".run.lock"
log = logging.getLogger(__name__)


class RunLocked(RuntimeError):
    """Another process holds the run folder."""


class Holder(BaseModel):
    pid: int
    host: str
    started_at: float  # unix time
    command: str = ""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"pid {self.pid} on {self.host}, started {when}" + (
            f" ({self.command})" if self.command else ""
        )


def _holder(f: IO[str]) -> Holder | None:
    f.seek(0)
    try:
        return Holder.model_validate_json(f.read())
    except (ValidationError, ValueError):
        return None


def _running_here(holder: Holder) -> bool | None:
    """Whether the holder's process is alive (None: it runs on another host, so nobody here knows)."""
    if holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[Holder]:
    """Hold ``out``'s run lock until the block ends; ``RunLocked`` naming the holder if another has it."""
    path = Path(out) / LOCK_FILE
    with path.open("a+") as f:  # never truncate the holder's details before owning the lock
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(f)
            who = holder.describe() if holder else "a process that has not said who it is yet"
            alive = _running_here(holder) if holder else None
            note = (
                "; that process has ended, so a process it started still holds the lock"
                if alive is False
                else ""
            )
            raise RunLocked(
                f"{out}: another run is using this folder ({who}{note}); wait for it to finish, "
                "or run elsewhere with another --out"
            ) from None
        stale = _holder(f)
        if stale is not None:
            log.info("%s: taking over the lock left by %s (no longer held)", path, stale.describe())
        me = Holder(
            pid=os.getpid(), host=socket.gethostname(), started_at=time.time(), command=" ".join(sys.argv)
        )
        f.seek(0)
        f.truncate()
        f.write(json.dumps(me.model_dump()))
        f.flush()
        os.fsync(f.fileno())
        try:
            yield me
        finally:
            f.seek(0)
            f.truncate()  # a clean exit leaves no holder to report
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)

"""The sandbox's workspace from the host's side: who may write it, and how much one run may add.

- ``give_to_sandbox``: when we run as root the code runs as ``SANDBOX_ID``; the workspace's folders
  become its own (so it can create, rename and delete files there), while the files the host put
  there stay the host's: readable, not writable in place.
- ``DiskQuota``: the workspace is a host folder that outlives the run (other tools read it), so no
  size-capped tmpfs can hold it; a watcher thread measures it instead, every ~50 ms, and calls
  ``on_exceeded`` once the run has grown it by more than the quota. Counted: the blocks every file
  under the workspace occupies (a sparse file counts what it uses), files the run's processes hold
  open after deleting them (through ``/proc/PID/fd``), and the number of entries (an inode flood).
  The overshoot is at most what the code writes in one interval.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

INTERVAL_S = 0.05


def give_to_sandbox(workspace: Path, uid: int) -> None:
    """Make every folder under ``workspace`` (itself included, symlinks not followed) owned by ``uid``."""
    dev = workspace.stat().st_dev
    os.chown(workspace, uid, uid)
    for root, dirs, _files in os.walk(workspace):
        for name in dirs:
            path = Path(root) / name
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode) and st.st_dev == dev and st.st_uid != uid:
                os.chown(path, uid, uid, follow_symlinks=False)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, through ``/proc/PID/task/TID/children``."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def disk_usage(root: Path, dev: int, stop_after: int) -> tuple[int, int]:
    """(bytes allocated, entries) under ``root`` on device ``dev``; stops counting after ``stop_after`` entries."""
    total = entries = 0
    todo = [str(root)]
    while todo and entries <= stop_after:
        try:
            it = os.scandir(todo.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                entries += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                    todo.append(entry.path)
    return total, entries


def deleted_open_bytes(pids: Iterable[int], dev: int) -> int:
    """Bytes of files on ``dev`` that ``pids`` hold open after deleting them (invisible to a walk)."""
    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = fd.stat()  # the file it points to, deleted or not
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 0 and st.st_dev == dev and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


class DiskQuota:
    """What ``workspace`` holds now; ``watch(pid, on_exceeded)`` calls ``on_exceeded(reason)`` once the
    run has added more than ``max_bytes`` or ``max_entries`` to it."""

    def __init__(self, workspace: Path, *, max_bytes: int, max_entries: int):
        self.root, self.max_bytes, self.max_entries = workspace, max_bytes, max_entries
        self.dev = workspace.stat().st_dev
        self.base_bytes, self.base_entries = disk_usage(workspace, self.dev, 2**62)
        self.pid = 0
        self.exceeded: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int, on_exceeded: Callable[[str], None]) -> None:
        self.pid, self.on_exceeded = pid, on_exceeded
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def check(self) -> str | None:
        """Why the run is over its quota now, or None."""
        limit = self.base_entries + self.max_entries
        used, entries = disk_usage(self.root, self.dev, stop_after=limit)
        if entries > limit:
            return f"it created more than {self.max_entries} files and folders in its workspace"
        used += deleted_open_bytes(process_tree(self.pid), self.dev)
        if used - self.base_bytes > self.max_bytes:
            return f"it wrote more than {self.max_bytes / 2**20:g} MB into its workspace"
        return None

    def _run(self) -> None:
        interval = INTERVAL_S
        while not self._stop.wait(interval):
            t = time.monotonic()
            reason = self.check()
            if reason is not None:
                self.exceeded = reason
                self.on_exceeded(reason)
                return
            interval = max(INTERVAL_S, 4 * (time.monotonic() - t))  # a big workspace is walked less often

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

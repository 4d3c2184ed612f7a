"""Fresh pids + memory cgroups (v1 or v2) per sandboxed run, when we may write them (as root).

The kernel never applies ``RLIMIT_NPROC`` to uid 0 and ``RLIMIT_AS`` misses shared memory; a cgroup
bounds the whole process tree of one run instead, and killing every pid in it leaves nothing behind.
Best effort: no writable cgroup hierarchy means no cgroup (``SandboxResult.cgroup`` says which).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup"))


def make_cgroups(memory_mb: int, max_procs: int) -> list[Path]:
    """Fresh pids + memory cgroups (v1 or v2) when writable; [] otherwise. Best effort, never raises."""
    made: list[Path] = []
    name = f"memento-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            continue
        remove_stale_cgroups(root)
        d = root / name
        try:
            d.mkdir()
        except OSError:
            continue
        limits = {
            "pids.max": str(max_procs),
            "memory.limit_in_bytes": str(memory_mb * 2**20),
            "memory.max": str(memory_mb * 2**20),
            "memory.swap.max": "0",
        }
        wrote = False
        for fname, value in limits.items():
            if (d / fname).exists():
                try:
                    (d / fname).write_text(value)
                    wrote = True
                except OSError:
                    pass
        if wrote:
            made.append(d)
        else:
            remove_cgroup(d)
        if root == Path("/sys/fs/cgroup") and made:
            break  # v2 root: one group carries both controllers
    return made


def remove_stale_cgroups(root: Path) -> None:
    """Groups left by a process that was killed before it could clean up (its pid is in the name)."""
    for d in root.glob("memento-sandbox-*"):
        try:
            os.kill(int(d.name.split("-")[2]), 0)
        except ProcessLookupError:
            remove_cgroup(d)
        except (ValueError, IndexError, PermissionError):
            pass


def kill_cgroup(d: Path) -> None:
    for _ in range(50):
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def remove_cgroup(d: Path) -> None:
    kill_cgroup(d)
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    log.warning("could not remove cgroup %s", d)

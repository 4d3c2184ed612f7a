"""One sandboxed Python process from start to cleanup (``memento_lab.sandbox.isolation`` picks the isolation).

``SandboxRun`` writes the program to a private script, builds the command line for the isolation
(bwrap, unshare or bare python) behind the launcher (``sandbox_launch``: cgroups, user namespace,
rlimits), starts it in its own process group, captures its output, watches the workspace's disk
quota, and on ``stop()`` kills whatever is left (group and cgroup) and removes what it made.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel

from memento_lab.sandbox import launch as sandbox_launch
from memento_lab.sandbox.cgroups import kill_cgroup, make_cgroups, remove_cgroup
from memento_lab.sandbox.fs import SANDBOX_ID, bwrap_argv
from memento_lab.sandbox.workspace import DiskQuota, give_to_sandbox

Isolation = Literal["bwrap", "unshare", "rlimits"]
TMPFS_BYTES = 256 * 1024 * 1024  # private /tmp inside the sandbox
FILE_SIZE_BYTES = 64 * 1024 * 1024  # RLIMIT_FSIZE: largest file the code may write
OPEN_FILES = 1024  # RLIMIT_NOFILE (the hard limit too: the code cannot raise it)
UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--ipc", "--uts"]


class SandboxLimits(BaseModel):
    """What one run may use: wall-clock seconds, memory, processes, output bytes per stream, and what
    it may add to its workspace (``disk_mb``, ``max_files`` files and folders)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_procs: int = 64
    max_output: int = 20_000
    disk_mb: int = 512
    max_files: int = 100_000


class SandboxResult(BaseModel):
    """What one sandboxed run did. ``exit_code`` is None when the run was killed by the timeout."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    truncated: bool
    duration_s: float
    isolation: Isolation
    cgroup: bool = False  # True when a pids/memory cgroup bounded the whole process tree
    disk_exceeded: bool = False  # killed for writing more than its disk quota into the workspace

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _Capture:
    """Read a pipe to EOF on a thread, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, pipe: IO[bytes] | None, limit: int):
        self.pipe, self.limit = pipe, limit
        self.head = bytearray()
        self.total = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        if self.pipe is None:
            return
        try:
            while chunk := self.pipe.read1(65536):  # type: ignore[attr-defined]
                self.total += len(chunk)
                room = self.limit - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
        except (OSError, ValueError):
            pass

    def text(self) -> tuple[str, bool]:
        truncated = self.total > len(self.head)
        text = self.head.decode("utf-8", errors="replace")
        if truncated:
            text += f"\n... [output truncated: {self.total - len(self.head)} more bytes]"
        return text, truncated


def child_env(workspace: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(workspace),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(workspace),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def rlimits(limits: SandboxLimits) -> dict[str, tuple[int, int]]:
    cpu = max(1, math.ceil(limits.timeout_s)) + 1
    mem = limits.memory_mb * 2**20
    return {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (mem, mem),
        "RLIMIT_NPROC": (limits.max_procs, limits.max_procs),
        "RLIMIT_FSIZE": (FILE_SIZE_BYTES, FILE_SIZE_BYTES),
        "RLIMIT_NOFILE": (OPEN_FILES, OPEN_FILES),
        "RLIMIT_CORE": (0, 0),
    }


@cache
def _remove_stale_scratch() -> None:
    """Once per process: delete script dirs of sandbox callers that were killed (pid in the name, now dead)."""
    for d in Path(tempfile.gettempdir()).glob("memento-code-*-*"):
        try:
            os.kill(int(d.name.split("-")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            pass


class SandboxRun:
    """One sandboxed run of ``code``: ``start()``, ``wait(timeout)``, ``stop()`` (-> result), ``close()``.

    ``stdin``: text written then closed, an fd the process reads, or None (empty). ``stdout``: an fd
    the process writes to, or None (captured). ``pass_fds``: more fds it inherits (same numbers).
    ``bwrap``: the bwrap executable (mode "bwrap"); ``hidden``: more host paths bwrap must hide.
    """

    def __init__(
        self,
        code: str,
        *,
        mode: Isolation,
        limits: SandboxLimits,
        workspace: Path | str | None = None,
        allow_network: bool = False,
        stdin: str | int | None = None,
        stdout: int | None = None,
        pass_fds: tuple[int, ...] = (),
        bwrap: str | None = None,
        hidden: tuple[Path, ...] = (),
    ):
        self.code, self.mode, self.limits, self.allow_network = code, mode, limits, allow_network
        self.stdin, self.stdout, self.pass_fds, self.bwrap, self.hidden = (
            stdin,
            stdout,
            pass_fds,
            bwrap,
            hidden,
        )
        self.own_workspace = workspace is None
        ws = tempfile.mkdtemp(prefix="memento-ws-") if workspace is None else workspace
        self.workspace = Path(ws).resolve()
        self.cgroups: list[Path] = []
        self.timed_out = False
        self.result: SandboxResult | None = None

    def _argv(self, script: Path) -> list[str]:
        if self.mode == "bwrap":
            assert self.bwrap is not None
            return bwrap_argv(
                self.bwrap,
                self.workspace,
                script,
                allow_network=self.allow_network,
                tmpfs_bytes=TMPFS_BYTES,
                as_root=self.as_root,
                hidden=self.hidden,
            )
        if self.mode == "unshare":
            flags = [f for f in UNSHARE_FLAGS if not (self.allow_network and f == "--net")]
            return [shutil.which("unshare") or "unshare", *flags, sys.executable, "-B", str(script)]
        return [sys.executable, "-B", str(script)]

    def start(self) -> SandboxRun:
        self.as_root = os.geteuid() == 0
        self.workspace.mkdir(parents=True, exist_ok=True)
        _remove_stale_scratch()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"memento-code-{os.getpid()}-"))
        script = self.scratch / "main.py"
        script.write_text(self.code, encoding="utf-8")
        script.chmod(0o644)  # read by the sandbox's own uid (bwrap mounts the file alone)
        sandbox_id = SANDBOX_ID if self.mode == "bwrap" and self.as_root else None
        if sandbox_id is not None:
            give_to_sandbox(self.workspace, sandbox_id)
        limits = self.limits
        self.cgroups = make_cgroups(limits.memory_mb, limits.max_procs) if self.as_root else []
        spec = {
            "cgroups": [str(d / "cgroup.procs") for d in self.cgroups],
            "rlimits": rlimits(limits),
            "parent": os.getpid(),
            "sandbox_id": sandbox_id,
        }
        launcher = [sys.executable, "-I", "-S", sandbox_launch.__file__, json.dumps(spec)]
        self.quota = DiskQuota(self.workspace, max_bytes=limits.disk_mb * 2**20, max_entries=limits.max_files)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*launcher, *self._argv(script)],
            stdin=subprocess.PIPE
            if isinstance(self.stdin, str)
            else subprocess.DEVNULL
            if self.stdin is None
            else self.stdin,
            stdout=subprocess.PIPE if self.stdout is None else self.stdout,
            stderr=subprocess.PIPE,
            cwd=self.workspace,
            env=child_env(self.workspace),
            start_new_session=True,
            pass_fds=self.pass_fds,
        )
        self.out = _Capture(self.proc.stdout, limits.max_output)
        self.err = _Capture(self.proc.stderr, limits.max_output)
        self.quota.watch(self.proc.pid, lambda _reason: self.kill())
        if isinstance(self.stdin, str):
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write(self.stdin.encode())
                self.proc.stdin.close()
        return self

    def wait(self, timeout: float | None) -> bool:
        """True when the process ended within ``timeout`` seconds (else it counts as timed out)."""
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            self.timed_out = True
            return False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for d in self.cgroups:
            kill_cgroup(d)

    def stop(self) -> SandboxResult:
        """Kill what is left, collect the output; the result (once) of this run."""
        if self.result is not None:
            return self.result
        self.kill()
        self.proc.wait()
        self.quota.stop()
        for c in (self.out, self.err):
            c.thread.join(timeout=2.0)
        stdout, t1 = self.out.text()
        stderr, t2 = self.err.text()
        exceeded = self.quota.exceeded
        if self.timed_out:
            stderr += f"\n[sandbox] killed: wall-clock timeout of {self.limits.timeout_s:g} s exceeded"
        elif exceeded:
            stderr += f"\n[sandbox] killed: {exceeded} (disk quota)"
        self.result = SandboxResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=None if self.timed_out else _exit_code(self.proc.returncode, self.mode),
            timed_out=self.timed_out,
            truncated=t1 or t2,
            duration_s=time.monotonic() - self.started,
            isolation=self.mode,
            cgroup=bool(self.cgroups),
            disk_exceeded=exceeded is not None,
        )
        return self.result

    def close(self) -> None:
        """Stop (if started) and remove the cgroups, the script and a workspace we made."""
        try:
            if hasattr(self, "proc"):
                self.stop()
        finally:
            for d in self.cgroups:
                remove_cgroup(d)
            if hasattr(self, "scratch"):
                shutil.rmtree(self.scratch, ignore_errors=True)
            if self.own_workspace:
                shutil.rmtree(self.workspace, ignore_errors=True)


def _exit_code(returncode: int, mode: Isolation) -> int:
    """bwrap reports a signal death of the child as 128 + signal; subprocess as -signal. Use the latter."""
    if mode == "bwrap" and 128 < returncode < 128 + 65:
        return -(returncode - 128)
    return returncode

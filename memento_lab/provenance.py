"""Which code made a result: the package version and, in a git checkout, the commit (``run.json``)."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

from memento_lab import __version__

PACKAGE = Path(__file__).resolve().parent


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hangs
        return None


@cache
def code_version() -> dict[str, str | bool]:
    """``{"version"}``, plus ``git_commit`` and ``git_dirty`` (tracked files changed since it) when this
    package is a tracked part of a git checkout; an installed copy inside some other repository's
    folder (a ``.venv`` in a project) is not, so it gets no commit."""
    info: dict[str, str | bool] = {"version": __version__}
    tracked = _git("ls-files", "--error-unmatch", "__init__.py")
    head = _git("rev-parse", "HEAD") if tracked and tracked.returncode == 0 else None
    if head and head.returncode == 0 and head.stdout.strip():
        info["git_commit"] = head.stdout.strip()
        status = _git("status", "--porcelain", "--untracked-files=no")
        if status and status.returncode == 0:
            info["git_dirty"] = bool(status.stdout.strip())
    return info


def version_line() -> str:
    """``memento-lab 0.1.0 (git 1a2b3c4d5e6f, modified)`` for ``--version``."""
    info = code_version()
    if "git_commit" not in info:
        return f"memento-lab {info['version']}"
    dirty = ", modified" if info.get("git_dirty") else ""
    return f"memento-lab {info['version']} (git {str(info['git_commit'])[:12]}{dirty})"

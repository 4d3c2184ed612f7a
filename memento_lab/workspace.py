"""A fresh workspace per episode, outside any run folder, shared by the client and the tool servers.

The tool servers get one root (``MEMENTO_WORKSPACE``, a temp folder by default). The client makes
one sub-folder per episode under it (``new_episode``, input files copied in) and names it in each
tool call's MCP ``_meta`` (``META_KEY``); a server resolves that name under its root
(``episode_dir``) and the code sandbox mounts only that folder. Episodes therefore never see each
other's files, nor the run folder with its results.

    with episode_workspace(root, files=["data.csv"]) as folder:   # client side
        ...                                                        # calls carry current_episode()
    episode_dir(root, name)                                        # server side: validated path
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

META_KEY = "memento/workspace"
_NAME = re.compile(r"ep-[0-9a-f]{32}")
_current: ContextVar[str | None] = ContextVar("memento_episode_workspace", default=None)


def current_episode() -> str | None:
    """The episode folder name of the running task (``None`` outside ``episode_workspace``)."""
    return _current.get()


def episode_meta() -> dict[str, str] | None:
    """The MCP ``_meta`` of a tool call made inside ``episode_workspace`` (None outside)."""
    name = _current.get()
    return {META_KEY: name} if name is not None else None


def new_episode(root: Path, files: Sequence[str | Path] = ()) -> Path:
    """Make ``root/ep-<uuid>`` and copy ``files`` (files or folders) into it by their base names."""
    names = [Path(f).name for f in files]
    if len(set(names)) != len(names):
        raise ValueError(f"input files share a name, so one would overwrite another: {names}")
    missing = [str(f) for f in files if not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"input file(s) of the task do not exist: {missing}")
    folder = Path(root) / f"ep-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    for f in map(Path, files):
        if f.is_dir():
            shutil.copytree(f, folder / f.name, symlinks=False)
        else:
            shutil.copy2(f, folder / f.name)
    return folder


@contextmanager
def episode_workspace(root: Path, files: Sequence[str | Path] = ()) -> Iterator[Path]:
    """A fresh episode folder under ``root`` for the duration of the block (removed afterwards)."""
    folder = new_episode(root, files)
    token = _current.set(folder.name)
    try:
        yield folder
    finally:
        _current.reset(token)
        shutil.rmtree(folder, ignore_errors=True)


def episode_dir(root: Path, name: object) -> Path:
    """Server side: the folder of episode ``name`` under ``root`` (``root`` itself when None)."""
    if name is None:
        return root
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"not an episode workspace name: {name!r}")
    folder = root / name
    if not folder.is_dir():
        raise ValueError(f"episode workspace {name!r} does not exist (the episode has ended?)")
    return folder

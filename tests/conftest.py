"""Shared fixtures: the packaged sentence encoder (loaded once), the seed-data folder, small banks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def encoder():
    """The real packaged MiniLM encoder (no download)."""
    from memento_lab.memory.bank.encoders import SentenceEncoder

    return SentenceEncoder()


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    """``../shared/data/memento-seed``; tests that need it are skipped (with the reason) without it."""
    from memento_lab.config import shared_seed_dir

    d = shared_seed_dir()
    if d is None:
        pytest.skip("../shared/data/memento-seed is not on this machine")
    return d


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, like Jupyter and the MCP SDK here."""
    return "asyncio"


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Iterator[Path]:
    """A fresh MEMENTO_WORKSPACE for the in-process servers."""
    import servers

    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("MEMENTO_WORKSPACE", str(ws))
    servers.workspace.cache_clear()
    yield ws.resolve()
    servers.workspace.cache_clear()

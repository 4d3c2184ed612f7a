"""One description per ExperimentConfig field, shared by ``run --help``, docs/configuration.md and the
parameter cells of the notebooks that configure runs; ``--version``; what ``run.json`` says of the code."""

from __future__ import annotations

import argparse
import re
import subprocess

import pytest
from support import ROOT

from memento_lab.cli import build_parser, main
from memento_lab.cli.experiments import config_reference
from memento_lab.experiments.config import ExperimentConfig

FIELDS = ExperimentConfig.model_fields
# Notebooks whose parameters of these names are run fields (01 and 02 use `seed`, `k` otherwise).
RUN_NOTEBOOKS = ["03_agent_run.py", "04_learning_curves.py"]


def run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_every_run_flag_is_a_described_config_field() -> None:
    flags = {a.dest: a for a in run_parser()._actions if a.dest not in ("help", "config")}
    assert set(flags) == set(FIELDS)  # no flag without a field, no field without a flag
    for name, action in flags.items():
        description = FIELDS[name].description
        assert description and len(description) >= 15, f"{name} has no real description"
        assert action.help and action.help.startswith(description.replace("%", "%%")), name
        assert f"--{name.replace('_', '-')}" in action.option_strings
    text = run_parser().format_help()
    assert "cases shown per episode" in text and "(default: 4)" in text


def test_configuration_page_lists_every_field_as_generated(monkeypatch) -> None:
    monkeypatch.setenv("MEMENTO_CASSETTE", "record")  # the page shows the default without the variable
    page = (ROOT / "docs" / "configuration.md").read_text()
    table = config_reference()
    assert table in page, (
        "docs/configuration.md's field table differs from ExperimentConfig; paste the output of\n"
        "python -c 'from memento_lab.cli.experiments import config_reference; print(config_reference())'"
    )
    assert table.count("\n| `") == len(FIELDS)


def parameters(notebook: str) -> dict[str, str]:
    """``{name: comment}`` of a notebook's parameters cell (empty comment when there is none)."""
    text = (ROOT / "notebooks" / notebook).read_text()
    cell = text.split('# %% tags=["parameters"]\n', 1)[1].split("\n# %%", 1)[0]
    found = {}
    for line in cell.splitlines():
        m = re.match(r"(\w+) = .*?(?:  # (.*))?$", line)
        if m:
            found[m[1]] = m[2] or ""
    return found


@pytest.mark.parametrize("notebook", RUN_NOTEBOOKS)
def test_notebook_parameters_of_run_fields_carry_the_field_description(notebook: str) -> None:
    shared = {name: comment for name, comment in parameters(notebook).items() if name in FIELDS}
    assert {"suite", "model", "k", "tools"} <= set(shared)
    for name, comment in shared.items():
        description = str(FIELDS[name].description)
        assert comment == description or comment.startswith(description + "; "), (
            f"notebooks/{notebook}: the comment of `{name}` should start with ExperimentConfig's "
            f"description: `# {description}` (a notebook's own note may follow after '; ')"
        )


def test_version_prints_the_package_version_and_commit(capsys) -> None:
    from memento_lab import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert out.startswith(f"memento-lab {__version__}")
    if head.returncode == 0:  # a checkout (CI's clone is one)
        assert f"(git {head.stdout.strip()[:12]}" in out


def test_code_version_names_a_commit_only_for_a_tracked_checkout(tmp_path, monkeypatch) -> None:
    import memento_lab.provenance as provenance

    def version_at(folder):
        monkeypatch.setattr(provenance, "PACKAGE", folder)
        return provenance.code_version.__wrapped__()

    copy = tmp_path / "site-packages" / "memento_lab"  # an installed copy, no git anywhere above
    copy.mkdir(parents=True)
    (copy / "__init__.py").write_text("")
    assert version_at(copy) == {"version": provenance.__version__}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")  # a project whose .venv holds the copy: git is there, the copy is not tracked
    (tmp_path / "notes.txt").write_text("x")
    git("add", "notes.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    assert "git_commit" not in version_at(copy)
    git("add", "-f", "site-packages")  # now the copy is part of the checkout
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "y")
    tracked = version_at(copy)
    assert re.fullmatch(r"[0-9a-f]{40}", str(tracked["git_commit"])) and tracked["git_dirty"] is False
    (copy / "__init__.py").write_text("changed = True\n")
    assert version_at(copy)["git_dirty"] is True

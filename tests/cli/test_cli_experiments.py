"""``memento-lab run | sweep | report`` against a loopback endpoint: every ExperimentConfig field is
a flag, TOML configs (flags override; bad fields named with the file), a sweep that resumes."""

from __future__ import annotations

import json

import anyio
import pytest
from loopback import FakeOpenAI
from support import good, tasks_file

from memento_lab.cli import build_parser, main
from memento_lab.experiments.config import ExperimentConfig


def test_every_config_field_is_a_run_flag() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    dests = {a.dest for a in run._actions}
    assert set(ExperimentConfig.model_fields) <= dests


def test_toml_config_flags_override_and_bad_fields_are_named(tmp_path, capsys) -> None:
    from memento_lab.cli.experiments import config_from_args

    path = tmp_path / "run.toml"
    path.write_text(
        'suite = "control:positive"\nn = 8\nagent = "direct"\nexclude_question = true\ntools = []\n'
    )
    args = build_parser().parse_args(
        ["run", "--config", str(path), "--n", "9", "--no-exclude-question", "-k", "2"]
    )
    cfg = config_from_args(args)
    assert (cfg.suite, cfg.n, cfg.agent, cfg.exclude_question, cfg.k, cfg.tools) == (
        "control:positive",
        9,
        "direct",
        False,
        2,
        [],
    )
    path.write_text('suite = "x"\nmemmory = "none"\n')
    assert main(["run", "--config", str(path)]) == 1
    assert f"{path}: unknown field(s) ['memmory']" in capsys.readouterr().err
    path.write_text('iterations = "many"\n')
    assert main(["run", "--config", str(path)]) == 1
    assert f"{path}: field 'iterations'" in capsys.readouterr().err


@pytest.mark.anyio
async def test_sweep_from_toml_runs_then_resumes_and_report_reads_it(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "sweep"
    toml = tmp_path / "sweep.toml"
    toml.write_text(
        f'suite = "jsonl:{tasks_file(tmp_path)}"\nn = 1\niterations = 2\nagent = "direct"\ntools = []\n'
        f'cassette = "record"\nout = "{out}"\n\n[sweep]\nmemories = ["none", "random"]\norders = [0]\n'
    )
    with FakeOpenAI(good) as fake:
        for var, value in (("OPENAI_BASE_URL", fake.base_url), ("OPENAI_API_KEY", "k")):
            monkeypatch.setenv(var, value)
        assert await anyio.to_thread.run_sync(main, ["sweep", "--config", str(toml)]) == 0
        first = len(fake.requests)
        assert (
            await anyio.to_thread.run_sync(main, ["sweep", "--config", str(toml)]) == 0
        )  # resume: nothing left
        assert len(fake.requests) == first == 2 * 2 * 2
    runs = json.loads(capsys.readouterr().out.split("\n}\n")[0] + "\n}")["runs"]
    assert sorted(p.rsplit("/", 1)[1] for p in runs) == ["none-k4-s0-o0", "random-k4-s0-o0"]
    assert main(["report", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {c["a_label"] + " - " + c["b_label"] for c in rep["comparisons"]} == {
        "agent=direct memory=random - agent=direct memory=none"
    }
    assert [c["iteration"] for c in rep["comparisons"]] == [0, 1]
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "paired comparisons" in text and "errors per run" in text


@pytest.mark.anyio
async def test_sweep_over_bank_policies_and_memory_budgets_reports_costs(
    tmp_path, monkeypatch, capsys
) -> None:
    out = tmp_path / "budget"
    toml = tmp_path / "budget.toml"
    toml.write_text(
        f'suite = "jsonl:{tasks_file(tmp_path)}"\nn = 1\niterations = 2\nagent = "direct"\ntools = []\n'
        f'memory = "similarity"\ncassette = "off"\nout = "{out}"\n\n'
        '[sweep]\nmemories = ["similarity"]\norders = [0]\n'
        'bank_policy = ["keep-all", "one-per-task"]\nmemory_tokens = [10, 400]\n'
    )
    with FakeOpenAI(good) as fake:
        for var, value in (("OPENAI_BASE_URL", fake.base_url), ("OPENAI_API_KEY", "k")):
            monkeypatch.setenv(var, value)
        assert await anyio.to_thread.run_sync(main, ["sweep", "--config", str(toml)]) == 0
    capsys.readouterr()
    assert len(list(out.glob("*/results.jsonl"))) == 4
    # one-per-task: the second iteration's case replaced the first one's for each task
    kept = out / "similarity-k4-s0-o0-bank_policy=one-per-task-memory_tokens=400" / "bank" / "log.jsonl"
    assert '"op": "remove"' in kept.read_text()
    assert main(["report", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    costs = {c["label"]: c for c in rep["costs"]}
    assert len(costs) == 4 and all(c["reward_per_1k_prompt_tokens"] > 0 for c in costs.values())
    assert all(c["reward_per_stored_case"] is not None for c in costs.values())
    small = [c for label, c in costs.items() if "memory_tokens=10" in label]
    large = [c for label, c in costs.items() if "memory_tokens=400" in label]
    assert all(c["memory_tokens"] == 0 for c in small)  # a 10-token budget fits no case
    assert all(c["memory_tokens"] > 0 for c in large)
    assert rep["comparisons"] and all("ci_low" in c for c in rep["comparisons"])  # paired, with CIs

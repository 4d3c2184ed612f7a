"""docs/your-own-tasks.md as written: the ten-line notebook suite runs (against a loopback endpoint)
and the example quiz (examples/quiz.csv, examples/quiz.toml) is the spec the page shows."""

from __future__ import annotations

import json
import re
import tomllib

import anyio
import pytest
from loopback import FakeOpenAI, completion
from support import ROOT, asked

from memento_lab.cli.experiments import config_file_values
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.tasks import registry

PAGE = ROOT / "docs" / "your-own-tasks.md"


def opposite(request: dict) -> tuple[int, dict, dict]:
    """A fake model that knows three opposites and calls 'full' 'half'."""
    task = asked(request)
    word = task.rstrip("?").split()[-1]
    answer = {"hot": "cold", "up": "down", "early": "late"}.get(word, "half")
    return 200, completion(json.dumps({"final_answer": answer})), {}


@pytest.mark.anyio
async def test_the_ten_line_notebook_suite_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    section = PAGE.read_text().split("## A suite kind in a notebook cell", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    monkeypatch.setattr(registry, "_REGISTRY", registry._Registry())  # the cell's kind stays in this test
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI(opposite) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        await anyio.to_thread.run_sync(exec, compile(code, str(PAGE), "exec"), {})
    assert capsys.readouterr().out.strip() == "{0: 0.75, 1: 0.75}"  # 3 of 4 opposites, both iterations
    assert "opposites" in {k.name for k in registry.suite_kinds()}
    rows = (tmp_path / "data" / "runs" / "opposites" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 8


def test_the_example_quiz_toml_is_the_spec_the_page_shows_and_loads_six_tasks(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    values = config_file_values(str(ROOT / "examples" / "quiz.toml"))
    config = ExperimentConfig(**values)
    assert (
        config.suite == "table:examples/quiz.csv?answer=target&family=topic&id=key&judge=em&question=prompt"
    )
    assert (
        tomllib.loads((ROOT / "examples" / "quiz.toml").read_text())["suite"]["path"] == "examples/quiz.csv"
    )
    tasks = registry.load_suite(config.suite).tasks()
    assert [t.id for t in tasks][:2] == ["geo-1", "geo-2"] and {t.family for t in tasks} == {
        "geography",
        "arithmetic",
    }
    shown = "table:examples/quiz.csv?question=prompt&answer=target&id=key&family=topic"
    assert shown in PAGE.read_text()
    assert [t.id for t in registry.load_suite(shown).tasks()] == [t.id for t in tasks]

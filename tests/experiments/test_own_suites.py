"""A researcher's own suites end to end: a suite kind from another installed package (an entry point,
pip-installed from tests/data/own_suite_pkg) and a CSV read through a field mapping, judged by a
function of that package; `memento-lab list suites` shows the kind, `memento-lab run` and a Ray sweep
(`memento-lab sweep --ray`) run both against a loopback OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion
from support import asked

PACKAGE = Path(__file__).resolve().parent.parent / "data" / "own_suite_pkg"
CLI = [sys.executable, "-m", "memento_lab.cli"]
# The fake model knows three capitals and gets Japan wrong; on the CSV it adds words after the answer.
ANSWERS = {"France": "Paris", "Peru": "Lima", "Japan": "Kyoto", "Kenya": "Nairobi"}
CSV = (
    "country,prompt,expected,region\n"
    "fr,What is the capital of France?,Paris,Europe\njp,What is the capital of Japan?,Tokyo,Asia\n"
)
CSV_MAPPING = "question=prompt&answer=expected&id=country&family=region"


def _handler(req: dict) -> tuple:
    question = asked(req)
    country = question.rstrip("?").split()[-1]
    answer = ANSWERS[country] + (" (the capital)" if question.startswith("What is") else "")
    return 200, completion(json.dumps({"final_answer": answer})), {}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package pip-installed into a folder of its own (what ``pip install`` does in a user's venv;
    the folder goes on PYTHONPATH so the test's venv stays as it was)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(PACKAGE)],
        check=True,
        capture_output=True,
    )
    assert list(target.glob("lab_word_suites-0.1.0.dist-info/entry_points.txt"))
    return target


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_package_suite_and_a_mapped_csv_run_list_and_sweep_on_ray(installed: Path, tmp_path: Path) -> None:
    csv = tmp_path / "my_quiz.csv"
    csv.write_text(CSV)
    with FakeOpenAI(_handler) as fake:
        env = {
            **os.environ,
            "PYTHONPATH": str(installed),
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-test",
            "MEMENTO_PLANNER_MODEL": "fake-model",
            "MEMENTO_LLM_TIMEOUT": "20",
        }
        listed = _cli(["list", "suites"], env)
        assert listed.returncode == 0, listed.stderr
        assert "capitals: the capital of each country named\n    capitals:COUNTRY1,COUNTRY2" in listed.stdout
        assert "table: your own tasks from a table" in listed.stdout

        common = [
            "--iterations",
            "1",
            "--memory",
            "none",
            "--agent",
            "direct",
            "--tools",
            "",
            "--cassette",
            "off",
        ]
        own = tmp_path / "capitals-run"
        done = _cli(["run", "--suite", "capitals:France,Japan,Peru", "--out", str(own), *common], env)
        assert done.returncode == 0, done.stderr
        rows = _rows(own)
        assert {r["task_id"]: r["reward"] for r in rows} == {
            "capital:France": 1.0,
            "capital:Japan": 0.0,
            "capital:Peru": 1.0,
        }

        # the CSV through a [suite] table in run.toml, judged by the package's function
        (tmp_path / "run.toml").write_text(
            f'out = "{tmp_path / "csv-run"}"\n\n[suite]\npath = "{csv}"\nquestion = "prompt"\n'
            'answer = "expected"\nid = "country"\nfamily = "region"\njudge = "lab_word_suites:first_word"\n'
        )
        done = _cli(["run", "--config", str(tmp_path / "run.toml"), *common], env)
        assert done.returncode == 0, done.stderr
        rows = _rows(tmp_path / "csv-run")
        assert {(r["task_id"], r["family"], r["decided_by"], r["reward"]) for r in rows} == {
            ("fr", "Europe", "first_word", 1.0),  # "Paris (the capital)": right by its first word
            ("jp", "Asia", "first_word", 0.0),
        }
        assert all(json.loads(r["judges"])["em"] is False for r in rows)  # exact match alone says no

        # both suites in one sweep on Ray: the workers find the package and the judge (PYTHONPATH)
        sweep = tmp_path / "sweep"
        csv_spec = f"table:{csv}?{CSV_MAPPING}&judge=lab_word_suites:first_word"
        (tmp_path / "sweep.toml").write_text(
            f'n = 1\niterations = 1\nagent = "direct"\ntools = []\ncassette = "off"\nout = "{sweep}"\n\n'
            f'[sweep]\nmemories = ["none"]\norders = [0]\nsuite = ["capitals:Kenya,Japan", "{csv_spec}"]\n'
        )
        done = _cli(["sweep", "--config", str(tmp_path / "sweep.toml"), "--ray", "--num-cpus", "2"], env)
        assert done.returncode == 0, done.stderr + done.stdout
        report = json.loads((sweep / "sweep.json").read_text())
        assert [r["status"] for r in report["runs"]] == ["done", "done"]
        accuracy = {
            json.loads((Path(r["out"]) / "config.json").read_text())["suite"]: r["accuracy_by_iteration"]
            for r in report["runs"]
        }
        assert accuracy == {"capitals:Kenya,Japan": {"0": 0.5}, csv_spec: {"0": 0.5}}
        assert all(Path(r["out"]).parent == sweep for r in report["runs"])  # a spec makes no sub-folders

        reported = _cli(["report", str(sweep), "--json"], env)
        assert reported.returncode == 0, reported.stderr
        report = json.loads(reported.stdout)
        assert {arm["config"]["suite"] for arm in report["arms"]} == set(accuracy)
        assert report["trivial_baseline"].keys() >= {"capitals", "Europe", "Asia"}  # the report loads both

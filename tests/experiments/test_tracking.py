"""``report --mlflow DIR``: two runs (different arms, two iterations each) exported to a local MLflow
file store and read back with MLflow's own client: the same accuracies as the report, the config as
params, costs per iteration, the artifacts; a second export replaces rather than duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion
from support import answer_of, config, endpoint, good

from memento_lab.cli import main
from memento_lab.experiments.run import run_experiment

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is not installed (the tracking extra)")


def half_right(request: dict) -> tuple[int, dict, dict]:
    """Knows the code word of Zeta only: one of the two tasks right."""
    word = answer_of(request)
    return 200, completion(json.dumps({"final_answer": word if word == "amber" else "granite"})), {}


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    import anyio

    async def make() -> None:
        for name, handler, memory in (("good", good, "none"), ("half", half_right, "random")):
            cfg = config(tmp_path, memory=memory, iterations=2, out=str(tmp_path / "runs" / name))
            with FakeOpenAI(handler) as fake:
                await run_experiment(cfg, settings=endpoint(fake), progress=False)

    anyio.run(make)
    return tmp_path / "runs"


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """A folder for the MLflow file store, and MLflow's global tracking URI pointed at it (restored
    after: another test's Lightning MLFlowLogger may have set it)."""
    folder = tmp_path / "mlflow"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(folder.resolve().as_uri())
    yield folder
    mlflow.set_tracking_uri(previous)


def test_report_exports_runs_that_mlflow_reads_back(
    two_runs: Path, store: Path, tmp_path: Path, capsys
) -> None:
    page = tmp_path / "dash.html"
    assert main(["report", str(two_runs), "--json", "--mlflow", str(store), "--html", str(page)]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = {(p["label"], p["iteration"]): p["accuracy"] for p in report["curves"]}
    assert sorted(set(expected.values())) == [0.5, 1.0]  # the arms differ, so the check can fail

    runs = mlflow.search_runs(
        experiment_names=["memento-lab"], filter_string="tags.`memento.kind` = 'run'", output_format="list"
    )
    assert len(runs) == 2
    client = mlflow.MlflowClient()
    for run in runs:
        label = run.data.tags["memento.arm"]
        history = client.get_metric_history(run.info.run_id, "accuracy")
        assert {(label, m.step): m.value for m in history} == {
            k: v for k, v in expected.items() if k[0] == label
        }
        config = json.loads((Path(run.data.tags["memento.folder"]) / "config.json").read_text())
        assert run.data.params["memory"] == config["memory"] and run.data.params["tools"] == "[]"
        assert run.data.params["tool_servers"] == "{}" and run.data.params["k"] == str(config["k"])
        costs = {m.key: m.value for m in client.get_metric_history(run.info.run_id, "prompt_tokens")}
        assert costs == {"prompt_tokens": 11.0}  # the fake endpoint's usage, per scored episode
        for name in ("accuracy_ci_low", "accuracy_ci_high", "episodes", "latency_s", "completion_tokens"):
            assert len(client.get_metric_history(run.info.run_id, name)) == 2  # one per iteration
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"report.json", "config.json", "run.json"}

    (parent,) = mlflow.search_runs(
        experiment_names=["memento-lab"], filter_string="tags.`memento.kind` = 'report'", output_format="list"
    )
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"report.json", "dash.html"}
    stored = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "report.json", str(tmp_path))).read_text()
    )
    assert {(p["label"], p["iteration"]): p["accuracy"] for p in stored["curves"]} == expected

    # exporting again replaces the MLflow runs of the same workbench runs
    assert main(["report", str(two_runs), "--mlflow", str(store)]) == 0
    capsys.readouterr()
    again = mlflow.search_runs(experiment_names=["memento-lab"], output_format="list")
    assert len(again) == 3 and not {r.info.run_id for r in again} & {r.info.run_id for r in runs}


def test_export_without_runs_is_an_error(tmp_path: Path, monkeypatch) -> None:
    from memento_lab.experiments.tracking import export_mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run folders"):
        export_mlflow([tmp_path / "empty"], tmp_path / "mlflow")

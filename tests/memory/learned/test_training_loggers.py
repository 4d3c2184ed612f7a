"""The retriever's training logger, by name: each kind writes real files that its own tool reads back
(CSV rows, TensorBoard event records, an MLflow store, a W&B offline run); a kind whose package is
missing is skipped with the reason here and is a clear error in use; ``fit`` and the CLI pass it on."""

from __future__ import annotations

import csv
import struct
import time
from pathlib import Path

import pytest

from memento_lab.memory.learned.loggers import LoggerKind, logger_available, make_logger

AUC = [0.5, 0.75, 0.875]


def log_curve(kind: str, save_dir: Path) -> object:
    lg = make_logger(kind, save_dir, "logs")
    lg.log_hyperparams({"lr": 0.001, "target": "helped"})
    for step, value in enumerate(AUC):
        lg.log_metrics({"val_auc": value}, step=step)
    lg.finalize("success")
    return lg


def tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    """tag -> values of every scalar in the event files under ``folder`` (TFRecord frames of Event
    protos; the Event message is tensorboardX's own)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[float]] = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])  # after length and its crc
            at += 12 + length + 4  # and the data's crc
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(value.simple_value)
    return out


def skip_unless(kind: str) -> None:
    if not logger_available(kind):
        pytest.skip(f"the {kind} package is not installed (not in the tracking extra: see training_loggers)")


def test_csv(tmp_path: Path) -> None:
    lg = log_curve("csv", tmp_path)
    rows = list(csv.DictReader((Path(lg.log_dir) / "metrics.csv").open()))  # type: ignore[attr-defined]
    assert [float(r["val_auc"]) for r in rows] == AUC


def test_tensorboard(tmp_path: Path) -> None:
    skip_unless("tensorboard")
    log_curve("tensorboard", tmp_path)
    assert tensorboard_scalars(tmp_path / "logs")["val_auc"] == AUC


def test_mlflow(tmp_path: Path, monkeypatch) -> None:
    skip_unless("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow
    from mlflow import MlflowClient

    previous = mlflow.get_tracking_uri()  # Lightning's MLFlowLogger sets MLflow's global URI
    lg = log_curve("mlflow", tmp_path)
    mlflow.set_tracking_uri(previous)
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run = client.get_run(lg.run_id)  # type: ignore[attr-defined]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_auc")] == AUC
    assert run.data.params == {"lr": "0.001", "target": "helped"}


def test_wandb_offline(tmp_path: Path, monkeypatch) -> None:
    skip_unless("wandb")
    monkeypatch.setenv("WANDB_MODE", "online")  # even so: never online
    monkeypatch.setenv("WANDB_SILENT", "true")
    lg = log_curve("wandb", tmp_path)
    lg.experiment.finish()  # type: ignore[attr-defined]
    (run,) = (tmp_path / "wandb").glob("offline-run-*")  # an offline run, to `wandb sync` later
    (records,) = run.glob("run-*.wandb")
    deadline = time.monotonic() + 30  # W&B's writer process may still be flushing when finish() returns
    while b"0.875" not in (data := records.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b"val_auc" in data and b"0.875" in data


def test_unknown_or_missing_kinds_are_named() -> None:
    with pytest.raises(
        ValueError, match="unknown logger 'neptune'; choose one of csv, tensorboard, mlflow, wandb"
    ):
        make_logger("neptune", "out")
    import typing

    missing = [k for k in typing.get_args(LoggerKind) if not logger_available(k)]
    for kind in missing:
        with pytest.raises(ImportError, match=f"the {kind} logger needs"):
            make_logger(kind, "out")


@pytest.mark.slow
def test_fit_and_cli_log_through_the_chosen_logger(encoder, tmp_path: Path, monkeypatch) -> None:
    skip_unless("tensorboard")
    from support import DEMO, family_pairs

    from memento_lab.cli import main
    from memento_lab.memory.bank.formats import import_file
    from memento_lab.memory.retrieval.pairs import PairLog

    monkeypatch.setenv("MEMENTO_CACHE_DIR", str(tmp_path / "cache"))
    log = PairLog(tmp_path / "pairs.jsonl")
    log.append(family_pairs(import_file(DEMO).cases))
    out = tmp_path / "retriever"
    argv = ["retriever", "train", "--pairs", str(log.path), "--out", str(out), "--epochs", "3"]
    assert main([*argv, "--logger", "tensorboard", "--no-progress", "--json"]) == 0
    scalars = tensorboard_scalars(out / "logs")
    assert len(scalars["val_auc"]) == 3 and all(0.0 <= v <= 1.0 for v in scalars["val_auc"])
    assert "train_loss" in scalars and not list(out.rglob("metrics.csv"))  # not the CSV logger

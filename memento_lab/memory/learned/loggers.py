"""Where retriever training logs its curves: one Lightning logger, chosen by name.

    make_logger("csv", out, "logs")          # out/logs/version_N/metrics.csv (the default)
    make_logger("tensorboard", out, "logs")  # out/logs/version_N/events.out.tfevents.* (tensorboard or tensorboardX)
    make_logger("mlflow", out, "logs")       # a local MLflow file store out/mlruns, experiment "logs"
    make_logger("wandb", out, "logs")        # W&B offline: out/wandb/offline-run-* (sync later with `wandb sync`)

W&B is always offline here (nothing leaves the machine); the MLflow store is a folder (MLflow calls its
folder store "in maintenance mode": this sets ``MLFLOW_ALLOW_FILE_STORE=true`` for the process). A
kind whose package is missing is an error that names what to install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from lightning.pytorch.loggers import Logger

LoggerKind = Literal["csv", "tensorboard", "mlflow", "wandb"]
PACKAGES = {  # kind -> (module to import, what to install)
    "tensorboard": ("tensorboardX", "tensorboardX (0.2 MB; the tracking extra) or tensorboard"),
    "mlflow": ("mlflow", "mlflow-skinny (the tracking extra)"),
    "wandb": ("wandb", "wandb (about 60 MB installed: pip install wandb)"),
}


def logger_available(kind: str) -> bool:
    """Whether the package behind ``kind`` is installed (csv always is)."""
    import importlib.util

    if kind == "tensorboard":
        return any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))
    return kind == "csv" or importlib.util.find_spec(PACKAGES[kind][0]) is not None


def make_logger(kind: str, save_dir: str | Path, name: str = "logs") -> Logger:
    """The Lightning logger ``kind`` (csv, tensorboard, mlflow, wandb) writing under ``save_dir``."""
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    if kind not in get_args(LoggerKind):
        raise ValueError(f"unknown logger {kind!r}; choose one of {', '.join(get_args(LoggerKind))}")
    if not logger_available(kind):
        raise ImportError(f"the {kind} logger needs {PACKAGES[kind][1]}, which is not installed")
    save_dir = Path(save_dir)
    if kind == "csv":
        return CSVLogger(save_dir, name=name)
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir, name=name, default_hp_metric=False)
    if kind == "mlflow":
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        store = (save_dir / "mlruns").resolve()
        store.mkdir(parents=True, exist_ok=True)
        return MLFlowLogger(experiment_name=name, tracking_uri=store.as_uri())
    save_dir.mkdir(parents=True, exist_ok=True)
    # console "off": W&B would otherwise wrap stdout/stderr (a notebook's and pytest's too)
    return WandbLogger(
        name=name, project=name, save_dir=str(save_dir), offline=True, settings={"console": "off"}
    )

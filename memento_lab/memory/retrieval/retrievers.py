"""Finding past cases for a new task: one interface, four policies (Memento's CBR read step).

- ``NoMemory``             the zero-memory baseline
- ``RandomRetriever``      K random cases (a control: does *relevance* matter, or any example?)
- ``SimilarityRetriever``  cosine top-K over cached case embeddings (non-parametric CBR)
- ``ParametricRetriever``  a learned Q(query, case) (parametric CBR; ``parametric.py``)

A retriever scores every live case of its bank, then ``select`` picks K: plain top-K, or separate
quotas of positive and negative cases (the planner shows positives as examples and negatives as
warnings), greedily or by sampling from softmax(score / temperature) (the paper's soft policy).
Retrievers read the bank on every call, so a task sees every case written before it starts.

At scale (``index.ANN_THRESHOLD`` live cases or more) similarity and parametric retrieval do not
scan the bank: the bank's ANN index (``index.py``) shortlists candidates per label, and the
retriever scores and selects among those (parametric: the learned Q re-ranks the shortlist;
temperature sampling draws from the shortlist, not from every case).

Abstention: a retriever with a floor (``min_score``; the parametric one's ``min_q`` and learned
"no memory" option) shows only cases scoring at least the floor, so it may show fewer than K or
none. Without quotas the draw and each shown case's logged propensity come from
``offpolicy.draw_slate`` (the floor is a "stop" option in the softmax draw).

``retrieve`` returns a ``Slate``: the shown cases (a list, best first) and, when the retriever
stopped early, the propensity of that stop. ``update(pairs)`` is how a learnable retriever learns
from an episode (a no-op for the others).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel

from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, Encoder
from memento_lab.memory.bank.index import SHORTLIST, open_index, use_index
from memento_lab.memory.retrieval.offpolicy import draw_slate
from memento_lab.trace import RetrievedCase

if TYPE_CHECKING:
    from memento_lab.memory.retrieval.pairs import RetrievalPair

DEFAULT_K = 4  # the paper's best


class Retrieved(BaseModel):
    """A retrieved case with its score and rank (0 = best)."""

    case: Case
    score: float
    rank: int
    propensity: float | None = None  # probability of this draw under the retriever's policy

    def to_trace(self) -> RetrievedCase:
        return RetrievedCase(
            case_id=self.case.id,
            question=self.case.question,
            label=self.case.label,
            score=self.score,
            reward=self.case.reward,
            rank=self.rank,
            propensity=self.propensity,
        )


class Slate(list[Retrieved]):
    """The cases a retriever shows for one query (best first) and ``stop``: the logged probability of
    its "stop" option when it abstained after them (showed fewer than K), else None."""

    def __init__(self, shown: Iterable[Retrieved] = (), *, stop: float | None = None):
        super().__init__(shown)
        self.stop = stop

    def without(self, case_ids: Collection[str]) -> Slate:
        """The slate with these cases left out (the counterfactual probe)."""
        return Slate((r for r in self if r.case.id not in case_ids), stop=self.stop) if case_ids else self


class UpdateReport(BaseModel):
    """What one ``Retriever.update`` did (a learnable retriever's online step)."""

    appended: int
    trained: bool
    steps: int = 0
    new_pairs: int = 0
    replay_pairs: int = 0
    loss_before: float | None = None
    loss_after: float | None = None


def select(
    scores: np.ndarray,
    positive: np.ndarray,
    k: int = DEFAULT_K,
    *,
    k_positive: int | None = None,
    k_negative: int | None = None,
    temperature: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of the chosen cases, best first.

    With neither quota given: the top ``k`` overall. With quotas: the top ``k_positive`` positive
    cases and the top ``k_negative`` negative ones (a missing quota counts as 0). With a
    ``temperature``: sample without replacement from softmax(scores / T) instead of taking the top.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if temperature is not None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        rng = rng or np.random.default_rng(0)
        keys = scores / temperature + rng.gumbel(size=scores.shape)  # Gumbel-top-k = softmax sampling
    else:
        keys = scores
    if k_positive is None and k_negative is None:
        return _top(keys, np.arange(len(keys)), k)
    pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
    chosen = np.concatenate([_top(keys, pos_idx, k_positive or 0), _top(keys, neg_idx, k_negative or 0)])
    return chosen[np.argsort(-keys[chosen], kind="stable")]


def _top(keys: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    if k <= 0 or len(idx) == 0:
        return np.zeros(0, dtype=np.int64)
    sub = keys[idx]
    if k < len(idx):
        part = np.argpartition(-sub, k - 1)[:k]
    else:
        part = np.arange(len(idx))
    part = part[np.argsort(-sub[part], kind="stable")]
    return idx[part]


class Retriever(ABC):
    """Scores the live cases of a bank for a query and returns the chosen ones."""

    name: ClassVar[str] = "retriever"
    shortlist: int = 0  # candidates per label taken from the index at scale (0: just the K asked for)
    min_score: float | None = None  # abstention floor: cases scoring below it are not shown

    def __init__(self, bank: CaseBank):
        self.bank = bank
        self.index_threshold: int | None = None  # None: index.ANN_THRESHOLD

    def floor(self, query: str) -> float | None:
        """The score a case must reach to be shown for ``query`` (None: always show K)."""
        return self.min_score

    def index_encoder(self) -> CachedEncoder | Encoder | None:
        """The encoder whose vectors shortlist candidates at scale (None: always an exact scan)."""
        return None

    def uses_index(self, bank: CaseBank | None = None) -> bool:
        bank = bank if bank is not None else self.bank
        return self.index_encoder() is not None and use_index(bank, self.index_threshold)

    def score_shortlist(self, query: str, cases: list[Case], similarity: np.ndarray) -> np.ndarray:
        """Scores for index candidates (``similarity``: their cosine to the query); default: ``score``."""
        return self.score(query, cases)

    @abstractmethod
    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        """One score per case (higher = more useful)."""

    def retrieve(
        self,
        query: str,
        k: int = DEFAULT_K,
        *,
        k_positive: int | None = None,
        k_negative: int | None = None,
        temperature: float | None = None,
        exclude_ids: Collection[str] = (),
        exclude_question: bool = False,
        bank: CaseBank | None = None,
        seed: int = 0,
    ) -> Slate:
        """The chosen cases for ``query`` from ``bank`` (default: this retriever's bank, as it is now).

        ``exclude_question`` drops cases whose question is exactly ``query`` (e.g. to test
        transfer rather than recall of the same task).
        """
        bank = bank if bank is not None else self.bank
        if self.uses_index(bank):
            cases, sims = self._shortlisted(
                bank, query, k, k_positive, k_negative, temperature, exclude_ids, exclude_question
            )
            if not cases:
                return Slate()
            scores = self.score_shortlist(query, cases, sims)
        else:
            cases = bank.cases()
            if exclude_ids or exclude_question:
                cases = [
                    c
                    for c in cases
                    if c.id not in exclude_ids and not (exclude_question and c.question == query)
                ]
            if not cases:
                return Slate()
            scores = self.score(query, cases)
        positive = np.fromiter((c.positive for c in cases), dtype=bool, count=len(cases))
        rng = np.random.default_rng([seed, _stable_int(query)])
        floor = self.floor(query)
        if k_positive is None and k_negative is None:
            idx, props = draw_slate(scores, k, temperature=temperature, floor=floor, rng=rng)
            return Slate(
                (
                    Retrieved(case=cases[i], score=float(scores[i]), rank=r, propensity=props[r])
                    for r, i in enumerate(idx)
                ),
                stop=props[-1] if len(props) > len(idx) else None,  # the draw ended with "stop": abstained
            )
        idx = select(
            scores,
            positive,
            k,
            k_positive=k_positive,
            k_negative=k_negative,
            temperature=temperature,
            rng=rng,
        )
        if floor is not None:  # quotas: the floor filters each quota's picks (no logged propensity)
            idx = idx[scores[idx] >= floor]
        return Slate(Retrieved(case=cases[i], score=float(scores[i]), rank=r) for r, i in enumerate(idx))

    def _shortlisted(
        self,
        bank: CaseBank,
        query: str,
        k: int,
        k_positive: int | None,
        k_negative: int | None,
        temperature: float | None,
        exclude_ids: Collection[str],
        exclude_question: bool,
    ) -> tuple[list[Case], np.ndarray]:
        encoder = self.index_encoder()
        assert encoder is not None
        index = open_index(bank, encoder)
        wide = self.shortlist or (SHORTLIST if temperature is not None else 0)
        quotas: dict[str | None, int] = (
            {None: k}
            if k_positive is None and k_negative is None
            else {"positive": k_positive or 0, "negative": k_negative or 0}
        )
        sizes = {label: max(q, wide) for label, q in quotas.items() if q > 0}
        skip = {bank.row_of(i) for i in exclude_ids if i in bank}

        def keep(row: int) -> bool:
            return row not in skip and not (exclude_question and bank.row_question(row) == query)

        rows, sims = index.shortlist(
            encoder.encode([query])[0], sizes, keep if skip or exclude_question else None
        )
        return [bank.get(cid) for cid in bank.row_ids(rows)], sims

    def update(self, pairs: Sequence[RetrievalPair], *, logged: bool = False) -> UpdateReport | None:
        """Learn from an episode's pairs (``logged``: they are in the run's pair log already); a
        retriever that does not learn ignores them."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class NoMemory(Retriever):
    """Retrieves nothing: the baseline every memory mode is compared with."""

    name = "none"

    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        return np.zeros(len(cases))

    def retrieve(self, query: str, k: int = DEFAULT_K, **kw: Any) -> Slate:
        return Slate()


class RandomRetriever(Retriever):
    """K cases at random (deterministic per query and seed): the relevance control."""

    name = "random"

    def __init__(self, bank: CaseBank, seed: int = 0):
        super().__init__(bank)
        self.seed = seed

    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        return np.random.default_rng([self.seed, _stable_int(query)]).random(len(cases))


class SimilarityRetriever(Retriever):
    """Cosine similarity between the query and each case's question, from cached embeddings.

    Case vectors come from the bank's embedding store (computed once, when written); the matrix
    of the live cases is rebuilt only when the bank's version changes. A query costs one encoder
    pass and one matrix-vector product.
    """

    name = "similarity"

    def __init__(
        self,
        bank: CaseBank,
        encoder: CachedEncoder | Encoder | None = None,
        *,
        min_score: float | None = None,
    ):
        super().__init__(bank)
        self.min_score = min_score  # the threshold variant: show only cases at least this similar
        if encoder is None:
            encoder = bank.encoder
        if encoder is None:
            raise ValueError("SimilarityRetriever needs an encoder (or a bank opened with one)")
        self.encoder = encoder
        self._row: dict[str, int] = {}  # case id -> row of self._all
        self._all = np.zeros((0, 0), dtype=np.float32)
        self._rows_for: tuple[list[Case], np.ndarray] | None = None

    def rows(self, cases: list[Case]) -> np.ndarray:
        """Rows of ``cases`` in the vector matrix, embedding (via the cache) any case not seen yet."""
        if self._rows_for is not None and self._rows_for[0] is cases:
            return self._rows_for[1]
        missing = [c for c in cases if c.id not in self._row]
        if missing:
            vecs = self.encoder.encode([c.question for c in missing])
            start = len(self._row)
            self._row.update((c.id, start + i) for i, c in enumerate(missing))
            self._all = vecs if self._all.size == 0 else np.concatenate([self._all, vecs])
        rows = np.fromiter((self._row[c.id] for c in cases), dtype=np.int64, count=len(cases))
        self._rows_for = (cases, rows)
        return rows

    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        rows = self.rows(cases)
        q = self.encoder.encode([query])[0]
        return (self._all @ q)[rows]

    def index_encoder(self) -> CachedEncoder | Encoder:
        return self.encoder

    def score_shortlist(self, query: str, cases: list[Case], similarity: np.ndarray) -> np.ndarray:
        return similarity  # the index's scores are the exact cosines of its candidates

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "encoder": self.encoder.name, "min_score": self.min_score}


MEMORY_MODES = ("none", "random", "similarity", "parametric")

"""The agent's memory: read (retrieve cases for a task) and write (case, pairs, retriever update).

``Memory`` ties a ``CaseBank``, a ``Retriever`` and a ``PairLog`` together so the agent loop has
two calls: ``memory.read(question)`` before planning and ``memory.write(...)`` after judging. A
write appends the episode as a case *and* one retrieval pair per case that was shown, with the
per-case signals the parametric retriever can learn from (``advantage`` = reward minus the task's
baseline reward so far), and gives a learnable retriever its online update.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento_lab.memory.bank.bank import DEFAULT_THRESHOLD, Case, CaseBank, Source, Trajectory
from memento_lab.memory.bank.case import AnswerKind
from memento_lab.memory.bank.encoders import CachedEncoder, Encoder
from memento_lab.memory.policies import BankPolicy
from memento_lab.memory.retrieval.pairs import PairLog, counterfactual_pair, episode_pairs
from memento_lab.memory.retrieval.retrievers import (
    DEFAULT_K,
    MEMORY_MODES,
    NoMemory,
    RandomRetriever,
    Retriever,
    SimilarityRetriever,
    Slate,
)
from memento_lab.trace import Trace

__all__ = ["Memory", "counterfactual_pair", "describe", "make_retriever", "open_memory"]


class Memory:
    """Read and write the case bank around one episode."""

    def __init__(
        self,
        bank: CaseBank,
        retriever: Retriever | None = None,
        *,
        pairs: PairLog | None = None,
        k: int = DEFAULT_K,
        k_positive: int | None = None,
        k_negative: int | None = None,
        temperature: float | None = None,
        exclude_question: bool = False,
        threshold: float = DEFAULT_THRESHOLD,
        write: bool = True,
        policy: BankPolicy | None = None,
    ):
        self.bank = bank
        self.retriever = retriever or NoMemory(bank)
        self.pairs = pairs
        self.k, self.k_positive, self.k_negative = k, k_positive, k_negative
        self.temperature = temperature
        self.exclude_question = exclude_question
        self.threshold = threshold
        self.write_enabled = write
        self.policy = policy  # what the bank keeps after each write (None: everything)
        self.evicted: list[str] = []  # case ids the policy removed, in order
        self._rewards: dict[str, list[float]] = defaultdict(list)  # task id -> rewards seen so far

    @property
    def mode(self) -> str:
        return self.retriever.name

    def at(self, version: int) -> Memory:
        """This memory reading the bank as it was at ``version``, with the same retrieval settings;
        it writes nothing."""
        return Memory(
            self.bank.at(version),
            self.retriever,
            k=self.k,
            k_positive=self.k_positive,
            k_negative=self.k_negative,
            temperature=self.temperature,
            exclude_question=self.exclude_question,
            threshold=self.threshold,
            write=False,
        )

    def restore_rewards(self, rewards: Sequence[tuple[str, float]]) -> None:
        """Replay earlier (task id, reward) outcomes, e.g. on resume, so task baselines match a fresh run."""
        for task_id, reward in rewards:
            self._rewards[task_id].append(reward)

    def read(self, question: str, *, seed: int = 0) -> Slate:
        """The cases to show for ``question``, from this memory's bank as it is now (which may be a
        past version ``bank.at(v)`` sharing the retriever of the live bank)."""
        return self.retriever.retrieve(
            question,
            self.k,
            bank=self.bank,
            k_positive=self.k_positive,
            k_negative=self.k_negative,
            temperature=self.temperature,
            exclude_question=self.exclude_question,
            seed=seed,
        )

    def baseline(self, task_id: str) -> float | None:
        past = self._rewards.get(task_id)
        return sum(past) / len(past) if past else None

    def write(
        self,
        trace: Trace,
        *,
        benchmark: str | None = None,
        family: str | None = None,
        split: str | None = None,
        answer_kind: AnswerKind = "short",
    ) -> Case | None:
        """Append the episode as a case and its retrieval pairs, give the retriever its update and
        let the bank's policy prune; returns the case (None if writing is off).

        ``answer_kind`` is kept in the case's metadata: it decides how a prompt shows the answer."""
        if not self.write_enabled:
            return None
        source = Source(
            benchmark=benchmark,
            split=split,
            run_id=trace.run_id,
            iteration=trace.iteration,
            family=family,
            task_id=trace.task_id,
        )
        case = self.case_of(trace, source, answer_kind=answer_kind)
        self.bank.add(case)
        trace.case_id = case.id
        baseline = self.baseline(trace.task_id)
        self._rewards[trace.task_id].append(trace.reward)
        pairs = episode_pairs(trace, baseline=baseline, threshold=self.threshold, plan_of=self._plan_of)
        if self.pairs is not None:
            self.pairs.append(pairs)
        if pairs:
            self.retriever.update(pairs, logged=self.pairs is not None)
        if self.policy is not None:  # the whole pair log only for the policies that read it
            logged = self.pairs.read() if self.policy.needs_pairs and self.pairs is not None else pairs
            self.evicted.extend(self.policy.apply(self.bank, logged))
        return case

    def case_of(self, trace: Trace, source: Source, *, answer_kind: AnswerKind = "short") -> Case:
        """The episode as a case: question, reward (labelled by this memory's threshold), the last
        plan, the answer, the tools used and the step results (of the attempt it answered with, when
        it sampled several), and where it came from."""
        cycles, steps = trace.attempt()
        return Case.from_episode(
            trace.question,
            trace.reward,
            threshold=self.threshold,
            plan=next((c.plan for c in reversed(cycles) if c.plan), []),
            answer=trace.final_answer,
            trajectory=Trajectory(
                tools_used=[t.name for s in steps for t in s.tool_calls],
                step_results=[s.result for s in steps],
            ),
            source=source,
            metadata={
                "expected": trace.expected,
                "memory_mode": trace.memory_mode,
                "answer_kind": answer_kind,
            },
        )

    def _plan_of(self, case_id: str) -> str:
        return self.bank.get(case_id).plan_json if case_id in self.bank else ""


def describe(memory: Memory) -> dict[str, Any]:
    return {
        "mode": memory.mode,
        "k": memory.k,
        "k_positive": memory.k_positive,
        "k_negative": memory.k_negative,
        "temperature": memory.temperature,
        "bank_version": memory.bank.version,
        "retriever": json.loads(json.dumps(memory.retriever.describe(), default=str)),
    }


def make_retriever(
    mode: str,
    bank: CaseBank,
    *,
    encoder: CachedEncoder | Encoder | None = None,
    checkpoint: str | None = None,
    seed: int = 0,
    min_score: float | None = None,
    **parametric: Any,
) -> Retriever:
    """A retriever by memory-mode name: none | random | similarity | parametric. ``min_score``: the
    similarity threshold variant; ``parametric``: keyword arguments of ``ParametricRetriever``
    (``update=UpdateConfig(...)``, ``choose=RetrievalConfig(...)``)."""
    if mode == "none":
        return NoMemory(bank)
    if mode == "random":
        return RandomRetriever(bank, seed=seed)
    if mode == "similarity":
        return SimilarityRetriever(bank, encoder, min_score=min_score)
    if mode == "parametric":
        from memento_lab.memory.learned.parametric import (
            ParametricRetriever,  # lazy: torch loads only when needed
        )

        return ParametricRetriever.from_checkpoint(bank, checkpoint, encoder=encoder, **parametric)
    raise ValueError(f"unknown memory mode {mode!r}; expected one of {MEMORY_MODES}")


def open_memory(
    folder: str | Path,
    mode: str = "similarity",
    *,
    pairs: str | Path | None = None,
    checkpoint: str | None = None,
    seed: int = 0,
    version: int | None = None,
    retriever_kw: dict[str, Any] | None = None,
    **memory_kw: Any,
) -> Memory:
    """The bank in ``folder`` (created if missing) with its cached encoder, a retriever by mode name
    and, when ``pairs`` names a file, the pair log; ``memory_kw`` go to ``Memory`` (k, quotas, ...).
    ``version``: the bank as it was after that write (read-only time travel, e.g. to replay an episode)."""
    from memento_lab.memory.bank.encoders import bank_encoder

    bank = CaseBank(folder, encoder=bank_encoder(folder))
    if version is not None:
        bank = bank.at(version)
    retriever = make_retriever(
        mode, bank, encoder=bank.encoder, checkpoint=checkpoint, seed=seed, **(retriever_kw or {})
    )
    return Memory(bank, retriever, pairs=PairLog(pairs) if pairs is not None else None, **memory_kw)

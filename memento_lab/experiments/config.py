"""The typed records of an experiment: its configuration, one result row per episode, the run's summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from memento_lab.config import CassetteMode, default_cassette_mode
from memento_lab.trace import EpisodeStatus

if TYPE_CHECKING:
    from memento_lab.trace import Trace


class ExperimentConfig(BaseModel):
    """Everything that defines a run (primitives only, so it is a papermill parameter set too)."""

    suite: str = "reasoning-gym:spell_backward,chain_sum"
    n: int = 4  # tasks per family
    seed: int = 0  # which tasks (suite generator seed)
    order: int = 0  # task order: 0 = the suite's order, else a seeded shuffle
    iterations: int = 2  # epochs over the stream
    memory: Literal["none", "random", "similarity", "parametric"] = "similarity"
    k: int = 4
    k_positive: int | None = None
    k_negative: int | None = None
    temperature: float | None = None  # soft retrieval policy (softmax over scores)
    exclude_question: bool = False  # never show a case of the very same task
    checkpoint: str | None = None  # parametric retriever checkpoint
    online_update: bool = False  # parametric: update the head after each episode
    online_target: Literal["reward", "helped", "advantage", "delta"] = "reward"  # what the update learns
    min_q: float | None = 0.5  # parametric abstention: show only cases with Q >= min_q
    none_option: bool = False  # parametric: a case must also beat the learned Q(query, "no memory")
    shortlist: int = 0  # parametric: cosine top-M re-ranked by Q (0 = Q scores every case)
    min_score: float | None = None  # similarity threshold variant: show only cases at least this similar
    counterfactual_every: int = 0  # every Nth episode, re-run without its top case (0 = off)
    counterfactual_share: float = Field(0.0, ge=0.0, le=1.0)  # or probe this sampled share of episodes
    initial_bank: str | None = None  # a bank folder to start from (copied into the run)
    bank_policy: str = "keep-all"  # keep-all | lru | utility | merge-duplicates | one-per-task[:best]
    bank_cap: int | None = None  # lru / utility: at most this many cases stay in the bank
    memory_tokens: int | None = None  # token budget of the memory block (None: every retrieved case)
    memory_style: Literal["qa", "qa+plan", "full"] = "full"  # how a shown case renders
    leakage: Literal["off", "flag", "refuse"] = "flag"
    leakage_threshold: float = 0.95
    concurrency: int = 1
    tools: list[str] = Field(default_factory=lambda: ["code", "math"])
    model: str | None = None  # embedded model name or GGUF path (default: Settings.local_model)
    cassette: CassetteMode = Field(default_factory=default_cassette_mode)  # MEMENTO_CASSETTE, else record
    max_cycles: int = 2
    max_steps: int = 3
    max_tool_calls: int = 2
    agent: Literal["planner-executor", "direct"] = "planner-executor"  # direct: one answer, no executor
    protocol: Literal["recall", "transfer"] = (
        "recall"  # transfer: train stream writes, test stream only reads
    )
    test_fraction: float = Field(0.5, gt=0.0, lt=1.0)  # transfer: share of each family's tasks held out
    out: str = "data/runs/run"
    run_id: str | None = None
    tasks_fingerprint: str | None = None  # set by the run: hash of the tasks' contents (fingerprint.py)

    def mismatch(self, stored: ExperimentConfig) -> list[str]:
        """The fields in which this config may not resume a run stored with ``stored`` (see
        ``RESUMABLE``: iterations may grow; concurrency, cassette mode, leakage checks and paths may change)."""
        bad = []
        for name in type(self).model_fields:
            new, old = getattr(self, name), getattr(stored, name)
            if name in RESUMABLE or new == old:
                continue
            bad.append(f"{name}: stored {old!r}, now {new!r}")
        if self.iterations < stored.iterations:
            bad.append(f"iterations: stored {stored.iterations}, now {self.iterations} (may only grow)")
        return bad

    def key(self) -> dict[str, Any]:
        """The sweep keys every result row carries."""
        return {
            "memory": self.memory,
            "k": self.k,
            "seed": self.seed,
            "order": self.order,
            "suite": self.suite,
        }


# Fields that may differ when a run is resumed: they change how (fast, where, how checked) a run
# executes, not what it measures. ``iterations`` may only grow (more epochs over the same stream).
RESUMABLE = frozenset(
    {"iterations", "concurrency", "cassette", "out", "run_id", "leakage", "leakage_threshold"}
)
# Fields that do not define an arm of a comparison: runs differing only in these are pooled
# (seed/order are the replications; the model comes from run.json's description of the endpoint).
# The task set's fingerprint differs between seeds of a generated suite; results.load_results splits
# an arm by it only where its runs scored one task id against different contents.
NOT_ARM = RESUMABLE | {"seed", "order", "model", "tasks_fingerprint"}


class RunResult(BaseModel):
    out: str
    run_id: str
    rows: int
    accuracy_by_iteration: dict[int, float]  # mean reward of the ok episodes
    status_counts: dict[str, int] = Field(default_factory=dict)  # every attempt, by status
    scored: int = 0  # (task, iteration) pairs whose last attempt is ok
    unresolved: int = 0  # (task, iteration) pairs whose last attempt failed (retried on resume)
    first_error: str | None = None  # the error of the first unresolved attempt


class ResultRow(BaseModel):
    """One episode of a run as a row of ``results.jsonl`` / the results dataframe."""

    run_id: str | None
    memory: str
    k: int
    seed: int
    order: int
    suite: str
    iteration: int
    task_id: str
    task_hash: str | None = None  # the task's contents (fingerprint.task_hash); None in older rows
    family: str | None = None
    split: Literal["stream", "train", "test"] = "stream"  # transfer protocol: train writes, test only reads
    position: int = 0  # index of the task in the (ordered) stream of its split
    status: EpisodeStatus = "ok"  # only ok rows are scored
    model_output_errors: int = 0
    reward: float
    correct: bool
    verdict: str | None = None  # the suite's own checker: "judge: detail" (BFCL's error type and message)
    answer: str | None = None
    expected: str | None = None
    error: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the server's prompt cache
    n_cycles: int = 0
    n_tool_calls: int = 0
    n_retrieved: int = 0
    n_retrieved_positive: int = 0
    memory_tokens: int = 0  # prompt tokens of the memory block
    bank_size: int | None = None  # live cases when the episode retrieved
    retrieved_ids: str = "[]"  # JSON list (a string keeps the parquet schema flat)
    bank_version: int | None = None
    case_id: str | None = None
    decided_by: str | None = None  # the judge whose verdict is the reward (e.g. "em" before "llm")
    judges: str = "{}"  # JSON {judge: correct} of every judge that ran (judge agreement in the report)

    @classmethod
    def of(
        cls,
        trace: Trace,
        config: ExperimentConfig,
        *,
        split: str = "stream",
        position: int = 0,
        task_hash: str | None = None,
    ) -> ResultRow:
        usage = trace.usage
        primary = trace.verdicts[0] if trace.verdicts else None
        return cls(
            run_id=trace.run_id,
            **config.key(),
            iteration=trace.iteration,
            task_id=trace.task_id,
            task_hash=task_hash,
            family=trace.family,
            split=split,
            position=position,
            status=trace.status,
            model_output_errors=trace.model_output_errors,
            reward=trace.reward,
            correct=bool(primary.correct) if primary else False,
            verdict=f"{primary.judge}: {primary.detail}" if primary else None,
            answer=trace.final_answer,
            expected=trace.expected,
            error=trace.error,
            latency_s=trace.latency_s,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            n_cycles=len(trace.cycles),
            n_tool_calls=len(trace.tool_calls),
            n_retrieved=len(trace.retrieved),
            n_retrieved_positive=sum(r.label == "positive" for r in trace.retrieved),
            memory_tokens=trace.memory_tokens,
            bank_size=trace.bank_size,
            retrieved_ids=json.dumps([r.case_id for r in trace.retrieved]),
            bank_version=trace.bank_version,
            case_id=trace.case_id,
            decided_by=trace.decided_by,
            judges=json.dumps({v.judge: v.correct for v in trace.verdicts}),
        )

"""The typed records of an experiment: its configuration, one result row per episode, the run's summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from memento_lab.agent.tools.servers import ToolServers
from memento_lab.config import CassetteMode, default_cassette_mode
from memento_lab.trace import EpisodeStatus

if TYPE_CHECKING:
    from memento_lab.trace import Trace


class ExperimentConfig(BaseModel):
    """Everything that defines a run (primitives only, so it is a papermill parameter set too)."""

    suite: str = Field(
        "reasoning-gym:spell_backward,chain_sum",
        description="the tasks: reasoning-gym:FAM1,FAM2 | humaneval[:0-20] | deepresearcher | jsonl:FILE | "
        "jsonl+llm:FILE | table:FILE?OPTIONS | bfcl:base | control:positive | control:negative | "
        "your own (memento-lab list suites)",
    )
    n: int = Field(
        4, description="tasks per family or source (humaneval without a slice: n problems; jsonl: every line)"
    )
    seed: int = Field(
        0, description="seed of the task sample, random retrieval and online updates (a replication)"
    )
    order: int = Field(0, description="task order: 0 = the suite's order, else a shuffle seeded by it")
    iterations: int = Field(2, description="epochs over the task stream (memory carries over)")
    memory: str = Field(
        "similarity",
        description="the memory method: none | random | similarity | parametric (Memento's case bank; "
        "parametric: the learned Q) | expel | awm | awm-rule | ... (memento-lab list memories)",
    )
    memory_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="the memory method's own options, KEY=VALUE (e.g. max_num_rules=20 for expel); "
        "METHOD.KEY=VALUE reaches that method alone (a sweep over methods); see docs/memory-zoo.md",
    )
    feedback: Literal["judge", "gold"] = Field(
        "judge",
        description="what memory learns from: the judge's reward (judge), or also the gold answer (gold: a "
        "labelled variant)",
    )
    k: int = Field(
        4, description="cases shown per episode: the top K (unless k_positive / k_negative are set)"
    )
    k_positive: int | None = Field(None, description="quota of positive cases shown (replaces k)")
    k_negative: int | None = Field(None, description="quota of negative cases shown (replaces k)")
    temperature: float | None = Field(
        None, description="soft retrieval: sample cases from softmax(score / T) instead of the top K"
    )
    exclude_question: bool = Field(False, description="memory never shows a case of the very same question")
    checkpoint: str | None = Field(None, description="parametric: the retriever checkpoint (.ckpt or folder)")
    online_update: bool = Field(
        False, description="parametric: update the retriever's head after each episode"
    )
    online_target: Literal["reward", "helped", "advantage", "delta"] = Field(
        "reward", description="what the online update learns: reward | helped | advantage | delta"
    )
    min_q: float | None = Field(
        0.5, description="parametric abstention: show only cases whose Q reaches this floor"
    )
    none_option: bool = Field(
        False, description="parametric: a case must also beat the learned Q(query, 'no memory')"
    )
    shortlist: int = Field(0, description="parametric: cosine top-M re-ranked by Q (0: Q scores every case)")
    min_score: float | None = Field(
        None, description="similarity threshold variant: show only cases at least this similar (cosine)"
    )
    counterfactual_every: int = Field(
        0, description="every Nth episode, re-run it without its top case: a per-case delta (0 = off)"
    )
    counterfactual_share: float = Field(
        0.0, ge=0.0, le=1.0, description="or probe this sampled share of episodes (their delta pairs)"
    )
    counterfactual_drop: Literal["random", "top"] = Field(
        "random",
        description="which shown case a probe drops: one drawn at random (seeded; within-query ranking "
        "gets mixed labels) or the top one",
    )
    initial_bank: str | None = Field(None, description="a bank folder to start from (copied into the run)")
    bank_policy: str = Field(
        "keep-all",
        description="what the bank keeps: keep-all | lru | utility | merge-duplicates | one-per-task[:best]",
    )
    bank_cap: int | None = Field(None, description="lru / utility: at most this many cases stay in the bank")
    memory_tokens: int | None = Field(
        None, description="token budget of the memory block (unset: everything the memory shows)"
    )
    memory_style: Literal["qa", "qa+plan", "full"] = Field(
        "full", description="how a shown case renders: question + answer, + plan, + step results"
    )
    leakage: Literal["off", "flag", "refuse"] = Field(
        "flag", description="eval questions already in the initial bank: ignore, write leakage.json, or stop"
    )
    leakage_threshold: float = Field(
        0.95, description="cosine similarity at which a bank case leaks a question"
    )
    concurrency: int = Field(1, description="episodes in flight at once")
    tools: list[str] = Field(
        default_factory=lambda: ["code", "math"],
        description="MCP tool servers of the executor, comma-separated ('' for none)",
    )
    tool_servers: ToolServers = Field(
        default_factory=dict,
        description="your own MCP servers, used besides `tools`: [tool_servers.NAME] tables with command, "
        "args, env, cwd (stdio) or url, headers (streamable HTTP); see docs/tools-and-tracking.md",
    )
    model: str | None = Field(
        None, description="packaged model name or GGUF path (unset: MEMENTO_LOCAL_MODEL); endpoints win"
    )
    cassette: CassetteMode = Field(
        default_factory=default_cassette_mode,
        description="record / replay of model and tool calls: off | record | replay | auto "
        "(MEMENTO_CASSETTE sets the default)",
    )
    max_cycles: int = Field(2, description="planner turns that may produce a plan (then a forced answer)")
    max_steps: int = Field(3, description="plan steps executed per cycle")
    max_tool_calls: int = Field(2, description="tool calls per step before the executor must respond")
    agent: Literal["planner-executor", "direct", "direct-instant"] = Field(
        "planner-executor",
        description="the profile: planner-executor (the loop) | direct (the model alone: it reasons, then a "
        "final answer line) | direct-instant (the model alone, answering at once in JSON)",
    )
    samples: int = Field(
        1, ge=1, description="self-consistency: attempts sampled per episode, the majority answer kept"
    )
    sample_temperature: float = Field(
        0.7,
        ge=0.0,
        description="temperature of the sampled attempts (samples > 1) and of a program's fix turns",
    )
    protocol: Literal["recall", "transfer"] = Field(
        "recall",
        description="recall: one stream repeated; transfer: memory written on a train stream, "
        "scored on a disjoint test stream",
    )
    test_fraction: float = Field(
        0.5, gt=0.0, lt=1.0, description="transfer: share of each family's tasks held out for the test stream"
    )
    out: str = Field("data/runs/run", description="the run folder (an existing one is resumed)")
    run_id: str | None = Field(None, description="the run's id in rows and cases (unset: a new random id)")
    tasks_fingerprint: str | None = Field(
        None,
        description="set by the run: a hash of the tasks' contents; given, the run refuses other contents",
    )

    @field_validator("suite", mode="before")
    @classmethod
    def _suite_table(cls, value: Any) -> Any:
        """A ``[suite]`` TOML table (kind, path, options) becomes its spec string (``registry.spec_text``)."""
        if isinstance(value, dict):
            from memento_lab.tasks.registry import spec_text

            return spec_text(value)
        return value

    @field_validator("memory")
    @classmethod
    def _known_memory(cls, name: str) -> str:
        from memento_lab.memory.methods.registry import check_method

        return check_method(name)

    @model_validator(mode="after")
    def _case_options(self) -> ExperimentConfig:
        """Options of Memento's case bank are refused with another memory method (they would do nothing)."""
        from memento_lab.memory.methods.registry import method_spec

        if method_spec(self.memory).keeps == "cases":
            return self
        set_here = [
            name
            for name in CASE_ONLY
            if getattr(self, name) != type(self).model_fields[name].get_default(call_default_factory=True)
        ]
        if set_here:
            raise ValueError(
                f"memory {self.memory!r} is not Memento's case bank: {', '.join(set_here)} only apply to the "
                "case memories (none, random, similarity, parametric)"
            )
        return self

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


# Fields that only the case memories (Memento's bank and retrievers) read.
CASE_ONLY = (
    "k_positive",
    "k_negative",
    "temperature",
    "checkpoint",
    "online_update",
    "min_score",
    "counterfactual_every",
    "counterfactual_share",
    "initial_bank",
    "bank_policy",
    "bank_cap",
)
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
    bank_size: int | None = None  # live items (cases) of the memory when the episode read it
    retrieved_ids: str = "[]"  # JSON list (a string keeps the parquet schema flat)
    bank_version: int | None = None
    case_id: str | None = None
    decided_by: str | None = None  # the judge whose verdict is the reward (e.g. "em" before "llm")
    judges: str = "{}"  # JSON {judge: correct} of every judge that ran (judge agreement in the report)
    # the memory's maintenance (extraction, reflection, rewrite), counted apart from the agent's tokens
    maintenance_calls: int = 0
    maintenance_prompt_tokens: int = 0
    maintenance_completion_tokens: int = 0
    # replies the memory could not use (None: a row written before they were counted)
    maintenance_unusable: int | None = None
    memory_read_s: float = 0.0  # inside latency_s
    memory_write_s: float = 0.0  # after latency_s (the write follows the judged episode)
    memory_ops: str = "{}"  # JSON {op: count} of the episode's write
    memory_version_after: int | None = None

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
        usage, upkeep = trace.usage, trace.maintenance
        primary = trace.verdicts[0] if trace.verdicts else None
        shown = [r.case_id for r in trace.retrieved] or [s.id for s in trace.shown]
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
            n_retrieved=len(shown),
            n_retrieved_positive=sum(r.label == "positive" for r in trace.retrieved),
            memory_tokens=trace.memory_tokens,
            bank_size=trace.bank_size,
            retrieved_ids=json.dumps(shown),
            bank_version=trace.bank_version,
            case_id=trace.case_id,
            decided_by=trace.decided_by,
            judges=json.dumps({v.judge: v.correct for v in trace.verdicts}),
            maintenance_calls=len(trace.memory_calls),
            maintenance_prompt_tokens=upkeep.prompt_tokens,
            maintenance_completion_tokens=upkeep.completion_tokens,
            maintenance_unusable=trace.maintenance_unusable,
            memory_read_s=trace.memory_read_s,
            memory_write_s=trace.memory_write_s,
            memory_ops=json.dumps(trace.memory_ops),
            memory_version_after=trace.memory_version_after,
        )

"""Plain typed records of one episode: what was retrieved, planned, executed, called and judged.

Every layer writes into these; widgets, dataframes and the runner read them. They serialise to
one JSON object per line (``Trace.to_jsonl`` / ``read_traces``). The parts of an episode the models
see again render their own messages (``PlanCycle``, ``ExecStep``, ``ToolCall``: ``to_messages``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from memento_lab.jsonl import FormatError, append_jsonl, read_jsonl, validate_record

EpisodeStatus = Literal[
    "ok",
    "endpoint_error",
    "timeout",
    "cassette_miss",
    "tool_server_error",
    "judge_error",
    "agent_error",
    "memory_error",
]
"""How an episode ended. Only ``ok`` episodes are outcomes of the model: they are scored, written to
the bank and the pair log. Every other status is a failure of the instrument (endpoint, timeout,
cassette, tool server, judge, a maintenance call of the memory, or an unexpected exception in the
agent): counted, never scored, and
retried when the run is resumed. Unusable model output (bad JSON) is an ``ok`` outcome, counted in
``Trace.model_output_errors``."""

LLMErrorKind = Literal["endpoint_error", "timeout", "model_output"]


class CassetteMiss(LookupError):
    """Replay asked for a request that was never recorded (``memento_lab.agent.models.cassette``). Kept with the
    records, below every layer that must recognise it (judges stop on it, runs stop on it)."""


class JudgeError(RuntimeError):
    """A judge could not reach a verdict (its endpoint failed, it gave no verdict): the episode's
    status becomes ``judge_error`` instead of a score of 0."""


Message = dict[str, str]  # one chat message: {"role", "content"}


def now() -> float:
    """Wall-clock timestamp (seconds since the epoch) used in every record."""
    return time.time()


def clip_middle(text: str, n: int) -> str:
    """``text`` kept within ``n`` characters: its head and tail with the middle elided (errors and
    results are usually at the ends)."""
    if len(text) <= n:
        return text
    head = max(n * 2 // 3, 0)
    tail = max(n - head - 30, 0)
    return f"{text[:head]}\n…[{len(text) - head - tail} characters elided]…\n{text[len(text) - tail :]}"


class Usage(BaseModel):
    """Token usage of one or more LLM calls; ``cost`` only when a price table is configured."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the server's prompt cache
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost=cost,
        )


class LLMCall(BaseModel):
    """One chat completion: who asked, which model, how long, how many tokens, what went wrong."""

    role: str  # planner | executor | judge | other
    model: str
    latency_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    request_hash: str | None = None  # cassette key, when recorded
    replayed: bool = False
    error: str | None = None
    error_kind: LLMErrorKind | None = None  # endpoint/timeout: infra failure; model_output: the model's own
    started_at: float = Field(default_factory=now)


class ToolCall(BaseModel):
    """One MCP tool call, as the executor made it."""

    server: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str | None = None
    error: str | None = None
    server_failed: bool = False  # the server died / could not be restarted: infra, not a tool answer
    duration_s: float = 0.0
    started_at: float = Field(default_factory=now)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_messages(self, result_chars: int = 2000) -> list[Message]:
        """The call as the executor asked for it, and its outcome (clipped to ``result_chars``)."""
        outcome = f"ERROR: {self.error}" if self.error else (self.result or "")
        return [
            {"role": "assistant", "content": json.dumps({"name": self.name, "arguments": self.arguments})},
            {"role": "user", "content": f"Result of {self.name}: {clip_middle(outcome, result_chars)}"},
        ]


class PlanStep(BaseModel):
    """One step of a planner's JSON plan ``{"plan": [{"id", "description"}]}``."""

    id: int
    description: str


class PlanCycle(BaseModel):
    """One planner turn: a plan, or a final answer, or a parse error."""

    index: int
    plan: list[PlanStep] = Field(default_factory=list)
    final_answer: str | None = None
    raw: str = ""
    error: str | None = None
    llm: LLMCall | None = None
    sample: int = 0  # which of the episode's sampled attempts (self-consistency) the turn belongs to

    def to_messages(self) -> list[Message]:
        """The turn as the planner sees it in later turns: its plan (a turn whose reply could not be
        read, or that answered without a plan, leaves nothing)."""
        if self.error is not None or (self.final_answer is not None and not self.plan):
            return []
        return [{"role": "assistant", "content": json.dumps({"plan": [s.model_dump() for s in self.plan]})}]


class ExecStep(BaseModel):
    """The executor working on one plan step with tools."""

    cycle: int
    step_id: int
    description: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    result: str = ""
    error: str | None = None
    llm_calls: list[LLMCall] = Field(default_factory=list)
    duration_s: float = 0.0
    sample: int = 0  # which of the episode's sampled attempts the step belongs to

    def report(self, result_chars: int = 600) -> str:
        """What the planner and later steps see of the step: its result (else its error), clipped."""
        return f"Result of step {self.step_id}: {clip_middle(self.result or self.error or '', result_chars)}"

    def to_messages(self, result_chars: int = 600) -> list[Message]:
        return [{"role": "user", "content": self.report(result_chars)}]


class RetrievedCase(BaseModel):
    """A case shown to the planner, with the retriever's score."""

    case_id: str
    question: str
    label: str  # positive | negative
    score: float
    reward: float | None = None
    rank: int = 0
    propensity: float | None = None  # probability the retriever's policy had of showing this case


class ShownItem(BaseModel):
    """An item of any memory method shown to the agent: its id, kind, score (when the method ranks)
    and rank (0 = first). Cases also appear in ``Trace.retrieved``, with their retrieval details."""

    id: str
    kind: str
    score: float | None = None
    rank: int = 0


class JudgeVerdict(BaseModel):
    """One judge's score of the final answer (0..1) and whether it counts as correct."""

    judge: str
    score: float
    correct: bool
    detail: str = ""


class Counterfactual(BaseModel):
    """The probe of one shown case: the same task re-run without it (``delta`` = reward - reward_without).
    ``rank``: the dropped case's rank among the ``shown`` ones; ``choice``: how it was chosen (random | top)."""

    case_id: str
    reward_without: float
    rank: int | None = None
    shown: int | None = None
    choice: str | None = None


class Vote(BaseModel):
    """Self-consistency: the answers of an episode's sampled attempts and the one it answers with.

    ``rule``: ``majority`` (the most frequent normalised answer; ties go to the answer whose first
    sample came first; unusable replies do not vote) or ``examples`` (programs: the first sample whose
    program passes every visible example, else the one passing most, the earliest on ties)."""

    answers: list[str | None]
    keys: list[str | None]  # the normalised answers that were counted (None: no usable answer)
    scores: list[float | None] = Field(default_factory=list)  # programs: share of visible examples passed
    counts: dict[str, int] = Field(default_factory=dict)  # normalised answer -> votes
    chosen: int  # the sample whose answer is the episode's
    rule: Literal["majority", "examples"] = "majority"


class Trace(BaseModel):
    """Everything that happened in one episode (with ``samples`` > 1: every sampled attempt, each turn
    and step tagged with its ``sample``, and the ``vote`` between them)."""

    task_id: str
    question: str
    family: str | None = None
    suite: str | None = None
    run_id: str | None = None
    iteration: int = 0
    memory_mode: str = "none"
    answer_kind: str = "short"  # the task's answer kind (how a memory shows the answer)
    bank_version: int | None = None  # the memory version the episode read (the bank's, for cases)
    bank_size: int | None = None  # live items (cases) in the memory when the episode read it
    memory_tokens: int = 0  # prompt tokens of the memory block shown to the model
    shown: list[ShownItem] = Field(default_factory=list)  # the memory items the block showed
    # maintenance calls of the memory (an extraction, a reflection, a rewrite; read-time ones too):
    # counted apart from the agent's own calls (``llm_calls`` and ``usage`` leave them out)
    memory_calls: list[LLMCall] = Field(default_factory=list)
    memory_ops: dict[str, int] = Field(default_factory=dict)  # the write's ops by kind
    memory_read_s: float = 0.0
    memory_write_s: float = 0.0
    memory_version_after: int | None = None  # the memory's version after this episode's write
    retrieved: list[RetrievedCase] = Field(default_factory=list)
    stop_propensity: float | None = (
        None  # the retriever abstained after ``retrieved``: its stop's probability
    )
    cycles: list[PlanCycle] = Field(default_factory=list)
    steps: list[ExecStep] = Field(default_factory=list)
    final_answer: str | None = None
    expected: str | None = None
    verdicts: list[JudgeVerdict] = Field(default_factory=list)
    judge_calls: list[LLMCall] = Field(default_factory=list)
    decided_by: str | None = None  # the judge whose verdict is the reward (e.g. "em" before "llm")
    reward: float = 0.0
    case_id: str | None = None  # the case written from this episode
    status: EpisodeStatus = "ok"
    error: str | None = None
    started_at: float = Field(default_factory=now)
    latency_s: float = 0.0
    counterfactual: Counterfactual | None = None
    vote: Vote | None = None  # self-consistency: how the sampled attempts' answers were voted

    @property
    def chosen_sample(self) -> int:
        """The attempt the episode answers with (0 when it made one)."""
        return self.vote.chosen if self.vote is not None else 0

    def attempt(self, sample: int | None = None) -> tuple[list[PlanCycle], list[ExecStep]]:
        """The planner turns and executed steps of one attempt (default: the chosen one)."""
        i = self.chosen_sample if sample is None else sample
        return [c for c in self.cycles if c.sample == i], [s for s in self.steps if s.sample == i]

    @property
    def llm_calls(self) -> list[LLMCall]:
        calls = [c.llm for c in self.cycles if c.llm is not None]
        for s in self.steps:
            calls.extend(s.llm_calls)
        calls.extend(self.judge_calls)
        return calls

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [t for s in self.steps for t in s.tool_calls]

    @property
    def model_output_errors(self) -> int:
        """Replies of the model that were unusable (not JSON, no valid tool call): outcomes, counted."""
        agent_calls = [c.llm for c in self.cycles if c.llm is not None] + [
            call for s in self.steps for call in s.llm_calls
        ]
        calls = sum(c.error_kind == "model_output" for c in agent_calls)
        parse = sum(1 for c in self.cycles if c.error and (c.llm is None or c.llm.error is None))
        return calls + parse

    @property
    def usage(self) -> Usage:
        """The agent's own tokens (planner, executor, judge); the memory's are ``maintenance``."""
        total = Usage()
        for call in self.llm_calls:
            total = total + call.usage
        return total

    @property
    def maintenance_unusable(self) -> int:
        """The memory's maintenance replies it could not use (``memory.methods.logged.unusable``)."""
        return sum(c.error_kind == "model_output" for c in self.memory_calls)

    @property
    def maintenance(self) -> Usage:
        """Tokens of the memory's maintenance calls."""
        total = Usage()
        for call in self.memory_calls:
            total = total + call.usage
        return total


def write_traces(path: str | Path, traces: Iterable[Trace]) -> None:
    """Append traces to a JSONL file (one durable write: flush + fsync)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    append_jsonl(path, [t.model_dump(mode="json") for t in traces])


def read_traces(path: str | Path, *, strict: bool = True) -> Iterator[Trace]:
    """Read traces from JSONL; a bad line raises (or, ``strict=False``, skips) naming file and line."""
    for line, obj in read_jsonl(path, strict=strict):
        try:
            yield validate_record(Trace, obj, path, line, what="not a valid trace: ")
        except FormatError:
            if strict:
                raise

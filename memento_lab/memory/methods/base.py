"""The memory zoo's interface: what every memory method is, whatever it keeps.

    block = await method.read(task, env)                 # before the episode: text shown, tokens, items
    change = await method.write(episode, feedback, env)  # after it is judged: what changed (ops)
    past = method.at(v)                                  # the method as it was after write v (read-only)

A method keeps ``MemoryItem`` s (a case, an insight, a workflow, a bullet, a cheatsheet...). ``read``
returns a ``MemoryBlock``: the text the agent sees in its memory slot, its tokens (capped by the
run's ``memory_tokens``), the items shown with ids and scores, and any maintenance call made to build
it. ``write`` gets the judged episode and its ``Feedback`` (the judge's reward by default; the gold
answer only in the labelled ``gold`` variant) and returns a ``MemoryWrite``: the new version and its
``MemoryOp`` s, each with the item before and after (added, edited, merged, removed, agreed...).

Maintenance calls (an extraction, a reflection, a rewrite) go through ``MemoryEnv.chat``: the
``memory`` model role, recorded in the run's cassette like every call, and counted apart from the
agent's own tokens (``Trace.memory_calls``). The agent lends a ``MemoryEnv`` to each call: the
memory role, its own tokenizer and the block's budget.

``LoggedMethod`` (``logged.py``) is the base of a method whose state is an append-only op log: resume,
time travel and per-episode diffs come from it. Memento's case bank (``cases.py``) implements this
interface over its own versioned bank.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, Field

from memento_lab.memory.bank.case import DEFAULT_THRESHOLD
from memento_lab.memory.retrieval.render import TokenCounter, estimate_tokens
from memento_lab.trace import LLMCall, ShownItem, Trace, Usage, now

FeedbackSource = Literal["judge", "gold"]
STATE_KIND = "state"  # the kind of a method's bookkeeping item (counters, orders): never shown


async def estimated(text: str) -> int:
    """Tokens of ``text`` estimated (4 characters a token): when no tokenizer is lent."""
    return estimate_tokens(text)


class MemoryItem(BaseModel):
    """One thing a method keeps. ``data`` holds the method's own fields (an importance count, a Q
    value, helpful / harmful counters, a title...); ``question`` is the task question the item quotes
    verbatim (an example, a case), which ``exclude_question`` hides from that very task."""

    id: str
    kind: str
    text: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    question: str | None = None
    sources: list[str] = Field(default_factory=list)  # task ids it was made from
    seq: int = 0  # order of its first add (items list in this order, also after a roll back)
    created: int = 0  # the version that added it
    updated: int = 0  # the version that last changed it


class MemoryBlock(BaseModel):
    """What one read shows the agent (``text`` goes in the memory slot of the prompt)."""

    text: str = ""
    tokens: int = 0
    items: list[ShownItem] = Field(default_factory=list)
    version: int = 0  # the version read
    size: int = 0  # live items of the memory when it was read
    calls: list[LLMCall] = Field(default_factory=list)  # maintenance calls made to build it
    seconds: float = 0.0
    hint: str | None = None  # how the direct prompt refers to the block (None: as past cases)

    def record(self, trace: Trace) -> None:
        """Write what the agent saw into the episode's trace."""
        trace.shown = list(self.items)
        trace.bank_version, trace.bank_size, trace.memory_tokens = self.version, self.size, self.tokens
        trace.memory_calls.extend(self.calls)
        trace.memory_read_s = self.seconds


class MemoryOp(BaseModel):
    """One change of one item: ``before`` / ``after`` (None: it did not exist / was deleted). A merge
    also folds ``merged`` items (their states before) into ``id``; they are deleted."""

    op: str  # add | edit | merge | remove | agree | drop | tag | update | revert | state | ...
    id: str
    before: MemoryItem | None = None
    after: MemoryItem | None = None
    merged: list[MemoryItem] = Field(default_factory=list)
    note: str = ""

    def apply(self, items: dict[str, MemoryItem]) -> None:
        for m in self.merged:
            items.pop(m.id, None)
        if self.after is None:
            items.pop(self.id, None)
        else:
            items[self.id] = self.after

    def inverse(self) -> list[MemoryOp]:
        """The ops that undo this one (a roll back appends them: the log stays append-only)."""
        back = [
            MemoryOp(op="revert", id=self.id, before=self.after, after=self.before, note=f"undo {self.op}")
        ]
        return back + [MemoryOp(op="revert", id=m.id, after=m, note="undo merge") for m in self.merged]


class MemoryWrite(BaseModel):
    """One write: the version it made, the episode it came from, its ops and maintenance calls.
    ``reverts``: the version this write undoes (an attempt rolled back on resume)."""

    version: int
    task_id: str | None = None
    iteration: int | None = None
    run_id: str | None = None
    ops: list[MemoryOp] = Field(default_factory=list)
    calls: list[LLMCall] = Field(default_factory=list)
    seconds: float = 0.0
    reverts: int | None = None
    note: str = ""
    created_at: float = Field(default_factory=now)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for c in self.calls:
            total = total + c.usage
        return total

    def counts(self) -> dict[str, int]:
        """Ops by kind, e.g. ``{"add": 1, "agree": 2}``."""
        out: dict[str, int] = {}
        for o in self.ops:
            out[o.op] = out.get(o.op, 0) + 1
        return out

    def record(self, trace: Trace) -> None:
        trace.memory_calls.extend(self.calls)
        trace.memory_ops, trace.memory_write_s = self.counts(), self.seconds
        trace.memory_version_after = self.version


class Feedback(BaseModel):
    """What a method learns from an episode besides the episode itself: the judge's reward (default),
    or, in the labelled ``gold`` variant, also the gold answer."""

    reward: float
    success: bool  # reward >= the run's threshold
    source: FeedbackSource = "judge"
    expected: str | None = None  # the gold answer: only when source == "gold"

    @classmethod
    def of(cls, trace: Trace, *, threshold: float, source: FeedbackSource = "judge") -> Feedback:
        return cls(
            reward=trace.reward,
            success=trace.reward >= threshold,
            source=source,
            expected=trace.expected if source == "gold" else None,
        )


def episode_view(trace: Trace, feedback: Feedback) -> Trace:
    """The episode as a method may see it: without the gold answer (and the judges' details, which
    may quote it) unless the feedback is the labelled ``gold`` variant."""
    if feedback.source == "gold":
        return trace
    verdicts = [v.model_copy(update={"detail": ""}) for v in trace.verdicts]
    return trace.model_copy(update={"expected": None, "verdicts": verdicts})


class TaskLike(Protocol):
    """What a method reads of a task (``tasks.Task`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def family(self) -> str | None: ...


class ChatModel(Protocol):
    """The memory role's chat client (``agent.llm.ChatClient``): a reply with ``content``, ``parsed``
    (when a JSON schema was asked for), ``error`` and its ``call`` record."""

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        schema_name: str = "reply",
    ) -> Any: ...


@dataclass(frozen=True)
class MemoryEnv:
    """What the agent lends a method for one read or write: the ``memory`` model role (maintenance
    calls), its own tokenizer, the block's token budget and how a quoted episode shows."""

    chat: ChatModel | None = None
    count_tokens: TokenCounter = estimated
    max_tokens: int | None = None
    style: str = "full"  # qa | qa+plan | full: how much of a past episode an example shows
    outcomes: bool = False  # a quoted episode says whether it was solved and the answer given (direct)


class MaintenanceError(RuntimeError):
    """A maintenance call failed for the infrastructure (endpoint, timeout): the write is not made and
    the episode is not scored (status ``memory_error``; retried on resume)."""


class MemoryMethod(ABC):
    """A memory method: ``read`` before an episode, ``write`` after it, versions and time travel."""

    name: str = "method"  # the registry's name (``memory_mode`` of rows and traces)
    keeps: ClassVar[str] = ""  # what the memory holds: cases | insights | workflows | items | ...
    threshold: float = DEFAULT_THRESHOLD  # the reward that counts as a success (``Feedback.success``)
    # exclude_question hides everything derived from the scored question (else the report calls the
    # numbers "recall" even with exclude_question: distilled memory may hold the question's answer)
    transfer_safe: ClassVar[bool] = True
    readonly: bool = False

    @property
    @abstractmethod
    def version(self) -> int:
        """Writes so far (0: empty)."""

    @abstractmethod
    def items(self, kind: str | None = None) -> list[MemoryItem]:
        """The live items (of one ``kind``), in their order; bookkeeping items are left out."""

    @abstractmethod
    async def read(self, task: TaskLike, env: MemoryEnv, *, drop: Collection[str] = ()) -> MemoryBlock:
        """The block for ``task`` (``drop``: item ids to leave out, the counterfactual probe)."""

    @abstractmethod
    async def write(self, episode: Trace, feedback: Feedback, env: MemoryEnv) -> MemoryWrite:
        """Learn from a judged episode; returns the write (its ops). Raises ``PermissionError`` on a
        read-only view."""

    @abstractmethod
    def at(self, version: int) -> MemoryMethod:
        """The method as it was right after write ``version`` (read-only)."""

    @abstractmethod
    def history(self) -> list[MemoryWrite]:
        """Every write so far, in order (the op log)."""

    def roll_back(self, committed: Mapping[tuple[str, int], Any], run_id: str) -> int:
        """Undo this run's writes whose (task id, iteration) is not in ``committed`` (an attempt that
        never reached its result row); returns how many writes were undone."""
        return 0

    def close(self) -> None:  # noqa: B027 (optional: most methods have nothing to flush)
        """Flush what the method keeps (called once at the end of a run)."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "items": len(self.items())}

    @property
    def mode(self) -> str:
        """The name rows and traces carry (``memory_mode``)."""
        return self.name

"""Methods whose whole state is an append-only op log: resume, time travel and per-episode diffs.

    <folder>/log.jsonl    one ``MemoryWrite`` per line: {"version", "task_id", "iteration", "ops": [...]}

Every change a method makes goes through a ``Draft`` (``draft.add``, ``draft.change``,
``draft.remove``, ``draft.merge``, ``draft.state``): each records a ``MemoryOp`` with the item
before and after, and the draft's own view changes at once, so a method reads its edits back while
it writes. Nothing touches the live items until the write commits: one line appended durably
(flush + fsync), then the ops applied. A maintenance call that fails (``MaintenanceError``) or a
cassette miss leaves no trace. Replaying the lines up to ``v`` gives the state after write ``v``
(``at(v)``); opening the folder again replays them all (resume). A roll back (an attempt that never
reached its result row) appends the inverse ops: earlier versions still show what was undone.

A subclass implements two methods::

    async def recall(self, task, env) -> Recall             # what to show, in priority order
    async def learn(self, episode, feedback, draft) -> None  # the changes, through the draft
"""

from __future__ import annotations

import asyncio
import fcntl
import time
from abc import abstractmethod
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from memento_lab.jsonl import append_jsonl, read_jsonl, repair_torn_tail, validate_record
from memento_lab.memory.methods.base import (
    STATE_KIND,
    ChatModel,
    Feedback,
    MaintenanceError,
    MemoryBlock,
    MemoryEnv,
    MemoryItem,
    MemoryMethod,
    MemoryOp,
    MemoryWrite,
    TaskLike,
)
from memento_lab.memory.methods.blocks import Recall, fit, shown_items
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.trace import LLMCall, Trace

LOG_FILE = "log.jsonl"
STATE_ID = "state"


class NoOptions(BaseModel):
    """A method without options of its own."""

    model_config = ConfigDict(extra="forbid")


class OpLog:
    """The writes of one method, in a JSONL file (or only in memory when ``path`` is None)."""

    def __init__(self, path: Path | None, *, readonly: bool = False):
        self.path = path
        self.writes: list[MemoryWrite] = []
        if path is None:
            return
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not readonly and path.exists():
            with path.open("ab") as f:  # under the writers' lock: a line being appended is not torn
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    repair_torn_tail(path)  # a write that died mid-line never committed
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
        if path.exists():
            self.writes = [
                validate_record(MemoryWrite, obj, path, line, what="not a memory write: ")
                for line, obj in read_jsonl(path)
            ]
        for i, w in enumerate(self.writes, 1):
            if w.version != i:
                raise ValueError(f"{path}: write {i} says version {w.version}; the log is out of order")

    def append(self, write: MemoryWrite) -> None:
        if self.path is not None:
            append_jsonl(self.path, [write.model_dump(mode="json")])
        self.writes.append(write)

    def replay(self, version: int) -> dict[str, MemoryItem]:
        items: dict[str, MemoryItem] = {}
        for w in self.writes[:version]:
            for op in w.ops:
                op.apply(items)
        return items


class Draft:
    """The changes of one write, staged: ``items`` / ``get`` read them back; ``ask`` calls the model."""

    def __init__(self, items: Mapping[str, MemoryItem], version: int, chat: ChatModel | None, seq: int):
        self._items = dict(items)
        self.version = version
        self.chat = chat
        self.ops: list[MemoryOp] = []
        self.calls: list[LLMCall] = []
        self._seq = seq  # the next item's seq

    # ------------------------------------------------------------------ reading
    def items(self, kind: str | None = None) -> list[MemoryItem]:
        live = sorted(self._items.values(), key=lambda i: i.seq)
        return [i for i in live if (i.kind == kind if kind else i.kind != STATE_KIND)]

    def get(self, item_id: str) -> MemoryItem:
        return self._items[item_id]

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items

    @property
    def state(self) -> dict[str, Any]:
        """The method's bookkeeping (counters, orders): read it here, change it with ``set_state``."""
        item = self._items.get(STATE_ID)
        return dict(item.data) if item is not None else {}

    # ------------------------------------------------------------------ changing
    def _record(self, op: MemoryOp) -> MemoryOp:
        op.apply(self._items)
        self.ops.append(op)
        return op

    def add(
        self,
        kind: str,
        text: str = "",
        *,
        id: str | None = None,
        data: Mapping[str, Any] | None = None,
        question: str | None = None,
        sources: Collection[str] = (),
        op: str = "add",
        note: str = "",
    ) -> MemoryItem:
        """A new item (id: ``<kind>-<seq>`` unless given)."""
        seq, self._seq = self._seq, self._seq + 1
        item_id = id or f"{kind}-{seq}"
        if item_id in self._items:
            raise ValueError(f"item {item_id!r} exists already")
        item = MemoryItem(
            id=item_id,
            kind=kind,
            text=text,
            data=dict(data or {}),
            question=question,
            sources=list(sources),
            seq=seq,
            created=self.version,
            updated=self.version,
        )
        self._record(MemoryOp(op=op, id=item_id, after=item, note=note))
        return item

    def change(
        self, item_id: str, op: str = "edit", *, text: str | None = None, note: str = "", **data: Any
    ) -> MemoryItem:
        """The item with a new ``text`` and/or ``data`` fields updated (``op`` names the change)."""
        before = self._items[item_id]
        after = before.model_copy(
            update={
                "text": before.text if text is None else text,
                "data": {**before.data, **data},
                "updated": self.version,
            }
        )
        self._record(MemoryOp(op=op, id=item_id, before=before, after=after, note=note))
        return after

    def remove(self, item_id: str, op: str = "remove", *, note: str = "") -> MemoryItem:
        before = self._items[item_id]
        self._record(MemoryOp(op=op, id=item_id, before=before, after=None, note=note))
        return before

    def merge(
        self,
        into: str,
        others: Collection[str],
        *,
        text: str | None = None,
        note: str = "",
        op: str = "merge",
        **data: Any,
    ) -> MemoryItem:
        """Fold ``others`` into ``into`` (they are deleted; ``into`` gets ``text`` / ``data``)."""
        before = self._items[into]
        folded = [self._items[o] for o in others if o != into]
        sources = list(dict.fromkeys([*before.sources, *(s for f in folded for s in f.sources)]))
        after = before.model_copy(
            update={
                "text": before.text if text is None else text,
                "data": {**before.data, **data},
                "sources": sources,
                "updated": self.version,
            }
        )
        self._record(MemoryOp(op=op, id=into, before=before, after=after, merged=folded, note=note))
        return after

    def set_state(self, **values: Any) -> None:
        """Update the method's bookkeeping item (one ``state`` op; it takes no place in the item order)."""
        if STATE_ID in self._items:
            self.change(STATE_ID, "state", **values)
            return
        item = MemoryItem(
            id=STATE_ID, kind=STATE_KIND, data=values, created=self.version, updated=self.version
        )
        self._record(MemoryOp(op="state", id=STATE_ID, after=item))

    # ------------------------------------------------------------------ the model
    async def ask(
        self,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = 512,
        temperature: float = 0.0,
    ) -> Any:
        """One maintenance call through the memory role (recorded with this write). An endpoint
        failure raises ``MaintenanceError`` (the write is not made); an unusable reply is returned
        (``.error``) for the method to handle as an outcome."""
        return await ask(self.chat, self.calls, messages, json_schema, max_tokens, temperature)


async def ask(
    chat: ChatModel | None,
    calls: list[LLMCall],
    messages: list[dict[str, Any]],
    json_schema: dict[str, Any] | None = None,
    max_tokens: int | None = 512,
    temperature: float = 0.0,
) -> Any:
    """A maintenance call recorded into ``calls`` (see ``Draft.ask``)."""
    if chat is None:
        raise MaintenanceError("this memory method calls a model, but no memory model was given")
    result = await chat.chat(
        messages,
        json_schema=json_schema,
        temperature=temperature,
        max_tokens=max_tokens,
        schema_name="memory",
    )
    call = getattr(result, "call", None)
    if call is not None:
        calls.append(call)
        if call.error_kind in ("endpoint_error", "timeout"):
            raise MaintenanceError(call.error or f"memory model: {call.error_kind}")
    return result


def unusable(reply: Any, why: str) -> None:
    """Mark a maintenance reply the method could not use (no cheatsheet block, no items, no
    operations) as a model-output error of its call, counted per arm in the report
    (``maintenance_unusable``): a memory that pays for replies it throws away shows it. A reply the
    client marked already (a schema-constrained reply that is not JSON) keeps its own error."""
    call = getattr(reply, "call", None)
    if call is not None and call.error_kind is None:
        call.error, call.error_kind = why, "model_output"


class LoggedMethod(MemoryMethod):
    """A method kept as an op log (see the module docstring). ``Options``: its own settings, validated
    from the run's ``memory_options``."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, setup: MethodSetup, *, log: OpLog | None = None, version: int | None = None):
        self.setup = setup
        self.threshold = setup.threshold
        self.options: Any = self._options(setup)
        folder = setup.folder
        self.log = log if log is not None else OpLog(folder / LOG_FILE if folder is not None else None)
        last = len(self.log.writes)
        self._version = last if version is None else version
        self.readonly = version is not None and version != last
        self._items = self.log.replay(self._version)
        self._seq: int | None = None  # the next item's seq, once asked for
        self._lock = asyncio.Lock()

    @classmethod
    def _options(cls, setup: MethodSetup) -> BaseModel:
        try:
            return cls.Options.model_validate(setup.options_for(cls.name))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(x) for x in first["loc"]) or "?"
            known = ", ".join(cls.Options.model_fields) or "none"
            raise ValueError(
                f"memory {cls.name!r}: option {field!r}: {first['msg']} (got {first.get('input')!r}); "
                f"its options: {known}"
            ) from None

    # ------------------------------------------------------------------ state
    @property
    def version(self) -> int:
        return self._version

    def items(self, kind: str | None = None) -> list[MemoryItem]:
        live = sorted(self._items.values(), key=lambda i: i.seq)
        return [i for i in live if (i.kind == kind if kind else i.kind != STATE_KIND)]

    @property
    def state(self) -> dict[str, Any]:
        item = self._items.get(STATE_ID)
        return dict(item.data) if item is not None else {}

    def at(self, version: int) -> Self:
        if not 0 <= version <= len(self.log.writes):
            raise ValueError(f"version {version} not in 0..{len(self.log.writes)}")
        view = type(self)(self.setup, log=self.log, version=version)
        view.readonly = True
        return view

    def history(self) -> list[MemoryWrite]:
        return list(self.log.writes[: self._version])

    def _next_seq(self) -> int:
        """The seq of the next item added (one more than any item ever had: kept as writes commit)."""
        if self._seq is None:
            self._seq = 1 + max(
                (op.after.seq for w in self.log.writes for op in w.ops if op.after), default=0
            )
        return self._seq

    # ------------------------------------------------------------------ read and write
    async def read(self, task: TaskLike, env: MemoryEnv, *, drop: Collection[str] = ()) -> MemoryBlock:
        t0 = time.perf_counter()
        calls: list[LLMCall] = []
        recall = await self.recall(task, env, calls)
        if drop:
            for section in recall.sections:
                section.entries = [e for e in section.entries if e.item is None or e.item.id not in drop]
        text, tokens, shown = await fit(recall, env)
        return MemoryBlock(
            text=text,
            tokens=tokens,
            items=shown_items(shown),
            version=self.version,
            size=len(self.items()),
            calls=calls,
            seconds=time.perf_counter() - t0,
            hint=recall.hint,
        )

    async def write(self, episode: Trace, feedback: Feedback, env: MemoryEnv) -> MemoryWrite:
        if self.readonly:
            raise PermissionError(f"{self.name}: a past version (at {self.version}) is read-only")
        async with self._lock:
            t0 = time.perf_counter()
            draft = Draft(self._items, self.version + 1, env.chat, self._next_seq())
            await self.learn(episode, feedback, draft)
            write = MemoryWrite(
                version=self.version + 1,
                task_id=episode.task_id,
                iteration=episode.iteration,
                run_id=episode.run_id,
                ops=draft.ops,
                calls=draft.calls,
                seconds=time.perf_counter() - t0,
            )
            self._commit(write)
            return write

    def _commit(self, write: MemoryWrite) -> None:
        self.log.append(write)
        for op in write.ops:
            op.apply(self._items)
            if op.after is not None and self._seq is not None:
                self._seq = max(self._seq, op.after.seq + 1)
        self._version = write.version

    def roll_back(self, committed: Mapping[tuple[str, int], Any], run_id: str) -> int:
        undone = {w.reverts for w in self.log.writes if w.reverts is not None}
        orphans = [
            w
            for w in self.log.writes
            if w.run_id == run_id
            and w.reverts is None
            and w.version not in undone
            and w.task_id is not None
            and (w.task_id, w.iteration) not in committed
        ]
        for w in reversed(orphans):  # newest first: each inverse sees the state its write left
            ops = [inv for op in reversed(w.ops) for inv in op.inverse()]
            self._commit(
                MemoryWrite(
                    version=self.version + 1,
                    task_id=w.task_id,
                    iteration=w.iteration,
                    run_id=run_id,
                    ops=ops,
                    reverts=w.version,
                    note="rolled back on resume: its attempt was interrupted before its result row",
                )
            )
        return len(orphans)

    # ------------------------------------------------------------------ a method's own rules
    @abstractmethod
    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        """What to show for ``task``, in priority order (a model call here goes into ``calls``:
        use ``ask(env.chat, calls, ...)``)."""

    @abstractmethod
    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        """The changes one judged episode makes, through ``draft``."""

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "options": self.options.model_dump()}

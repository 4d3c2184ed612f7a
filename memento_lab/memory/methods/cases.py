"""Memento's case bank as one memory method: ``none``, ``random``, ``similarity`` and ``parametric``.

    method = CaseMemory(open_memory(run / "bank", "similarity"))
    block = await method.read(task, env)                  # the retrieved cases, examples and warnings
    change = await method.write(episode, feedback, env)   # the case added (and any a policy evicted)

The bank keeps its own versioned, append-only log (``memory.bank``): the versions, ``at(v)`` and the
history come from it. A read also records the retrieval in the trace as before (``Trace.retrieved``
with the propensities, the stop's propensity), which the pair log and the learned retriever read; a
write is ``Memory.write`` (the case, its retrieval pairs, the retriever's online update, the bank's
policy). ``none`` writes cases too (a run without memory still leaves its bank to look at).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any, ClassVar

from memento_lab.memory.bank.bank import Case
from memento_lab.memory.methods.base import (
    Feedback,
    MemoryBlock,
    MemoryEnv,
    MemoryItem,
    MemoryMethod,
    MemoryOp,
    MemoryWrite,
    TaskLike,
)
from memento_lab.memory.methods.prompts import prompt_text
from memento_lab.memory.methods.registry import memory_method
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.memory.read_write import Memory, open_memory
from memento_lab.memory.retrieval.render import render_memory
from memento_lab.trace import RetrievedCase, ShownItem, Trace

CASE_MODES = ("none", "random", "similarity", "parametric")


def case_item(case: Case, version: int = 0) -> MemoryItem:
    """A case as a memory item (its question, answer, label and reward)."""
    return MemoryItem(
        id=case.id,
        kind="case",
        text=f"{case.question}\n{'Answer' if case.positive else 'Wrong answer'}: {case.answer or ''}",
        data={"label": case.label, "reward": case.reward},
        question=case.question,
        sources=[case.source.task_id] if case.source.task_id else [],
        created=version,
        updated=version,
    )


class CaseBlock(MemoryBlock):
    """A block of cases also records the retrieval (cases, propensities, the stop) in the trace."""

    retrieved: list[RetrievedCase] = []
    stop_propensity: float | None = None

    def record(self, trace: Trace) -> None:
        super().record(trace)
        trace.retrieved, trace.stop_propensity = list(self.retrieved), self.stop_propensity


class CaseMemory(MemoryMethod):
    """A ``Memory`` (bank + retriever + pair log) behind the memory-method interface."""

    keeps: ClassVar[str] = "cases"

    def __init__(self, memory: Memory):
        self.memory = memory
        self.name = memory.mode
        self.threshold = memory.threshold
        self.readonly = not memory.write_enabled

    @property
    def version(self) -> int:
        return self.memory.bank.version

    def items(self, kind: str | None = None) -> list[MemoryItem]:
        if kind not in (None, "case"):
            return []
        return [case_item(c) for c in self.memory.bank.cases()]

    async def read(self, task: TaskLike, env: MemoryEnv, *, drop: Collection[str] = ()) -> CaseBlock:
        t0 = time.perf_counter()
        bank = self.memory.bank
        slate = self.memory.read(task.question).without(drop)
        text, tokens, shown = await render_memory(
            slate,
            prompt_text("cases_outcomes.txt" if env.outcomes else "cases.txt"),
            style=env.style,  # type: ignore[arg-type]
            max_tokens=env.max_tokens,
            count=env.count_tokens,
            outcomes=env.outcomes,
        )
        seen = shown if len(shown) < len(slate) else list(slate)  # the budget may leave some out
        return CaseBlock(
            text=text,
            tokens=tokens,
            items=[ShownItem(id=r.case.id, kind="case", score=r.score, rank=r.rank) for r in seen],
            version=bank.version,
            size=len(bank),
            seconds=time.perf_counter() - t0,
            retrieved=[r.to_trace() for r in seen],
            stop_propensity=slate.stop,
        )

    async def write(self, episode: Trace, feedback: Feedback, env: MemoryEnv) -> MemoryWrite:
        if self.readonly:
            raise PermissionError("this case memory does not write (a past version, or writing is off)")
        t0 = time.perf_counter()
        m = self.memory
        evicted = len(m.evicted)
        live = {c.id: c for c in m.bank.cases()} if m.policy is not None else {}
        case = m.write(
            episode,
            benchmark=episode.suite,
            family=episode.family,
            answer_kind=episode.answer_kind,  # type: ignore[arg-type]
        )
        ops = [MemoryOp(op="add", id=case.id, after=case_item(case, self.version))] if case else []
        policy = m.policy.name if m.policy is not None else ""
        for cid in m.evicted[evicted:]:
            before = live.get(cid) or (case if case is not None and case.id == cid else None)
            ops.append(
                MemoryOp(
                    op="remove", id=cid, before=case_item(before) if before else None, note=f"policy {policy}"
                )
            )
        return MemoryWrite(
            version=self.version,
            task_id=episode.task_id,
            iteration=episode.iteration,
            run_id=episode.run_id,
            ops=ops,
            seconds=time.perf_counter() - t0,
        )

    def at(self, version: int) -> CaseMemory:
        return CaseMemory(self.memory.at(version))

    def history(self) -> list[MemoryWrite]:
        """The bank's log as writes (one per log line: an add, or a policy's or a roll back's remove)."""
        bank = self.memory.bank
        if bank.path is None or not bank.log_path.exists():
            return []
        out: list[MemoryWrite] = []
        live: dict[str, Case] = {}
        for line in bank.log_path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line) if line.strip() else {}
            v = rec.get("version", 0)
            if not rec or v > self.version:
                continue
            if rec.get("op") == "add":
                cases = [Case.model_validate(c) for c in rec.get("cases", [])]
                live.update((c.id, c) for c in cases)
                src = cases[0].source if cases else None
                out.append(
                    MemoryWrite(
                        version=v,
                        task_id=src.task_id if src else None,
                        iteration=src.iteration if src else None,
                        run_id=src.run_id if src else None,
                        ops=[MemoryOp(op="add", id=c.id, after=case_item(c, v)) for c in cases],
                    )
                )
            else:
                ops = [
                    MemoryOp(op="remove", id=i, before=case_item(live.pop(i)) if i in live else None)
                    for i in rec.get("ids", [])
                ]
                out.append(MemoryWrite(version=v, ops=ops, note=str(rec.get("reason", ""))))
        return out

    def close(self) -> None:
        self.memory.bank.snapshot()

    def describe(self) -> dict[str, Any]:
        from memento_lab.memory.read_write import describe

        return describe(self.memory)


def open_cases(mode: str, setup: MethodSetup) -> CaseMemory:
    """A case memory of ``mode`` in ``setup.folder`` (the bank folder); ``setup.extra`` holds
    ``open_memory``'s other keyword arguments (pairs, checkpoint, retriever_kw, policy, quotas...)."""
    if setup.folder is None:
        raise ValueError(f"memory {mode!r}: a case memory needs a bank folder (MethodSetup.folder)")
    if setup.options_for(mode):
        raise ValueError(
            f"memory {mode!r} takes no memory options (got {sorted(setup.options_for(mode))}); its settings "
            "are run fields (k, bank_policy, ...)"
        )
    memory = open_memory(
        setup.folder,
        mode,
        seed=setup.seed,
        k=setup.k,
        exclude_question=setup.exclude_question,
        threshold=setup.threshold,
        **dict(setup.extra),
    )
    return CaseMemory(memory)


@memory_method("none", summary="no memory: the baseline every method is compared with", keeps="cases")
def no_memory(setup: MethodSetup) -> CaseMemory:
    return open_cases("none", setup)


@memory_method("random", summary="Memento's case bank, K random cases (the relevance control)", keeps="cases")
def random_cases(setup: MethodSetup) -> CaseMemory:
    return open_cases("random", setup)


@memory_method(
    "similarity", summary="Memento's case bank, the K most similar cases (non-parametric CBR)", keeps="cases"
)
def similar_cases(setup: MethodSetup) -> CaseMemory:
    return open_cases("similarity", setup)


@memory_method(
    "parametric", summary="Memento's case bank, cases ranked by the learned Q(query, case)", keeps="cases"
)
def learned_cases(setup: MethodSetup) -> CaseMemory:
    return open_cases("parametric", setup)


def as_method(memory: Memory | MemoryMethod | None) -> MemoryMethod | None:
    """A memory method: a ``Memory`` (case bank) is wrapped, a method is returned as it is."""
    return CaseMemory(memory) if isinstance(memory, Memory) else memory

"""The retrieval pair log: for each task, which cases were shown and how the task went.

This is the training data of the parametric retriever Q(query, case). Each ``RetrievalPair``
records one (query, retrieved case) with the episode's reward. Beyond the original's
``truth_label`` (the *query's* outcome copied onto every case it saw), pairs can carry a
per-case signal: ``advantage`` (reward minus the query's baseline reward) and ``delta`` from a
counterfactual probe (reward with the case minus reward without it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from memento_lab.jsonl import (
    FormatError,
    ReadReport,
    append_jsonl,
    atomic_write_text,
    read_jsonl,
    validate_record,
)
from memento_lab.memory.bank.bank import content_id
from memento_lab.trace import RetrievedCase, Trace, now

if TYPE_CHECKING:
    from memento_lab.memory.bank.bank import CaseBank
    from memento_lab.memory.retrieval.retrievers import Retriever

PairSource = Literal["episode", "counterfactual", "memento"]
NO_CASE = "none"  # case_id of the learned "no memory" option: a pair logged when no case was shown


class RetrievalPair(BaseModel):
    query: str
    case_id: str
    case_question: str
    case_label: str  # positive | negative
    case_plan: str = ""  # JSON plan, as the original pair file has it
    reward: float  # the episode's reward with this case in the prompt
    helped: bool  # reward >= threshold: the original truth_label
    baseline: float | None = None  # the query's expected reward without this case
    advantage: float | None = None  # reward - baseline
    delta: float | None = None  # counterfactual: reward with the case - reward without it
    rank: int = 0
    score: float | None = None
    propensity: float | None = (
        None  # probability the logging policy had of showing this case (off-policy IPS)
    )
    task_id: str | None = None
    run_id: str | None = None
    iteration: int | None = None
    source: PairSource = "episode"
    created_at: float = Field(default_factory=now)


def pair_of(trace: Trace, case: RetrievedCase | None, **outcome: Any) -> RetrievalPair:
    """The pair of ``trace``'s query and a case it was shown (None: the "no memory" option), with
    ``outcome`` (reward, helped, baseline, ... and any field to override)."""
    shown: dict[str, Any] = (
        {"case_id": NO_CASE, "case_question": "", "case_label": "none"}
        if case is None
        else {
            "case_id": case.case_id,
            "case_question": case.question,
            "case_label": case.label,
            "rank": case.rank,
            "score": case.score,
            "propensity": case.propensity,
        }
    )
    about = {
        "query": trace.question,
        "task_id": trace.task_id,
        "run_id": trace.run_id,
        "iteration": trace.iteration,
    }
    return RetrievalPair(**{**about, **shown, **outcome})


def episode_pairs(
    trace: Trace, *, baseline: float | None, threshold: float, plan_of: Callable[[str], str]
) -> list[RetrievalPair]:
    """One pair per case the episode was shown (``plan_of``: a case's plan by id), plus the "no memory"
    pair when the retriever abstained after them; each carries the episode's reward and its advantage
    over the task's ``baseline`` reward so far."""
    outcome = {
        "reward": trace.reward,
        "helped": trace.reward >= threshold,
        "baseline": baseline,
        "advantage": None if baseline is None else trace.reward - baseline,
    }
    pairs = [pair_of(trace, r, case_plan=plan_of(r.case_id), **outcome) for r in trace.retrieved]
    if trace.stop_propensity is not None:  # the retriever abstained (showed < K): "no memory" was chosen
        pairs.append(
            pair_of(trace, None, rank=len(trace.retrieved), propensity=trace.stop_propensity, **outcome)
        )
    return pairs


def counterfactual_pair(
    with_case: Trace, without_case: Trace, dropped: RetrievedCase, case_plan: str = ""
) -> RetrievalPair:
    """A pair whose target is the case's own effect: reward with it minus reward without it."""
    delta = with_case.reward - without_case.reward
    return pair_of(
        with_case,
        dropped,
        case_plan=case_plan,
        reward=with_case.reward,
        helped=delta > 0,
        baseline=without_case.reward,
        advantage=delta,
        delta=delta,
        propensity=None,
        source="counterfactual",
    )


class PairLog:
    """An append-only JSONL file of pairs (flush + fsync per write)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, pairs: Iterable[RetrievalPair]) -> int:
        rows = [p.model_dump(mode="json") for p in pairs]
        if rows:
            append_jsonl(self.path, rows)
        return len(rows)

    def read(self, *, strict: bool = False, report: ReadReport | None = None) -> list[RetrievalPair]:
        if not self.path.exists():
            return []
        report = report if report is not None else ReadReport()
        out = []
        for line, obj in read_jsonl(self.path, strict=strict, report=report):
            try:
                out.append(validate_record(RetrievalPair, obj, self.path, line))
            except FormatError as err:
                if strict:
                    raise
                report.errors.append(err)
        return out

    def __iter__(self) -> Iterator[RetrievalPair]:
        return iter(self.read())


def read_memento_pairs(
    path: str | Path, *, strict: bool = True, report: ReadReport | None = None
) -> list[RetrievalPair]:
    """The original ``training_data.jsonl`` (query, case, case_label, plan, truth_label) as pairs."""
    path = Path(path)
    report = report if report is not None else ReadReport()
    out = []
    for line, obj in read_jsonl(path, strict=strict, report=report):
        try:
            for key, typ in (("query", str), ("case", str), ("case_label", str), ("truth_label", bool)):
                if key not in obj:
                    raise FormatError(path, line, "missing", field=key)
                if not isinstance(obj[key], typ):
                    raise FormatError(
                        path, line, f"expected {typ.__name__}, got {type(obj[key]).__name__}", field=key
                    )
        except FormatError as e:
            if strict:
                raise
            report.errors.append(e)
            continue
        helped = obj["truth_label"]
        out.append(
            RetrievalPair(
                query=obj["query"],
                case_id=content_id("memento", obj["case"], obj["case_label"]),
                case_question=obj["case"],
                case_label=obj["case_label"],
                case_plan=obj.get("plan") or "",
                reward=1.0 if helped else 0.0,
                helped=helped,
                source="memento",
            )
        )
    return out


def write_memento_pairs(pairs: Iterable[RetrievalPair], path: str | Path) -> int:
    """Pairs in the original ``training_data.jsonl`` format (atomically); returns the row count.

    The format holds query, case, case_label, plan and ``truth_label`` (= ``helped``); rewards,
    advantages and run ids stay in the workbench's own pair log.
    """
    rows = [
        json.dumps(
            {
                "query": p.query,
                "case": p.case_question,
                "case_label": p.case_label,
                "plan": p.case_plan,
                "truth_label": p.helped,
            },
            ensure_ascii=False,
        )
        for p in pairs
    ]
    atomic_write_text(path, "".join(r + "\n" for r in rows))
    return len(rows)


def pairs_from_bank(bank: CaseBank, retriever: Retriever, k: int = 4) -> list[RetrievalPair]:
    """Pairs derived from a bank alone (no run needed): every case, as a query, with its ``k`` most
    similar other cases, each labelled by the query case's outcome (the original's copying rule)."""
    return [
        RetrievalPair(
            query=q.question,
            case_id=r.case.id,
            case_question=r.case.question,
            case_label=r.case.label,
            case_plan=r.case.plan_json,
            reward=q.reward,
            helped=q.positive,
            rank=r.rank,
            score=r.score,
        )
        for q in bank.cases()
        for r in retriever.retrieve(q.question, k, exclude_ids={q.id}, exclude_question=True)
    ]

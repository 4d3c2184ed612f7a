"""Bank policies: each eviction rule, evictions as append-only removes, time travel after evictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento_lab.memory.bank.bank import Case, CaseBank, Source
from memento_lab.memory.policies import (
    BankPolicy,
    LRUCap,
    MergeDuplicates,
    OnePerTask,
    UtilityCap,
    make_policy,
)
from memento_lab.memory.retrieval.pairs import RetrievalPair


def case(cid: str, t: float, *, reward: float = 1.0, task: str | None = None, q: str | None = None) -> Case:
    return Case.from_episode(
        q or f"question {cid}", reward, id=cid, created_at=t, source=Source(task_id=task)
    )


def shown(cid: str, t: float, *, helped: bool = True, delta: float | None = None) -> RetrievalPair:
    return RetrievalPair(
        query="q",
        case_id=cid,
        case_question=f"question {cid}",
        case_label="positive",
        reward=1.0 if helped else 0.0,
        helped=helped,
        delta=delta,
        created_at=t,
    )


@pytest.fixture
def bank(tmp_path: Path) -> CaseBank:
    b = CaseBank(tmp_path / "bank")
    b.add([case("a", 1), case("b", 2), case("c", 3), case("d", 4)])
    return b


def test_keep_all_keeps_everything(bank: CaseBank) -> None:
    assert BankPolicy().apply(bank, [shown("a", 9)]) == [] and len(bank) == 4


def test_lru_evicts_the_least_recently_written_or_shown(bank: CaseBank) -> None:
    # a was shown last (t=10) so it is the most recent; b (t=2) and c (t=3) are the oldest used
    evicted = LRUCap(2).apply(bank, [shown("a", 10)])
    assert sorted(evicted) == ["b", "c"]
    assert sorted(c.id for c in bank.cases()) == ["a", "d"]


def test_utility_evicts_cases_whose_showing_did_not_help_first(bank: CaseBank) -> None:
    pairs = [
        shown("a", 5, helped=False),
        shown("a", 6, helped=False),  # a: -1
        shown("b", 5, helped=True),  # b: +1
        shown("c", 5, delta=-0.5),  # c: the counterfactual wins over helped: -0.5
    ]  # d was never shown: prior 0
    assert UtilityCap(2).apply(bank, pairs) == ["a", "c"]
    assert sorted(c.id for c in bank.cases()) == ["b", "d"]


def test_utility_ties_keep_the_newer_case(bank: CaseBank) -> None:
    assert UtilityCap(3).apply(bank, []) == ["a"]


def test_one_per_task_latest_or_best(tmp_path: Path) -> None:
    b = CaseBank(tmp_path / "b1")
    b.add([case("x1", 1, reward=1.0, task="t"), case("x2", 2, reward=0.0, task="t"), case("y", 3, task=None)])
    assert OnePerTask("latest").apply(b) == ["x1"]
    b2 = CaseBank(tmp_path / "b2")
    b2.add(
        [case("x1", 1, reward=1.0, task="t"), case("x2", 2, reward=0.0, task="t"), case("y", 3, task=None)]
    )
    assert OnePerTask("best").apply(b2) == ["x2"] and "y" in b2


def test_merge_duplicates_keeps_the_best_of_near_identical_questions(tmp_path: Path, encoder) -> None:
    from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore

    b = CaseBank(tmp_path / "bank", encoder=CachedEncoder(encoder, EmbeddingStore(tmp_path / "e.sqlite")))
    b.add(
        [
            case("old", 1, reward=0.6, q="What is the capital city of France?"),
            case("new", 2, reward=0.9, q="What is the capital city of France ?"),
            case("other", 3, reward=0.6, q="How many legs does a spider have?"),
            case("fail", 4, reward=0.0, q="What is the capital city of France?"),  # negative: not merged
        ]
    )
    assert MergeDuplicates(0.95).apply(b) == ["old"]
    assert sorted(c.id for c in b.cases()) == ["fail", "new", "other"]


def test_evictions_are_append_only_and_time_travel_still_works(bank: CaseBank) -> None:
    before = bank.version
    LRUCap(2).apply(bank, [shown("a", 10)])
    assert bank.version == before + 1  # one remove write
    assert sorted(c.id for c in bank.at(before).cases()) == ["a", "b", "c", "d"]
    reopened = CaseBank(bank.path)
    assert sorted(c.id for c in reopened.cases()) == ["a", "d"]
    assert sorted(c.id for c in reopened.at(before).cases()) == ["a", "b", "c", "d"]


def test_make_policy_names_and_errors() -> None:
    assert make_policy("keep-all") is None  # nothing to apply (and no pair log read) after a write
    assert isinstance(make_policy("lru", cap=3), LRUCap) and LRUCap.needs_pairs and not OnePerTask.needs_pairs
    assert isinstance(make_policy("one-per-task:best"), OnePerTask)
    with pytest.raises(ValueError, match="needs a cap"):
        make_policy("utility")
    with pytest.raises(ValueError, match="unknown bank policy"):
        make_policy("fifo")
    with pytest.raises(ValueError, match="at least 1"):
        make_policy("lru", cap=0)


def test_memory_applies_its_policy_after_each_write(tmp_path: Path) -> None:
    from memento_lab.memory.read_write import Memory
    from memento_lab.trace import Trace

    memory = Memory(CaseBank(tmp_path / "bank"), policy=OnePerTask("latest"))
    first = memory.write(Trace(task_id="t1", question="2+2?", reward=0.0))
    second = memory.write(Trace(task_id="t1", question="2+2?", reward=1.0))
    memory.write(Trace(task_id="t2", question="3+3?", reward=1.0))
    assert first is not None and second is not None
    assert memory.evicted == [first.id]
    assert [c.source.task_id for c in memory.bank.cases()] == ["t1", "t2"] and second.id in memory.bank

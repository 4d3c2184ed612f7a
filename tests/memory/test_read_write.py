"""The agent's memory: what the planner is shown and what an episode writes back."""

from __future__ import annotations

from pathlib import Path

from memento_lab.memory.bank.bank import Case, CaseBank, Trajectory
from memento_lab.memory.methods.prompts import prompt_text
from memento_lab.memory.read_write import Memory
from memento_lab.memory.retrieval.pairs import PairLog
from memento_lab.memory.retrieval.render import format_cases
from memento_lab.memory.retrieval.retrievers import RandomRetriever, Retrieved
from memento_lab.trace import PlanCycle, PlanStep, RetrievedCase, Trace


def test_prompt_block_shows_positives_as_examples_and_negatives_as_warnings():
    good = Case.from_episode(
        "Reverse 'abc'.",
        1.0,
        plan=[PlanStep(id=1, description="Use Python slicing")],
        answer="cba",
        trajectory=Trajectory(step_results=["cba"]),
    )
    bad = Case.from_episode("Reverse 'xyz'.", 0.0, plan=[PlanStep(id=1, description="Guess")], answer="xzy")
    text = format_cases(
        [Retrieved(case=good, score=0.9, rank=0), Retrieved(case=bad, score=0.8, rank=1)],
        prompt_text("cases.txt"),
    )
    assert (
        text.index("Successful past cases (1)")
        < text.index("Use Python slicing")
        < text.index("Failed past cases (1)")
    )
    assert "Answer: cba" in text and "Wrong answer: xzy" in text and "Step results: cba" in text
    only_bad = format_cases([Retrieved(case=bad, score=0.8, rank=0)], prompt_text("cases.txt"))
    assert "Successful" not in only_bad and "avoid" in only_bad


def _trace(task_id: str, reward: float, retrieved: list[RetrievedCase], iteration: int = 0) -> Trace:
    return Trace(
        task_id=task_id,
        question=f"question {task_id}",
        reward=reward,
        final_answer="42",
        iteration=iteration,
        retrieved=retrieved,
        cycles=[PlanCycle(index=0, plan=[PlanStep(id=1, description="compute")])],
    )


def test_write_appends_case_and_pairs_with_advantage(tmp_path: Path):
    bank = CaseBank(tmp_path / "bank")
    seed = Case.from_episode("an old task", 1.0)
    bank.add(seed)
    memory = Memory(bank, RandomRetriever(bank), pairs=PairLog(tmp_path / "pairs.jsonl"))
    shown = [r.to_trace() for r in memory.read("question t1")]
    assert [r.case_id for r in shown] == [seed.id]
    case = memory.write(_trace("t1", 0.0, shown), benchmark="demo", family="fam")
    assert case is not None and case.label == "negative" and case.plan[0].description == "compute"
    assert case.source.family == "fam" and len(bank) == 2 and bank.version == 2
    memory.write(_trace("t1", 1.0, shown, iteration=1))
    pairs = PairLog(tmp_path / "pairs.jsonl").read()
    assert [(p.reward, p.helped, p.baseline, p.advantage) for p in pairs] == [
        (0.0, False, None, None),
        (1.0, True, 0.0, 1.0),
    ]
    assert all(p.case_id == seed.id and p.case_label == "positive" for p in pairs)


def test_write_can_be_disabled(tmp_path: Path):
    bank = CaseBank(tmp_path / "bank")
    memory = Memory(bank, write=False)
    assert memory.write(_trace("t", 1.0, [])) is None and len(bank) == 0

"""Dedupe (exact and near) and the leakage guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.dedupe import dedupe, find_duplicates, leakage_report


def cases_for(*questions: str, reward: float = 1.0) -> list[Case]:
    return [Case.from_episode(q, reward) for q in questions]


def test_exact_and_near_duplicates(encoder):
    cases = cases_for(
        "What is the capital of France?",
        "what is the  capital of France?",  # exact after normalisation
        "What's the capital city of France?",  # near
        "How many legs does a spider have?",
    )
    exact_only = find_duplicates(cases)
    assert [(g.keep, g.duplicates, g.kind) for g in exact_only] == [(cases[0].id, [cases[1].id], "exact")]
    groups = find_duplicates(cases, encoder, threshold=0.85)
    near = [g for g in groups if g.kind == "near"]
    assert len(near) == 1 and near[0].keep == cases[0].id and near[0].duplicates == [cases[2].id]
    assert cases[3].id not in {d for g in groups for d in g.duplicates}


def test_solved_and_failed_attempts_are_not_duplicates(encoder):
    a = Case.from_episode("What is 2+2?", 1.0)
    b = Case.from_episode("What is 2+2?", 0.0)
    assert find_duplicates([a, b], encoder) == []
    assert len(find_duplicates([a, b], encoder, same_label=False)) == 1


def test_dedupe_writes_tombstones_and_keeps_history(tmp_path: Path, encoder):
    bank = CaseBank(tmp_path / "b")
    cases = cases_for("Who painted the Mona Lisa?", "who painted the mona lisa?", "Name a prime number.")
    bank.add(cases)
    groups, version = dedupe(bank, encoder)
    assert version == 2 and len(bank) == 2 and len(bank.at(1)) == 3
    assert groups[0].duplicates == [cases[1].id]


def test_leakage_report_flags_eval_tasks(encoder):
    bank_cases = cases_for("What is the capital of Peru?", "Who discovered penicillin?", "Sort 3, 1, 2.")
    evals = [
        "Who discovered Penicillin?",
        "What is the capital city of Peru?",
        "What is the tallest mountain?",
    ]
    report = leakage_report(bank_cases, evals, encoder, threshold=0.85)
    by_eval = {h.eval_index: h for h in report.hits}
    assert by_eval[0].exact and by_eval[0].case_id == bank_cases[1].id
    assert not by_eval[1].exact and by_eval[1].case_id == bank_cases[0].id
    assert 2 not in by_eval and report.leaked_eval_tasks == {0, 1}
    with pytest.raises(ValueError, match="contaminated"):
        report.raise_if_contaminated()
    clean = leakage_report(bank_cases, ["What is the tallest mountain?"], encoder, threshold=0.85)
    assert not clean.contaminated
    clean.raise_if_contaminated()

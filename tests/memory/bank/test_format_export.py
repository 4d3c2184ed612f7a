"""Every seed format goes out again: memory.jsonl, dummy_memo.jsonl and the retriever pairs
(training_data.jsonl), each round-tripped (import(export(x)) == x on the fields the format holds),
on small synthetic data and on the real seed files when this machine has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memento_lab.cli import main
from memento_lab.memory.bank.bank import Case, CaseBank, Source, label_for
from memento_lab.memory.bank.formats import export_cases, import_file
from memento_lab.memory.retrieval.pairs import PairLog, RetrievalPair, read_memento_pairs, write_memento_pairs
from memento_lab.trace import PlanStep


def _case(i: int, reward: float) -> Case:
    return Case(
        id=f"c{i}",
        question=f"question {i} — ünïcode?",
        plan=[PlanStep(id=1, description=f"step a of {i}"), PlanStep(id=2, description="step b")],
        reward=reward,
        label=label_for(reward),
        source=Source(benchmark="test"),
    )


def _held(c: Case) -> tuple:
    return (c.question, c.plan, c.reward, c.label)


def _pair_held(p: RetrievalPair) -> tuple:
    return (p.query, p.case_question, p.case_label, p.case_plan, p.helped)


def test_dummy_memo_round_trip(tmp_path: Path) -> None:
    cases = [_case(0, 0.0), _case(1, 1.0), _case(2, 0.5)]
    out = tmp_path / "dummy_memo.jsonl"
    assert export_cases(cases, out, "dummy_memo") == 3
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["reward"] for r in rows] == [0, 1, 0.5] and isinstance(rows[0]["reward"], int)
    back = import_file(out, "dummy_memo").cases
    assert [_held(c) for c in back] == [_held(c) for c in cases]
    again = tmp_path / "again.jsonl"
    export_cases(back, again, "dummy_memo")
    assert again.read_bytes() == out.read_bytes()  # a fixed point


def test_memory_round_trip_and_unknown_format(tmp_path: Path) -> None:
    cases = [_case(0, 0.0), _case(1, 1.0)]
    out = tmp_path / "memory.jsonl"
    export_cases(cases, out, "memento")
    assert [(c.question, c.plan, c.label) for c in import_file(out).cases] == [
        (c.question, c.plan, c.label) for c in cases
    ]
    with pytest.raises(ValueError, match="memento_pairs.*write_memento_pairs|write_memento_pairs"):
        export_cases(cases, out, "memento_pairs")


def test_run_pair_log_exports_as_training_data(tmp_path: Path) -> None:
    pairs = [
        RetrievalPair(
            query=f"q{i}",
            case_id=f"c{i}",
            case_question=f"case {i}",
            case_label="positive" if i % 2 else "negative",
            case_plan=json.dumps({"plan": [{"id": 1, "description": f"d{i}"}]}),
            reward=0.8 if i % 3 else 0.2,
            helped=bool(i % 3),
            advantage=0.1 * i,
            run_id="r",
        )
        for i in range(5)
    ]
    log = PairLog(tmp_path / "run" / "pairs.jsonl")
    log.append(pairs)
    out = tmp_path / "training_data.jsonl"
    assert main(["pairs", "export", str(log.path), str(out)]) == 0
    back = read_memento_pairs(out)
    assert [_pair_held(p) for p in back] == [_pair_held(p) for p in pairs]
    assert set(json.loads(out.read_text().splitlines()[0])) == {
        "query",
        "case",
        "case_label",
        "plan",
        "truth_label",
    }


def test_cli_bank_export_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank = CaseBank(tmp_path / "bank")
    cases = [_case(0, 0.0), _case(1, 1.0)]
    bank.add(cases)
    out = tmp_path / "d.jsonl"
    assert main(["bank", "export", str(tmp_path / "bank"), str(out), "--format", "dummy_memo"]) == 0
    assert [_held(c) for c in import_file(out, "dummy_memo").cases] == [_held(c) for c in cases]
    assert main(["pairs", "export", str(tmp_path / "missing.jsonl"), str(out)]) == 1
    assert "missing.jsonl: no such pair log" in capsys.readouterr().err


# --------------------------------------------------------------------------- the real seed files
def test_seed_dummy_memo_round_trips(seed_dir: Path, tmp_path: Path) -> None:
    original = import_file(seed_dir / "dummy_memo.jsonl", "dummy_memo").cases
    out = tmp_path / "dummy_memo.jsonl"
    export_cases(original, out, "dummy_memo")
    back = import_file(out, "dummy_memo").cases
    assert [(c.id, *_held(c)) for c in back] == [(c.id, *_held(c)) for c in original]
    src = [json.loads(x) for x in (seed_dir / "dummy_memo.jsonl").read_text().splitlines()]
    dst = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["question"], json.loads(r["plan"]), r["reward"]) for r in src] == [
        (r["question"], json.loads(r["plan"]), r["reward"]) for r in dst
    ]


def test_seed_training_data_round_trips(seed_dir: Path, tmp_path: Path) -> None:
    original = read_memento_pairs(seed_dir / "training_data.jsonl")
    out = tmp_path / "training_data.jsonl"
    assert write_memento_pairs(original, out) == len(original) == 5528
    back = read_memento_pairs(out)
    assert [p.model_dump(exclude={"created_at"}) for p in back] == [
        p.model_dump(exclude={"created_at"}) for p in original
    ]
    src = [json.loads(x) for x in (seed_dir / "training_data.jsonl").read_text().splitlines()]
    dst = [json.loads(x) for x in out.read_text().splitlines()]
    assert src == dst  # the original rows, byte-for-byte as JSON values

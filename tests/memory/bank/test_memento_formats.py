"""Importing and exporting the original Memento files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memento_lab.jsonl import FormatError
from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.bank.formats import export_memory, import_file
from memento_lab.memory.retrieval.pairs import PairLog, read_memento_pairs

DEMO = Path(__file__).resolve().parents[3] / "memento_lab" / "data" / "demo_memory.jsonl"


def test_seed_memory_imports_1278_cases_and_round_trips(seed_dir: Path, tmp_path: Path):
    result = import_file(seed_dir / "memory.jsonl", "memento")
    assert len(result.cases) == 1278
    assert sum(c.label == "positive" for c in result.cases) == 897
    assert sum(c.label == "negative" for c in result.cases) == 381
    bank = CaseBank(tmp_path / "bank")
    bank.add(result.cases)
    out = tmp_path / "memory.jsonl"
    assert export_memory(CaseBank(tmp_path / "bank").cases(), out) == 1278
    original = [json.loads(x) for x in (seed_dir / "memory.jsonl").read_text().splitlines()]
    exported = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["case"], r["case_label"], json.loads(r["plan"])) for r in original] == [
        (r["case"], r["case_label"], json.loads(r["plan"])) for r in exported
    ]
    key = lambda c: (c.id, c.question, c.plan, c.label, c.reward)  # noqa: E731
    assert [key(c) for c in import_file(out).cases] == [key(c) for c in result.cases]  # same ids and content


def test_seed_dummy_memo_and_pairs(seed_dir: Path):
    dummy = import_file(seed_dir / "dummy_memo.jsonl", "dummy_memo").cases
    assert len(dummy) == 8 and [c.reward for c in dummy] == [0, 0, 0, 0, 1, 1, 1, 1]
    pairs = read_memento_pairs(seed_dir / "training_data.jsonl")
    assert len(pairs) == 5528 and sum(p.helped for p in pairs) == 1296
    case_ids = {c.id for c in import_file(seed_dir / "memory.jsonl").cases}
    assert {p.case_id for p in pairs} <= case_ids  # pairs point at the bank's own case ids
    as_cases = import_file(seed_dir / "training_data.jsonl", "memento_pairs").cases
    assert {c.id for c in as_cases} <= case_ids


def test_demo_set_imports():
    cases = import_file(DEMO).cases
    assert len(cases) == 20 and {c.label for c in cases} == {"positive", "negative"}


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("{bad json", None, "not valid JSON"),
        ('{"plan": "{}", "case_label": "positive"}', "case", "missing"),
        ('{"case": 3, "plan": "{}", "case_label": "positive"}', "case", "expected str"),
        ('{"case": "q", "plan": "{not json", "case_label": "positive"}', "plan", "not valid JSON"),
        (
            '{"case": "q", "plan": "{\\"plan\\": [{\\"id\\": 1}]}", "case_label": "positive"}',
            "plan[0]",
            "description",
        ),
        ('{"case": "q", "plan": "{\\"plan\\": []}", "case_label": "good"}', "case_label", "positive"),
    ],
)
def test_bad_line_error_names_file_line_and_field(tmp_path: Path, line: str, field: str | None, message: str):
    good = '{"case": "ok?", "plan": "{\\"plan\\": []}", "case_label": "positive"}'
    path = tmp_path / "memory.jsonl"
    path.write_text(good + "\n" + line + "\n" + good.replace("ok?", "ok2?") + "\n")
    with pytest.raises(FormatError) as e:
        import_file(path)
    assert e.value.line == 2 and e.value.field == field and message in str(e.value)
    assert "memory.jsonl:2" in str(e.value)
    lenient = import_file(path, strict=False)
    assert [c.question for c in lenient.cases] == ["ok?", "ok2?"]
    assert len(lenient.errors) == 1 and lenient.errors[0].line == 2


def test_dummy_memo_reward_type_is_checked(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "q", "plan": "{\\"plan\\": []}", "reward": "1"}\n')
    with pytest.raises(FormatError, match="reward"):
        import_file(path, "dummy_memo")


def test_pair_log_appends_and_reports_bad_lines(tmp_path: Path, seed_dir: Path):
    pairs = read_memento_pairs(seed_dir / "training_data.jsonl")[:10]
    log = PairLog(tmp_path / "pairs.jsonl")
    log.append(pairs[:6])
    with log.path.open("a") as f:
        f.write('{"query": "q"}\n')
    log.append(pairs[6:])
    assert [p.query for p in log.read()] == [p.query for p in pairs]
    with pytest.raises(FormatError, match=r"pairs.jsonl:7"):
        log.read(strict=True)

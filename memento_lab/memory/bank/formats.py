"""Reading and writing the original Memento files.

- ``memory.jsonl``        ``{"case", "plan": JSON string {"plan": [{"id", "description"}]}, "case_label"}``
- ``dummy_memo.jsonl``    ``{"question", "plan": JSON string, "reward": 0/1}``
- ``training_data.jsonl`` retriever pairs ``{"query", "case", "case_label", "plan", "truth_label"}``
  (pairs are read by ``pairs.read_memento_pairs``; here they become the cases they mention)

Exporters write each format back (``export_cases(cases, path, fmt)``; pairs:
``pairs.write_memento_pairs``), so ``import(export(x)) == x`` on the fields the format holds.

Each importer returns an ``ImportResult``: the cases plus every skipped line's ``FormatError``
(with ``strict=True``, the default, the first bad line raises instead). Ids are content hashes,
so importing the same file twice gives the same ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from memento_lab.jsonl import FormatError, ReadReport, atomic_write_text, format_error, read_jsonl
from memento_lab.memory.bank.bank import Case, Source, content_id, label_for
from memento_lab.trace import PlanStep

FORMATS = ("memento", "dummy_memo", "memento_pairs")


@dataclass
class ImportResult:
    cases: list[Case]
    errors: list[FormatError] = field(default_factory=list)
    torn_line: int | None = None


def parse_plan(value: Any, path: Path, line: int, field_name: str = "plan") -> list[PlanStep]:
    """A Memento plan (a JSON string or object ``{"plan": [...]}``) as typed steps."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise FormatError(path, line, f"plan is not valid JSON ({e.msg})", field=field_name) from e
    if isinstance(value, dict):
        value = value.get("plan")
    if not isinstance(value, list):
        raise FormatError(path, line, "expected {'plan': [{'id', 'description'}, ...]}", field=field_name)
    steps = []
    for i, step in enumerate(value):
        if not isinstance(step, dict) or "description" not in step:
            raise FormatError(path, line, f"step {i} has no 'description'", field=f"{field_name}[{i}]")
        try:
            steps.append(PlanStep(id=int(step.get("id", i + 1)), description=str(step["description"])))
        except (TypeError, ValueError) as e:
            raise FormatError(
                path, line, f"step {i} has a non-integer id", field=f"{field_name}[{i}].id"
            ) from e
    return steps


def _require(obj: dict[str, Any], key: str, typ: type | tuple[type, ...], path: Path, line: int) -> Any:
    if key not in obj:
        raise FormatError(path, line, "missing", field=key)
    types = typ if isinstance(typ, tuple) else (typ,)
    if not isinstance(obj[key], types) or (isinstance(obj[key], bool) and bool not in types):
        name = "/".join(t.__name__ for t in types)
        raise FormatError(path, line, f"expected {name}, got {type(obj[key]).__name__}", field=key)
    return obj[key]


def _label(value: Any, path: Path, line: int, field_name: str) -> str:
    if value not in ("positive", "negative"):
        raise FormatError(path, line, f"expected 'positive' or 'negative', got {value!r}", field=field_name)
    return str(value)


def _memory_row(obj: dict[str, Any], path: Path, line: int) -> Case:
    question = _require(obj, "case", str, path, line)
    label = _label(_require(obj, "case_label", str, path, line), path, line, "case_label")
    plan = parse_plan(_require(obj, "plan", (str, dict), path, line), path, line)
    return Case(
        id=content_id("memento", question, label),
        question=question,
        plan=plan,
        reward=1.0 if label == "positive" else 0.0,
        label=label,
        source=Source(benchmark="memento-seed", split=path.name),
    )


def _dummy_row(obj: dict[str, Any], path: Path, line: int) -> Case:
    question = _require(obj, "question", str, path, line)
    reward = float(_require(obj, "reward", (int, float), path, line))
    if not 0 <= reward <= 1:
        raise FormatError(path, line, f"reward must be within 0..1, got {reward}", field="reward")
    plan = parse_plan(_require(obj, "plan", (str, dict), path, line), path, line)
    return Case(
        id=content_id("dummy_memo", question, str(line)),
        question=question,
        plan=plan,
        reward=reward,
        label=label_for(reward),
        source=Source(benchmark="memento-seed", split=path.name),
    )


def _pair_case_row(obj: dict[str, Any], path: Path, line: int) -> Case:
    return _memory_row(
        {"case": obj.get("case"), "plan": obj.get("plan"), "case_label": obj.get("case_label")}, path, line
    )


_ROW_PARSERS: dict[str, Callable[[dict[str, Any], Path, int], Case]] = {
    "memento": _memory_row,
    "dummy_memo": _dummy_row,
    "memento_pairs": _pair_case_row,
}


def import_file(path: str | Path, fmt: str = "memento", *, strict: bool = True) -> ImportResult:
    """Read a Memento file as cases. Duplicate records (same id) are kept once."""
    if fmt not in _ROW_PARSERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    parse = _ROW_PARSERS[fmt]
    report = ReadReport()
    cases: dict[str, Case] = {}
    for line, obj in read_jsonl(path, strict=strict, report=report):
        try:
            try:
                case = parse(obj, path, line)
            except ValidationError as e:  # e.g. a text over the size limit
                raise format_error(e, path, line) from e
        except FormatError as e:
            if strict:
                raise
            report.errors.append(e)
            continue
        cases.setdefault(case.id, case)
    if report.torn_line is not None:  # an incomplete last line is a bad line like any other
        torn = FormatError(
            path, report.torn_line, "the last line is incomplete (no trailing newline, not JSON)"
        )
        if strict:
            raise torn
        report.errors.append(torn)
    return ImportResult(list(cases.values()), report.errors, report.torn_line)


def _memory_line(c: Case) -> dict[str, Any]:
    return {"case": c.question, "plan": c.plan_json, "case_label": c.label}


def _dummy_line(c: Case) -> dict[str, Any]:
    reward = int(c.reward) if float(c.reward).is_integer() else c.reward  # the original writes 0 / 1
    return {"question": c.question, "plan": c.plan_json, "reward": reward}


EXPORTS: dict[str, Callable[[Case], dict[str, Any]]] = {"memento": _memory_line, "dummy_memo": _dummy_line}


def export_cases(cases: Iterable[Case], path: str | Path, fmt: str = "memento") -> int:
    """Write cases as ``memory.jsonl`` (``memento``) or ``dummy_memo.jsonl`` (``dummy_memo``),
    atomically; returns the row count. Retriever pairs: ``pairs.write_memento_pairs``."""
    if fmt not in EXPORTS:
        raise ValueError(
            f"cannot export cases as {fmt!r}; expected one of {sorted(EXPORTS)} "
            "(training_data.jsonl pairs come from a pair log: pairs.write_memento_pairs)"
        )
    rows = [json.dumps(EXPORTS[fmt](c), ensure_ascii=False) for c in cases]
    atomic_write_text(path, "".join(r + "\n" for r in rows))
    return len(rows)


def export_memory(cases: Iterable[Case], path: str | Path) -> int:
    """Write cases in the original ``memory.jsonl`` format (atomically); returns the row count."""
    return export_cases(cases, path, "memento")

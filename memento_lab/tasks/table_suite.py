"""Your own tasks from a table: JSONL, CSV/TSV, Parquet or a Hugging Face dataset, with a field
mapping and a choice of judge (the ``table`` suite kind; ``jsonl`` is its JSONL spelling).

    table:data/qa.csv?question=prompt&answer=target&judge=f1
    jsonl+llm:tasks.jsonl                               # = table:tasks.jsonl?judge=llm

or, in a run's TOML::

    [suite]
    path = "data/qa.csv"
    question = "prompt"        # the column that holds each task field
    answer = "target"
    judge = "f1"               # em | f1 | pm | llm | my_pkg.judges:close_enough | judges.py:fn

Field options name the column of a task field (``id``, ``question``, ``answer``, ``family``,
``files``, ``answer_kind``, ``entry_point``; ``a.b`` reads key ``b`` of a column ``a`` holding
dicts); unmapped fields use the column of the same name when there is one. Other options: ``judge``,
``format`` (jsonl, csv, tsv, parquet, hf: else from the extension), ``split`` and ``subset`` (a
Hugging Face dataset), ``kind`` (the answer kind of rows without one), ``sample`` (N rows per
family, chosen with the run's seed; default every row).

A row's answer may be a list of accepted answers (aliases). Attached files are relative to the
folder of the table. Columns not mapped stay with the task (``metadata["columns"]``) for your
judge. A bad table is a ``FormatError`` naming the file, the line or row, and the field: a missing
column, an empty question or answer, a duplicate id, an unknown answer kind.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from memento_lab.tasks.answers import AnswerKind
from memento_lab.tasks.base import JudgeContext, Task, sample_indices
from memento_lab.tasks.judge_functions import JudgeFunction, is_import_path, judge_with, load_judge_function
from memento_lab.tasks.qa import QASuite, task_files
from memento_lab.tasks.registry import SuiteSpec, suite
from memento_lab.tasks.tables import Table, read_table
from memento_lab.trace import JudgeVerdict, LLMCall

FIELDS = ("id", "question", "answer", "family", "files", "answer_kind", "entry_point")
OPTIONS = (*FIELDS, "judge", "format", "split", "subset", "kind", "sample")
_MISSING = object()


@dataclass(frozen=True)
class TableMapping:
    """Which column holds each task field, and how the table is read and judged."""

    columns: dict[str, str] = field(default_factory=dict)  # task field -> column, as given
    judge: str = "em"
    format: str | None = None
    split: str | None = None
    subset: str | None = None
    kind: AnswerKind | None = None
    sample: int = 0

    @classmethod
    def of(cls, spec: SuiteSpec) -> TableMapping:
        opts = spec.option
        judge = opts.get("judge") or spec.variant or "em"
        if spec.variant and opts.get("judge") and opts["judge"] != spec.variant:
            raise ValueError(f"suite {spec.text!r}: judge given twice ({spec.variant} and {opts['judge']})")
        if judge not in QASuite.JUDGES and not is_import_path(judge):
            raise ValueError(
                f"suite {spec.text!r}: unknown judge {judge!r}; choose one of {', '.join(QASuite.JUDGES)} "
                "or a function as module.path:function"
            )
        kind = opts.get("kind") or None
        if kind is not None and kind not in get_args(AnswerKind):
            raise ValueError(f"suite {spec.text!r}: kind must be one of {', '.join(get_args(AnswerKind))}")
        sample = opts.get("sample", "0")
        if not sample.isdigit():
            raise ValueError(
                f"suite {spec.text!r}: sample must be a number of rows per family, got {sample!r}"
            )
        empty = [f for f in FIELDS if f in opts and not opts[f].strip()]
        if empty:
            raise ValueError(f"suite {spec.text!r}: field option(s) {empty} name no column")
        return cls(
            columns={f: opts[f] for f in FIELDS if f in opts},
            judge=judge,
            format=opts.get("format") or None,
            split=opts.get("split") or None,
            subset=opts.get("subset") or None,
            kind=kind,  # type: ignore[arg-type]
            sample=int(sample),
        )


def load_table_tasks(path: str, mapping: TableMapping | None = None, *, suite: str = "table") -> list[Task]:
    """Every row of the table at ``path`` as a task, read through ``mapping`` (see the module docstring)."""
    mapping = mapping or TableMapping()
    table = read_table(path, format=mapping.format, split=mapping.split, subset=mapping.subset)
    columns = _resolve_columns(table, mapping)
    tasks: list[Task] = []
    first_seen: dict[str, int] = {}
    for where, row in table.rows:
        task = _task(table, where, row, columns, mapping, suite)
        if task.id in first_seen:
            unit = "line" if table.by_line else "row"
            raise table.error(
                where, f"duplicate id {task.id!r} (first at {unit} {first_seen[task.id]})", columns.get("id")
            )
        first_seen[task.id] = where
        tasks.append(task)
    if not tasks:
        raise table.error(None, "contains no tasks")
    return tasks


def _resolve_columns(table: Table, mapping: TableMapping) -> dict[str, str]:
    """Task field -> column: the mapping's, else the column of the field's name when the table has it.

    A column the mapping names (or ``question`` / ``answer`` by default) that the table lacks is an
    error naming the file and the field (tables without fixed columns, JSONL, are checked per row)."""
    out = dict(mapping.columns)
    for name in FIELDS:
        if name in out or name == "files":
            continue
        if table.columns is None or name in table.columns or name in ("question", "answer"):
            out[name] = name
    if "files" not in out and table.columns is not None:
        present = [c for c in ("files", "file") if c in table.columns]
        if present:
            out["files"] = present[0]
    if table.columns is not None:
        for name, column in out.items():
            if column.split(".")[0] not in table.columns and column not in table.columns:
                mapped = "" if column == name else f" (the column of {name})"
                raise table.error(
                    None,
                    f"has no column {column!r}{mapped}; columns: {', '.join(table.columns)}",
                    field=column,
                )
    return out


def _value(row: dict[str, Any], column: str) -> Any:
    """``row[column]``, or a dotted path into dict values (``answers.text``); ``_MISSING`` when absent."""
    if column in row:
        return row[column]
    head, *rest = column.split(".")
    value = row.get(head, _MISSING)
    for key in rest:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _blank(value: Any) -> bool:
    return value is _MISSING or value is None or (isinstance(value, str) and not value.strip())


def _task(
    table: Table, where: int, row: dict[str, Any], columns: dict[str, str], mapping: TableMapping, suite: str
) -> Task:
    def get(name: str) -> Any:
        return _value(row, columns[name]) if name in columns else _MISSING

    def fail(name: str, message: str) -> Exception:
        return table.error(where, message, field=columns.get(name, name))

    question, answer = get("question"), get("answer")
    if question is _MISSING or question is None:
        raise fail("question", "missing")
    if not isinstance(question, str) or not question.strip():
        raise fail("question", "must be a non-empty string")
    golds = _golds(answer)
    if golds is None:
        raise fail(
            "answer", "missing" if answer is _MISSING or answer is None else "is empty (no gold answer)"
        )
    if not golds:
        raise fail("answer", "must be a string or number, or a list of them (accepted answers)")
    kind = get("answer_kind")
    kind = (mapping.kind or "short") if _blank(kind) else kind
    if kind not in get_args(AnswerKind):
        raise fail("answer_kind", f"must be one of {', '.join(get_args(AnswerKind))}")
    entry_point = None if _blank(get("entry_point")) else str(get("entry_point"))
    if kind == "program" and not entry_point:
        raise fail("entry_point", "a program answer needs the function name to call")
    tid, family = get("id"), get("family")
    used = {columns[n].split(".")[0] for n in columns}
    extra = {k: v for k, v in row.items() if k not in used and not (table.columns is None and k == "file")}
    metadata: dict[str, Any] = {"file": table.path, "line" if table.by_line else "row": where}
    if len(golds) > 1:
        metadata["aliases"] = golds
    if extra:  # JSON values only (a dataset's images or dates become their text)
        metadata["columns"] = json.loads(json.dumps(extra, default=str))
    return Task(
        id=f"{table.name}:{where}" if _blank(tid) else str(tid),
        question=question,
        answer=golds[0],
        family=table.name if _blank(family) else str(family),
        suite=suite,
        answer_kind=kind,
        entry_point=entry_point,
        metadata=metadata,
        files=_files(table, where, row, columns),
    )


def _golds(value: Any) -> list[str] | None:
    """The accepted answers: None when blank, [] when not a string, a number or a list of them."""
    values = value if isinstance(value, list) else [value]
    if not values or all(_blank(v) for v in values):
        return None
    if any(isinstance(v, bool) or not isinstance(v, str | int | float) for v in values):
        return []
    return [str(v).strip() for v in values if not _blank(v)]


def _files(table: Table, where: int, row: dict[str, Any], columns: dict[str, str]) -> list[str]:
    """Attached files: JSONL's ``file`` / ``files`` keys, or a column of names (a list, or ``;``-separated)."""
    folder = Path(table.path).parent
    if "files" not in columns and table.columns is None:  # JSONL lines, unmapped: "file" or "files"
        return task_files(row, Path(table.path), where)
    value = _value(row, columns["files"]) if "files" in columns else None
    if _blank(value):
        return []
    names = value.split(";") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise table.error(
            where, "must be file names: a list, or one string separated by ';'", columns["files"]
        )
    out = []
    for name in (n.strip() for n in names if n.strip()):
        target = (folder / name).resolve()
        if not target.is_file():
            raise table.error(where, f"attached file {name!r} not found at {target}", columns["files"])
        out.append(str(target))
    return out


def load_jsonl_tasks(path: str | Path, *, suite: str = "jsonl") -> list[Task]:
    """``{"id"?, "question", "answer", "family"?, "file"?/"files"?, "answer_kind"?, "entry_point"?}``
    lines as tasks (the ``jsonl`` kind: a table read with the default mapping)."""
    return load_table_tasks(str(path), TableMapping(format="jsonl"), suite=suite)


class TableSuite(QASuite):
    """Tasks from a table; reward = the chosen string judge, the LLM judge, or your own function."""

    def __init__(self, name: str, tasks: list[Task], *, judge: str = "em"):
        self.function: JudgeFunction | None = None
        if is_import_path(judge) and judge not in self.JUDGES:
            self.function = load_judge_function(judge)
            super().__init__(name, tasks, judge="em")
        else:
            super().__init__(name, tasks, judge=judge)

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        if self.function is None:
            return await super().verdicts(task, answer, ctx, calls)
        own = await judge_with(self.function, task, answer)
        audit = (
            ctx if ctx is not None and ctx.llm_judge else None
        )  # the cheap judges (+ an LLM audit) beside it
        return [own, *await super().verdicts(task, answer, audit, calls)]


def table_suite(spec: SuiteSpec, *, seed: int, kind: str) -> TableSuite:
    if not spec.arg:
        example = f"{kind}:tasks.{'csv' if kind == 'table' else 'jsonl'}"
        raise ValueError(f"{kind} needs a path, e.g. {example}; got {spec.text!r}")
    mapping = TableMapping.of(spec)
    tasks = load_table_tasks(spec.arg, mapping, suite=kind)
    if mapping.sample:
        by_family: dict[str, list[int]] = {}
        for i, t in enumerate(tasks):
            by_family.setdefault(t.family, []).append(i)
        keep = {i for ids in by_family.values() for i in sample_indices(ids, mapping.sample, seed)}
        tasks = [t for i, t in enumerate(tasks) if i in keep]
    return TableSuite(spec.text, tasks, judge=mapping.judge)


@suite(
    "table",
    forms=("table:PATH?question=COL&answer=COL&judge=JUDGE (csv, tsv, jsonl, parquet, a datasets folder)",),
    summary="your own tasks from a table, columns mapped to task fields; reward = em, f1, pm, llm or your function",
    variants=QASuite.JUDGES,
    options=OPTIONS,
)
def table(spec: SuiteSpec, *, n: int, seed: int) -> TableSuite:
    return table_suite(spec, seed=seed, kind="table")


@suite(
    "jsonl",
    forms=("jsonl:PATH or jsonl+JUDGE:PATH (JUDGE: em, f1, pm, llm; table options after ?)",),
    summary="your own question/answer lines (attached files, answer kinds); reward = exact match or JUDGE",
    variants=QASuite.JUDGES,
    options=OPTIONS,
)
def jsonl(spec: SuiteSpec, *, n: int, seed: int) -> TableSuite:
    if spec.option.get("format", "jsonl") != "jsonl":
        raise ValueError(f"suite {spec.text!r}: jsonl reads JSONL; use table: for another format")
    as_jsonl = dataclasses.replace(spec, options=(*spec.options, ("format", "jsonl")))
    return table_suite(spec if "format" in spec.option else as_jsonl, seed=seed, kind="jsonl")

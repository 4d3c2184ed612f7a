"""Question/answer suites: the suite judged by string judges or the LLM (``QASuite``; your own tables
build on it in ``table_suite``, which also reads ``jsonl`` lines) and the DeepResearcher questions of the Memento seed data. Cheap judges first; the LLM judge only where
exact match cannot settle it (see ``judges.cheap_first``)."""

from __future__ import annotations

import importlib
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from memento_lab.jsonl import FormatError, read_jsonl
from memento_lab.tasks.base import JudgeContext, Suite, Task, gold_answers, sample_indices
from memento_lab.tasks.judges import cheap_first
from memento_lab.trace import JudgeVerdict, LLMCall

ANSWER_SPLIT = "<|answer_split|>"


def __getattr__(name: str) -> Any:
    """``load_jsonl_tasks`` moved to ``table_suite`` (a JSONL file is a table); it is still found here,
    with a DeprecationWarning, until the next release."""
    if name != "load_jsonl_tasks":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "load_jsonl_tasks moved to memento_lab.tasks.table_suite (this path goes in the next release)",
        DeprecationWarning,
        stacklevel=2,
    )
    return importlib.import_module("memento_lab.tasks.table_suite").load_jsonl_tasks


class QASuite(Suite):
    """Questions with gold answers read from a JSONL file; reward = the chosen string or LLM judge."""

    JUDGES = ("em", "f1", "pm", "llm")

    def __init__(self, name: str, tasks: list[Task], *, judge: str = "em"):
        if judge not in self.JUDGES:
            raise ValueError(f"unknown judge {judge!r}; choose one of {', '.join(self.JUDGES)}")
        self.name, self._tasks, self.judge = name, tasks, judge

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        if self.judge == "llm" and (ctx is None or ctx.judge is None):
            raise ValueError(f"suite {self.name} is judged by an LLM: pass JudgeContext(judge=client)")
        return await cheap_first(
            task.question,
            answer,
            gold_answers(task),
            ctx.judge if ctx else None,
            judge=self.judge,
            audit=bool(ctx and ctx.llm_judge),
            calls=calls,
        )


def task_files(obj: dict[str, Any], path: Path, line: int) -> list[str]:
    """A line's optional ``"file"`` (a string) or ``"files"`` (a list), relative to the task file's folder."""
    out = []
    for field in ("file", "files"):
        value = obj.get(field)
        if value is None:
            continue
        names = [value] if field == "file" else value
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            kind = "a non-empty string" if field == "file" else "a list of non-empty strings"
            raise FormatError(path, line, f"must be {kind}", field=field)
        for name in names:
            target = (path.parent / name).resolve()
            if not target.is_file():
                raise FormatError(path, line, f"attached file {name!r} not found at {target}", field=field)
            out.append(str(target))
    return out


def deepresearcher_path() -> Path:
    """The DeepResearcher question file in the shared seed data, or a FileNotFoundError saying where to put it."""
    from memento_lab.config import shared_seed_dir

    d = shared_seed_dir()
    path = d / "deepresearcher.jsonl" if d else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            "deepresearcher.jsonl not found: expected ../shared/data/memento-seed/deepresearcher.jsonl "
            "beside the project (or pass deepresearcher:PATH)"
        )
    return path


def load_deepresearcher(path: str | Path | None = None, *, n: int = 10, seed: int = 0) -> list[Task]:
    """``n`` seeded questions per data source (nq, tq, popqa, hotpotqa, 2wiki, musique, Bamboogle)."""
    path = Path(path) if path else deepresearcher_path()
    if not path.is_file():
        raise FileNotFoundError(f"DeepResearcher file {path} does not exist")
    by_source: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for line, obj in read_jsonl(path):
        for field in ("question", "ground_truth"):
            if not isinstance(obj.get(field), str) or not obj[field].strip():
                raise FormatError(path, line, "missing or not a non-empty string", field=field)
        by_source[str(obj.get("data_source") or "unknown")].append((line, obj))
    out = []
    for source, rows in by_source.items():
        for k in sample_indices(list(range(len(rows))), n, seed):
            line, obj = rows[k]
            aliases = [a.strip() for a in obj["ground_truth"].split(ANSWER_SPLIT) if a.strip()]
            out.append(
                Task(
                    id=f"dr:{path.stem}:{line}",
                    question=obj["question"],
                    answer=aliases[0],
                    family=source,
                    suite="deepresearcher",
                    metadata={"aliases": aliases, "file": str(path), "line": line},
                )
            )
    return sorted(out, key=lambda t: t.metadata["line"])


class DeepResearcherSuite(QASuite):
    """Open-domain questions; reward = exact match to an alias when there is one, else Memento's LLM
    judge when a client is given, else F1."""

    def __init__(self, tasks: list[Task], *, name: str = "deepresearcher"):
        super().__init__(name, tasks, judge="f1")

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        client = ctx.judge if ctx is not None else None
        return await cheap_first(
            task.question,
            answer,
            gold_answers(task),
            client,
            judge="f1" if client is None else "llm",
            audit=bool(ctx and ctx.llm_judge),
            calls=calls,
        )

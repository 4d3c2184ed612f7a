"""Your own judge: a Python function named by import path, scoring one answer to one task.

    def close_enough(answer: str | None, task: Task) -> float | bool | JudgeVerdict: ...

    judge = load_judge_function("my_pkg.judges:close_enough")     # or "judges.py:close_enough"
    verdict = await judge_with(judge, task, answer)

The function gets the answer (``None`` when the episode gave none) and the task (its gold answer,
``gold_answers(task)`` for aliases, and ``task.metadata["columns"]``: the row's other columns). It
returns a score in 0..1 (``True``/``False`` count as 1/0; correct means 1) or a ``JudgeVerdict``;
it may be ``async``. A function that raises or returns anything else is a ``JudgeError``: a judge
failure is never a score.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memento_lab.tasks.base import Task
from memento_lab.trace import JudgeError, JudgeVerdict

JudgeFunction = Callable[[str | None, Task], Any]


def is_import_path(text: str) -> bool:
    """``module.path:function`` or ``file.py:function`` (what names a judge function)."""
    module, colon, name = text.rpartition(":")
    return bool(colon and module and name.isidentifier())


def load_judge_function(ref: str) -> JudgeFunction:
    """The function ``ref`` names: ``package.module:function``, or ``path/to/file.py:function``
    (relative to the working folder). A ValueError says what could not be found."""
    module_name, _, attr = ref.rpartition(":")
    if not module_name or not attr.isidentifier():
        raise ValueError(f"judge {ref!r}: name a function as module.path:function or file.py:function")
    try:
        if module_name.endswith(".py"):
            module = _module_from_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except (ImportError, OSError, SyntaxError) as e:
        raise ValueError(f"judge {ref!r}: cannot import {module_name}: {type(e).__name__}: {e}") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"judge {ref!r}: {module_name} has no function {attr!r}")
    return fn


def _module_from_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    name = f"memento_lab_judge_{path.resolve().stem}_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def judge_name(fn: JudgeFunction) -> str:
    """The name a function's verdicts carry (``judge`` in the rows and the agreement table)."""
    return getattr(fn, "__name__", None) or type(fn).__name__


async def judge_with(fn: JudgeFunction, task: Task, answer: str | None) -> JudgeVerdict:
    """The function's verdict on ``answer``; anything but a score in 0..1, a bool or a verdict is a JudgeError."""
    name = judge_name(fn)
    try:
        result = fn(answer, task)
        if inspect.isawaitable(result):
            result = await result
    except Exception as e:
        raise JudgeError(f"judge {name} raised on task {task.id}: {type(e).__name__}: {e}") from e
    if isinstance(result, JudgeVerdict):
        return result
    if isinstance(result, bool):
        return JudgeVerdict(judge=name, score=float(result), correct=result)
    if isinstance(result, int | float) and 0.0 <= float(result) <= 1.0:
        return JudgeVerdict(judge=name, score=float(result), correct=float(result) >= 1.0)
    raise JudgeError(
        f"judge {name} returned {result!r} on task {task.id}: a score in 0..1, a bool or a JudgeVerdict"
    )

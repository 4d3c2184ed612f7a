"""BFCL multi-turn tasks as bfcl-eval ships them: entries, ground truth, function docs, live instances.

Shared by the MCP server (``servers/bfcl.py``, which serves one task's tools) and the suite
(``memento_lab.tasks.bfcl``, which checks the final state). Everything is read from the
``bfcl-eval`` wheel (installed with ``--no-deps`` plus ``mpmath``); nothing is downloaded.

Subsets: ``base`` and ``long_context`` (the same kind of tasks over long states). ``miss_param``
and ``miss_func`` are left out: they hold back a parameter or a function until a later turn, and
an episode that sees every turn at once (``memento_lab.tasks.bfcl``) would make them trivial.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
from importlib import resources
from typing import Any

SUBSETS = {
    "base": "multi_turn_base",
    "long_context": "multi_turn_long_context",
}
DATA_VERSION = "BFCL_v4"


def _require() -> None:
    import importlib.util

    if importlib.util.find_spec("bfcl_eval") is None:
        raise ModuleNotFoundError(
            "the BFCL suite needs bfcl-eval: pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0 "
            "(make install does this)"
        )


def _data_file(*parts: str) -> Any:
    _require()
    return resources.files("bfcl_eval").joinpath("data", *parts)


def category_of(task_id: str) -> str:
    """``multi_turn_base_12`` -> ``multi_turn_base``."""
    return task_id.rsplit("_", 1)[0]


@functools.cache
def entries(category: str) -> list[dict[str, Any]]:
    """The tasks of one category (``multi_turn_base`` ...), in the file's order."""
    if category not in SUBSETS.values():
        raise ValueError(f"unknown BFCL category {category!r}; known: {sorted(SUBSETS.values())}")
    text = _data_file(f"{DATA_VERSION}_{category}.json").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@functools.cache
def ground_truth(category: str) -> dict[str, list[list[str]]]:
    """Task id -> the ground-truth call strings, one list per turn."""
    text = _data_file("possible_answer", f"{DATA_VERSION}_{category}.json").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {r["id"]: r["ground_truth"] for r in rows}


def entry(task_id: str) -> dict[str, Any]:
    """One task by its BFCL id, e.g. ``multi_turn_base_0``."""
    for e in entries(category_of(task_id)):
        if e["id"] == task_id:
            return e
    raise KeyError(f"no BFCL task {task_id!r} in {category_of(task_id)}")


@functools.cache
def func_docs(class_name: str) -> list[dict[str, Any]]:
    """BFCL's own function documentation of one class (name, description, parameters)."""
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    text = _data_file("multi_turn_func_doc", MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name]).read_text(
        encoding="utf-8"
    )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def available_functions(task: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(class name, function doc) of every function the task offers (its excluded ones removed)."""
    excluded = set(task.get("excluded_function") or [])
    return [
        (cls, doc)
        for cls in task["involved_classes"]
        for doc in func_docs(cls)
        if doc["name"] not in excluded
    ]


_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}


def json_schema(bfcl: dict[str, Any]) -> dict[str, Any]:
    """A BFCL parameter schema (``"type": "dict"``, ``float``, ``tuple``, ``any``) as JSON Schema."""
    out: dict[str, Any] = {}
    for key, value in bfcl.items():
        if key == "type":
            mapped = _TYPES.get(value, value)
            if mapped is not None:
                out["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key in ("description", "required", "enum", "default"):
            out[key] = value
    return out


def instantiate(task: dict[str, Any]) -> dict[str, Any]:
    """Fresh instances of the task's classes loaded with its initial configuration (as bfcl-eval's
    ``execute_multi_turn_func_call`` builds them, long states for the long_context category)."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING, STATELESS_CLASSES

    long_context = "long_context" in category_of(task["id"])
    out = {}
    for cls in task["involved_classes"]:
        instance = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[cls]), cls)()
        if cls not in STATELESS_CLASSES:
            config = copy.deepcopy(task["initial_config"].get(cls, {}))
            instance._load_scenario(config, long_context=long_context)
        out[cls] = instance
    return out


def bfcl_version() -> str:
    from importlib.metadata import version

    _require()
    return version("bfcl-eval")

"""One remembered episode (``Case``) and its parts; the bank that stores cases is ``cases.CaseBank``.

A case's question, answer and plan are each limited to ``max_case_chars()`` characters
(env ``MEMENTO_MAX_CASE_CHARS``, default 100 000): a bigger one is a validation error naming the field.
Every number in a case is finite (reward, ``created_at``, any float in ``metadata``): NaN or infinity
is a validation error naming the field, since JSON cannot carry it and a bank holding one could no
longer be read back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memento_lab.jsonl import validate_record
from memento_lab.trace import PlanStep, now

Label = Literal["positive", "negative"]
# What an answer is: a short string (reasoning-gym, QA), a program with an entry point (HumanEval),
# free text, or a structured value (JSON, a list...). The agent loop and the memory follow it.
AnswerKind = Literal["short", "program", "text", "value"]
DEFAULT_THRESHOLD = 0.5
MAX_CHARS_ENV = "MEMENTO_MAX_CASE_CHARS"
DEFAULT_MAX_CHARS = 100_000  # a case's question, answer or plan; embedding 50 MB took 56 s and 3.5 GB


def max_case_chars() -> int:
    """The largest question, answer or plan (characters) a case may hold: env ``MEMENTO_MAX_CASE_CHARS``."""
    raw = os.environ.get(MAX_CHARS_ENV)
    try:
        return int(raw) if raw else DEFAULT_MAX_CHARS
    except ValueError:
        raise ValueError(f"{MAX_CHARS_ENV}={raw!r} is not an integer") from None


def non_finite(value: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinite float inside ``value`` (dicts and lists), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def label_for(reward: float, threshold: float = DEFAULT_THRESHOLD) -> Label:
    """A case is positive when its reward reaches the threshold."""
    return "positive" if reward >= threshold else "negative"


class Trajectory(BaseModel):
    """A summary of how the episode went: which tools, what each step returned."""

    tools_used: list[str] = Field(default_factory=list)
    step_results: list[str] = Field(default_factory=list)


class Source(BaseModel):
    """Where a case came from."""

    benchmark: str | None = None
    split: str | None = None
    run_id: str | None = None
    iteration: int | None = None
    family: str | None = None
    task_id: str | None = None


class Case(BaseModel):
    """One remembered episode: the task, the plan, the answer, how it went, and how well."""

    model_config = ConfigDict(allow_inf_nan=False)  # reward, created_at: "should be a finite number"

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    question: str
    plan: list[PlanStep] = Field(default_factory=list)
    answer: str | None = None
    trajectory: Trajectory = Field(default_factory=Trajectory)
    reward: float
    label: Label
    source: Source = Field(default_factory=Source)
    created_at: float = Field(default_factory=now)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("reward")
    @classmethod
    def _reward_in_range(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"reward must be within 0..1, got {v}")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata_finite(cls, v: dict[str, Any]) -> dict[str, Any]:
        where = non_finite(v)
        if where is not None:
            raise ValueError(f"{where} is not a finite number")
        return v

    @field_validator("question")
    @classmethod
    def _question_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @field_validator("question", "answer")
    @classmethod
    def _text_within_limit(cls, v: str | None) -> str | None:
        limit = max_case_chars()
        if v is not None and len(v) > limit:
            raise ValueError(f"{len(v)} characters, over the limit of {limit} ({MAX_CHARS_ENV})")
        return v

    @field_validator("plan")
    @classmethod
    def _plan_within_limit(cls, v: list[PlanStep]) -> list[PlanStep]:
        size, limit = sum(len(s.description) for s in v), max_case_chars()
        if size > limit:
            raise ValueError(f"{size} characters of steps, over the limit of {limit} ({MAX_CHARS_ENV})")
        return v

    @classmethod
    def from_episode(
        cls, question: str, reward: float, *, threshold: float = DEFAULT_THRESHOLD, **fields: Any
    ) -> Case:
        """Build a case from an episode; the label follows from the reward and threshold."""
        return cls(question=question, reward=reward, label=label_for(reward, threshold), **fields)

    @property
    def plan_json(self) -> str:
        """The plan in the original Memento format ``{"plan": [{"id", "description"}]}``."""
        return json.dumps({"plan": [s.model_dump() for s in self.plan]}, ensure_ascii=False)

    @property
    def positive(self) -> bool:
        return self.label == "positive"


def content_id(*parts: str) -> str:
    """A stable id from content, so re-importing the same record yields the same id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def validate_case(obj: dict[str, Any], path: str | Path, line: int | None) -> Case:
    """Validate a dict as a Case; errors name the file, line and first bad field."""
    return validate_record(Case, obj, path, line)

"""The shapes of the planner's and executor's replies: the plan schema, the direct answer's schema, the
``respond`` pseudo-tool, and the tolerant parse of a planner reply (schema output or free text)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from memento_lab.trace import PlanStep

if TYPE_CHECKING:
    from memento_lab.agent.models.llm import ChatResult


def plan_schema(*, allow_final: bool, max_steps: int) -> dict[str, Any]:
    """The planner's JSON reply. Without ``allow_final`` (the first cycle) the plan must have a step
    and ``final_answer`` must stay empty: a model that also wrote an answer there (small coder models
    write the whole program) spent tokens on text the loop ignores."""
    step = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["id", "description"],
    }
    plan: dict[str, Any] = {"type": "array", "items": step, "maxItems": max_steps}
    final: dict[str, Any] = {"type": "string"}
    if not allow_final:
        plan["minItems"] = 1
        final = {"type": "string", "enum": [""]}
    return {
        "type": "object",
        "properties": {"plan": plan, "final_answer": final},
        "required": ["plan", "final_answer"],
    }


def final_schema(kind: str) -> dict[str, Any] | None:
    """The JSON schema of a direct answer, or ``None`` for a program (one fenced code block, checked after)."""
    if kind == "program":
        return None
    return {
        "type": "object",
        "properties": {"final_answer": {"type": "string"}},
        "required": ["final_answer"],
    }


RESPOND_TOOL = {
    "type": "function",
    "function": {
        "name": "respond",
        "description": "Finish the current step and report its result to the planner.",
        "parameters": {
            "type": "object",
            "properties": {"result": {"type": "string", "description": "the result of the step"}},
            "required": ["result"],
        },
    },
}


def parse_planner_reply(result: ChatResult) -> tuple[list[PlanStep], str | None]:
    """Plan steps and/or a final answer from a planner reply (schema output or free text)."""
    data = result.parsed
    text = result.content or ""
    if data is None:
        m = re.search(r"FINAL ANSWER:\s*(.+)", text, flags=re.S)
        if m:
            return [], m.group(1).strip()
        fenced = re.search(r"\{[\s\S]*\}", text)
        if not fenced:
            raise ValueError(f"planner reply is neither a JSON plan nor 'FINAL ANSWER:': {text[:200]!r}")
        data = json.loads(fenced.group(0))
    if not isinstance(data, dict):
        raise ValueError(f"planner reply is not a JSON object: {text[:200]!r}")
    steps = [
        PlanStep(id=int(s.get("id", i + 1)), description=str(s["description"]))
        for i, s in enumerate(data.get("plan") or [])
        if isinstance(s, dict) and s.get("description")
    ]
    final = data.get("final_answer")
    final = str(final).strip() if final not in (None, "") else None
    return steps, final

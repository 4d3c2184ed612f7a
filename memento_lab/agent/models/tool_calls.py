"""Reading small models' replies tolerantly: a JSON object in a fence, a ``<tool_call>`` tag or bare
text; tool calls forced through a JSON schema (one branch per tool) and checked against the tools."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from memento_lab.agent.prompts import turn


@dataclass
class ToolCallRequest:
    """A tool call the model asked for."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


_FENCE = re.compile(r"```(?:json|JSON)?\s*([\s\S]*?)```")
_TAG = re.compile(r"<tool_call>\s*([\s\S]*?)\s*</tool_call>")


def _first_object(text: str) -> str | None:
    """The first balanced ``{...}`` in text (string-aware), or None."""
    start = text.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                esc = (ch == "\\") and not esc
                if ch == '"' and not esc:
                    in_str = False
                continue
            if ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def parse_json_reply(text: str | None) -> dict[str, Any] | None:
    """A JSON object from a reply that may wrap it in a code fence, ``<tool_call>`` tags or prose."""
    if not text:
        return None
    candidates = [text.strip(), *_TAG.findall(text), *_FENCE.findall(text)]
    obj = _first_object(text)
    if obj:
        candidates.append(obj)
    for cand in candidates:
        try:
            data = json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema that only admits a call of one of ``tools`` with that tool's arguments."""
    branches = []
    for t in tools:
        fn = t["function"]
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        branches.append(
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": [fn["name"]]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def validate_tool_call(data: Any, tools: list[dict[str, Any]]) -> ToolCallRequest:
    """A ``{"name", "arguments"}`` object checked against the offered tools (ValueError says why not)."""
    if not isinstance(data, dict):
        raise ValueError(f"malformed tool call: expected a JSON object, got {type(data).__name__}")
    names = [t["function"]["name"] for t in tools]
    name = data.get("name")
    args = data.get("arguments", data.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed tool call: arguments of {name!r} are not valid JSON: {e}") from e
    if name not in names:
        raise ValueError(f"malformed tool call: unknown tool {name!r} (offered: {', '.join(names)})")
    if not isinstance(args, dict):
        raise ValueError(
            f"malformed tool call: arguments of {name!r} must be an object, got {type(args).__name__}"
        )
    required = (
        next(t for t in tools if t["function"]["name"] == name)["function"]
        .get("parameters", {})
        .get("required", [])
    )
    missing = [r for r in required if r not in args]
    if missing:
        raise ValueError(f"malformed tool call: {name!r} is missing required argument(s) {missing}")
    return ToolCallRequest(name=str(name), arguments=args, id=data.get("id"))


def with_tool_listing(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools described inside the first system message. Keeping the listing at the front keeps
    the prompt prefix identical across the calls of an episode, so llama.cpp reuses its KV cache
    (prompt processing, ~50 tokens/s on 2 cores, is most of a small model's latency)."""
    listing = "\n".join(f"- {t['function']['name']}: {t['function'].get('description', '')}" for t in tools)
    text = turn("tool_listing").format(listing=listing)
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]

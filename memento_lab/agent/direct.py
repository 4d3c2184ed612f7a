"""The model alone: the ``direct`` and ``direct-instant`` profiles, the baselines every method is
measured against.

    messages = direct_messages("direct", "short", memory_block, question)
    answer = final_answer_of(reply, "short")     # the marked last line, or None (an unusable reply)

``direct``: the model may reason first and ends its reply with a last line ``Final answer: …``, from
which the answer is taken (``final_answer_of``); a reply without one is the model's unusable output (a
counted model-output error of an ``ok`` episode), never an infrastructure failure. ``direct-instant``:
the answer at once, constrained to a JSON ``{"final_answer"}`` — what a multiple-choice control wants,
and the only direct profile before the reasoned one (measured on reasoning-gym with the embedded 1.5B
model it scored less than half of ``direct``: docs/agent.md). A program is one fenced block in both
(``direct`` may reason before it); the code is taken out of the reply.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Literal

from memento_lab.agent.plans import final_schema
from memento_lab.agent.prompts import answer_rules, load_prompt, turn
from memento_lab.trace import Message, PlanCycle

if TYPE_CHECKING:
    from memento_lab.agent.episode import Episode
    from memento_lab.agent.models.llm import LLMs

DirectProfile = Literal["direct", "direct-instant"]
NO_FINAL_LINE = "the reply has no usable final answer line (`Final answer: ...`)"

# "Final answer: x" at the start of a line (after bold, a heading, a list mark), or anywhere as
# "final answer: x" / "final answer is x"; the last one counts
_MARK = re.compile(
    r"(?:^[^\w\n]*final[ _]answer\b(?:\s+is\b)?|\bfinal[ _]answer\**\s*[:：=]|\bfinal answer is\b)(?:-+>|=>|[\s*:：=#])*",
    re.I | re.M,
)
_JSON_ANSWER = re.compile(r"\{[^{}]*\"final_answer\"[^{}]*\}")
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_PLACEHOLDER = re.compile(r"<[^<>]{0,30}>|\.\.\.|…|\[answer\]", re.I)


def _clean(text: str, kind: str) -> str | None:
    """An answer without the decoration around it: ``\\boxed{}``, bold, backticks, ``$``, a fence, a
    trailing full stop (a short answer); ``None`` when nothing (or only a placeholder) is left."""
    text = text.strip()
    boxed = _BOXED.search(text)
    if boxed:
        text = boxed.group(1)
    text = re.sub(r"^```\w*\n?|\n?```$", "", text.strip()).strip()
    if _PLACEHOLDER.fullmatch(text.strip("*`$ ")):
        return None
    if kind == "short":
        text = text.strip("*`$ ").removesuffix(".").strip("*`$ ")
    if not text or _PLACEHOLDER.fullmatch(text):
        return None
    return text


def _json_answer(reply: str) -> str | None:
    """The ``final_answer`` of a JSON object in the reply (a model that answered in JSON anyway)."""
    for found in reversed(_JSON_ANSWER.findall(reply)):
        try:
            data = json.loads(found)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("final_answer") is not None:
            return str(data["final_answer"])
    return None


def final_answer_of(reply: str | None, kind: str = "short") -> str | None:
    """The answer of a reasoned reply: a JSON ``{"final_answer": ...}`` in it, else what follows its
    last final-answer mark (a short answer: the rest of that line, else the next non-empty line; text
    or a value: the rest of the reply), else the last ``\\boxed{...}``; ``None`` when the reply marks
    no answer."""
    if not reply or not reply.strip():
        return None
    answer = _json_answer(reply)
    if answer is not None:
        return _clean(answer, kind)
    marks = list(_MARK.finditer(reply))
    if marks:
        rest = reply[marks[-1].end() :]
        if kind == "short":
            lines = [ln for ln in rest.splitlines() if ln.strip().strip("*`")]
            rest = lines[0] if lines else ""
        return _clean(rest, kind)
    boxed = _BOXED.findall(reply)
    return _clean(boxed[-1], kind) if boxed else None


def direct_messages(
    profile: DirectProfile, kind: str, memory_block: str, question: str, hint: str | None = None
) -> list[Message]:
    """The direct profile's request: its system prompt (static, so a prefix cache serves it), the
    memory block when memory shows one (``hint``: how the prompt names it; None: past cases), then the
    task (for ``direct``, with a reminder of the final line)."""
    rules = answer_rules(kind)
    name = (
        "direct_instant"
        if profile == "direct-instant"
        else ("direct_program" if kind == "program" else "direct")
    )
    system = load_prompt(name).format(
        cases=(hint or turn("direct_cases")) if memory_block else "",
        direct_rule=rules["instant" if profile == "direct-instant" else "direct"],
    )
    messages: list[Message] = [{"role": "system", "content": system}]
    if memory_block:
        messages.append({"role": "user", "content": memory_block})
    task = turn("task").format(question=question)
    if profile == "direct":
        task += turn("direct_program_reminder" if kind == "program" else "direct_reminder")
    messages.append({"role": "user", "content": task})
    return messages


async def answer_directly(
    llms: LLMs, episode: Episode, memory_block: str, profile: DirectProfile, *, max_tokens: int
) -> PlanCycle:
    """One direct answer of ``episode``'s task (with the memory block), as a planner turn of index 0
    whose ``final_answer`` is the answer (``error``: why there is none)."""
    kind = episode.task.answer_kind
    instant = profile == "direct-instant"
    result = await llms.planner.chat(
        direct_messages(profile, kind, memory_block, episode.question, episode.memory_hint),
        json_schema=final_schema(kind) if instant else None,
        temperature=episode.config.temperature,
        max_tokens=max_tokens,
        schema_name="final_answer",
    )
    answer, error = episode.direct_answer(result, reasoned=not instant)
    return PlanCycle(index=0, final_answer=answer, raw=result.content, error=error, llm=result.call)

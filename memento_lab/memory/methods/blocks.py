"""How a method's memory shows in the prompt: sections of entries fitted to the token budget, and a
past episode as text.

    recall = Recall([Section("Insights:", [Entry(item, "- " + item.text)]), ...])
    text, tokens, shown = await fit(recall, env)

A method returns its entries in priority order (its first section first, best entry first); ``fit``
keeps the whole block when it fits ``env.max_tokens`` and otherwise adds entries greedily in that
order, leaving out whole the ones that do not fit (so the budget drops the least important first).
An entry marked ``clip`` (one long document: a cheatsheet, a playbook) is cut to what is left of the
budget instead. Tokens are counted by the agent's own tokenizer when it has one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from memento_lab.memory.methods.base import MemoryEnv, MemoryItem
from memento_lab.trace import ShownItem, Trace, clip_middle

RESULT_CHARS = 160  # how much of a step result / tool result an episode's text shows
ANSWER_CHARS = 300


@dataclass
class Entry:
    """One shown item (or a piece of text that is no item: ``item`` None) and its score."""

    item: MemoryItem | None
    text: str
    score: float | None = None
    clip: bool = False  # may be cut to fit the rest of the budget


@dataclass
class Section:
    header: str
    entries: list[Entry] = field(default_factory=list)
    footer: str = ""


@dataclass
class Recall:
    """What a method wants to show, in priority order; ``hint`` names it in the direct prompt."""

    sections: list[Section] = field(default_factory=list)
    hint: str | None = None


def render(sections: Sequence[Section], keep: Sequence[Sequence[Entry]]) -> str:
    """The block text of the kept entries of each section (a section with none is left out)."""
    parts = []
    for section, entries in zip(sections, keep, strict=True):
        if not entries:
            continue
        lines = [section.header] if section.header else []
        lines.extend(e.text.rstrip() for e in entries)
        if section.footer:
            lines.append(section.footer)
        parts.append("\n".join(lines))
    return "\n\n".join(parts).strip()


async def fit(recall: Recall, env: MemoryEnv) -> tuple[str, int, list[Entry]]:
    """(block text, its tokens, the entries shown, in priority order) within ``env.max_tokens``."""
    sections = recall.sections
    full = [list(s.entries) for s in sections]
    text = render(sections, full)
    if not text:
        return "", 0, []
    tokens = await env.count_tokens(text)
    if env.max_tokens is None or tokens <= env.max_tokens:
        return text, tokens, [e for es in full for e in es]
    keep: list[list[Entry]] = [[] for _ in sections]
    text, tokens, shown = "", 0, []
    for si, section in enumerate(sections):
        for entry in section.entries:
            keep[si].append(entry)
            candidate = render(sections, keep)
            n = await env.count_tokens(candidate)
            if n <= env.max_tokens:
                text, tokens = candidate, n
                shown.append(entry)
                continue
            keep[si].pop()
            if entry.clip:
                clipped = await _clip_to(entry, sections, keep, si, env)
                if clipped is not None:
                    keep[si].append(clipped)
                    text = render(sections, keep)
                    tokens = await env.count_tokens(text)
                    shown.append(clipped)
    return text, tokens, shown


async def _clip_to(
    entry: Entry, sections: Sequence[Section], keep: list[list[Entry]], si: int, env: MemoryEnv
) -> Entry | None:
    """The longest head of ``entry`` (binary search on characters) that keeps the block in budget."""
    assert env.max_tokens is not None
    lo, hi, best = 1, len(entry.text), None
    while lo <= hi:
        mid = (lo + hi) // 2
        trial = Entry(entry.item, entry.text[:mid].rstrip() + " …", entry.score, clip=True)
        keep[si].append(trial)
        fits = await env.count_tokens(render(sections, keep)) <= env.max_tokens
        keep[si].pop()
        if fits:
            best, lo = trial, mid + 1
        else:
            hi = mid - 1
    return best


def shown_items(entries: Sequence[Entry]) -> list[ShownItem]:
    """The items of the shown entries, ranked in the order shown."""
    items = [(e.item, e.score) for e in entries if e.item is not None]
    return [ShownItem(id=i.id, kind=i.kind, score=s, rank=r) for r, (i, s) in enumerate(items)]


def episode_text(trace: Trace, *, style: str = "full", answer: bool = True) -> str:
    """A past episode as a method quotes it: the task, the plan (``qa+plan``, ``full``), each step's
    tool calls and result (``full``), a direct answer's reasoning, and the answer."""
    lines = [f"Task: {trace.question}"]
    plans = [c for c in trace.cycles if c.plan]
    if style != "qa":
        for cycle in plans:
            lines.extend(f"  Step {s.id}: {s.description}" for s in cycle.plan)
    if style == "full":
        for step in trace.steps:
            for call in step.tool_calls:
                args = json.dumps(call.arguments, ensure_ascii=False)
                lines.append(f"  {call.name}({clip_middle(args, 120)})")
            if step.result:
                lines.append(f"  Result of step {step.step_id}: {clip_middle(step.result, RESULT_CHARS)}")
        reasoning = [
            c.raw for c in trace.cycles if not c.plan and c.raw and not c.raw.lstrip().startswith("{")
        ]
        if reasoning:
            lines.append(f"  Reasoning: {clip_middle(' '.join(reasoning[-1].split()), 400)}")
    if answer:
        lines.append(f"Answer: {clip_middle(str(trace.final_answer or ''), ANSWER_CHARS)}")
    return "\n".join(lines)


def outcome_text(reward: float, success: bool) -> str:
    return f"Outcome: {'success' if success else 'failure'} (reward {reward:.2f})"

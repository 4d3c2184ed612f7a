"""How retrieved cases show in a prompt: the memory block, in a chosen style and within a token budget.

    block, tokens = await render_memory(retrieved, template, style="qa", max_tokens=200, count=client.count_tokens)

Styles: ``qa`` (question and answer), ``qa+plan`` (+ the plan), ``full`` (+ the step results; the
default). For the planner, positive cases show as examples, negative ones as warnings ("Wrong
answer"); with ``outcomes`` (the direct profiles' block) every case is a past case in retrieval order,
labelled with its outcome — solved or failed (with its score when partial) — and the answer given. With a
budget, cases are added in retrieval order while the block stays within ``max_tokens`` (counted by
the model's own tokenizer when it has one); a case that does not fit is left out whole, and the
cases shown are returned so the trace records what the model really saw.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from memento_lab.memory.bank.case import Case
from memento_lab.memory.retrieval.retrievers import Retrieved

PROMPT_ANSWER_CHARS = 300  # how much of a past answer / step result a prompt example shows
PROMPT_PROGRAM_CHARS = 1500  # how much of a past program a prompt example shows (its code, lines kept)
CaseStyle = Literal["qa", "qa+plan", "full"]
CASE_STYLES = ("qa", "qa+plan", "full")
TokenCounter = Callable[[str], Awaitable[int]]


def estimate_tokens(text: str) -> int:
    """About 4 characters a token: the fallback when the model offers no tokenizer."""
    return (len(text) + 3) // 4


async def _estimate(text: str) -> int:
    return estimate_tokens(text)


async def render_memory(
    retrieved: Sequence[Retrieved],
    template: str,
    *,
    style: CaseStyle = "full",
    max_tokens: int | None = None,
    count: TokenCounter | None = None,
    outcomes: bool = False,
) -> tuple[str, int, list[Retrieved]]:
    """(memory block, its tokens, the cases it shows): every case, or as many as fit ``max_tokens``."""
    count = count or _estimate
    if not retrieved:
        return "", 0, []
    shown = list(retrieved)
    block = format_cases(shown, template, style=style, outcomes=outcomes)
    tokens = await count(block)
    if max_tokens is None or tokens <= max_tokens:
        return block, tokens, shown
    shown, block, tokens = [], "", 0
    for r in retrieved:  # greedy in retrieval order: the best-ranked cases first
        candidate = format_cases([*shown, r], template, style=style, outcomes=outcomes)
        n = await count(candidate)
        if n <= max_tokens:
            shown, block, tokens = [*shown, r], candidate, n
    return block, tokens, shown


def format_cases(
    retrieved: Sequence[Retrieved], template: str, *, style: CaseStyle = "full", outcomes: bool = False
) -> str:
    """The memory block: for the planner, positive cases as examples and negative ones as warnings;
    with ``outcomes``, every case in retrieval order labelled with its outcome (``{cases}``)."""
    if outcomes:
        listed = "\n".join(
            _example(i, r.case, good=r.case.positive, style=style, outcome=True)
            for i, r in enumerate(retrieved, 1)
        )
        return template.format(cases=listed).strip()
    pos = [r.case for r in retrieved if r.case.positive]
    neg = [r.case for r in retrieved if not r.case.positive]
    return template.format(
        positive_header=f"Successful past cases ({len(pos)}):" if pos else "",
        positive="\n".join(_example(i, c, good=True, style=style) for i, c in enumerate(pos, 1)),
        negative_header=f"Failed past cases ({len(neg)}) - avoid these patterns:" if neg else "",
        negative="\n".join(_example(i, c, good=False, style=style) for i, c in enumerate(neg, 1)),
    ).strip()


def outcome_of(case: Case) -> str:
    """How a past case ended, as the direct prompt labels it: solved, or failed (with a partial score)."""
    if case.positive:
        return "solved"
    return f"failed, score {case.reward:.2f}" if 0.0 < case.reward < 1.0 else "failed"


def _example(i: int, case: Case, *, good: bool, style: CaseStyle = "full", outcome: bool = False) -> str:
    lines = [f"Case {i} ({outcome_of(case)}):" if outcome else f"Case {i}:", f"Task: {case.question}"]
    if case.plan and style != "qa":
        lines.append("Plan:")
        lines.extend(f"  {s.id}. {s.description}" for s in case.plan)
    program = is_program(case)
    if (
        style == "full" and good and case.trajectory.step_results and not program
    ):  # a program's worth is its code
        lines.append("Step results: " + " | ".join(_clip(r, 120) for r in case.trajectory.step_results))
    if case.answer:
        # "Wrong answer" says it: a 1.5B model shown "Answer given: C (failed)" repeated C 13 times in 14
        # (positive control, docs/agent.md); shown "Wrong answer: C" under this header, 1 in 14
        said = "Answer" if good else "Wrong answer"
        lines.append(f"{said}: {format_answer(case)}")
    elif outcome:
        lines.append("Answer: none")
    return "\n".join(lines) + "\n"


def is_program(case: Case) -> bool:
    """Whether the case's answer is a program (its metadata says so, or, for older banks, it is a
    fenced code block)."""
    kind = case.metadata.get("answer_kind")
    return kind == "program" or (kind is None and (case.answer or "").lstrip().startswith("```"))


def format_answer(
    case: Case, *, chars: int = PROMPT_ANSWER_CHARS, program_chars: int = PROMPT_PROGRAM_CHARS
) -> str:
    """A case's answer as a prompt shows it: a program as its code with its lines (clipped to
    ``program_chars``), anything else on one line clipped to ``chars``."""
    answer = case.answer or ""
    if not is_program(case):
        return _clip(answer, chars)
    code = answer.strip()
    if len(code) > program_chars:
        code = code[: program_chars - 1].rstrip() + "…\n```"
    return "\n" + code


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"

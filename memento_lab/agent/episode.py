"""The work of one episode: what it is about (question, answer kind, entry point) and the programs
it produced, each checked on the task's visible examples, so the final answer can be the work.

    episode = Episode(question, kind="program", entry_point="add")
    candidate, check = await check_program(toolbox_call, episode, code, cycle=0, step_id=1)
    best = choose_program(episode.candidates, planner_pick("step 1", episode.candidates))
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memento_lab.agent import answers
from memento_lab.agent.answers import AnswerKind
from memento_lab.trace import ToolCall

if TYPE_CHECKING:
    from memento_lab.agent.suite_base import Task

CODE_TOOL = "run_python"  # the code server's tool: programs are run and checked with it
CallTool = Callable[[str, dict[str, Any]], Awaitable[ToolCall]]


@dataclass
class Candidate:
    """A program the episode produced (by a step, or the planner's own) and how it did on the
    task's visible examples (``total`` 0: the task shows none, or they could not be run)."""

    cycle: int
    step_id: int  # 0: written by the planner
    code: str
    passed: int = 0
    total: int = 0

    @property
    def status(self) -> str:
        if not self.total:
            return "not checked: the task shows no runnable examples"
        if self.passed == self.total:
            return f"passes all {self.total} visible examples"
        return f"FAILS visible examples: {self.passed}/{self.total} pass"

    @property
    def score(self) -> float:
        return self.passed / self.total if self.total else 0.0


def choose_program(candidates: list[Candidate], preferred: Candidate | None) -> Candidate | None:
    """The program to answer with: the planner's choice unless another candidate passes strictly
    more of the visible examples; without a choice, the best (latest on ties)."""
    if not candidates:
        return preferred
    best = max(reversed(candidates), key=lambda c: c.score)  # reversed: the latest wins ties
    if preferred is None or best.score > preferred.score:
        return best
    return preferred


def planner_pick(final: str | None, candidates: list[Candidate]) -> Candidate | None:
    """The candidate a planner's ``"step N"`` answer names (the latest step with that id)."""
    m = re.fullmatch(r"\W*(?:the\s+)?(?:code\s+(?:of|from)\s+)?step\s*(\d+)\W*", final or "", flags=re.I)
    if not m:
        return None
    step = int(m.group(1))
    return next((c for c in reversed(candidates) if c.step_id == step), None)


@dataclass
class Episode:
    """What one episode is about, and the programs it produced so far."""

    question: str
    kind: AnswerKind = "short"
    entry_point: str | None = None
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def program(self) -> bool:
        return self.kind == "program" and self.entry_point is not None

    def step_code(self, cycle: int, step_id: int) -> Candidate | None:
        """The latest program of one step."""
        return next((c for c in reversed(self.candidates) if (c.cycle, c.step_id) == (cycle, step_id)), None)


async def check_program(
    call_tool: CallTool | None, episode: Episode, code: str, *, cycle: int, step_id: int
) -> tuple[Candidate, ToolCall | None]:
    """``code`` as a candidate, with the task's visible examples run on it through the code tool
    (``call_tool`` ``None``: no code tool, nothing is run)."""
    candidate = Candidate(cycle=cycle, step_id=step_id, code=code)
    script = answers.examples_script(code, episode.question)
    if script is None or call_tool is None:
        return candidate, None
    check = await call_tool(CODE_TOOL, {"code": script})
    counts = answers.parse_examples_report(check.result or check.error)
    total = len(answers.visible_examples(episode.question))
    candidate.passed, candidate.total = counts if counts else (0, total)
    return candidate, check


def task_fields(task: Task | str) -> tuple[str, str, str | None]:
    """(id, question, gold answer) of a suite task, or of a bare question (an ad-hoc id, no answer)."""
    if isinstance(task, str):
        return "adhoc:" + hashlib.sha256(task.encode()).hexdigest()[:12], task, None
    return task.id, task.question, task.answer


def clean_answer(answer: Any) -> str | None:
    """A final answer without surrounding space or a leading "FINAL ANSWER:" (None when empty)."""
    if answer is None:
        return None
    text = str(answer).strip()
    text = re.sub(r"^FINAL ANSWER:\s*", "", text, flags=re.I)
    return text or None


def with_attachments(question: str, files: Sequence[str]) -> str:
    """The task as the model sees it: the question, and the names of the files copied into its workspace."""
    if not files:
        return question
    return f"{question}\n\nAttached files (in your workspace): {', '.join(Path(f).name for f in files)}"

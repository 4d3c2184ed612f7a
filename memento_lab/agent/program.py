"""Program episodes: the executor writes the whole function, the loop checks it, the answer is the work.

    episode = ProgramEpisode(agent, task, trace)       # the loop's episode for answer_kind "program"
    candidate, check = await check_program(call_tool, question, code, cycle=0, step_id=1)
    best = choose_program(candidates, planner_pick("step 1", candidates))

The executor writes the whole function as a fenced block (code in a JSON tool call came out worse);
the code tool runs the task's visible (docstring) examples on it and failures go back to the executor
to fix. Every program is kept as a ``Candidate`` with how it did. A step whose program passes every
visible example ends the episode (``accept_passing_program``); otherwise the planner sees each step's
code and status and names a step (``"step N"``) or writes its own, and a candidate passing strictly
more examples wins.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memento_lab.agent.episode import Episode, clean_answer
from memento_lab.agent.prompts import turn
from memento_lab.tasks import answers
from memento_lab.trace import ExecStep, Message, PlanStep, ToolCall, clip_middle

if TYPE_CHECKING:
    from memento_lab.agent.loop import Agent
    from memento_lab.agent.models.llm import ChatResult
    from memento_lab.tasks.base import Task
    from memento_lab.trace import Trace

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


async def check_program(
    call_tool: CallTool | None, question: str, code: str, *, cycle: int, step_id: int
) -> tuple[Candidate, ToolCall | None]:
    """``code`` as a candidate, with the visible examples of ``question`` run on it through the code
    tool (``call_tool`` ``None``: no code tool, nothing is run)."""
    candidate = Candidate(cycle=cycle, step_id=step_id, code=code)
    script = answers.examples_script(code, question)
    if script is None or call_tool is None:
        return candidate, None
    check = await call_tool(CODE_TOOL, {"code": script})
    counts = answers.parse_examples_report(check.result or check.error)
    total = len(answers.visible_examples(question))
    candidate.passed, candidate.total = counts if counts else (0, total)
    return candidate, check


class ProgramEpisode(Episode):
    """An episode whose answer is a program with an entry point, kept and checked as it is written."""

    def __init__(self, agent: Agent, task: Task, trace: Trace):
        super().__init__(agent, task, trace)
        self.entry_point = task.entry_point or ""
        self.candidates: list[Candidate] = []

    def step_code(self, cycle: int, step_id: int) -> Candidate | None:
        """The latest program of one step."""
        return next((c for c in reversed(self.candidates) if (c.cycle, c.step_id) == (cycle, step_id)), None)

    def _code_tool(self) -> CallTool | None:
        return self.agent.call_tool if CODE_TOOL in self.agent.tool_names else None

    # ------------------------------------------------------------------ the planner's side
    @property
    def planner_tokens(self) -> int:
        return self.config.program_max_tokens

    @property
    def max_steps(self) -> int:
        return self.config.program_max_steps

    async def forced_final(self, messages: list[Message]) -> ChatResult:
        return await self.agent.llms.planner.final_answer(messages, max_tokens=self.planner_tokens)

    def report(self, step: ExecStep) -> str:
        """The step's result and its code, with how the code did on the visible examples."""
        text = super().report(step)
        code = self.step_code(step.cycle, step.step_id)
        if code is None:
            return text
        clipped = clip_middle(code.code, self.config.program_chars)
        return text + turn("step_code").format(step_id=step.step_id, status=code.status, code=clipped)

    def after_step(self, step: ExecStep) -> tuple[bool, str | None]:
        """A step whose program passes every visible example ends the cycle: with that program as the
        answer (``accept_passing_program``), else for the planner to decide."""
        done = self.step_code(step.cycle, step.step_id)
        if done is None or not done.total or done.passed < done.total:
            return False, None
        return True, answers.program_answer(done.code) if self.config.accept_passing_program else None

    async def answer(self, final: str | None, cycle: int) -> str | None:
        """The chosen program as a fenced block: the step the planner names, or the planner's own code
        (checked like the rest), unless another candidate passes more examples."""
        preferred = planner_pick(final, self.candidates)
        own = answers.extract_program(final, self.entry_point)
        if preferred is None and own is not None:  # the planner wrote its own: check it like the rest
            preferred, check = await check_program(
                self._code_tool(), self.question, own, cycle=cycle, step_id=0
            )
            if check is not None and self.trace.steps:
                self.trace.steps[-1].tool_calls.append(check)
        chosen = choose_program(self.candidates, preferred)
        return answers.program_answer(chosen.code) if chosen is not None else final

    async def out_of_cycles(self) -> str | None:
        return await self.answer(None, self.config.max_cycles) if self.candidates else None

    # ------------------------------------------------------------------ the executor's side
    async def execute(self, step: PlanStep, cycle: int) -> ExecStep:
        """The executor writes the whole function, the code tool runs the visible examples on it, and
        failures go back to fix, within ``max_tool_calls`` turns."""
        cfg = self.config
        t0 = time.perf_counter()
        es = ExecStep(cycle=cycle, step_id=step.id, description=step.description)
        ask = turn("program_step").format(
            context=self.context(), description=step.description, entry_point=self.entry_point
        )
        messages: list[Message] = [
            {"role": "system", "content": self.agent.prompt("executor_program")},
            {"role": "user", "content": ask},
        ]
        for _ in range(cfg.max_tool_calls):
            result = await self.agent.llms.executor.chat(
                messages, temperature=cfg.temperature, max_tokens=cfg.program_max_tokens
            )
            es.llm_calls.append(result.call)
            if result.error:
                es.error = result.error
                break
            kept = await self._keep(es, result.content)
            messages.append({"role": "assistant", "content": result.content})
            if kept is None:
                messages.append(
                    {"role": "user", "content": turn("program_again").format(entry_point=self.entry_point)}
                )
            elif kept.total and kept.passed < kept.total:
                messages.append(self._fix_request(es, kept))
            else:
                break
        latest = self.step_code(es.cycle, es.step_id)
        if latest is not None:
            es.result = turn("program_written").format(entry_point=self.entry_point, status=latest.status)
        elif not es.error:
            es.error = f"the executor wrote no function {self.entry_point}()"
        es.duration_s = time.perf_counter() - t0
        return es

    def _fix_request(self, es: ExecStep, kept: Candidate) -> Message:
        """The failing examples of the step's program, back to the executor to fix."""
        check = es.tool_calls[-1] if es.tool_calls else None
        report = (check.result or check.error or "") if check else ""
        report = clip_middle(report, self.config.tool_result_chars)
        return {"role": "user", "content": turn("program_fix").format(status=kept.status, report=report)}

    async def _keep(self, es: ExecStep, text: str) -> Candidate | None:
        """Keep the program in ``text`` as a candidate of this step, checked on the task's visible
        examples (the check is a tool call of the step)."""
        code = answers.extract_program(text, self.entry_point)
        if code is None:
            return None
        candidate, check = await check_program(
            self._code_tool(), self.question, code, cycle=es.cycle, step_id=es.step_id
        )
        if check is not None:
            es.tool_calls.append(check)
        self.candidates.append(candidate)
        return candidate

    # ------------------------------------------------------------------ the direct profile
    def direct_answer(self, result: ChatResult) -> tuple[str | None, str | None]:
        """One fenced block that must define the entry point (no JSON)."""
        code = answers.extract_program(result.content, self.entry_point)
        answer = answers.program_answer(code) if code else clean_answer(result.content)
        return answer, result.error or (None if code else f"the reply defines no {self.entry_point}()")

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

The loop starts from what the model answers alone (``start_from_direct``): the program of
``program_start`` (``direct-instant`` by default: on code it scored higher than reasoning first), checked on the visible examples, ends the episode when it passes them all (or when there is
nothing to check it with); otherwise it is the first executor attempt of the first step (the plan is a
hint for fixing it), fix turns are sampled (a greedy fix repeats the mistake it was shown), and a
program of the loop replaces it only when it passes strictly more examples: the loop answers no worse
than the model alone on what can be checked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memento_lab.agent.episode import DIRECT_CYCLE, Episode, clean_answer
from memento_lab.agent.prompts import turn
from memento_lab.tasks import answers
from memento_lab.trace import ExecStep, Message, PlanStep, ToolCall, clip_middle

if TYPE_CHECKING:
    from memento_lab.agent.direct import DirectProfile
    from memento_lab.agent.loop import Agent
    from memento_lab.agent.models.llm import ChatClient, ChatResult, LLMs
    from memento_lab.tasks.base import Task
    from memento_lab.trace import Trace

CODE_TOOL = "run_python"  # the code server's tool: programs are run and checked with it
CallTool = Callable[[str, dict[str, Any]], Awaitable[ToolCall]]


@dataclass
class Candidate:
    """A program the episode produced (by a step, or the planner's own) and how it did on the
    task's visible examples (``total`` 0: the task shows none, or they could not be run)."""

    cycle: int  # DIRECT_CYCLE: the model's direct answer the loop started from
    step_id: int  # 0: written by the planner (or the direct answer)
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
    more of the visible examples; without a choice, the best (latest on ties); and the direct answer
    the loop started from unless the choice passes strictly more than it."""
    if not candidates:
        return preferred
    best = max(reversed(candidates), key=lambda c: c.score)  # reversed: the latest wins ties
    chosen = best if preferred is None or best.score > preferred.score else preferred
    direct = next((c for c in candidates if c.cycle == DIRECT_CYCLE), None)
    return direct if direct is not None and direct.score >= chosen.score else chosen


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

    def __init__(self, agent: Agent, task: Task, trace: Trace, llms: LLMs | None = None):
        super().__init__(agent, task, trace, llms)
        self.entry_point = task.entry_point or ""
        self.candidates: list[Candidate] = []
        self.direct_start: tuple[ExecStep, Candidate] | None = (
            None  # a failing direct answer, until a step starts from it
        )

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

    def direct_tokens(self, profile: str) -> int:
        """A program at once, or with the reasoning before it."""
        return self.planner_tokens + (0 if profile == "direct-instant" else self.config.direct_max_tokens)

    @property
    def start_profile(self) -> DirectProfile:
        """A program's first attempt: ``program_start`` (the program at once, by default)."""
        return self.config.program_start

    async def start(self, memory_block: str) -> str | None:
        """The model's direct answer, checked on the visible examples (a step of cycle ``DIRECT_CYCLE``):
        the episode's answer when it passes them all or nothing can check it; else the first attempt
        of the first program step."""
        if not self.config.start_from_direct:
            return None
        es = await self.answer_alone(memory_block)
        kept = await self._keep(es, self.direct_reply) if es.error is None else None
        if kept is None:
            return None
        es.result = turn("program_written").format(entry_point=self.entry_point, status=kept.status)
        if not kept.total or kept.passed == kept.total:
            return answers.program_answer(kept.code)
        self.direct_start = (es, kept)
        return None

    async def examples_score(self, answer: str | None) -> float | None:
        """The share of the visible examples the answer's program passes (``None``: nothing to run)."""
        code = answers.extract_program(answer, self.entry_point)
        if code is None:
            return None
        known = next((c for c in reversed(self.candidates) if c.code.strip() == code.strip()), None)
        if known is None:
            es = ExecStep(cycle=self.config.max_cycles, step_id=0, description=turn("answer_check"))
            known = await self._keep(es, answers.program_answer(code))
            if es.tool_calls:
                self.trace.steps.append(es)
        return known.score if known is not None and known.total else None

    async def forced_final(self, messages: list[Message]) -> ChatResult:
        return await self.llms.planner.final_answer(messages, max_tokens=self.planner_tokens)

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
        fixing = self.direct_start is not None  # the first step starts from the direct answer
        if self.direct_start is not None:
            direct_step, direct = self.direct_start
            messages.append({"role": "assistant", "content": answers.program_answer(direct.code)})
            messages.append(self._fix_request(direct_step, direct))
            self.direct_start = None
        for turn_index in range(cfg.max_tool_calls):
            result = await self._executor(fixing, turn_index).chat(
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
                fixing = True
            else:
                break
        latest = self.step_code(es.cycle, es.step_id)
        if latest is not None:
            es.result = turn("program_written").format(entry_point=self.entry_point, status=latest.status)
        elif not es.error:
            es.error = f"the executor wrote no function {self.entry_point}()"
        es.duration_s = time.perf_counter() - t0
        return es

    def _executor(self, fixing: bool, turn_index: int) -> ChatClient:
        """The executor of a turn: a fix turn samples (``sample_temperature``, one seed per turn) when
        the loop starts from the direct answer and the episode is not sampled already."""
        executor = self.llms.executor
        if not fixing or not self.config.start_from_direct or executor.sampling is not None:
            return executor
        return executor.sampled(self.config.sample_temperature, seed=turn_index)

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
    def direct_answer(self, result: ChatResult, *, reasoned: bool = False) -> tuple[str | None, str | None]:
        """One fenced block that must define the entry point (no JSON; reasoning before it is left out)."""
        code = answers.extract_program(result.content, self.entry_point)
        answer = answers.program_answer(code) if code else clean_answer(result.content)
        return answer, result.error or (None if code else f"the reply defines no {self.entry_point}()")

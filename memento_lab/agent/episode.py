"""One task's episode: how its steps run and how its answer is chosen, for an answer in words.

    episode = Episode(agent, task, trace)        # ProgramEpisode (program.py) when the task wants a program
    es = await episode.execute(step, cycle)     # the executor's work on one plan step
    answer = await episode.answer(final, cycle) # the planner's final answer, as the episode's answer

The agent loop (``loop.py``) drives the planner's cycles and asks the episode for everything that
depends on the kind of answer: token budgets, the executor's turn, what the planner sees of a step,
when a step ends the episode, the forced final turn and the direct profile's answer. ``Episode`` is
an answer in words (short, text, value): the executor works with tools in a tool-calling loop.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memento_lab.agent.direct import NO_FINAL_LINE, DirectProfile, answer_directly, final_answer_of
from memento_lab.agent.plans import RESPOND_TOOL
from memento_lab.agent.prompts import turn
from memento_lab.tasks.base import Task
from memento_lab.trace import ExecStep, Message, PlanStep, Trace, clip_middle

if TYPE_CHECKING:
    from memento_lab.agent.loop import Agent
    from memento_lab.agent.models.llm import ChatResult, LLMs


DIRECT_CYCLE = -1  # the cycle of the direct answer the loop starts from (before the planner's first turn)


def as_task(task: Task | str) -> Task:
    """A suite's task as it is, a bare question as an ad-hoc task (``Task.of_question``)."""
    return Task.of_question(task) if isinstance(task, str) else task


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


class Episode:
    """An episode whose answer is words (short, text or value). ``llms``: the models it calls (the
    agent's, or the same sampling for one attempt of several)."""

    def __init__(self, agent: Agent, task: Task, trace: Trace, llms: LLMs | None = None):
        self.agent, self.task, self.trace = agent, task, trace
        self.llms = llms if llms is not None else agent.llms
        self.config = agent.config
        self.question = with_attachments(task.question, task.files)  # the task as the models see it
        self.direct: ExecStep | None = None  # the model's direct answer the planner is shown
        self.direct_reply = ""  # the reply it came in (its reasoning)
        self.memory_hint: str | None = None  # how the direct prompt names the memory block (None: cases)

    # ------------------------------------------------------------------ the planner's side
    @property
    def planner_tokens(self) -> int:
        return self.config.planner_max_tokens

    @property
    def max_steps(self) -> int:
        """Plan steps executed per cycle."""
        return self.config.max_steps

    def direct_tokens(self, profile: str) -> int:
        """The budget of a direct answer: at once (the planner's), or reasoned first."""
        return self.planner_tokens if profile == "direct-instant" else self.config.direct_max_tokens

    async def forced_final(self, messages: list[Message]) -> ChatResult:
        """The planner's last turn, when the cycles are spent: a constrained final answer."""
        return await self.llms.planner.final_answer(messages)

    def report(self, step: ExecStep) -> str:
        """What the planner and later steps see of an executed step."""
        return step.report(self.config.step_result_chars)

    def conversation(self, memory_block: str) -> list[Message]:
        """The planner's view of the episode so far, rendered from its records: the memory block, the
        task, then each cycle's plan followed by the reports of its steps."""
        messages: list[Message] = [{"role": "user", "content": memory_block}] if memory_block else []
        messages.append({"role": "user", "content": turn("task").format(question=self.question)})
        if self.direct is not None and self.direct.result:
            reasoning = clip_middle(self.direct_reply, self.config.step_result_chars)
            hint = turn("direct_hint").format(answer=self.direct.result, reasoning=reasoning)
            messages.append({"role": "user", "content": hint})
        for cycle in self.trace.cycles:
            messages.extend(cycle.to_messages())
            messages.extend(
                {"role": "user", "content": self.report(s)}
                for s in self.trace.steps
                if s.cycle == cycle.index
            )
        return messages

    async def start(self, memory_block: str) -> str | None:
        """Before the planner's first turn (``start_from_direct``): the model's direct answer, recorded as
        a step of cycle ``DIRECT_CYCLE`` and shown to the planner, who may keep it at once or plan to
        do better. An answer returned here ends the episode (a program's: ``program.py``)."""
        if self.config.start_from_direct:
            self.direct = await self.answer_alone(memory_block)
        return None

    @property
    def start_profile(self) -> DirectProfile:
        """The direct profile the loop starts from: words reason first (``direct``)."""
        return "direct"

    async def answer_alone(self, memory_block: str) -> ExecStep:
        """The start profile's answer (the same request), as a step of cycle ``DIRECT_CYCLE``."""
        profile = self.start_profile
        cycle = await answer_directly(
            self.llms, self, memory_block, profile, max_tokens=self.direct_tokens(profile)
        )
        es = ExecStep(
            cycle=DIRECT_CYCLE,
            step_id=0,
            description=turn("direct_attempt"),
            result=cycle.final_answer or "",
            error=cycle.error,
            llm_calls=[cycle.llm] if cycle.llm is not None else [],
        )
        self.trace.steps.append(es)
        self.direct_reply = cycle.raw
        return es

    def may_answer(self, cycle: int) -> bool:
        """Whether the planner may answer in this turn without a plan: after its first cycle, or at once
        when it was shown the model's own answer."""
        return cycle > 0 or (self.direct is not None and bool(self.direct.result))

    def after_step(self, step: ExecStep) -> tuple[bool, str | None]:
        """Whether the cycle ends after ``step`` and, if the step settled it, the episode's answer."""
        return False, None

    async def answer(self, final: str | None, cycle: int) -> str | None:
        """The episode's answer from the planner's final answer (``cycle``: the planner turn that gave it)."""
        return final

    async def out_of_cycles(self) -> str | None:
        """The answer when the cycles ended without a final answer."""
        return None

    # ------------------------------------------------------------------ the executor's side
    def context(self) -> str:
        """What the executor knows of the episode: the task, and the reports of the steps so far."""
        done = [self.report(s) for s in self.trace.steps if s.cycle != DIRECT_CYCLE]
        results = turn("results_so_far").format(results="\n".join(done)) if done else ""
        return turn("overall_task").format(question=self.question) + results

    async def execute(self, step: PlanStep, cycle: int) -> ExecStep:
        """The executor carries out one plan step with the tools: a tool-calling loop with a budget,
        ended by the pseudo-tool ``respond`` (else a forced report of the step's result)."""
        cfg, executor = self.config, self.llms.executor
        t0 = time.perf_counter()
        es = ExecStep(cycle=cycle, step_id=step.id, description=step.description)
        messages: list[Message] = [
            {"role": "system", "content": self.agent.executor_prompt},
            {
                "role": "user",
                "content": turn("step").format(context=self.context(), description=step.description),
            },
        ]
        toolbox = self.agent.current_tools()
        tools = [*(toolbox.openai_tools() if toolbox else []), RESPOND_TOOL]
        seen: set[str] = set()
        for _ in range(cfg.max_tool_calls):
            result = await executor.call_tool(messages, tools)
            es.llm_calls.append(result.call)
            if result.error or not result.tool_calls:
                es.error = result.error or "the executor made no tool call"
                break
            call = result.tool_calls[0]
            if call.name == "respond":
                es.result = str(call.arguments.get("result", "")).strip()
                break
            key = json.dumps([call.name, call.arguments], sort_keys=True)
            if key in seen:  # small models repeat a call instead of answering: make it answer
                break
            seen.add(key)
            tc = await self.agent.call_tool(call.name, call.arguments)
            es.tool_calls.append(tc)
            messages.extend(tc.to_messages(cfg.tool_result_chars))
        if not es.result:
            messages.append({"role": "user", "content": turn("report_step")})
            result = await executor.final_answer(messages)
            es.llm_calls.append(result.call)
            es.result = clean_answer(result.answer) or ""
            if result.error and not es.result:
                es.error = result.error
        es.duration_s = time.perf_counter() - t0
        return es

    # ------------------------------------------------------------------ the direct profiles
    def direct_answer(self, result: ChatResult, *, reasoned: bool = False) -> tuple[str | None, str | None]:
        """(answer, error) of a direct reply: the marked final line of a reasoned one (none: an unusable
        reply), else its JSON ``final_answer``."""
        if not reasoned:
            return clean_answer((result.parsed or {}).get("final_answer")), result.error
        if result.error:
            return None, result.error
        answer = final_answer_of(result.content, self.task.answer_kind)
        return answer, None if answer is not None else NO_FINAL_LINE

    async def examples_score(self, answer: str | None) -> float | None:
        """How an answer did on the task's own visible examples (only a program has them): ``None``."""
        return None

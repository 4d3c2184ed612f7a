"""The Memento agent: retrieve -> plan -> execute -> judge -> write, for one task, in one place.

    trace = await agent.arun(task)        # in a notebook (top-level await) or any coroutine
    trace = agent.run(task)               # in a script (starts its own event loop)

The planner LLM answers with a JSON plan ``{"plan": [{"id", "description"}], "final_answer": ""}``;
the executor LLM carries out each step with MCP tools (a tool-calling loop with a budget, ending
with the pseudo-tool ``respond``); the planner sees the step results and either answers or
re-plans, for at most ``max_cycles`` cycles. The suite's judges score the answer, and the
episode is written to memory. Every call lands in the returned ``Trace``.

Everything that depends on the task's ``answer_kind`` is the episode's (``episode.py``): token
budgets and plan length, the executor's turn, what the planner sees of a step, the forced final
turn, the direct answer. A ``program`` is its own kind of episode (``program.py``): the executor
writes the whole function, the loop checks it on the task's visible examples and the answer is the
work itself. The planner's conversation is rendered from the episode's records each turn (plan
cycles and step reports render their own messages); prompts are files (``prompts/``) and stay
bounded: tool results, step results and code are clipped to budgets. The ``direct`` profile (the
baseline) answers at once with the retrieved cases, constrained to the answer kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from memento_lab.agent.direct import DirectProfile, answer_directly
from memento_lab.agent.episode import Episode, as_task, clean_answer
from memento_lab.agent.memory_slot import memory_env, read_memory, write_memory
from memento_lab.agent.plans import parse_planner_reply, plan_schema
from memento_lab.agent.program import ProgramEpisode
from memento_lab.agent.prompts import answer_rule, final_rule, load_prompt, planner_note
from memento_lab.agent.status import settle
from memento_lab.agent.voting import vote
from memento_lab.asyncio_compat import run_sync
from memento_lab.memory.methods.base import FeedbackSource, MemoryEnv, MemoryMethod
from memento_lab.memory.methods.cases import as_method
from memento_lab.memory.read_write import Memory
from memento_lab.memory.retrieval.render import CaseStyle
from memento_lab.tasks.answers import AnswerKind
from memento_lab.tasks.base import EpisodeServers, JudgeContext, Task
from memento_lab.trace import PlanCycle, ToolCall, Trace

if TYPE_CHECKING:
    from memento_lab.agent.models.cassette import Cassette
    from memento_lab.agent.models.llm import LLMs
    from memento_lab.agent.tools.mcp_client import ToolBox
    from memento_lab.tasks.suites import Suite

__all__ = ["PROFILES", "Agent", "AgentConfig", "Profile", "load_prompt", "open_episode_tools"]

Profile = Literal["planner-executor", "direct", "direct-instant"]
PROFILES: tuple[Profile, ...] = ("planner-executor", "direct", "direct-instant")

_EPISODE_TOOLS: ContextVar[ToolBox | None] = ContextVar("episode_tools", default=None)


@asynccontextmanager
async def open_episode_tools(
    servers: EpisodeServers, base: ToolBox | None = None, cassette: Cassette | None = None
) -> AsyncIterator[ToolBox]:
    """The servers a suite declared for one episode, started fresh, recording into ``cassette`` (else
    that of ``base``, the run's toolbox, whose settings they share)."""
    from memento_lab.agent.tools.mcp_client import ToolBox

    async with ToolBox(
        list(servers.servers),
        env=dict(servers.env),
        cassette=cassette if cassette is not None else (base.cassette if base is not None else None),
        settings=base.settings if base is not None else None,
        cassette_scope=servers.scope,
    ) as tools:
        yield tools


class AgentConfig(BaseModel):
    max_cycles: int = 2  # planner turns that may produce a plan (then a forced final answer)
    max_steps: int = 3  # plan steps executed per cycle
    max_tool_calls: int = 2  # tool calls per step before the executor must respond
    planner_max_tokens: int = 384
    executor_max_tokens: int = 384
    program_max_tokens: int = 768  # a turn that may write a whole program
    tool_result_chars: int = 2000  # how much of a tool result goes back to the model (head + tail)
    step_result_chars: int = 600  # how much of a step's result the planner and later steps see
    program_chars: int = 3000  # how much of a step's code the planner sees
    program_max_steps: int = 1  # plan steps for a program: one step writes, runs and fixes it
    accept_passing_program: bool = True  # a step's program passing every visible example ends the episode
    start_from_direct: bool = True  # the loop starts from the model's direct answer (programs: program.py)
    # the profile of a program's first attempt: at once measured better on code than reasoned first
    # (HumanEval 0-19, the 1.5B model: 0.95 against 0.75, docs/agent.md); words start from direct
    program_start: Literal["direct", "direct-instant"] = "direct-instant"
    temperature: float = 0.0
    # direct: the model alone, reasoning then a final answer line; direct-instant: the answer at once
    profile: Profile = "planner-executor"
    direct_max_tokens: int = 512  # a reasoned direct answer (its reasoning and final line)
    samples: int = Field(1, ge=1)  # self-consistency: attempts sampled per episode, majority vote
    sample_temperature: float = 0.7  # temperature of sampled attempts (and of a program's fix turns)
    memory_style: CaseStyle = "full"  # how a case shows: qa | qa+plan | full (+ step results)
    memory_tokens: int | None = None  # budget of the memory block (None: everything the memory shows)
    feedback: FeedbackSource = "judge"  # what memory learns from: the judge's reward, or also the gold answer


class Agent:
    """Planner + executor + memory + judge around one task."""

    def __init__(
        self,
        llms: LLMs,
        *,
        tools: ToolBox | None = None,
        memory: MemoryMethod | Memory | None = None,
        suite: Suite | None = None,
        judge_ctx: JudgeContext | None = None,
        config: AgentConfig | None = None,
        run_id: str | None = None,
    ):
        self.llms, self.tools, self.suite = llms, tools, suite
        self.memory = as_method(memory)  # a Memory (case bank) is one memory method
        self.judge_ctx = judge_ctx
        self.config = config or AgentConfig()
        self.run_id = run_id
        self.tool_names = [t["function"]["name"] for t in (tools.openai_tools() if tools else [])]
        self.planner_prompt = self.planner_prompt_for("short")
        self.executor_prompt = load_prompt("executor")

    def prompt(self, name: str) -> str:
        """A role prompt of this agent (``prompts/<name>.txt``)."""
        return load_prompt(name)

    def planner_prompt_for(self, kind: AnswerKind) -> str:
        toolbox = self.current_tools()  # the episode's own tools when its suite brings them (BFCL)
        names = [t["function"]["name"] for t in toolbox.openai_tools()] if toolbox else self.tool_names
        prompt = load_prompt("planner").format(
            tools=", ".join(names) or "none", answer_rule=answer_rule(kind)
        )
        return prompt + planner_note(kind)

    # ------------------------------------------------------------------ the loop
    async def arun(
        self, task: Task | str, *, iteration: int = 0, learn: bool = True, drop_case_ids: Collection[str] = ()
    ) -> Trace:
        """Run one episode. ``task`` is a suite ``Task`` or a bare question (then nothing is judged).

        ``learn=False`` leaves memory untouched; ``drop_case_ids`` hides those memory items (cases)
        from this episode (the counterfactual probe: what happens without a case that was shown).
        """
        task = as_task(task)
        async with self._episode_tools(task):
            return await self._episode(task, iteration=iteration, learn=learn, drop_case_ids=drop_case_ids)

    def _judged(self, task: Task) -> bool:
        """Whether the episode is scored (and so may be written): a suite's task, not a bare question."""
        return self.suite is not None and not task.adhoc

    @asynccontextmanager
    async def _episode_tools(self, task: Task) -> AsyncIterator[None]:
        """A suite whose tasks need tools of their own (``Suite.episode_servers``: BFCL's stateful
        instances) gets them opened for this episode; they replace the agent's tools until it ends. A
        context variable keeps concurrent episodes apart."""
        servers = self.suite.episode_servers(task) if self.suite is not None and self._judged(task) else None
        if servers is None:
            yield
            return
        # the run's cassette, which the model clients record into (also when the run has no other tools)
        async with open_episode_tools(servers, self.tools, self.llms.planner.cassette) as tools:
            token = _EPISODE_TOOLS.set(tools)
            try:
                yield
            finally:
                _EPISODE_TOOLS.reset(token)

    def current_tools(self) -> ToolBox | None:
        """The tools of the running episode."""
        episode = _EPISODE_TOOLS.get()
        return episode if episode is not None else self.tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        toolbox = self.current_tools()
        if toolbox is None:
            return ToolCall(server="none", name=name, arguments=arguments, error="no tools are configured")
        return await toolbox.call(name, arguments)

    async def _episode(
        self, task: Task, *, iteration: int, learn: bool, drop_case_ids: Collection[str]
    ) -> Trace:
        t0 = time.perf_counter()
        trace = Trace(
            task_id=task.id,
            question=task.question,
            expected=task.answer,
            run_id=self.run_id,
            iteration=iteration,
            memory_mode=self.memory.mode if self.memory else "none",
            answer_kind=task.answer_kind,
            family=None if task.adhoc else task.family,
            suite=None if task.adhoc else task.suite,
        )
        try:
            # 1. retrieve; 2-3. plan and execute, re-planning with the results (tools work in a fresh
            # folder); or, a direct profile, the model alone; with samples > 1, several attempts voted
            memory_block, hint = await self._retrieve(task, trace, drop_case_ids)
            trace.final_answer = await self._solve(task, trace, memory_block, hint)
        except Exception as e:  # an episode never crashes the run: the failure is its status
            settle(trace, e)
        settle(trace)  # endpoint / tool-server failures are recorded in the calls, not raised
        # 4. judge (an infrastructure failure is not an answer: it is never scored)
        if trace.status == "ok" and self.suite is not None and self._judged(task):
            await self._judge(task, trace)
        trace.latency_s = time.perf_counter() - t0
        # 5. write, once the first attempt is scored (only outcomes of the model: a failed episode is
        # never written); a maintenance call that fails leaves memory as it was, the episode unscored
        if learn and trace.status == "ok" and self.memory is not None and self._judged(task):
            try:
                await write_memory(self.memory, trace, self._memory_env(), feedback=self.config.feedback)
            except Exception as e:
                settle(trace, e)
        return trace

    def _memory_env(self) -> MemoryEnv:
        cfg = self.config
        return memory_env(
            self.llms,
            max_tokens=cfg.memory_tokens,
            style=cfg.memory_style,
            outcomes=cfg.profile != "planner-executor",  # the model alone: past cases with their outcomes
        )

    async def _retrieve(
        self, task: Task, trace: Trace, drop_case_ids: Collection[str]
    ) -> tuple[str, str | None]:
        """The memory block for the task (what it showed is recorded in the trace) and its hint."""
        if self.memory is None:
            return "", None
        block = await read_memory(self.memory, task, trace, self._memory_env(), drop=set(drop_case_ids))
        return block.text, block.hint

    async def _judge(self, task: Task, trace: Trace) -> None:
        assert self.suite is not None
        try:
            ctx = dataclasses.replace(self.judge_ctx or JudgeContext(), tool_calls=list(trace.tool_calls))
            judged = await self.suite.score(task, trace.final_answer, ctx=ctx)
            trace.verdicts, trace.judge_calls, trace.reward = judged.verdicts, judged.calls, judged.reward
            trace.decided_by = judged.decided_by
        except Exception as e:
            settle(trace, e, judging=True)
        settle(trace)

    def run(self, task: Task | str, **kw: Any) -> Trace:
        """Synchronous wrapper for scripts; also works inside a running loop (Jupyter) via
        ``memento_lab.asyncio_compat.run_sync``. In a notebook prefer ``await agent.arun(task)``."""
        return run_sync(self.arun(task, **kw))

    # ------------------------------------------------------------------ attempts
    async def _solve(self, task: Task, trace: Trace, memory_block: str, hint: str | None) -> str | None:
        """The episode's answer: one attempt, or (``samples`` > 1) that many sampled attempts, each
        recorded with its turns and steps tagged by its index, and their vote (``voting.py``)."""
        cfg = self.config
        if cfg.samples <= 1:
            return (await self._attempt(task, trace, memory_block, hint, self.llms))[0]
        answers, scores = [], []
        for i in range(cfg.samples):
            attempt = Trace(task_id=trace.task_id, question=trace.question)
            llms = self.llms.sampled(cfg.sample_temperature, seed=i)
            answer, score = await self._attempt(task, attempt, memory_block, hint, llms, score=True)
            for cycle in attempt.cycles:
                cycle.sample = i
            for step in attempt.steps:
                step.sample = i
            trace.cycles.extend(attempt.cycles)
            trace.steps.extend(attempt.steps)
            answers.append(answer)
            scores.append(score)
        trace.vote = vote(answers, task.answer_kind, scores)
        return answers[trace.vote.chosen]

    async def _attempt(
        self,
        task: Task,
        trace: Trace,
        memory_block: str,
        hint: str | None,
        llms: LLMs,
        *,
        score: bool = False,
    ) -> tuple[str | None, float | None]:
        """One attempt at the task in a fresh tool folder: (answer, with ``score`` how it did on the
        task's visible examples when it has them)."""
        episode = (ProgramEpisode if task.answer_kind == "program" else Episode)(self, task, trace, llms)
        episode.memory_hint = hint
        toolbox = self.current_tools()
        with toolbox.episode(task.files) if toolbox else contextlib.nullcontext():
            if self.config.profile == "planner-executor":
                answer = await self._plan_and_execute(episode, memory_block)
            else:
                answer = await self._answer_directly(episode, memory_block)
            return answer, (await episode.examples_score(answer) if score else None)

    async def _answer_directly(self, episode: Episode, memory_block: str) -> str | None:
        """The model alone (with the memory block): ``direct`` reasons and ends with a final answer
        line, ``direct-instant`` answers at once in JSON; a program is one fenced block (``direct.py``)."""
        profile: DirectProfile = "direct-instant" if self.config.profile == "direct-instant" else "direct"
        cycle = await answer_directly(
            episode.llms, episode, memory_block, profile, max_tokens=episode.direct_tokens(profile)
        )
        episode.trace.cycles.append(cycle)
        return cycle.final_answer

    # ------------------------------------------------------------------ planner
    async def _plan_and_execute(self, episode: Episode, memory_block: str) -> str | None:
        """The planner's cycles: plan, execute the steps, see their reports, answer or plan again; when
        the cycles are spent, a forced final answer."""
        cfg, trace = self.config, episode.trace
        # static system prompt (with the tools) first, then memory, then the task: the longest shared prefix
        system = {"role": "system", "content": self.planner_prompt_for(episode.task.answer_kind)}
        settled = await episode.start(memory_block)
        if settled is not None:
            return settled
        for cycle in range(cfg.max_cycles + 1):
            messages = [system, *episode.conversation(memory_block)]
            if cycle == cfg.max_cycles:  # budget spent: force an answer
                rule = final_rule(episode.task.answer_kind)
                messages.append({"role": "user", "content": load_prompt("final").format(final_rule=rule)})
                result = await episode.forced_final(messages)
                answer = clean_answer(result.answer)
                trace.cycles.append(
                    PlanCycle(
                        index=cycle,
                        final_answer=answer,
                        raw=result.content,
                        error=result.error,
                        llm=result.call,
                    )
                )
                return await episode.answer(answer, cycle)
            schema = plan_schema(allow_final=episode.may_answer(cycle), max_steps=episode.max_steps)
            result = await episode.llms.planner.chat(
                messages, json_schema=schema, temperature=cfg.temperature, max_tokens=episode.planner_tokens
            )
            pc = PlanCycle(index=cycle, raw=result.content, error=result.error, llm=result.call)
            trace.cycles.append(pc)
            if result.error:
                continue
            try:
                pc.plan, pc.final_answer = parse_planner_reply(result)
            except (ValueError, json.JSONDecodeError) as e:
                pc.error = str(e)
                continue
            if pc.final_answer and not pc.plan:
                return await episode.answer(clean_answer(pc.final_answer), cycle)
            for step in pc.plan[: episode.max_steps]:
                es = await episode.execute(step, cycle)
                trace.steps.append(es)
                stop, answer = episode.after_step(es)
                if answer is not None:
                    return answer
                if stop:
                    break  # the planner decides with it
        return await episode.out_of_cycles()

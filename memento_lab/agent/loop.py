"""The Memento agent: retrieve -> plan -> execute -> judge -> write, for one task, in one place.

    trace = await agent.arun(task)        # in a notebook (top-level await) or any coroutine
    trace = agent.run(task)               # in a script (starts its own event loop)

The planner LLM answers with a JSON plan ``{"plan": [{"id", "description"}], "final_answer": ""}``;
the executor LLM carries out each step with MCP tools (a tool-calling loop with a budget, ending
with the pseudo-tool ``respond``); the planner sees the step results and either answers or
re-plans, for at most ``max_cycles`` cycles. The suite's judges score the answer, and the
episode is written to memory. Every call lands in the returned ``Trace``.

The task's ``answer_kind`` runs through the whole loop (``answers.py``): the planner's answer rule
and plan length, the executor's turn, the forced final turn, the judge's input and how memory shows
the case. For a ``program`` the loop keeps the work it did (``episode.py``): the executor writes
the whole function as a fenced block, the loop runs the task's visible (docstring) examples on it
through the code tool, failures go back to the executor to fix, and the final answer is the
program itself: a program passing every visible example ends the episode
(``accept_passing_program``); otherwise the planner sees each step's code and status and names a
step (``"step N"``) or writes its own, and a candidate passing strictly more examples wins.
Prompts stay bounded: tool results, step results and code are clipped to budgets. The ``direct``
profile (the baseline) answers at once with the retrieved cases, constrained to the answer kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from memento_lab.agent import answers
from memento_lab.agent.answers import AnswerKind
from memento_lab.agent.episode import (
    CODE_TOOL,
    Candidate,
    Episode,
    check_program,
    choose_program,
    clean_answer,
    planner_pick,
    task_fields,
    with_attachments,
)
from memento_lab.agent.replies import RESPOND_TOOL, parse_planner_reply, plan_schema
from memento_lab.agent.status import settle
from memento_lab.agent.suite_base import JudgeContext
from memento_lab.asyncio_compat import run_sync
from memento_lab.memory.memory import Memory
from memento_lab.memory.render import CaseStyle, render_memory
from memento_lab.trace import ExecStep, PlanCycle, PlanStep, ToolCall, Trace

if TYPE_CHECKING:
    from memento_lab.agent.llm import LLMs
    from memento_lab.agent.mcp_client import ToolBox
    from memento_lab.agent.suites import Suite, Task


_EPISODE_TOOLS: ContextVar[ToolBox | None] = ContextVar("episode_tools", default=None)


def load_prompt(name: str) -> str:
    """A prompt shipped as package data (``memento_lab/prompts/<name>.txt``)."""
    return resources.files("memento_lab.agent.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


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
    temperature: float = 0.0
    profile: Literal["planner-executor", "direct"] = "planner-executor"  # direct: answer at once, no executor
    memory_style: CaseStyle = "full"  # how a case shows: qa | qa+plan | full (+ step results)
    memory_tokens: int | None = None  # budget of the memory block (None: every retrieved case)


class Agent:
    """Planner + executor + memory + judge around one task."""

    def __init__(
        self,
        llms: LLMs,
        *,
        tools: ToolBox | None = None,
        memory: Memory | None = None,
        suite: Suite | None = None,
        judge_ctx: JudgeContext | None = None,
        config: AgentConfig | None = None,
        run_id: str | None = None,
    ):
        self.llms, self.tools, self.memory, self.suite = llms, tools, memory, suite
        self.judge_ctx = judge_ctx
        self.config = config or AgentConfig()
        self.run_id = run_id
        self.tool_names = [t["function"]["name"] for t in (tools.openai_tools() if tools else [])]
        self.planner_prompt = self.planner_prompt_for("short")
        self.executor_prompt = load_prompt("executor")

    def planner_prompt_for(self, kind: AnswerKind) -> str:
        toolbox = self._tools()  # the episode's own tools when its suite brings them (BFCL)
        names = [t["function"]["name"] for t in toolbox.openai_tools()] if toolbox else self.tool_names
        prompt = load_prompt("planner").format(
            tools=", ".join(names) or "none", answer_rule=answers.answer_rule(kind)
        )
        return prompt + answers.PLANNER_PROGRAM_NOTE if kind == "program" else prompt

    # ------------------------------------------------------------------ the loop
    async def arun(
        self, task: Task | str, *, iteration: int = 0, learn: bool = True, drop_case_ids: Collection[str] = ()
    ) -> Trace:
        """Run one episode. ``task`` is a suite ``Task`` or a bare question (then nothing is judged).

        ``learn=False`` leaves memory untouched; ``drop_case_ids`` hides those cases from this
        episode (the counterfactual probe: what happens without a case that was shown).
        """
        async with self._episode_tools(task):
            return await self._episode(task, iteration=iteration, learn=learn, drop_case_ids=drop_case_ids)

    @asynccontextmanager
    async def _episode_tools(self, task: Task | str) -> AsyncIterator[None]:
        """A suite with per-task tools (``Suite.episode_tools``: BFCL's stateful instances) opens
        them for this episode; they replace the agent's tools until it ends. A context variable
        keeps concurrent episodes apart."""
        opener = getattr(self.suite, "episode_tools", None)
        if opener is None or isinstance(task, str):
            yield
            return
        # the run's cassette, which the model clients record into (also when the run has no other tools)
        async with opener(task, self.tools, getattr(self.llms.planner, "cassette", None)) as tools:
            token = _EPISODE_TOOLS.set(tools)
            try:
                yield
            finally:
                _EPISODE_TOOLS.reset(token)

    def _tools(self) -> ToolBox | None:
        """The tools of the running episode."""
        episode = _EPISODE_TOOLS.get()
        return episode if episode is not None else self.tools

    async def _episode(
        self, task: Task | str, *, iteration: int, learn: bool, drop_case_ids: Collection[str]
    ) -> Trace:
        task_id, question, expected = task_fields(task)
        episode = Episode(
            question=question,
            kind=getattr(task, "answer_kind", "short"),
            entry_point=getattr(task, "entry_point", None),
        )
        t0 = time.perf_counter()
        trace = Trace(
            task_id=task_id,
            question=question,
            expected=expected,
            run_id=self.run_id,
            iteration=iteration,
            memory_mode=self.memory.mode if self.memory else "none",
            family=getattr(task, "family", None),
            suite=getattr(task, "suite", None),
        )
        try:
            # 1. retrieve
            retrieved = self.memory.read(question) if self.memory else []
            retrieved = [r for r in retrieved if r.case.id not in drop_case_ids]
            trace.retrieved = [r.to_trace() for r in retrieved]
            if self.memory:
                trace.bank_version = self.memory.bank.version
                trace.bank_size = len(self.memory.bank)
            memory_block, trace.memory_tokens, shown = await render_memory(
                retrieved,
                load_prompt("memory"),
                style=self.config.memory_style,
                max_tokens=self.config.memory_tokens,
                count=self.llms.planner.count_tokens,
            )
            if len(shown) < len(retrieved):  # the budget left some out: the trace shows what was seen
                trace.retrieved = [r.to_trace() for r in shown]
            # 2-3. plan and execute, re-planning with the results (tools work in a fresh folder); or,
            # profile "direct", answer at once
            files = list(getattr(task, "files", None) or [])
            toolbox = self._tools()
            with toolbox.episode(files) if toolbox else contextlib.nullcontext():
                episode.question = with_attachments(question, files)
                if self.config.profile == "direct":
                    trace.final_answer = await self._answer_directly(episode, memory_block, trace)
                else:
                    trace.final_answer = await self._plan_and_execute(episode, memory_block, trace)
        except Exception as e:  # an episode never crashes the run: the failure is its status
            settle(trace, e)
        settle(trace)  # endpoint / tool-server failures are recorded in the calls, not raised
        # 4. judge (an infrastructure failure is not an answer: it is never scored)
        if trace.status == "ok" and self.suite is not None and not isinstance(task, str):
            try:
                ctx = dataclasses.replace(self.judge_ctx or JudgeContext(), tool_calls=list(trace.tool_calls))
                judged = await self.suite.score(task, trace.final_answer, ctx=ctx)
                trace.verdicts, trace.judge_calls, trace.reward = judged.verdicts, judged.calls, judged.reward
                trace.decided_by = judged.decided_by
            except Exception as e:
                settle(trace, e, judging=True)
            settle(trace)
        trace.latency_s = time.perf_counter() - t0
        # 5. write (only outcomes of the model: a failed episode never becomes a case)
        if (
            learn
            and trace.status == "ok"
            and self.memory is not None
            and self.suite is not None
            and not isinstance(task, str)
        ):
            self.memory.write(
                trace,
                benchmark=getattr(task, "suite", None),
                family=getattr(task, "family", None),
                answer_kind=episode.kind,
            )
        return trace

    def run(self, task: Task | str, **kw: Any) -> Trace:
        """Synchronous wrapper for scripts; also works inside a running loop (Jupyter) via
        ``memento_lab.asyncio_compat.run_sync``. In a notebook prefer ``await agent.arun(task)``."""
        return run_sync(self.arun(task, **kw))

    # ------------------------------------------------------------------ direct baseline
    async def _answer_directly(self, episode: Episode, memory_block: str, trace: Trace) -> str | None:
        """The model answers at once (with the retrieved cases), constrained to the answer kind: a
        JSON ``final_answer``, or for a program one fenced block that must define the entry point."""
        cfg = self.config
        system = load_prompt("direct").format(
            cases=", using the past cases below where they help" if memory_block else "",
            direct_rule=answers.direct_rule(episode.kind),
        )
        messages = [{"role": "system", "content": system}]
        if memory_block:
            messages.append({"role": "user", "content": memory_block})
        messages.append({"role": "user", "content": f"Task: {episode.question}"})
        schema = answers.final_schema(episode.kind)
        result = await self.llms.planner.chat(
            messages,
            json_schema=schema,
            temperature=cfg.temperature,
            max_tokens=cfg.program_max_tokens if episode.program else cfg.planner_max_tokens,
            schema_name="final_answer",
        )
        if episode.program:
            code = answers.extract_program(result.content, episode.entry_point or "")
            answer = answers.program_answer(code) if code else clean_answer(result.content)
            error = result.error or (None if code else f"the reply defines no {episode.entry_point}()")
        else:
            answer = clean_answer((result.parsed or {}).get("final_answer"))
            error = result.error
        trace.cycles.append(
            PlanCycle(index=0, final_answer=answer, raw=result.content, error=error, llm=result.call)
        )
        return answer

    # ------------------------------------------------------------------ planner
    async def _plan_and_execute(self, episode: Episode, memory_block: str, trace: Trace) -> str | None:
        # static system prompt (with the tools) first, then memory, then the task: the longest shared prefix
        history: list[dict[str, str]] = [{"role": "user", "content": memory_block}] if memory_block else []
        history.append({"role": "user", "content": f"Task: {episode.question}"})
        cfg = self.config
        planner_prompt = self.planner_prompt_for(episode.kind)
        max_tokens = cfg.program_max_tokens if episode.program else cfg.planner_max_tokens
        for cycle in range(cfg.max_cycles + 1):
            last = cycle == cfg.max_cycles
            messages = [{"role": "system", "content": planner_prompt}, *history]
            if last:  # budget spent: force an answer
                rule = answers.final_rule(episode.kind)
                messages.append({"role": "user", "content": load_prompt("final").format(final_rule=rule)})
                if episode.program:
                    result = await self.llms.planner.final_answer(messages, max_tokens=max_tokens)
                else:
                    result = await self.llms.planner.final_answer(messages)
                answer = (result.parsed or {}).get("final_answer") if result.parsed else result.content
                pc = PlanCycle(
                    index=cycle,
                    final_answer=clean_answer(answer),
                    raw=result.content,
                    error=result.error,
                    llm=result.call,
                )
                trace.cycles.append(pc)
                return await self._final(episode, clean_answer(answer), cycle, trace)
            max_steps = cfg.program_max_steps if episode.program else cfg.max_steps
            schema = plan_schema(allow_final=cycle > 0, max_steps=max_steps)
            result = await self.llms.planner.chat(
                messages, json_schema=schema, temperature=cfg.temperature, max_tokens=max_tokens
            )
            pc = PlanCycle(index=cycle, raw=result.content, error=result.error, llm=result.call)
            trace.cycles.append(pc)
            if result.error:
                continue
            try:
                steps, final = parse_planner_reply(result)
            except (ValueError, json.JSONDecodeError) as e:
                pc.error = str(e)
                continue
            pc.plan, pc.final_answer = steps, final
            if final and not steps:
                return await self._final(episode, clean_answer(final), cycle, trace)
            history.append(
                {"role": "assistant", "content": json.dumps({"plan": [s.model_dump() for s in steps]})}
            )
            for step in steps[:max_steps]:
                es = await self._execute_step(episode, step, cycle, history)
                trace.steps.append(es)
                history.append({"role": "user", "content": self._step_report(episode, es)})
                done = episode.step_code(cycle, step.id)
                if done is not None and done.total and done.passed == done.total:
                    if cfg.accept_passing_program:  # the work is done: answer with it
                        return answers.program_answer(done.code)
                    break  # the planner decides with it
        return await self._final(episode, None, cfg.max_cycles, trace) if episode.candidates else None

    def _step_report(self, episode: Episode, es: ExecStep) -> str:
        """What the planner (and later steps) see of a step: its result, and for a program its code."""
        cfg = self.config
        text = f"Result of step {es.step_id}: {answers.clip_middle(es.result or es.error or '', cfg.step_result_chars)}"
        code = episode.step_code(es.cycle, es.step_id)
        if code is not None:
            clipped = answers.clip_middle(code.code, cfg.program_chars)
            text += f"\nCode of step {es.step_id} ({code.status}):\n```python\n{clipped}\n```"
        return text

    async def _final(self, episode: Episode, final: str | None, cycle: int, trace: Trace) -> str | None:
        """The answer of the episode: the planner's, or for a program the chosen program as a fenced block."""
        if not episode.program:
            return final
        entry = episode.entry_point or ""
        preferred = planner_pick(final, episode.candidates)
        own = answers.extract_program(final, entry)
        if preferred is None and own is not None:  # the planner wrote its own: check it like the rest
            preferred, check = await check_program(self._code_tool(), episode, own, cycle=cycle, step_id=0)
            if check is not None and trace.steps:
                trace.steps[-1].tool_calls.append(check)
        chosen = choose_program(episode.candidates, preferred)
        return answers.program_answer(chosen.code) if chosen is not None else final

    # ------------------------------------------------------------------ executor
    async def _execute_step(
        self, episode: Episode, step: PlanStep, cycle: int, history: list[dict[str, str]]
    ) -> ExecStep:
        cfg = self.config
        t0 = time.perf_counter()
        es = ExecStep(cycle=cycle, step_id=step.id, description=step.description)
        done = [m["content"] for m in history if m["content"].startswith("Result of step")]
        context = f"Overall task: {episode.question}\n" + (
            "Results so far:\n" + "\n".join(done) + "\n" if done else ""
        )
        if episode.program:
            return await self._program_step(episode, es, context, step, t0)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.executor_prompt},
            {"role": "user", "content": f"{context}\nYour step: {step.description}"},
        ]
        toolbox = self._tools()
        tools = [*(toolbox.openai_tools() if toolbox else []), RESPOND_TOOL]
        seen: set[str] = set()
        for _ in range(cfg.max_tool_calls):
            result = await self.llms.executor.call_tool(messages, tools)
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
            tc = await self._call_tool(call.name, call.arguments)
            es.tool_calls.append(tc)
            messages.append(
                {"role": "assistant", "content": json.dumps({"name": call.name, "arguments": call.arguments})}
            )
            outcome = f"ERROR: {tc.error}" if tc.error else (tc.result or "")
            outcome = answers.clip_middle(outcome, cfg.tool_result_chars)
            messages.append({"role": "user", "content": f"Result of {call.name}: {outcome}"})
        if not es.result:
            messages.append({"role": "user", "content": "Now report the result of your step."})
            result = await self.llms.executor.final_answer(messages)
            es.llm_calls.append(result.call)
            answer = (result.parsed or {}).get("final_answer") if result.parsed else result.content
            es.result = clean_answer(answer) or ""
            if result.error and not es.result:
                es.error = result.error
        es.duration_s = time.perf_counter() - t0
        return es

    async def _program_step(
        self, episode: Episode, es: ExecStep, context: str, step: PlanStep, t0: float
    ) -> ExecStep:
        """A program step: the executor writes the whole function as a fenced block (code in a JSON tool
        call came out worse), the code tool runs the visible examples on it, failures go back to fix."""
        cfg = self.config
        ask = (
            f"Your step: {step.description}\nWrite the complete function {episode.entry_point} (with its "
            "imports) for the overall task, doing this step, in one ```python code block."
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": load_prompt("executor_program")},
            {"role": "user", "content": f"{context}\n{ask}"},
        ]
        for _ in range(cfg.max_tool_calls):
            result = await self.llms.executor.chat(
                messages, temperature=cfg.temperature, max_tokens=cfg.program_max_tokens
            )
            es.llm_calls.append(result.call)
            if result.error:
                es.error = result.error
                break
            kept = await self._keep_program(episode, es, result.content)
            messages.append({"role": "assistant", "content": result.content})
            if kept is None:
                again = f"Reply with the complete function {episode.entry_point} in one ```python code block."
                messages.append({"role": "user", "content": again})
            elif kept.total and kept.passed < kept.total:
                messages.append(self._fix_request(es, kept))
            else:
                break
        latest = episode.step_code(es.cycle, es.step_id)
        if latest is not None:
            es.result = f"{episode.entry_point}() written: it {latest.status}."
        elif not es.error:
            es.error = f"the executor wrote no function {episode.entry_point}()"
        es.duration_s = time.perf_counter() - t0
        return es

    def _fix_request(self, es: ExecStep, kept: Candidate) -> dict[str, str]:
        """The failing examples of the step's program, back to the executor to fix."""
        check = es.tool_calls[-1] if es.tool_calls else None
        report = (check.result or check.error or "") if check else ""
        report = answers.clip_middle(report, self.config.tool_result_chars)
        text = (
            f"The task's visible examples, run on your code ({kept.status}):\n{report}\n"
            "Reply with the fixed complete function in one ```python code block."
        )
        return {"role": "user", "content": text}

    async def _keep_program(self, episode: Episode, es: ExecStep, text: str) -> Candidate | None:
        """Keep the program in ``text`` (run code or a reply) as a candidate of this step, checked on
        the task's visible examples (the check is a tool call of the step)."""
        if not episode.program:
            return None
        code = answers.extract_program(text, episode.entry_point or "")
        if code is None:
            return None
        candidate, check = await check_program(
            self._code_tool(), episode, code, cycle=es.cycle, step_id=es.step_id
        )
        if check is not None:
            es.tool_calls.append(check)
        episode.candidates.append(candidate)
        return candidate

    def _code_tool(self) -> Any:
        return self._call_tool if CODE_TOOL in self.tool_names else None

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        toolbox = self._tools()
        if toolbox is None:
            return ToolCall(server="none", name=name, arguments=arguments, error="no tools are configured")
        return await toolbox.call(name, arguments)

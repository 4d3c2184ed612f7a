"""The Memento agent: retrieve -> plan -> execute -> judge -> write, for one task, in one place.

    trace = await agent.arun(task)        # in a notebook (top-level await) or any coroutine
    trace = agent.run(task)               # in a script (starts its own event loop)

The planner LLM answers with a JSON plan ``{"plan": [{"id", "description"}], "final_answer": ""}``;
the executor LLM carries out each step with MCP tools (a tool-calling loop with a budget, ending
with the pseudo-tool ``respond``); the planner sees the step results and either answers or
re-plans, for at most ``max_cycles`` cycles. The suite's judges score the answer, and the
episode is written to memory. Every call lands in the returned ``Trace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Collection, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from memento_lab.agent.status import settle
from memento_lab.memory.memory import Memory, format_cases
from memento_lab.trace import ExecStep, PlanCycle, PlanStep, ToolCall, Trace

if TYPE_CHECKING:
    from memento_lab.agent.llm import ChatResult, LLMs
    from memento_lab.agent.mcp_client import ToolBox
    from memento_lab.agent.suites import JudgeContext, Suite, Task


def load_prompt(name: str) -> str:
    """A prompt shipped as package data (``memento_lab/prompts/<name>.txt``)."""
    return resources.files("memento_lab.agent.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


class AgentConfig(BaseModel):
    max_cycles: int = 2  # planner turns that may produce a plan (then a forced final answer)
    max_steps: int = 3  # plan steps executed per cycle
    max_tool_calls: int = 2  # tool calls per step before the executor must respond
    planner_max_tokens: int = 384
    executor_max_tokens: int = 384
    tool_result_chars: int = 2000  # how much of a tool result goes back to the model
    temperature: float = 0.0
    profile: Literal["planner-executor", "direct"] = "planner-executor"  # direct: answer at once, no executor


def plan_schema(*, allow_final: bool, max_steps: int) -> dict[str, Any]:
    step = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["id", "description"],
    }
    plan: dict[str, Any] = {"type": "array", "items": step, "maxItems": max_steps}
    if not allow_final:
        plan["minItems"] = 1
    return {
        "type": "object",
        "properties": {"plan": plan, "final_answer": {"type": "string"}},
        "required": ["plan", "final_answer"],
    }


RESPOND_TOOL = {
    "type": "function",
    "function": {
        "name": "respond",
        "description": "Finish the current step and report its result to the planner.",
        "parameters": {
            "type": "object",
            "properties": {"result": {"type": "string", "description": "the result of the step"}},
            "required": ["result"],
        },
    },
}


def parse_planner_reply(result: ChatResult) -> tuple[list[PlanStep], str | None]:
    """Plan steps and/or a final answer from a planner reply (schema output or free text)."""
    data = result.parsed
    text = result.content or ""
    if data is None:
        m = re.search(r"FINAL ANSWER:\s*(.+)", text, flags=re.S)
        if m:
            return [], m.group(1).strip()
        fenced = re.search(r"\{[\s\S]*\}", text)
        if not fenced:
            raise ValueError(f"planner reply is neither a JSON plan nor 'FINAL ANSWER:': {text[:200]!r}")
        data = json.loads(fenced.group(0))
    if not isinstance(data, dict):
        raise ValueError(f"planner reply is not a JSON object: {text[:200]!r}")
    steps = [
        PlanStep(id=int(s.get("id", i + 1)), description=str(s["description"]))
        for i, s in enumerate(data.get("plan") or [])
        if isinstance(s, dict) and s.get("description")
    ]
    final = data.get("final_answer")
    final = str(final).strip() if final not in (None, "") else None
    return steps, final


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
        tool_names = [t["function"]["name"] for t in (tools.openai_tools() if tools else [])]
        self.planner_prompt = load_prompt("planner").format(tools=", ".join(tool_names) or "none")
        self.executor_prompt = load_prompt("executor")

    # ------------------------------------------------------------------ the loop
    async def arun(
        self, task: Task | str, *, iteration: int = 0, learn: bool = True, drop_case_ids: Collection[str] = ()
    ) -> Trace:
        """Run one episode. ``task`` is a suite ``Task`` or a bare question (then nothing is judged).

        ``learn=False`` leaves memory untouched; ``drop_case_ids`` hides those cases from this
        episode (the counterfactual probe: what happens without a case that was shown).
        """
        task_id, question, expected = _task_fields(task)
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
            memory_block = format_cases(retrieved, load_prompt("memory")) if retrieved else ""
            # 2-3. plan and execute, re-planning with the results (tools work in a fresh folder); or,
            # profile "direct", answer at once
            files = list(getattr(task, "files", None) or [])
            with self.tools.episode(files) if self.tools else contextlib.nullcontext():
                asked = with_attachments(question, files)
                if self.config.profile == "direct":
                    trace.final_answer = await self._answer_directly(asked, memory_block, trace)
                else:
                    trace.final_answer = await self._plan_and_execute(asked, memory_block, trace)
        except Exception as e:  # an episode never crashes the run: the failure is its status
            settle(trace, e)
        settle(trace)  # endpoint / tool-server failures are recorded in the calls, not raised
        # 4. judge (an infrastructure failure is not an answer: it is never scored)
        if trace.status == "ok" and self.suite is not None and not isinstance(task, str):
            try:
                judged = await self.suite.score(task, trace.final_answer, ctx=self.judge_ctx)
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
                trace, benchmark=getattr(task, "suite", None), family=getattr(task, "family", None)
            )
        return trace

    def run(self, task: Task | str, **kw: Any) -> Trace:
        """Synchronous wrapper for scripts. Inside a running event loop (Jupyter), use ``await agent.arun(task)``."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task, **kw))
        raise RuntimeError(
            "Agent.run() was called inside a running event loop (e.g. a Jupyter cell). "
            "Use `trace = await agent.arun(task)` there instead."
        )

    # ------------------------------------------------------------------ direct answer
    async def _answer_directly(self, question: str, memory_block: str, trace: Trace) -> str | None:
        """Profile ``direct``: the planner answers at once with the retrieved cases (Memento's
        case-based prompting without the executor); one model call, recorded as one cycle."""
        messages = [
            {"role": "system", "content": load_prompt("direct")},
            {"role": "user", "content": f"Task: {question}"},
        ]
        if memory_block:
            messages.append({"role": "user", "content": memory_block})
        result = await self.llms.planner.final_answer(messages, max_tokens=self.config.planner_max_tokens)
        answer = (result.parsed or {}).get("final_answer") if result.parsed else result.content
        trace.cycles.append(
            PlanCycle(
                index=0, final_answer=_clean(answer), raw=result.content, error=result.error, llm=result.call
            )
        )
        return _clean(answer)

    # ------------------------------------------------------------------ planner
    async def _plan_and_execute(self, question: str, memory_block: str, trace: Trace) -> str | None:
        history: list[dict[str, str]] = [{"role": "user", "content": f"Task: {question}"}]
        if memory_block:
            history.append({"role": "user", "content": memory_block})
        cfg = self.config
        for cycle in range(cfg.max_cycles + 1):
            last = cycle == cfg.max_cycles
            messages = [{"role": "system", "content": self.planner_prompt}, *history]
            if last:  # budget spent: force an answer
                messages.append({"role": "user", "content": load_prompt("final")})
                result = await self.llms.planner.final_answer(messages)
                answer = (result.parsed or {}).get("final_answer") if result.parsed else result.content
                trace.cycles.append(
                    PlanCycle(
                        index=cycle,
                        final_answer=_clean(answer),
                        raw=result.content,
                        error=result.error,
                        llm=result.call,
                    )
                )
                return _clean(answer)
            schema = plan_schema(allow_final=cycle > 0, max_steps=cfg.max_steps)
            result = await self.llms.planner.chat(
                messages, json_schema=schema, temperature=cfg.temperature, max_tokens=cfg.planner_max_tokens
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
                return _clean(final)
            history.append(
                {"role": "assistant", "content": json.dumps({"plan": [s.model_dump() for s in steps]})}
            )
            for step in steps[: cfg.max_steps]:
                es = await self._execute_step(question, step, cycle, history)
                trace.steps.append(es)
                history.append(
                    {"role": "user", "content": f"Result of step {step.id}: {es.result or es.error}"}
                )
        return None

    # ------------------------------------------------------------------ executor
    async def _execute_step(
        self, question: str, step: PlanStep, cycle: int, history: list[dict[str, str]]
    ) -> ExecStep:
        cfg = self.config
        t0 = time.perf_counter()
        es = ExecStep(cycle=cycle, step_id=step.id, description=step.description)
        done = [m["content"] for m in history if m["content"].startswith("Result of step")]
        context = f"Overall task: {question}\n" + (
            "Results so far:\n" + "\n".join(done) + "\n" if done else ""
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.executor_prompt},
            {"role": "user", "content": f"{context}\nYour step: {step.description}"},
        ]
        tools = [*(self.tools.openai_tools() if self.tools else []), RESPOND_TOOL]
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
            messages.append(
                {"role": "user", "content": f"Result of {call.name}: {outcome[: cfg.tool_result_chars]}"}
            )
        if not es.result:
            messages.append({"role": "user", "content": "Now report the result of your step."})
            result = await self.llms.executor.final_answer(messages)
            es.llm_calls.append(result.call)
            answer = (result.parsed or {}).get("final_answer") if result.parsed else result.content
            es.result = _clean(answer) or ""
            if result.error and not es.result:
                es.error = result.error
        es.duration_s = time.perf_counter() - t0
        return es

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> ToolCall:
        if self.tools is None:
            return ToolCall(server="none", name=name, arguments=arguments, error="no tools are configured")
        return await self.tools.call(name, arguments)


def _task_fields(task: Task | str) -> tuple[str, str, str | None]:
    if isinstance(task, str):
        import hashlib

        return "adhoc:" + hashlib.sha256(task.encode()).hexdigest()[:12], task, None
    return task.id, task.question, task.answer


def _clean(answer: Any) -> str | None:
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

"""Test helpers for memory methods: a scripted memory model, judged episodes, a task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memento_lab.agent.models.llm import ChatResult
from memento_lab.memory.methods.base import Feedback
from memento_lab.trace import JudgeVerdict, LLMCall, PlanCycle, Trace, Usage

GOLD = "GOLD-7f3a"  # a gold answer no episode gives: it must never reach a method under judge feedback


@dataclass(frozen=True)
class Task:
    id: str
    question: str
    family: str | None = None


class ScriptedModel:
    """The memory role, scripted: ``answer(messages) -> reply text``; every request is kept, every
    reply carries a call record with token counts (4 characters a token)."""

    def __init__(self, answer: Callable[[list[dict[str, Any]]], str] | str = ""):
        self.answer = answer if callable(answer) else (lambda _m, text=answer: text)
        self.requests: list[list[dict[str, Any]]] = []

    async def chat(self, messages: list[dict[str, Any]], **kw: Any) -> ChatResult:
        self.requests.append(messages)
        content = self.answer(messages)
        prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
        call = LLMCall(
            role="memory",
            model="scripted",
            usage=Usage(prompt_tokens=prompt, completion_tokens=len(content) // 4),
        )
        return ChatResult(content=content, call=call)

    def seen(self) -> str:
        return "\n".join(str(m.get("content", "")) for req in self.requests for m in req)


def episode(
    task_id: str,
    question: str,
    answer: str,
    reward: float,
    *,
    family: str | None = "fam",
    iteration: int = 0,
    run_id: str = "run",
    agent_tokens: int = 50,
) -> Trace:
    """A judged direct-answer episode (with the gold answer and a judge detail quoting it)."""
    call = LLMCall(role="planner", model="m", usage=Usage(prompt_tokens=agent_tokens, completion_tokens=5))
    return Trace(
        task_id=task_id,
        question=question,
        family=family,
        run_id=run_id,
        iteration=iteration,
        final_answer=answer,
        expected=GOLD,
        reward=reward,
        cycles=[PlanCycle(index=0, final_answer=answer, raw=f"I think it is {answer}.", llm=call)],
        verdicts=[JudgeVerdict(judge="em", score=reward, correct=reward >= 0.5, detail=f"expected {GOLD}")],
    )


def feedback(trace: Trace, source: str = "judge") -> Feedback:
    return Feedback.of(trace, threshold=0.5, source=source)  # type: ignore[arg-type]


STREAM = [  # (task id, question, answer, reward): successes and failures, tasks coming back
    ("t1", "How many r are in strawberry?", "3", 1.0),
    ("t2", "How many s are in mississippi?", "2", 0.0),
    ("t3", "How many e are in cheese?", "3", 1.0),
    ("t2", "How many s are in mississippi?", "4", 1.0),
    ("t4", "How many o are in balloon?", "1", 0.0),
    ("t5", "How many a are in banana?", "3", 1.0),
    ("t6", "How many l are in hello?", "2", 1.0),
]


def stream() -> list[Trace]:
    return [episode(t, q, a, r, iteration=i // 4) for i, (t, q, a, r) in enumerate(STREAM)]

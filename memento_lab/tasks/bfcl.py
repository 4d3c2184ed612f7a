"""BFCL multi-turn as a suite: stateful tools served over MCP, verdicts by bfcl-eval's own checker.

    suite = load_suite("bfcl:base", n=3)            # or bfcl:long_context, bfcl:base,long_context

Each task is one BFCL multi-turn entry. Its turns become one question (the user's requests, in
order); the executor works on the task's own tool instances, served by ``servers/bfcl.py`` in a
process the agent starts for the episode (``episode_servers``). The verdict is bfcl-eval's
``multi_turn_checker``: the executor's calls and the ground-truth calls are each executed on fresh
instances, then the final state of every instance must match and every ground-truth result must
appear among the executor's results. Because the episode sees all turns at once, the check runs
once, after the last turn (BFCL checks after each turn); the verdict's ``detail`` carries BFCL's
``error_type`` and message.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from memento_lab import bfcl_data
from memento_lab.tasks.base import EpisodeServers, JudgeContext, Suite, Task, sample_indices
from memento_lab.tasks.prompts import instruction
from memento_lab.tasks.registry import SuiteSpec, suite
from memento_lab.trace import JudgeVerdict, LLMCall, ToolCall


def question_of(entry: dict[str, Any]) -> str:
    """The task's turns as one question: the user's requests, numbered in order."""
    turns = []
    for i, turn in enumerate(entry["question"], 1):
        text = " ".join(m["content"] for m in turn if m.get("role") == "user").strip()
        turns.append(f"{i}. {text}")
    return instruction("bfcl") + "\n".join(turns)


def call_string(call: ToolCall, allowed: set[str]) -> str | None:
    """An executor call as the Python call string bfcl-eval executes (``name(key=literal)``), or
    ``None`` for a call that is not one of the task's functions (it could not change any state)."""
    if call.name not in allowed or not all(k.isidentifier() for k in call.arguments):
        return None
    args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())  # JSON values: repr is a literal
    return f"{call.name}({args})"


def bfcl_verdict(bfcl_id: str, calls: list[ToolCall]) -> JudgeVerdict:
    """bfcl-eval's multi-turn checker on the executor's calls (all turns merged into one)."""
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    entry = bfcl_data.entry(bfcl_id)
    category = bfcl_data.category_of(bfcl_id)
    allowed = {doc["name"] for _, doc in bfcl_data.available_functions(entry)}
    model_calls = [s for s in (call_string(c, allowed) for c in calls) if s is not None]
    truth = [c for turn in bfcl_data.ground_truth(category)[bfcl_id] for c in turn]
    tag = f"memento_{uuid.uuid4().hex}"  # bfcl-eval caches instances in module globals by this name
    try:
        result = multi_turn_checker([[model_calls]], [truth], entry, category, tag)
    finally:
        for key in [k for k in vars(multi_turn_utils) if k.startswith(tag)]:
            del vars(multi_turn_utils)[key]
    valid = bool(result.get("valid"))
    detail = "valid" if valid else f"{result.get('error_type')}: {result.get('error_message')}"
    return JudgeVerdict(
        judge="bfcl_multi_turn",
        score=1.0 if valid else 0.0,
        correct=valid,
        detail=f"{detail} ({len(model_calls)} calls checked, {len(truth)} ground-truth calls)",
    )


class BfclSuite(Suite):
    """BFCL multi-turn tasks (``n`` per subset, seeded); reward = bfcl-eval's state check."""

    def __init__(self, subsets: list[str], *, n: int = 10, seed: int = 0):
        unknown = [s for s in subsets if s not in bfcl_data.SUBSETS]
        if not subsets or unknown:
            raise ValueError(
                f"BFCL subsets must be among {sorted(bfcl_data.SUBSETS)} (e.g. bfcl:base); got {subsets}"
            )
        self.subsets, self.n, self.seed = list(subsets), n, seed
        self.name = "bfcl:" + ",".join(subsets)

    def tasks(self) -> list[Task]:
        out = []
        for subset in self.subsets:
            category = bfcl_data.SUBSETS[subset]
            rows = bfcl_data.entries(category)
            for i in sample_indices(list(range(len(rows))), self.n, self.seed):
                e = rows[i]
                out.append(
                    Task(
                        id=f"bfcl:{e['id']}",
                        question=question_of(e),
                        answer=None,
                        family=category,
                        suite="bfcl",
                        metadata={
                            "bfcl_id": e["id"],
                            "involved_classes": e["involved_classes"],
                            "turns": len(e["question"]),
                        },
                    )
                )
        return out

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        """BFCL's state check of the episode's tool calls (``ctx.tool_calls``); the answer text is not judged."""
        return [bfcl_verdict(task.metadata["bfcl_id"], ctx.tool_calls if ctx else [])]

    def episode_servers(self, task: Task) -> EpisodeServers:
        """The task's own tool server (fresh instances) for each episode; its calls are keyed in the
        cassette by the task and the calls made before, since the same call gives different results
        in different states."""
        return EpisodeServers(("bfcl",), env={"MEMENTO_BFCL_TASK": task.metadata["bfcl_id"]}, scope=task.id)


@suite(
    "bfcl",
    forms=("bfcl:SUBSET[,SUBSET] (BFCL multi-turn: base, long_context)",),
    summary="BFCL multi-turn tasks on stateful tools over MCP; reward = bfcl-eval's final-state check",
)
def bfcl(spec: SuiteSpec, *, n: int, seed: int) -> BfclSuite:
    return load_bfcl(spec.arg, n=n, seed=seed)


def load_bfcl(arg: str, *, n: int, seed: int) -> BfclSuite:
    """``bfcl:SUBSET[,SUBSET]`` -> the suite."""
    return BfclSuite([s.strip() for s in re.split(r"[,+]", arg) if s.strip()], n=n, seed=seed)

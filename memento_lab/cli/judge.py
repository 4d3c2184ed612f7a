"""``memento-lab judge``: score one answer to one task of any suite, by hand, showing every judge.

    memento-lab judge --suite deepresearcher --task dr:deepresearcher:286 --answer Canada --json
    memento-lab judge --suite humaneval --task HumanEval/0 --answer-file answer.py --json

The LLM judge (the configured endpoint, else the embedded model) is started only when a judge
needs it: an exact match to a gold alias is scored without a model.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from memento_lab.tasks.registry import spec_help
from memento_lab.trace import JudgeError


def add_judge_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="score one answer to one task with the suite's judges (every verdict)")
    p.add_argument("--suite", required=True, help=spec_help())
    p.add_argument(
        "--task", required=True, help="the task id (HumanEval also takes its own ids, HumanEval/0)"
    )
    answer = p.add_mutually_exclusive_group(required=True)
    answer.add_argument("--answer", help="the answer text")
    answer.add_argument("--answer-file", help="a file holding the answer (e.g. a program)")
    p.add_argument(
        "--n", type=int, default=0, help="tasks per family when loading the suite (0: all; reasoning-gym: 10)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="embedded judge model name or GGUF path")
    p.add_argument("--no-llm", action="store_true", help="no LLM judge: string judges / checkers only")
    p.add_argument(
        "--audit", action="store_true", help="also ask the LLM judge where a cheaper judge decided"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cli_judge)


class LazyJudge:
    """A chat client that opens the model clients on its first call only (then reuses them)."""

    def __init__(self, stack: AsyncExitStack, model: str | None):
        self.stack, self.model = stack, model
        self.client: Any = None

    async def chat(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
        if self.client is None:
            from memento_lab.agent.models.llm import open_llms

            llms = await self.stack.enter_async_context(open_llms(local_model=self.model))
            self.client = llms.judge
        return await self.client.chat(messages, **kw)


def find_task(suite: Any, task_id: str) -> Any:
    """The task whose id (or HumanEval ``task_id``) is ``task_id``; a ValueError names close ids."""
    tasks = suite.tasks()
    for t in tasks:
        if task_id in (t.id, t.metadata.get("task_id")):
            return t
    close = difflib.get_close_matches(task_id, [t.id for t in tasks], n=5)
    raise ValueError(f"no task {task_id!r} in suite {suite.name} ({len(tasks)} tasks); close ids: {close}")


async def judge_one(args: argparse.Namespace) -> dict[str, Any]:
    from memento_lab.tasks import load_suite
    from memento_lab.tasks.base import JudgeContext

    n = args.n or (10 if args.suite.startswith("reasoning-gym") else 0)
    suite = load_suite(args.suite, n=n, seed=args.seed)
    task = find_task(suite, args.task)
    text = args.answer if args.answer is not None else Path(args.answer_file).read_text(encoding="utf-8")
    async with AsyncExitStack() as stack:
        judge = None if args.no_llm else LazyJudge(stack, args.model)
        ctx = JudgeContext(judge=judge, llm_judge=args.audit)
        out: dict[str, Any] = {"suite": suite.name, "task_id": task.id, "question": task.question}
        try:
            judged = await suite.score(task, text, ctx=ctx)
        except JudgeError as e:
            return {**out, "error": f"judge_error: {e}"}
        primary = judged.verdicts[0]
        return {
            **out,
            "score": primary.score,
            "passed": primary.correct,
            "detail": primary.detail,
            "decided_by": judged.decided_by,
            "verdicts": [v.model_dump() for v in judged.verdicts],
            "llm_calls": len(judged.calls),
            "judge_model": judge.client.model if judge is not None and judge.client is not None else None,
        }


def agreement_lines(judges: dict[str, Any]) -> list[str]:
    """The report's judge block as text: who decided, kappa per pair, the LLM judge against exact match."""
    lines = []
    if judges.get("decided_by"):
        lines.append("decided by: " + ", ".join(f"{k} {v}" for k, v in sorted(judges["decided_by"].items())))
    for pair, a in sorted((judges.get("pairs") or {}).items()):
        lines.append(
            f"judges {pair}: kappa {a['kappa']:.2f}, agreement {a['agreement']:.2f} (n={a['n']:.0f})"
        )
    c = judges.get("llm_vs_em") or {}
    if c.get("exact"):
        lines.append(
            f"LLM judge rejects {c['rejects_exact']} of {c['exact']} exact matches ({c['share']:.0%}); "
            f"accepts {c['accepts_non_exact']} of {c['non_exact']} non-matches"
        )
    return lines


def cli_judge(args: argparse.Namespace) -> int:
    """Print every judge's verdict; exit 0 with a verdict, 1 when the deciding judge gave none."""
    out = asyncio.run(judge_one(args))
    if args.json:
        print(json.dumps(out, indent=2))
    elif "error" in out:
        print(f"{out['task_id']}: {out['error']}")
    else:
        print(
            f"{out['task_id']}: score {out['score']:g} ({'passed' if out['passed'] else 'failed'}), decided by {out['decided_by']}"
        )
        for v in out["verdicts"]:
            print(
                f"  {v['judge']:>12}  {v['score']:.3f}  {'correct' if v['correct'] else 'incorrect':9}  {v['detail'][:120]}"
            )
        print(f"  LLM calls: {out['llm_calls']}")
    return 1 if "error" in out else 0

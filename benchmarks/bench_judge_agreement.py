"""How far the LLM judge agrees with exact match on answers of the embedded model (issue 21).

    python benchmarks/bench_judge_agreement.py --n 9 --out data/bench/judge-agreement [--repro]

One pass: the embedded model answers each DeepResearcher question directly (one short
``final_answer`` call, no tools, no memory); then every answer is judged by exact match, F1, PM
and, as an audit, by the LLM judge even where exact match decided (``cheap_first(audit=True)``).
Prints Cohen's kappa per judge pair, how many exact matches the LLM judge rejects, how many
non-matches it accepts, and how many judge calls needed the retry or failed (JudgeError).
Everything goes through ``<out>/cassette.sqlite`` (mode auto): a second run replays.

``--repro`` first asks the old judge layout (reasoning before verdict, 256 tokens) about the
Moore Park question answered "Canada", the failure that opened issue 21.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from memento_lab.agent.models.cassette import Cassette
from memento_lab.agent.models.llm import open_llms
from memento_lab.tasks.judges import JUDGE_SCHEMA, cheap_first, judge_agreement
from memento_lab.tasks.suites import load_suite
from memento_lab.trace import JudgeError, JudgeVerdict

ASK = "Answer the question with the answer only (a name, number, date or short phrase).\nQuestion: {q}"
OLD_TAIL = (
    "First explain your reasoning in one or two sentences, then give the verdict. Reply with JSON only:\n"
    '{"reasoning": "...", "verdict": "correct" or "incorrect"}'
)
OLD_SCHEMA = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
    },
    "required": ["reasoning", "verdict"],
}


async def repro(llms) -> dict:
    """The old layout and the new one on the same question, raw replies shown."""
    from memento_lab.tasks.prompts import judge_prompt

    fields = {
        "question": "In what country is Moore Park, Toronto?",
        "gold": '["Canada", "Dominion of Canada"]',
        "pred": "Canada",
    }
    new = judge_prompt()[0].format(**fields)
    old = new[: new.index("Give the verdict first")] + OLD_TAIL
    out = {}
    for name, prompt, schema in [("old", old, OLD_SCHEMA), ("new", new, JUDGE_SCHEMA)]:
        r = await llms.judge.chat([{"role": "user", "content": prompt}], json_schema=schema, max_tokens=256)
        out[name] = {
            "content": r.content,
            "error": r.error,
            "completion_tokens": r.call.usage.completion_tokens,
        }
    return out


async def main(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suite = load_suite(args.suite, n=args.n, seed=args.seed)
    tasks = suite.tasks()
    tape = Cassette(out / "cassette.sqlite", mode="auto")
    rows, t0 = [], time.perf_counter()
    async with open_llms(local_model=args.model, cassette=tape) as llms:
        result: dict = {"model": llms.judge.model, "questions": len(tasks)}
        if args.repro:
            result["repro"] = await repro(llms)
        for i, task in enumerate(tasks):
            r = await llms.planner.final_answer(
                [{"role": "user", "content": ASK.format(q=task.question)}], max_tokens=48
            )
            answer = (r.parsed or {}).get("final_answer") if r.error is None else None
            answer = None if answer is None else str(answer)
            calls: list = []
            try:
                verdicts = await cheap_first(
                    task.question,
                    answer,
                    task.metadata["aliases"],
                    llms.judge,
                    judge="llm",
                    audit=True,
                    calls=calls,
                )
                error = None
            except JudgeError as e:
                verdicts, error = [], str(e)
            by = {v.judge: v for v in verdicts}
            llm: JudgeVerdict | None = by.get("llm")
            rows.append(
                {
                    "task_id": task.id,
                    "family": task.family,
                    "question": task.question,
                    "gold": task.metadata["aliases"],
                    "answer": answer,
                    "answer_error": r.error,
                    "judges": {v.judge: v.correct for v in verdicts},
                    "decided_by": verdicts[0].judge if verdicts else None,
                    "llm_detail": llm.detail if llm else None,
                    "llm_calls": len(calls),
                    "judge_error": error,
                }
            )
            print(
                f"[{i + 1}/{len(tasks)}] {task.id} answer={answer!r} judges={rows[-1]['judges']}", flush=True
            )
    (out / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    answered = [r for r in rows if r["answer"]]
    result.update(
        {
            "answered": len(answered),
            "judge_errors": sum(r["judge_error"] is not None for r in rows),
            "llm_judge_calls": sum(r["llm_calls"] for r in rows),
            "retried": sum("(on the second attempt)" in (r["llm_detail"] or "") for r in rows),
            "seconds": round(time.perf_counter() - t0, 1),
            "agreement": judge_agreement(rows),
            "em_accuracy": sum(r["judges"].get("em", False) for r in rows) / len(rows),
            "llm_accuracy": sum(r["judges"].get("llm", False) for r in rows) / len(rows),
        }
    )
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="deepresearcher")
    p.add_argument("--n", type=int, default=9, help="questions per data source (7 sources)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model", default=None, help="embedded model (default: the configured one, qwen2.5-coder-1.5b)"
    )
    p.add_argument("--out", default="data/bench/judge-agreement")
    p.add_argument("--repro", action="store_true")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))

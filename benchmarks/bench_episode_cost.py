"""What memory costs per episode: seconds and tokens for each agent profile (direct, which reasons
before its final answer; direct-instant; planner-executor), with no memory and with K retrieved cases
at two memory-block budgets, measured in one run on one model.

    python benchmarks/bench_episode_cost.py --json                       # embedded default model
    python benchmarks/bench_episode_cost.py --model qwen2.5-coder-0.5b --n 2 --profiles direct

Each arm is a two-iteration run over the same tasks (iteration 0 fills the bank, iteration 1 is
measured, so every memory arm retrieves from a bank of the same size); all arms share one model
server. Printed per arm: median seconds, prompt / completion / memory-block tokens per episode,
the share of prompt tokens served from the server's prompt cache, accuracy — and the ratios of
seconds and prompt tokens against the no-memory arm of the same profile, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from memento_lab.agent.session import open_session
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.results import load_results
from memento_lab.experiments.run import run_experiment

PROFILES = ("direct", "direct-instant", "planner-executor")


def arms(budgets: list[int], k: int, profiles: list[str]) -> list[dict[str, Any]]:
    out = []
    for profile in profiles:
        out.append({"agent": profile, "memory": "none", "k": k, "memory_tokens": None})
        out.extend({"agent": profile, "memory": "similarity", "k": k, "memory_tokens": b} for b in budgets)
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(col: str) -> float:
        return float(statistics.median(r[col] or 0 for r in rows)) if rows else 0.0

    prompt = sum(r["prompt_tokens"] for r in rows)
    return {
        "episodes": len(rows),
        "seconds": round(med("latency_s"), 2),
        "prompt_tokens": med("prompt_tokens"),
        "completion_tokens": med("completion_tokens"),
        "memory_tokens": med("memory_tokens"),
        "cache_share": round(sum(r.get("cached_tokens") or 0 for r in rows) / prompt, 3) if prompt else None,
        "accuracy": round(sum(r["reward"] for r in rows) / len(rows), 3) if rows else None,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-episode-cost-"))
    base = ExperimentConfig(
        suite=args.suite, n=args.n, iterations=2, tools=["code", "math"], model=args.model, cassette="off"
    )
    results: list[dict[str, Any]] = []
    async with open_session(out, tools=base.tools, model=args.model, cassette_path=None) as session:
        for arm in arms(args.budgets, args.k, args.profiles.split(",")):
            name = f"{arm['agent']}-{arm['memory']}-{arm['memory_tokens'] or 'all'}"
            cfg = base.model_copy(update={**arm, "out": str(out / name)})
            await run_experiment(cfg, session=session, progress=not args.json)
            rows = [
                r for r in load_results([cfg.out]).to_dicts() if r["iteration"] == 1 and r["status"] == "ok"
            ]
            results.append(
                {"arm": name, "agent": arm["agent"], "memory": arm["memory"], "budget": arm["memory_tokens"]}
                | summarize(rows)
            )
    for r in results:  # ratios against the no-memory arm of the same profile, measured in this run
        ref = next(x for x in results if x["agent"] == r["agent"] and x["memory"] == "none")
        r["seconds_x"] = round(r["seconds"] / ref["seconds"], 2) if ref["seconds"] else None
        r["prompt_tokens_x"] = (
            round(r["prompt_tokens"] / ref["prompt_tokens"], 2) if ref["prompt_tokens"] else None
        )
    return {"model": session.llms.describe()["planner"], "suite": args.suite, "n": args.n, "arms": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="reasoning-gym:spell_backward,letter_counting")
    parser.add_argument("--n", type=int, default=3, help="tasks per family")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument(
        "--budgets", type=int, nargs=2, default=[150, 400], help="two memory-block token budgets"
    )
    parser.add_argument("--profiles", default=",".join(PROFILES), help="agent profiles, comma-separated")
    parser.add_argument("--model", default=None, help="embedded model (default: the configured default)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['model']} on {report['suite']} (n={report['n']} per family), iteration 1 of 2")
        for r in report["arms"]:
            print(
                f"  {r['arm']:38s} {r['seconds']:6.1f} s ({r['seconds_x']}x)  prompt {r['prompt_tokens']:6.0f} "
                f"({r['prompt_tokens_x']}x)  completion {r['completion_tokens']:5.0f}  memory {r['memory_tokens']:5.0f}  "
                f"cache {r['cache_share']}  acc {r['accuracy']}"
            )

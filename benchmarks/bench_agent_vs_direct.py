"""The planner-executor loop against the model answering directly, side by side on the same tasks.

    python benchmarks/bench_agent_vs_direct.py --suite humaneval --json            # HumanEval 0-19
    python benchmarks/bench_agent_vs_direct.py --suite humaneval:0-164 --json      # all of it (hours here)
    python benchmarks/bench_agent_vs_direct.py --suite reasoning-gym:spell_backward --n 5

Both profiles run on one embedded model server and one code-tool server, without memory; each task
is run by ``direct`` and then by ``planner-executor`` before the next task, so machine load hits
both alike. Prints, per profile: pass@1 (greedy, temperature 0) with a 95% Wilson interval, median
seconds and median prompt tokens per episode, infrastructure errors (never counted as answers), and
the tasks each profile alone solved. ``--json`` prints one JSON object instead of the table.

The default slice is HumanEval 0-19: the full 164 tasks x 2 profiles at 10-60 s per episode do not
fit a shared 2-core machine; pass ``--suite humaneval:0-164`` for the full set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from memento_lab.agent.loop import AgentConfig
from memento_lab.agent.session import open_session
from memento_lab.tasks.suites import load_suite
from memento_lab.trace import Trace, write_traces

PROFILES = ("direct", "planner-executor")
DEFAULT_SLICE = "humaneval:0-20"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(traces: list[Trace]) -> dict[str, Any]:
    solved = [t for t in traces if t.reward >= 1.0]
    lo, hi = wilson(len(solved), len(traces))
    return {
        "tasks": len(traces),
        "passed": len(solved),
        "pass@1": len(solved) / len(traces) if traces else 0.0,
        "pass@1_ci95": [round(lo, 3), round(hi, 3)],
        "median_s": round(statistics.median(t.latency_s for t in traces), 1) if traces else None,
        "median_prompt_tokens": statistics.median(t.usage.prompt_tokens for t in traces) if traces else None,
        "median_completion_tokens": statistics.median(t.usage.completion_tokens for t in traces)
        if traces
        else None,
        "infra_errors": sum(1 for t in traces if t.error),
        "solved": sorted(t.task_id for t in solved),
    }


async def bench(spec: str, *, n: int, model: str | None, out: Path, max_cycles: int) -> dict[str, Any]:
    suite = load_suite(spec, n=n)
    tasks = suite.tasks()
    traces: dict[str, list[Trace]] = {p: [] for p in PROFILES}
    async with open_session(out, tools=["code"], model=model, cassette="off") as session:
        agents = {
            p: session.agent(suite=suite, config=AgentConfig(profile=p, max_cycles=max_cycles), run_id=p)
            for p in PROFILES
        }
        for task in tasks:
            for p in PROFILES:
                trace = await agents[p].arun(task, learn=False)
                traces[p].append(trace)
                write_traces(out / f"traces-{p}.jsonl", [trace])
        model_name = session.llms.planner.model
    result: dict[str, Any] = {"suite": suite.name, "model": model_name, "traces": str(out)}
    result["profiles"] = {p: summarize(ts) for p, ts in traces.items()}
    solved = {p: set(result["profiles"][p]["solved"]) for p in PROFILES}
    result["only_direct"] = sorted(solved["direct"] - solved["planner-executor"])
    result["only_planner_executor"] = sorted(solved["planner-executor"] - solved["direct"])
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['suite']} on {result['model']} (traces in {result['traces']})",
        f"{'profile':<18} {'pass@1':>7} {'95% CI':>13} {'median s':>9} {'prompt tok':>11} {'infra err':>9}",
    ]
    for p, s in result["profiles"].items():
        ci = f"{s['pass@1_ci95'][0]:.2f}-{s['pass@1_ci95'][1]:.2f}"
        lines.append(
            f"{p:<18} {s['passed']:>3}/{s['tasks']:<3} {ci:>13} {s['median_s']:>9} "
            f"{s['median_prompt_tokens']:>11} {s['infra_errors']:>9}"
        )
    lines.append(f"solved only by direct: {result['only_direct'] or '-'}")
    lines.append(f"solved only by planner-executor: {result['only_planner_executor'] or '-'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--suite", default="humaneval", help=f"suite spec; plain 'humaneval' means {DEFAULT_SLICE}"
    )
    ap.add_argument("--n", type=int, default=5, help="tasks per family (reasoning-gym)")
    ap.add_argument(
        "--model", default=None, help="embedded model name or GGUF path (default: the configured one)"
    )
    ap.add_argument("--max-cycles", type=int, default=AgentConfig().max_cycles)
    ap.add_argument("--out", type=Path, default=None, help="folder for traces (default: a temp folder)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    spec = DEFAULT_SLICE if args.suite.strip() == "humaneval" else args.suite
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-agent-vs-direct-"))
    result = asyncio.run(bench(spec, n=args.n, model=args.model, out=out, max_cycles=args.max_cycles))
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()

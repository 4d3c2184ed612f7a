"""The planner-executor loop against the model alone (``direct``, ``direct-instant``), on the same tasks.

    python benchmarks/bench_agent_vs_direct.py                                  # HumanEval 0-19 + the stream
    python benchmarks/bench_agent_vs_direct.py --suite humaneval --out data/bench/avd --json
    python benchmarks/bench_agent_vs_direct.py --suite reasoning-gym:chain_sum,spell_backward --n 12
    python benchmarks/bench_agent_vs_direct.py --suite humaneval --samples 5 --profiles direct

Every profile runs on one embedded model server and one code-tool server, without memory; each task
is run by every profile before the next task, so machine load hits them alike. Prints, per suite and
profile: accuracy (mean reward; pass@1 where rewards are 0/1) with a 95% bootstrap interval over
tasks, the paired difference against ``direct`` (bootstrap CI and sign-flip p), tokens per episode
(prompt + completion, every call of the episode) and seconds (median, and the ratio to ``direct``'s
of the same run: the machine is shared, read ratios), the share of episodes with an unusable reply,
infrastructure failures (never scored), per family for reasoning-gym, and the trivial baseline (the
most common answer of each family's other tasks). Traces land in ``--out``; a rerun with the same
``--out`` resumes (episodes already there are read back, not run again).

The default stream: reasoning-gym chain_sum (arithmetic), gsm_symbolic, letter_counting,
spell_backward and family_relationships, 12 tasks each (seed 0); and HumanEval 0-19 (the full 164
tasks x 3 profiles at 10-90 s per episode do not fit a shared 2-core machine: ``--suite humaneval:0-164``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from tqdm import tqdm

from memento_lab.agent.loop import PROFILES, AgentConfig
from memento_lab.agent.session import open_session
from memento_lab.experiments import stats
from memento_lab.tasks.suites import load_suite, trivial_baseline
from memento_lab.trace import Trace, read_traces, write_traces

STREAM = "reasoning-gym:chain_sum,gsm_symbolic,letter_counting,spell_backward,family_relationships"
DEFAULT_SUITES = ("humaneval", STREAM)
DEFAULT_SLICE = "humaneval:0-20"


def _accuracy(rewards: list[float]) -> dict[str, Any]:
    mean, lo, hi = stats.bootstrap_mean(np.array([rewards]))
    return {"accuracy": round(mean, 3), "ci95": [round(lo, 3), round(hi, 3)]}


def summarize(traces: list[Trace], direct: list[Trace] | None) -> dict[str, Any]:
    """One profile on one suite: accuracy, pass@1, tokens, seconds, unusable replies, failures."""
    ok = [t for t in traces if t.status == "ok"]
    out: dict[str, Any] = {"tasks": len(traces), "scored": len(ok), "infra_failures": len(traces) - len(ok)}
    if not ok:
        return out
    out |= _accuracy([t.reward for t in ok])
    out["pass@1"] = round(sum(t.reward >= 1.0 for t in ok) / len(ok), 3)
    tokens = [t.usage.prompt_tokens + t.usage.completion_tokens for t in ok]
    out["tokens_per_episode"] = round(statistics.mean(tokens))
    out["prompt_tokens"] = sum(t.usage.prompt_tokens for t in ok)
    out["completion_tokens"] = sum(t.usage.completion_tokens for t in ok)
    out["median_s"] = round(statistics.median(t.latency_s for t in ok), 1)
    out["total_s"] = round(sum(t.latency_s for t in ok))
    out["unusable_share"] = round(sum(t.model_output_errors > 0 for t in ok) / len(ok), 3)
    out["solved"] = sorted(t.task_id for t in ok if t.reward >= 1.0)
    if direct is not None:
        mine = {t.task_id: t for t in ok}
        base = {t.task_id: t for t in direct if t.status == "ok"}
        common = sorted(set(mine) & set(base))
        if len(common) >= 2:
            a = np.array([[mine[i].reward for i in common]])
            b = np.array([[base[i].reward for i in common]])
            diff, lo, hi = stats.paired_bootstrap(a, b)
            p = stats.permutation_p(a[0] - b[0])
            out["minus_direct"] = {
                "diff": round(diff, 3),
                "ci95": [round(lo, 3), round(hi, 3)],
                "p": round(p, 4),
            }
            out["worse_than_direct"] = [i for i in common if mine[i].reward < base[i].reward]
            out["better_than_direct"] = [i for i in common if mine[i].reward > base[i].reward]
            spent = sum(base[i].latency_s for i in common)
            out["seconds_ratio_to_direct"] = (
                round(sum(mine[i].latency_s for i in common) / spent, 2) if spent else None
            )
    families = sorted({t.family for t in ok if t.family})
    if len(families) > 1:
        out["by_family"] = {f: _accuracy([t.reward for t in ok if t.family == f]) for f in families}
    return out


def _done(path: Path) -> dict[str, Trace]:
    return {t.task_id: t for t in read_traces(path)} if path.exists() else {}


async def bench(
    spec: str, *, n: int, seed: int, model: str | None, out: Path, profiles: list[str], agent: dict[str, Any]
) -> dict[str, Any]:
    suite = load_suite(spec, n=n, seed=seed)
    tasks = suite.tasks()
    files = {p: out / f"traces-{p}.jsonl" for p in profiles}
    traces = {p: _done(files[p]) for p in profiles}
    todo = sum(t.id not in traces[p] for t in tasks for p in profiles)
    model_name = model
    if todo:
        async with open_session(out, tools=["code"], model=model, cassette="off") as session:
            agents = {
                p: session.agent(suite=suite, config=AgentConfig(profile=p, **agent), run_id=p)
                for p in profiles
            }
            with tqdm(total=todo, desc=spec) as bar:
                for task in tasks:
                    for p in profiles:
                        if task.id in traces[p]:
                            continue
                        trace = await agents[p].arun(task, learn=False)
                        traces[p][task.id] = trace
                        write_traces(files[p], [trace])
                        bar.update()
            model_name = session.llms.planner.model
    ordered = {p: [traces[p][t.id] for t in tasks] for p in profiles}
    direct = ordered.get("direct")
    result: dict[str, Any] = {"suite": suite.name, "model": model_name, "traces": str(out), "agent": agent}
    result["profiles"] = {p: summarize(ts, None if p == "direct" else direct) for p, ts in ordered.items()}
    result["trivial_baseline"] = {
        f: round(v, 3) for f, v in trivial_baseline(tasks, leave_one_out=True).items()
    }
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['suite']} on {result['model']} (traces in {result['traces']}; {result['agent'] or 'defaults'})",
        f"{'profile':<18} {'acc':>5} {'95% CI':>13} {'pass@1':>6} {'- direct [95% CI]':>24} {'tok/ep':>7} "
        f"{'median s':>8} {'s ratio':>7} {'unusable':>8} {'infra':>5}",
    ]
    for p, s in result["profiles"].items():
        if "accuracy" not in s:
            lines.append(f"{p:<18} no scored episode ({s['infra_failures']} infrastructure failures)")
            continue
        d = s.get("minus_direct")
        vs = f"{d['diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]" if d else "-"
        lines.append(
            f"{p:<18} {s['accuracy']:>5.2f} {s['ci95'][0]:>6.2f}-{s['ci95'][1]:<6.2f} {s['pass@1']:>6.2f} {vs:>24} "
            f"{s['tokens_per_episode']:>7} {s['median_s']:>8} {s.get('seconds_ratio_to_direct') or 1.0:>7} "
            f"{s['unusable_share']:>8.2f} {s['infra_failures']:>5}"
        )
        for fam, f in (s.get("by_family") or {}).items():
            lines.append(f"    {fam:<22} {f['accuracy']:.2f} [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}]")
        if s.get("worse_than_direct"):
            lines.append(f"    worse than direct on: {', '.join(s['worse_than_direct'])}")
    for fam, v in sorted(result["trivial_baseline"].items()):
        lines.append(f"trivial baseline {fam}: {v:.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--suite",
        action="append",
        help=f"suite spec, repeatable (default: {' and '.join(DEFAULT_SUITES)}); plain 'humaneval' is {DEFAULT_SLICE}",
    )
    ap.add_argument("--n", type=int, default=12, help="tasks per family (reasoning-gym)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the reasoning-gym sample")
    ap.add_argument("--profiles", default=",".join(("direct", "direct-instant", "planner-executor")))
    ap.add_argument(
        "--model", default=None, help="embedded model name or GGUF path (default: the configured one)"
    )
    ap.add_argument("--max-cycles", type=int, default=AgentConfig().max_cycles)
    ap.add_argument("--samples", type=int, default=1, help="self-consistency: attempts voted per episode")
    ap.add_argument(
        "--no-start-from-direct", action="store_true", help="the loop as before: no direct first attempt"
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="folder for traces (default: a temp folder); resumed"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object per suite")
    args = ap.parse_args()
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    if bad := [p for p in profiles if p not in PROFILES]:
        ap.error(f"unknown profiles {bad}; choose from {', '.join(PROFILES)}")
    agent = {
        "max_cycles": args.max_cycles,
        "samples": args.samples,
        "start_from_direct": not args.no_start_from_direct,
    }
    agent = {k: v for k, v in agent.items() if v != getattr(AgentConfig(), k)}
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-agent-vs-direct-"))
    for spec in args.suite or DEFAULT_SUITES:
        spec = DEFAULT_SLICE if spec.strip() == "humaneval" else spec
        folder = out / spec.replace(":", "_").replace(",", "+")
        result = asyncio.run(
            bench(
                spec, n=args.n, seed=args.seed, model=args.model, out=folder, profiles=profiles, agent=agent
            )
        )
        print(json.dumps(result, indent=2) if args.json else table(result), flush=True)


if __name__ == "__main__":
    main()

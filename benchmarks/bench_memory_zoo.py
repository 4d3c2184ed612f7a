"""The memory zoo measured: every method against ``none`` on the controls and on one real stream.

    python benchmarks/bench_memory_zoo.py --suite control:negative --suite control:positive \\
        --agent direct-instant --n 10 --iterations 2 --k 2 --out data/runs/zoo-controls
    python benchmarks/bench_memory_zoo.py --suite control:negative --protocol transfer --n 20 \\
        --agent direct-instant --methods none,expel,awm,ace,dc-cu --out data/runs/zoo-controls-transfer
    python benchmarks/bench_memory_zoo.py --suite reasoning-gym:chain_sum,spell_backward,letter_counting \\
        --agent direct --n 8 --iterations 2 --methods none,similarity,vote3,expel,reasoningbank \\
        --out data/runs/zoo-stream
    python benchmarks/bench_memory_zoo.py ... --report-only     # the tables of what is there, no model

Every arm is one run folder ``<out>/<suite>/<arm>`` with the same tasks, order and seed; ``voteN`` is
``none`` with self-consistency over N attempts (the compute-matched baseline). Arms run in the order
given (most informative first), all on one embedded model server; the same command resumes (a finished
run has nothing left) and ``--budget-min`` cuts the run going at that many minutes and starts no
other: the tables hold whole runs only, and name those left out. Prints per suite the report's price table: accuracy with its 95% CI,
the paired difference against ``none`` at the last iteration and over the whole split, maintenance
calls and tokens, seconds per episode and the voting verdict; the full report is ``<out>/<suite>/report.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from memento_lab.agent.session import open_session
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.report import Comparison, Report, build_report
from memento_lab.experiments.run import run_experiment
from memento_lab.tasks.suites import load_suite

METHODS = "none,similarity,vote3,expel,reasoningbank,dc-cu,ace,memrl,awm,dc-rs"


def arm_config(base: ExperimentConfig, suite: str, arm: str, out: Path) -> ExperimentConfig:
    """``voteN`` is none with N voted attempts; any other name is a memory method."""
    vote = re.fullmatch(r"vote(\d+)", arm)
    update = {"memory": "none", "samples": int(vote.group(1))} if vote else {"memory": arm}
    folder = out / re.sub(r"[^\w.,+=-]+", "_", suite) / arm
    return ExperimentConfig.model_validate(
        {**base.model_dump(), **update, "suite": suite, "out": str(folder)}
    )


async def run_arms(configs: list[ExperimentConfig], model: str | None, budget_s: float) -> list[str]:
    """Run (or resume) each config in order on one model server, within ``budget_s`` seconds: a run
    still going at the deadline is cancelled (the same command resumes it) and, like the runs never
    started, left out of the tables. Returns the folders left out."""
    deadline, left_out = time.monotonic() + budget_s, []
    root = Path(configs[0].out).parent.parent
    async with open_session(root, tools=[], cassette="off", model=model, cassette_path=None) as session:
        for cfg in configs:
            remaining, t0 = deadline - time.monotonic(), time.monotonic()
            if remaining <= 0:
                left_out.append(f"{cfg.out} (not started)")
                continue
            try:
                result = await asyncio.wait_for(
                    run_experiment(cfg, session=session, progress=True), timeout=remaining
                )
            except TimeoutError:
                left_out.append(f"{cfg.out} (cut at the deadline)")
                continue
            print(
                f"{cfg.out}: {result.scored} scored, {result.unresolved} unresolved, accuracy by iteration "
                f"{result.accuracy_by_iteration} ({time.monotonic() - t0:.0f} s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return left_out


def finished(cfg: ExperimentConfig) -> bool:
    """Every (task, iteration) of the run scored or failed for good: a whole run, never a cut one."""
    from memento_lab.experiments.run import run_result

    if not (Path(cfg.out) / "results.jsonl").exists():
        return False
    result = run_result(Path(cfg.out), "")
    tasks = len(load_suite(cfg.suite, n=cfg.n, seed=cfg.seed).tasks())
    return result.scored + result.unresolved == tasks * cfg.iterations


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:+.2f}, {hi:+.2f}]"


def table(rep: Report) -> list[str]:
    """One line per arm: the price table with the last iteration's paired difference against none."""
    none = next(
        (
            a.id
            for a in rep.arms
            if a.config.get("memory") == "none" and int(a.config.get("samples") or 1) == 1
        ),
        None,
    )
    last: dict[tuple[str, str], Comparison] = {}  # (arm, split): a transfer run scores train and test
    for c in rep.comparisons:  # the arm minus none at its last iteration (none may be A or B)
        other, sign = (c.a, 1) if c.b == none else (c.b, -1)
        key = (other, c.split)
        if none in (c.a, c.b) and (key not in last or c.iteration > last[key].iteration):
            lo, hi = sorted((sign * c.ci_low, sign * c.ci_high))
            last[key] = c.model_copy(update={"diff": sign * c.diff, "ci_low": lo, "ci_high": hi})
    lines = [
        f"{'arm':<40} {'acc':>5} {'95% CI':<14} {'last iter - none (measures)':<33} {'all iters - none':<24} "
        f"{'maint calls':>11} {'unusable':>8} {'maint tok':>9} {'extra tok':>9} {'s/ep':>6}  verdict"
    ]
    for p in rep.prices:
        c = last.get((p.arm, p.split))
        label = p.label if p.split == "stream" else f"{p.label} [{p.split}]"
        at_last = f"{c.diff:+.2f} {_ci(c.ci_low, c.ci_high)} p={c.p_value:.2f} {c.measures}" if c else "-"
        whole = f"{p.vs_none.diff:+.2f} {_ci(p.vs_none.ci_low, p.vs_none.ci_high)}" if p.vs_none else "-"
        extra = "-" if p.extra_tokens is None else f"{p.extra_tokens:.0f}"
        thrown = "-" if p.maintenance_unusable is None else f"{p.maintenance_unusable:.0%}"
        lines.append(
            f"{label:<40} {p.accuracy:5.2f} {f'[{p.ci_low:.2f}, {p.ci_high:.2f}]':<14} {at_last:<33} {whole:<24} "
            f"{p.maintenance_calls:11.2f} {thrown:>8} {p.maintenance_tokens:9.0f} {extra:>9} {p.seconds:6.1f}  {p.verdict}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", action="append", required=True, help="repeat for several suites")
    ap.add_argument("--methods", default=METHODS, help=f"arms in the order to run (default {METHODS})")
    ap.add_argument("--agent", default="direct")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="the tasks' draw and the run's seed")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--memory-tokens", type=int, default=400)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument(
        "--protocol",
        choices=("recall", "transfer"),
        default="recall",
        help="transfer: memory written on a train stream, scored on a disjoint test stream (the clean "
        "negative control for methods that distil several tasks into one item)",
    )
    ap.add_argument("--out", default="data/runs/zoo")
    ap.add_argument(
        "--budget-min", type=float, default=float("inf"), help="cut the runs at this many minutes"
    )
    ap.add_argument("--report-only", action="store_true", help="print the tables, run nothing")
    args = ap.parse_args()

    base = ExperimentConfig(
        agent=args.agent,
        n=args.n,
        seed=args.seed,
        iterations=args.iterations,
        k=args.k,
        memory_tokens=args.memory_tokens,
        model=args.model,
        protocol=args.protocol,
        tools=[],
        out=args.out,
    )
    out, arms = Path(args.out), [a.strip() for a in args.methods.split(",") if a.strip()]
    by_suite = {s: [arm_config(base, s, a, out) for a in arms] for s in args.suite}
    left_out: list[str] = []
    print(f"load at start {os.getloadavg()}", flush=True)
    if not args.report_only:  # methods outer, suites inner: a budget cut leaves a method's controls whole
        ordered = [cfgs[i] for i in range(len(arms)) for cfgs in by_suite.values()]
        left_out = asyncio.run(run_arms(ordered, args.model, args.budget_min * 60))
        print(f"load at end {os.getloadavg()}", flush=True)
    for suite, cfgs in by_suite.items():
        whole = [c.out for c in cfgs if finished(c)]
        left_out += [f"{c.out} (unfinished)" for c in cfgs if not finished(c) and args.report_only]
        if not whole:
            continue
        rep = build_report(whole)
        (Path(whole[0]).parent / "report.json").write_text(rep.model_dump_json(indent=1))
        print(
            f"\n{suite} ({args.agent}, n={args.n}, seed {args.seed}, {args.iterations} iterations, K={args.k}, "
            f"{args.protocol}, {args.model})"
        )
        print("\n".join(table(rep)))
    if left_out:
        print("\nleft out of the tables: " + ", ".join(left_out))


if __name__ == "__main__":
    main()

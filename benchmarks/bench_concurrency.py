"""Episodes in flight: the runner at concurrency 1 versus 8 against an endpoint with fixed latency.

    python benchmarks/bench_concurrency.py [--latency 0.2] [--tasks 16]

The endpoint is a loopback OpenAI-compatible server (the test double in tests/loopback.py) that
answers every request after ``--latency`` seconds: the planner plans one step, the executor
responds, the planner answers. What is measured is the runner's own overhead and overlap, the
part that decides throughput against a real remote endpoint (OpenAI, vLLM) where latency dominates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from loopback import FakeOpenAI, completion

from memento_lab.config import Settings
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.run import run_experiment


def handler(req: dict) -> tuple:
    fmt = (req.get("response_format") or {}).get("json_schema", {}).get("name")
    if "tools" in req:
        call = {
            "id": "c",
            "type": "function",
            "function": {"name": "respond", "arguments": json.dumps({"result": "olleh"})},
        }
        return 200, completion("", tool_calls=[call]), {}
    if fmt == "final_answer":
        return 200, completion('{"final_answer": "olleh"}'), {}
    has_results = any("Result of step" in str(m.get("content")) for m in req["messages"])
    plan = (
        {"plan": [], "final_answer": "olleh"}
        if has_results
        else {"plan": [{"id": 1, "description": "reverse it"}], "final_answer": ""}
    )
    return 200, completion(json.dumps(plan)), {}


async def one(concurrency: int, fake: FakeOpenAI, tasks: int, out: Path) -> float:
    settings = Settings(
        openai_base_url=fake.base_url, openai_api_key="x", planner_model="fake", llm_max_retries=0
    )  # type: ignore[call-arg]
    cfg = ExperimentConfig(
        suite="reasoning-gym:spell_backward",
        n=tasks,
        iterations=1,
        memory="none",
        tools=[],
        cassette="off",
        concurrency=concurrency,
        max_cycles=2,
        max_steps=1,
        out=str(out / f"c{concurrency}"),
    )
    t0 = time.perf_counter()
    result = await run_experiment(cfg, settings=settings, progress=False)
    assert result.rows == tasks, result
    return time.perf_counter() - t0


def _rows(out: Path):
    from memento_lab.experiments.results import load_results

    return load_results([out]).select("task_id", "answer", "reward").sort("task_id")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--tasks", type=int, default=16)
    args = ap.parse_args()
    with FakeOpenAI(handler, delay=args.latency) as fake, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(
            one(2, fake, 2, Path(tmp) / "warm-up")
        )  # loads the sentence encoder once, outside the timings
        times = {c: asyncio.run(one(c, fake, args.tasks, Path(tmp))) for c in (1, 8)}
        same = _rows(Path(tmp) / "c1").equals(_rows(Path(tmp) / "c8"))
    calls = 3  # planner, executor, planner (the suite's own scorer judges: no judge call)
    print(f"{args.tasks} episodes x {calls} calls, {args.latency * 1000:.0f} ms per call")
    for c, t in times.items():
        print(f"concurrency {c}: {t:6.2f} s  ({args.tasks / t:5.1f} episodes/s)")
    print(f"same results at concurrency 1 and 8 (task, answer, reward): {same}")
    print(
        f"concurrency 8 is {times[1] / times[8]:.1f}x faster than 1 (ideal 8x); "
        f"floor at concurrency 1: {args.tasks * calls * args.latency:.1f} s of pure latency"
    )


if __name__ == "__main__":
    main()

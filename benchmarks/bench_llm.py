"""Decode speed of the embedded model here, and replay speed of a recorded run versus live.

    python benchmarks/bench_llm.py [--model qwen2.5-coder-1.5b] [--calls 6]

Live: ``--calls`` planner requests (JSON plans) on the embedded model, recorded into a cassette.
Replay: the same requests answered from the cassette (no server started). Prints tokens/s (end to
end, and llama.cpp's own decode rate) and the replay/live speed ratio measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from memento_lab.agent.models.cassette import Cassette
from memento_lab.agent.models.llm import open_llms
from memento_lab.config import Settings

QUESTIONS = [
    "Compute 17 * 23 and check the result.",
    "Reverse the spelling of the word 'memory'.",
    "How many letters 'r' are in 'strawberry'?",
    "Sum the numbers 12, 7 and 30.",
    "Find the capital of the country whose capital is Paris.",
    "Write a function that returns the square of a number.",
    "Sort the list 5, 2, 9, 1.",
    "What is 2 to the power of 10?",
]
SCHEMA = {
    "type": "object",
    "properties": {
        "plan": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "description": {"type": "string"}},
                "required": ["id", "description"],
            },
        }
    },
    "required": ["plan"],
}


async def one_pass(model: str, cassette: Cassette, calls: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    e2e = []
    async with open_llms(Settings(), local_model=model, cassette=cassette) as llms:
        for q in QUESTIONS[:calls]:
            r = await llms.planner.chat(
                [{"role": "user", "content": f"Make a short plan. Task: {q}"}],
                json_schema=SCHEMA,
                max_tokens=128,
            )
            if r.call.latency_s and r.call.usage.completion_tokens:
                e2e.append(r.call.usage.completion_tokens / r.call.latency_s)
    return time.perf_counter() - t0, e2e


def decode_rates(path: Path) -> list[float]:
    """llama.cpp's own decode tokens/s, kept in the recorded responses (``timings``)."""
    with sqlite3.connect(path) as db:
        rows = [json.loads(r[0]) for r in db.execute("SELECT response FROM calls")]
    return [r["timings"]["predicted_per_second"] for r in rows if "timings" in r]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=Settings().local_model)
    ap.add_argument("--calls", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        live_s, e2e = asyncio.run(one_pass(args.model, Cassette(path, "record"), args.calls))
        decode = decode_rates(path)
        replay_s, _ = asyncio.run(one_pass(args.model, Cassette(path, "replay"), args.calls))
    print(
        f"model: {args.model}  calls: {args.calls}  (2 threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']})"
    )
    print(
        f"live   : {live_s:7.2f} s total incl. model load; end-to-end tokens/s per call: median {statistics.median(e2e):.1f} (min {min(e2e):.1f}, max {max(e2e):.1f})"
    )
    if decode:
        print(
            f"decode : median {statistics.median(decode):.1f} tokens/s (llama.cpp timings; prompt processing excluded)"
        )
    print(f"replay : {replay_s:7.3f} s total (no server started)")
    print(f"replay is {live_s / replay_s:,.0f}x faster than live")


if __name__ == "__main__":
    main()

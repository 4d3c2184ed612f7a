"""Media and crawl tools over stdio: offline accuracy on generated media, and latency per call.

    python benchmarks/bench_media.py [--repeats 3] [--json out.json]

Media needs no system tool (``tests/media_files.py``): text images with Pillow (OCR exact match),
six Harvard sentences spoken by espeak-ng, committed as Ogg Opus (``tests/data/speech/``; word
error rate), a 6 s video encoded with PyAV (narration). Each tool is called through a real
``ToolBox`` (server processes over stdio); the first call of a tool pays the model load
(``cold_s``), the rest give ``warm_median_s``. Baseline in the same run: ``calculate`` on the math
server (an MCP round trip that does no work), so ``x_baseline`` = warm median / baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test helpers
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's servers/

from loopback import Loopback
from media_files import SENTENCES, render_text, speech, video_file, wer
from test_crawl import SITE

from memento_lab.agent.tools.mcp_client import ToolBox
from memento_lab.config import Settings

TEXTS = ["MEMENTO 4217", "INVOICE 9083", "Total 56.40", "Room 12B", "hello world 2026", "ABC-123-XYZ"]


async def timed(tb: ToolBox, tool: str, args: dict) -> tuple[float, str]:
    t = time.perf_counter()
    call = await tb.call(tool, args)
    if call.error:
        raise RuntimeError(f"{tool}({args}) failed: {call.error}")
    return time.perf_counter() - t, call.result or ""


async def run(repeats: int, ws: Path) -> dict:
    for i, text in enumerate(TEXTS):
        render_text(ws / f"text{i}.png", text, (560, 120))
    for i in range(len(SENTENCES)):
        speech(ws / f"speech{i}.ogg", i)
    video_file(ws)
    site = Loopback(
        lambda path: (200, "text/html", SITE[path]) if path in SITE else (404, "text/plain", "no")
    )
    settings = Settings(allow_network=True, cache_dir=ws / "cache")
    out: dict = {"latency": {}, "accuracy": {}}
    try:
        env = {"MEMENTO_WEB_ALLOW_HOSTS": "127.0.0.1"}
        async with ToolBox(["math", "media", "web"], workspace=ws, settings=settings, env=env) as tb:
            calls = {
                "calculate (baseline)": ("calculate", {"expression": "2^20"}),
                "read_image_text": ("read_image_text", {"path": "text0.png"}),
                "transcribe_audio (2.5 s ogg)": ("transcribe_audio", {"path": "speech0.ogg"}),
                "narrate_video (6 s, 6 frames)": ("narrate_video", {"path": "clip.mp4", "every_s": 1.0}),
                "crawl (4 loopback pages)": ("crawl", {"url": site.url + "/", "query": "lighthouse built"}),
            }
            for label, (tool, args) in calls.items():
                times = [(await timed(tb, tool, args))[0] for _ in range(repeats + 1)]
                out["latency"][label] = {
                    "cold_s": round(times[0], 3),
                    "warm_median_s": statistics.median(times[1:]),
                }
            base = out["latency"]["calculate (baseline)"]["warm_median_s"]
            for row in out["latency"].values():
                row["x_baseline"] = round(row["warm_median_s"] / base, 1)
                row["warm_median_s"] = round(row["warm_median_s"], 3)

            ocr = [
                (t, (await timed(tb, "read_image_text", {"path": f"text{i}.png"}))[1])
                for i, t in enumerate(TEXTS)
            ]
            asr = [
                (s, (await timed(tb, "transcribe_audio", {"path": f"speech{i}.ogg"}))[1])
                for i, s in enumerate(SENTENCES)
            ]
    finally:
        site.close()
    out["accuracy"]["ocr_exact_match"] = f"{sum(a == b for a, b in ocr)}/{len(ocr)}"
    out["accuracy"]["ocr_misses"] = [(a, b) for a, b in ocr if a != b]
    errors = [wer(s, h) for s, h in asr]
    out["accuracy"]["asr_wer_mean"] = round(statistics.mean(errors), 3)
    out["accuracy"]["asr_per_sentence"] = [(s, h, round(e, 2)) for (s, h), e in zip(asr, errors, strict=True)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        result = anyio.run(run, args.repeats, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

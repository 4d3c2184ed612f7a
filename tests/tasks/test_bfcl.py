"""BFCL multi-turn as a suite: bfcl-eval's own tool classes served over MCP (servers/bfcl.py, a real
stdio process per episode), tasks judged by bfcl-eval's own final-state checker.

The oracle is BFCL's ground truth itself: its calls, made through the real server, must be judged
valid; dropping one must not. The agent test scripts a loopback endpoint (the test double for a
remote model) to make those calls; the slow test runs the CLI with the real 0.5B model."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from memento_lab.config import PROJECT_ROOT

pytest.importorskip("bfcl_eval", reason="bfcl-eval is not installed (make install: pip install --no-deps)")

from memento_lab import bfcl_data
from memento_lab.agent.loop import open_episode_tools
from memento_lab.agent.models.cassette import Cassette
from memento_lab.agent.tools.mcp_client import ToolBox
from memento_lab.tasks.bfcl import BfclSuite, bfcl_verdict, call_string
from memento_lab.tasks.suites import load_suite
from memento_lab.trace import ToolCall

TASK = "multi_turn_base_107"  # 5 ground-truth calls, none repeated


def truth_calls(bfcl_id: str) -> list[tuple[str, dict]]:
    """BFCL's ground-truth call strings as (name, keyword arguments) (positional ones named by the doc)."""
    task = bfcl_data.entry(bfcl_id)
    docs = {d["name"]: d for _, d in bfcl_data.available_functions(task)}
    out = []
    for turn in bfcl_data.ground_truth(bfcl_data.category_of(bfcl_id))[bfcl_id]:
        for text in turn:
            node = ast.parse(text, mode="eval").body
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            args = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            names = list(docs[node.func.id]["parameters"]["properties"])
            args |= {n: ast.literal_eval(a) for n, a in zip(names, node.args, strict=False)}
            out.append((node.func.id, args))
    return out


def test_pinned_version_is_installed_and_makefile_agrees() -> None:
    from importlib.metadata import version

    # bfcl-eval is no extra (its numpy pin conflicts with the core): make install adds it with --no-deps,
    # and pyproject's note names the same pin
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert "bfcl" not in pyproject["optional-dependencies"]
    assert not any(d.startswith("bfcl-eval") for d in pyproject["dependencies"])
    pin = re.search(r"^BFCL\s*:=\s*(\S+)", (PROJECT_ROOT / "Makefile").read_text(), flags=re.M)
    assert pin and pin.group(1) == f"bfcl-eval=={version('bfcl-eval')}"
    assert f"--no-deps {pin.group(1)}" in (PROJECT_ROOT / "pyproject.toml").read_text()


def test_suite_specs_and_tasks() -> None:
    suite = load_suite("bfcl:base", n=3, seed=0)
    tasks = suite.tasks()
    assert isinstance(suite, BfclSuite) and len(tasks) == 3 and len({t.id for t in tasks}) == 3
    entry = bfcl_data.entry(tasks[0].metadata["bfcl_id"])
    assert tasks[0].family == "multi_turn_base" and tasks[0].answer is None
    for i, turn in enumerate(entry["question"], 1):  # every turn's request, in order
        assert f"{i}. {turn[0]['content'].strip()}" in tasks[0].question
    assert [t.id for t in load_suite("bfcl:base", n=3, seed=0).tasks()] == [t.id for t in tasks]
    assert [t.id for t in load_suite("bfcl:base", n=3, seed=1).tasks()] != [t.id for t in tasks]
    both = load_suite("bfcl:base,long_context", n=2).tasks()
    assert [t.family for t in both] == ["multi_turn_base"] * 2 + ["multi_turn_long_context"] * 2
    for bad in ("bfcl:miss_func", "bfcl:", "bfcl:nope"):
        with pytest.raises(ValueError, match="base"):
            load_suite(bad)


def test_call_strings_are_literals_of_the_tasks_own_functions() -> None:
    allowed = {"mv", "cd"}
    assert call_string(
        ToolCall(server="bfcl", name="mv", arguments={"source": "a'b", "destination": "t"}), allowed
    ) == ("""mv(source="a'b", destination='t')""")
    assert (
        call_string(ToolCall(server="bfcl", name="open", arguments={"file": "/etc/passwd"}), allowed) is None
    )
    assert call_string(ToolCall(server="bfcl", name="cd", arguments={"x) or (1": 1}), allowed) is None


def test_bfcl_checker_on_ground_truth_and_on_less() -> None:
    calls = [ToolCall(server="bfcl", name=n, arguments=a) for n, a in truth_calls(TASK)]
    ok = bfcl_verdict(TASK, calls)
    assert ok.correct and ok.score == 1.0 and ok.judge == "bfcl_multi_turn"
    short = bfcl_verdict(TASK, calls[:-1])
    assert not short.correct and short.score == 0.0 and "multi_turn:" in short.detail
    assert "empty_turn_model_response" in bfcl_verdict(TASK, []).detail
    again = bfcl_verdict(TASK, calls)  # no state leaks from one check into the next
    assert again.correct


@pytest.mark.anyio
async def test_server_serves_the_tasks_stateful_tools_and_replays_by_state(tmp_path: Path) -> None:
    suite = BfclSuite(["base"], n=0)
    task = next(t for t in suite.tasks() if t.metadata["bfcl_id"] == TASK)
    entry = bfcl_data.entry(TASK)
    tape = tmp_path / "cassette.sqlite"

    async def episode(mode: str) -> list[ToolCall]:
        base = ToolBox([], cassette=Cassette(tape, mode))
        async with open_episode_tools(suite.episode_servers(task), base) as tools:
            listed = {t["function"]["name"] for t in tools.openai_tools()}
            expected = {d["name"] for _, d in bfcl_data.available_functions(entry)}
            assert listed == expected and not set(entry.get("excluded_function") or []) & listed
            made = [await tools.call(n, a) for n, a in truth_calls(TASK)]
            made.append(await tools.call(made[0].name, made[0].arguments))  # same call, later state
            return made

    live = await episode("record")
    assert all(c.error is None for c in live), [c.error for c in live]
    assert bfcl_verdict(TASK, live[:-1]).correct
    replayed = await episode("replay")  # no server: every result from the tape, keyed by prior calls
    assert [c.result for c in replayed] == [c.result for c in live]
    assert bfcl_verdict(TASK, replayed[:-1]).correct


@pytest.mark.anyio
async def test_agent_episode_on_bfcl_tools_is_judged_by_state(tmp_path: Path) -> None:
    """A scripted endpoint makes the ground-truth calls through the agent's executor; the episode
    opens the task's own server, and the suite's verdict comes from the calls really made. The
    episode records into the run's cassette (the agent has no other tools) and replays from it."""
    from loopback import FakeOpenAI, completion

    from memento_lab.agent.loop import Agent, AgentConfig
    from memento_lab.agent.models.llm import open_llms
    from memento_lab.config import Settings

    suite = BfclSuite(["base"], n=0)
    task = next(t for t in suite.tasks() if t.metadata["bfcl_id"] == TASK)
    script = truth_calls(TASK)

    def handler(req: dict) -> tuple:
        if req.get("tools"):  # the executor: the next ground-truth call, then respond
            done = sum(
                1 for m in req["messages"] if m["role"] == "user" and m["content"].startswith("Result of ")
            )
            name, args = script[done] if done < len(script) else ("respond", {"result": "done"})
            call = {
                "id": f"c{done}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            return 200, completion("", tool_calls=[call]), {}
        step_done = any(
            m["content"].startswith("Result of step") for m in req["messages"] if m["role"] == "user"
        )
        plan = (
            {"plan": [], "final_answer": "done"}
            if step_done
            else {"plan": [{"id": 1, "description": "do every request"}], "final_answer": ""}
        )
        return 200, completion(json.dumps(plan)), {}

    with FakeOpenAI(handler) as fake:
        settings = Settings(
            openai_base_url=fake.base_url, planner_model="p", executor_model="e", judge_model="j"
        )
        config = AgentConfig(max_tool_calls=len(script) + 1)
        tape = tmp_path / "cassette.sqlite"
        async with open_llms(settings, cassette=Cassette(tape, "record")) as llms:
            good = await Agent(llms, suite=suite, config=config).arun(task)
        sent = len(fake.requests)
        async with open_llms(settings, cassette=Cassette(tape, "replay")) as llms:
            replayed = await Agent(llms, suite=suite, config=config).arun(task)
        assert len(fake.requests) == sent  # the replay sent nothing
        async with open_llms(settings) as llms:
            script.pop()  # the same episode one call short
            short = await Agent(llms, suite=suite, config=config).arun(task)
    assert good.error is None and replayed.error is None, (good.error, replayed.error)
    assert [c.result for c in replayed.tool_calls] == [c.result for c in good.tool_calls]
    assert replayed.reward == 1.0
    assert [c.name for c in good.tool_calls] == [n for n, _ in truth_calls(TASK)]
    assert all(c.server == "bfcl" and c.error is None for c in good.tool_calls)
    assert good.reward == 1.0 and good.verdicts[0].correct
    assert short.reward == 0.0 and "multi_turn:" in short.verdicts[0].detail


@pytest.mark.slow
def test_cli_run_bfcl_offline_with_the_small_model(tmp_path: Path) -> None:
    out = tmp_path / "bfcl-run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memento_lab.cli",
            "run",
            "--suite",
            "bfcl:base",
            "--n",
            "1",
            "--memory",
            "none",
            "--iterations",
            "1",
            "--model",
            "qwen2.5-coder-0.5b",
            "--out",
            str(out),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**__import__("os").environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and {r["family"] for r in rows} == {"multi_turn_base"}
    traces = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    for row, trace in zip(rows, traces, strict=True):
        verdict = trace["verdicts"][0]
        assert verdict["judge"] == "bfcl_multi_turn" and row["verdict"].startswith("bfcl_multi_turn: ")
        assert row["reward"] == verdict["score"] and row["correct"] == verdict["correct"]
        calls = [c for s in trace["steps"] for c in s["tool_calls"]]
        assert all(c["server"] == "bfcl" for c in calls)  # the task's tools, not code/math
        # the verdict is BFCL's on exactly these calls
        recheck = bfcl_verdict(row["task_id"].removeprefix("bfcl:"), [ToolCall(**c) for c in calls])
        assert recheck.correct == verdict["correct"]
    assert json.loads((out / "run.json").read_text())["llms"]["executor"] == "qwen2.5-coder-0.5b"

"""Any MCP server as a tool: the reference time server from PyPI (``mcp-server-time``, installed by the
``dev`` extra, a real third-party package) over stdio and over streamable HTTP on loopback; specs in
TOML and on the CLI; clear errors; an agent episode that calls it, records it and replays it with the
server absent. The model is a scripted loopback endpoint (the test double for a remote model)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion, endpoint_settings

from memento_lab.agent.models.cassette import Cassette
from memento_lab.agent.session import open_session
from memento_lab.agent.tools.mcp_client import ToolBox
from memento_lab.agent.tools.servers import ServerSpec, parse_server_arg, resolve_servers
from memento_lab.cli import main
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.tasks.suites import load_suite

TIME_SERVER = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    TIME_SERVER is None, reason="mcp-server-time is not installed (the dev extra brings it: make install)"
)
TIME = ServerSpec(command="mcp-server-time", args=["--local-timezone", "UTC"])
ABSENT = ServerSpec(command="/nonexistent/bin/mcp-server-time")  # the same server, not installed
NOON_UTC_IN_TOKYO = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}


def target_time(result: str) -> str:
    """HH:MM of the target time in a convert_time result."""
    return json.loads(result)["target"]["datetime"][11:16]


# ------------------------------------------------------------------------------------ specs, parsing
def test_specs_from_toml_tables_and_cli_flags() -> None:
    assert parse_server_arg("time=mcp-server-time --local-timezone 'Europe/Paris'") == (
        "time",
        ServerSpec(command="mcp-server-time", args=["--local-timezone", "Europe/Paris"]),
    )
    assert parse_server_arg("remote=http://127.0.0.1:8000/mcp")[1] == ServerSpec(
        url="http://127.0.0.1:8000/mcp"
    )
    assert parse_server_arg('t={"command": "x", "env": {"A": "1"}}')[1].env == {"A": "1"}
    for bad, message in (
        ("time", "expected NAME=COMMAND"),
        ("t={oops", "not valid JSON"),
        ("t=cmd 'unclosed", "cannot split"),
        ('t={"command": "x", "url": "http://h/mcp"}', "exactly one of `command`"),
        ('t={"url": "ftp://h"}', "must start with http"),
        ('t={"command": "x", "headers": {"A": "b"}}', "headers belong to a streamable-HTTP"),
        ('t={"url": "http://h/mcp", "args": ["a"]}', "args belong to a stdio server"),
        ('t={"command": "x", "argz": []}', "field 'argz'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_server_arg(bad)

    # built-ins first in the order named, then every own server; names are checked
    servers = resolve_servers(["math", "time"], {"time": TIME, "clock": {"url": "http://127.0.0.1:1/mcp"}})
    assert (
        list(servers) == ["math", "time", "clock"]
        and servers["math"].describe() == "python -m servers.math_server"
    )
    with pytest.raises(ValueError, match=r"\['math'\] are built-in servers"):
        resolve_servers([], {"math": TIME})
    with pytest.raises(ValueError, match=r"unknown tool server\(s\) \['tmie'\].*defined: \['time'\]"):
        resolve_servers(["tmie"], {"time": TIME})
    with pytest.raises(ValueError, match="tool server name 'my server'"):
        ExperimentConfig(tool_servers={"my server": TIME})


def test_run_config_reads_tool_server_tables_and_flags(tmp_path: Path) -> None:
    from memento_lab.cli import build_parser
    from memento_lab.cli.experiments import config_from_args

    toml = tmp_path / "run.toml"
    toml.write_text(
        'tools = ["math"]\n[tool_servers.time]\ncommand = "mcp-server-time"\nargs = ["--local-timezone", "UTC"]\n'
        '[tool_servers.remote]\nurl = "http://127.0.0.1:8000/mcp"\nheaders = {Authorization = "Bearer ${TOKEN}"}\n'
    )
    args = build_parser().parse_args(
        ["run", "--config", str(toml), "--tool-server", "remote=http://127.0.0.1:9/mcp"]
    )
    cfg = config_from_args(args)
    assert cfg.tools == ["math"] and cfg.tool_servers["time"] == TIME
    assert cfg.tool_servers["remote"] == ServerSpec(url="http://127.0.0.1:9/mcp")  # the flag wins
    again = ExperimentConfig.model_validate_json(cfg.model_dump_json())  # config.json round trip
    assert again == cfg and again.mismatch(cfg) == []

    toml.write_text('[tool_servers.time]\ncommand = "mcp-server-time"\nurl = "http://h/mcp"\n')
    with pytest.raises(ValueError, match=r"run.toml: field 'tool_servers.time': .*exactly one of"):
        config_from_args(build_parser().parse_args(["run", "--config", str(toml)]))


# -------------------------------------------------------------------------------------- stdio server
@pytest.mark.anyio
async def test_a_third_party_stdio_server_is_listed_called_restarted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MY_TZ", "Asia/Kolkata")  # ${VAR} in args is expanded when the server starts
    spec = ServerSpec(command="mcp-server-time", args=["--local-timezone", "${MY_TZ}"])
    async with ToolBox(resolve_servers(["math"], {"time": spec}), workspace=tmp_path) as tb:
        assert tb.tool_names() == {
            "math": ["calculate", "solve", "simplify"],
            "time": ["get_current_time", "convert_time"],
        }
        schema = next(t["function"] for t in tb.openai_tools() if t["function"]["name"] == "get_current_time")
        assert "Asia/Kolkata" in schema["parameters"]["properties"]["timezone"]["description"]
        call = await tb.call("convert_time", NOON_UTC_IN_TOKYO)
        assert call.ok and call.server == "time" and target_time(call.result or "") == "21:00"
        bad = await tb.call("convert_time", {**NOON_UTC_IN_TOKYO, "target_timezone": "Mars/Olympus"})
        assert bad.result is None and "Mars/Olympus" in (bad.error or "") and not bad.server_failed

        (pid,) = tb.pids("time")  # a console script: found under its #! interpreter
        os.kill(pid, signal.SIGKILL)
        again = await tb.call("convert_time", NOON_UTC_IN_TOKYO)
        assert again.ok and tb.restarts == 1 and tb.pids("time") != [pid]


@pytest.mark.anyio
async def test_start_errors_name_the_command_and_show_its_stderr(tmp_path: Path) -> None:
    bad_tz = ServerSpec(command="mcp-server-time", args=["--local-timezone", "Nowhere/Nope"])
    with pytest.raises(RuntimeError) as e:
        async with ToolBox({"time": bad_tz}, workspace=tmp_path):
            pass
    assert "tool server 'time' (mcp-server-time --local-timezone Nowhere/Nope) failed to start" in str(
        e.value
    )
    assert "invalid --local-timezone 'Nowhere/Nope'" in str(e.value)  # the server's own stderr line

    with pytest.raises(
        RuntimeError, match=r"\(/nonexistent/bin/mcp-server-time\) failed to start: FileNotFound"
    ):
        async with ToolBox({"time": ABSENT}, workspace=tmp_path):
            pass
    with pytest.raises(
        RuntimeError, match=r"'time': argument '\$\{UNSET_TZ_VAR\}' refers to \$\{UNSET_TZ_VAR\}"
    ):
        async with ToolBox({"time": ServerSpec(command="mcp-server-time", args=["${UNSET_TZ_VAR}"])}):
            pass
    port = free_port()  # nothing listens there
    with pytest.raises(
        RuntimeError, match=rf"'web2' \(http://127.0.0.1:{port}/mcp\) is not reachable: ConnectError"
    ):
        async with ToolBox({"web2": ServerSpec(url=f"http://127.0.0.1:{port}/mcp")}):
            pass


@pytest.mark.anyio
async def test_a_tool_name_served_twice_names_both_servers(tmp_path: Path) -> None:
    other = ServerSpec(command=str(TIME_SERVER))
    with pytest.raises(ValueError) as e:
        async with ToolBox({"time": TIME, "clock": other}, workspace=tmp_path):
            pass
    message = str(e.value)
    assert "is served by both 'time' (mcp-server-time --local-timezone UTC) and 'clock'" in message
    assert str(TIME_SERVER) in message


def test_cli_lists_and_calls_an_own_server(tmp_path: Path, capsys) -> None:
    flag = ["--tool-server", "time=mcp-server-time --local-timezone UTC"]
    assert main(["tools", "list", *flag, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"servers": {"time": ["get_current_time", "convert_time"]}}
    assert main(["tools", "list", "--servers", "math", *flag, "--json"]) == 0  # as in a run: both
    assert list(json.loads(capsys.readouterr().out)["servers"]) == ["math", "time"]
    toml = tmp_path / "run.toml"
    toml.write_text('tools = ["math"]\n[tool_servers.time]\ncommand = "mcp-server-time"\n')
    assert main(["tools", "list", "--config", str(toml), "--json"]) == 0  # the run's tools, exactly
    assert list(json.loads(capsys.readouterr().out)["servers"]) == ["math", "time"]
    assert main(["tools", "call", "time", "convert_time", json.dumps(NOON_UTC_IN_TOKYO), *flag]) == 0
    assert target_time(capsys.readouterr().out) == "21:00"
    assert main(["tools", "list", "--tool-server", "math=mcp-server-time"]) == 2
    assert "['math'] are built-in servers" in capsys.readouterr().err


# ------------------------------------------------------------------------------- streamable HTTP
GUARDED_TIME_SERVER = """
import sys, uvicorn
from mcp_server_time.server import create_server
port, token = int(sys.argv[1]), sys.argv[2]
app = create_server("UTC").streamable_http_app()
async def guarded(scope, receive, send):  # requests without the bearer token are refused
    if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != f"Bearer {token}".encode():
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"bad token"})
        return
    await app(scope, receive, send)
uvicorn.run(guarded, host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def http_time_server(token: str) -> Iterator[str]:
    """The time server's tools served by the MCP SDK's streamable-HTTP app on loopback; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", GUARDED_TIME_SERVER, str(port), token], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not listen within 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.anyio
async def test_a_streamable_http_server_with_headers_records_and_replays(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TIME_TOKEN", "s3cret")
    tape = tmp_path / "cassette.sqlite"
    with http_time_server("s3cret") as url:
        spec = ServerSpec(url=url, headers={"Authorization": "Bearer ${TIME_TOKEN}"})
        async with ToolBox({"clock": spec}, cassette=Cassette(tape, "record")) as tb:
            assert tb.tool_names() == {"clock": ["get_current_time", "convert_time"]}
            live = await tb.call("convert_time", NOON_UTC_IN_TOKYO)
        assert live.ok and live.server == "clock" and target_time(live.result or "") == "21:00"
        wrong = ServerSpec(url=url, headers={"Authorization": "Bearer nope"})
        with pytest.raises(RuntimeError, match=r"'clock' \(http://127.0.0.1:\d+/mcp\) is not reachable"):
            async with ToolBox({"clock": wrong}):
                pass
    # the server is gone; the secret too: the replay needs neither
    monkeypatch.delenv("TIME_TOKEN")
    async with ToolBox({"clock": spec}, cassette=Cassette(tape, "replay")) as tb:
        replayed = await tb.call("convert_time", NOON_UTC_IN_TOKYO)
    assert (replayed.result, replayed.server) == (live.result, "clock")


# ------------------------------------------------------------------------------- an agent episode
def time_agent(request: dict) -> tuple[int, dict, dict]:
    """The scripted model: the executor calls convert_time once, then responds with its result; the
    planner plans one step, then answers with the HH:MM it reads in the step's result."""
    messages = request["messages"]
    if request.get("tools"):
        results = [
            m["content"] for m in messages if m["role"] == "user" and m["content"].startswith("Result of ")
        ]
        name, args = ("respond", {"result": results[-1]}) if results else ("convert_time", NOON_UTC_IN_TOKYO)
        call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        return 200, completion("", tool_calls=[call]), {}
    step = [
        m["content"] for m in messages if m["role"] == "user" and m["content"].startswith("Result of step")
    ]
    if step:
        found = re.search(r"Asia/Tokyo.*?T(\d\d:\d\d)", step[-1], re.S)
        return 200, completion(json.dumps({"plan": [], "final_answer": found.group(1) if found else "?"})), {}
    plan = {"plan": [{"id": 1, "description": "convert 12:00 UTC to Tokyo time"}], "final_answer": ""}
    return 200, completion(json.dumps(plan)), {}


def time_task(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        json.dumps({"question": "It is 12:00 in UTC. What time is it in Tokyo (HH:MM)?", "answer": "21:00"})
        + "\n"
    )
    return path


@pytest.mark.anyio
async def test_agent_episode_calls_records_and_replays_a_third_party_server(tmp_path: Path) -> None:
    suite = load_suite(f"jsonl:{time_task(tmp_path)}", n=1, seed=0)
    (task,) = suite.tasks()
    with FakeOpenAI(time_agent) as fake:
        settings = endpoint_settings(fake)  # every role on the one model it serves
        async with open_session(
            tmp_path / "rec", tool_servers={"time": TIME}, cassette="record", settings=settings
        ) as s:
            assert s.tools is not None and s.tools.servers == ["time"]
            live = await s.agent(suite=suite).arun(task)
        sent = len(fake.requests)
        replay = tmp_path / "replay"
        replay.mkdir()
        shutil.copy(tmp_path / "rec" / "cassette.sqlite", replay / "cassette.sqlite")
        async with open_session(
            replay, tool_servers={"time": ABSENT}, cassette="replay", settings=settings
        ) as s:
            assert s.tools is not None and s.tools.pids("time") == []
            replayed = await s.agent(suite=suite).arun(task)
            assert s.tools.pids("time") == []  # never started: it is not even installed
        assert len(fake.requests) == sent  # nor was the model asked anything
    assert live.error is None and live.final_answer == "21:00" and live.reward == 1.0
    (call,) = live.tool_calls
    assert (call.server, call.name, call.arguments) == ("time", "convert_time", NOON_UTC_IN_TOKYO)
    assert [(c.server, c.result) for c in replayed.tool_calls] == [("time", call.result)]
    assert replayed.final_answer == "21:00" and replayed.reward == 1.0


def test_cli_run_with_an_own_server_records_and_replays_without_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from memento_lab.experiments.results import read_rows

    toml = tmp_path / "run.toml"
    toml.write_text(
        f'suite = "jsonl:{time_task(tmp_path)}"\nn = 1\niterations = 1\nmemory = "none"\ntools = []\n'
        '[tool_servers.time]\ncommand = "mcp-server-time"\nargs = ["--local-timezone", "UTC"]\n'
    )
    with FakeOpenAI(time_agent) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)  # every role on the one model it serves
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        rec, rep = tmp_path / "rec", tmp_path / "rep"
        assert main(["run", "--config", str(toml), "--cassette", "record", "--out", str(rec)]) == 0
        sent = len(fake.requests)
        rep.mkdir()
        shutil.copy(rec / "cassette.sqlite", rep / "cassette.sqlite")
        absent = ["--tool-server", "time=/nonexistent/bin/mcp-server-time"]
        assert main(["run", "--config", str(toml), *absent, "--cassette", "replay", "--out", str(rep)]) == 0
        assert len(fake.requests) == sent
    capsys.readouterr()
    for out in (rec, rep):
        (row,) = read_rows(out)
        assert (row.status, row.answer, row.reward, row.n_tool_calls) == ("ok", "21:00", 1.0, 1)
    stored = json.loads((rec / "config.json").read_text())["tool_servers"]
    assert stored["time"]["command"] == "mcp-server-time" and stored["time"]["args"] == [
        "--local-timezone",
        "UTC",
    ]

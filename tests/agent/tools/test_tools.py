"""ToolBox: real server processes over stdio, OpenAI schemas, routed calls, restarts, cassettes, CLI."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import pytest
from loopback import Loopback, searxng_reply

from memento_lab.agent.models.cassette import Cassette, CassetteMiss
from memento_lab.agent.tools.mcp_client import ToolBox, available_servers
from memento_lab.agent.tools.servers import builtin, server_env
from memento_lab.cli.agent import cli_tools_call, cli_tools_list
from memento_lab.config import Settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    """Settings with a private cache dir: the search server builds its index there on first use."""
    return Settings(cache_dir=tmp_path_factory.mktemp("cache"), allow_network=False, searxng_url=None)


EXPECTED_TOOLS = {
    "code": ["run_python"],
    "search": ["search", "fetch"],
    "documents": ["read_document", "list_files"],
    "math": ["calculate", "solve", "simplify"],
    "web": ["fetch_url", "crawl"],
    "media": ["read_image_text", "describe_image", "transcribe_audio", "narrate_video"],
}


@pytest.mark.anyio
@pytest.mark.slow
async def test_stdio_round_trip_through_every_server(tmp_path, settings):
    ws = tmp_path / "ws"
    async with ToolBox(available_servers(), workspace=ws, settings=settings) as tb:
        assert tb.tool_names() == EXPECTED_TOOLS
        schemas = tb.openai_tools()
        assert len(schemas) == 14 and all(s["type"] == "function" for s in schemas)
        calc = next(s["function"] for s in schemas if s["function"]["name"] == "calculate")
        assert calc["parameters"]["required"] == ["expression"]
        assert calc["parameters"]["properties"]["expression"]["type"] == "string"
        assert calc["description"]
        for server in available_servers():
            assert len(tb.pids(server)) == 1  # one real process each

        code = await tb.call(
            "run_python", {"code": "open('result.txt', 'w').write(str(2**20))\nprint('written')"}
        )
        assert code.ok and code.server == "code" and "written" in (code.result or "") and code.duration_s > 0
        doc = await tb.call("read_document", {"path": "result.txt"})  # same workspace for every server
        assert (doc.server, doc.result) == ("documents", "1048576")
        assert (ws / "result.txt").read_text() == "1048576"

        calc_call = await tb.call("calculate", {"expression": "2^20"})
        assert (calc_call.server, calc_call.result) == ("math", "1048576")

        found = await tb.call("search", {"query": "tallest mountain above sea level Himalayas", "k": 3})
        assert found.ok and "[Mount_Everest]" in (found.result or "")
        page = await tb.call("fetch", {"doc_id": "Mount_Everest"})
        assert page.ok and (page.result or "").startswith("Mount Everest")

        web = await tb.call("fetch_url", {"url": "http://127.0.0.1:9/"})
        assert web.server == "web" and web.result is None
        assert web.error == "network access is disabled (set MEMENTO_ALLOW_NETWORK=1)"


@pytest.mark.anyio
async def test_errors_land_in_the_tool_call(tmp_path, settings):
    async with ToolBox(["math", "code"], workspace=tmp_path, settings=settings) as tb:
        unknown = await tb.call("rm_rf", {"path": "/"})
        assert (
            unknown.server == ""
            and "unknown tool 'rm_rf'" in (unknown.error or "")
            and "calculate" in (unknown.error or "")
        )
        bad_args = await tb.call("calculate", {"expr": "1"})
        assert (
            bad_args.server == "math"
            and "expression" in (bad_args.error or "")
            and "Field required" in (bad_args.error or "")
        )
        not_dict = await tb.call("calculate", ["1 + 1"])  # type: ignore[arg-type]
        assert "JSON object" in (not_dict.error or "")
        tool_error = await tb.call("calculate", {"expression": "1/0"})
        assert tool_error.error == "'1/0' is undefined (division by zero?)"  # SDK prefix stripped
        failed = await tb.call("run_python", {"code": "raise SystemExit(4)"})
        assert failed.result is None and "exit code 4" in (failed.error or "")
        assert tb.restarts == 0


@pytest.mark.anyio
async def test_a_killed_server_is_restarted_and_the_call_retried(tmp_path, settings):
    async with ToolBox(["math"], workspace=tmp_path, settings=settings) as tb:
        (old,) = tb.pids("math")
        os.kill(old, signal.SIGKILL)
        call = await tb.call("calculate", {"expression": "6 * 7"})
        assert call.ok and call.result == "42"
        assert tb.restarts == 1 and "restarted math" in tb.events[0]
        (new,) = tb.pids("math")
        assert new != old

        tb._procs["math"].spec = builtin("no_such_module")  # the next restart cannot start the server
        os.kill(new, signal.SIGKILL)
        broken = await tb.call("calculate", {"expression": "1 + 1"})
        assert broken.result is None
        assert "could not be restarted" in (broken.error or "") and "calculate" in (broken.error or "")
        assert tb.restarts == 2


@pytest.mark.anyio
@pytest.mark.slow
async def test_a_hung_call_times_out_and_the_server_comes_back(tmp_path, settings):
    env = {"MEMENTO_CODE_TIMEOUT": "60"}  # the sandbox would wait longer than the toolbox does
    async with ToolBox(["code"], workspace=tmp_path, settings=settings, call_timeout_s=3, env=env) as tb:
        hung = await tb.call("run_python", {"code": "import time\ntime.sleep(30)"})
        assert hung.result is None and "timed out after 3 s" in (hung.error or "")
        assert tb.restarts == 1
        again = await tb.call("run_python", {"code": "print('back')"})
        assert again.ok and "back" in (again.result or "")


@pytest.mark.anyio
async def test_replay_never_starts_a_server(tmp_path, settings):
    path = tmp_path / "cassette.sqlite"
    recorder = Cassette(path, "record")
    async with ToolBox(["math"], workspace=tmp_path, settings=settings, cassette=recorder) as tb:
        live = await tb.call("calculate", {"expression": "2^64"})
    recorder.close()
    assert live.result == "18446744073709551616"

    replayer = Cassette(path, "replay")
    async with ToolBox(["math"], workspace=tmp_path, settings=settings, cassette=replayer) as tb:
        assert tb.pids("math") == []  # nothing was started ...
        assert tb.tool_names() == {"math": ["calculate", "solve", "simplify"]}  # ... the listing was replayed
        again = await tb.call("calculate", {"expression": "2^64"})
        assert (again.server, again.result, again.duration_s) == ("math", live.result, live.duration_s)
        with pytest.raises(CassetteMiss, match="calculate"):
            await tb.call("calculate", {"expression": "2^65"})
        assert tb.pids("math") == []
    replayer.close()


@pytest.mark.anyio
async def test_search_uses_searxng_when_configured(tmp_path):
    fake = Loopback(searxng_reply)
    try:
        settings = Settings(searxng_url=fake.url, cache_dir=tmp_path / "cache")
        async with ToolBox(["search"], workspace=tmp_path, settings=settings) as tb:
            call = await tb.call("search", {"query": "ada lovelace", "k": 2})
    finally:
        fake.close()
    assert call.ok and "[https://example.org/ada] Ada Lovelace" in (call.result or "")
    assert fake.requests == ["/search?q=ada+lovelace&format=json"]
    assert not (tmp_path / "cache" / "search").exists()  # no offline index was built


@pytest.mark.anyio
async def test_a_server_that_cannot_start_is_reported(tmp_path, settings):
    with pytest.raises(
        RuntimeError, match=r"'math' \(python -m servers.no_such_module\) failed to start"
    ) as e:
        async with ToolBox({"math": builtin("no_such_module")}, workspace=tmp_path, settings=settings):
            pass
    assert "No module named servers.no_such_module" in str(e.value)  # the tail of its stderr


def test_server_env_is_an_explicit_whitelist(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("MEMENTO_SANDBOX", "rlimits")
    env = server_env(
        tmp_path, Settings(allow_network=True, searxng_url="http://127.0.0.1:8888", cache_dir=tmp_path)
    )
    assert "OPENAI_API_KEY" not in env
    assert env["MEMENTO_WORKSPACE"] == str(tmp_path) and env["MEMENTO_ALLOW_NETWORK"] == "1"
    assert env["SEARXNG_URL"] == "http://127.0.0.1:8888" and env["MEMENTO_SANDBOX"] == "rlimits"
    assert Path(env["PYTHONPATH"], "servers", "code.py").exists()


def test_toolbox_rejects_bad_server_lists_and_duplicate_tools():
    with pytest.raises(ValueError, match="unknown tool server"):
        ToolBox(["code", "shell"])
    with pytest.raises(ValueError, match="listed twice"):
        ToolBox(["math", "math"])
    tb = ToolBox(["math", "search"])
    tb._tools = {
        "math": [{"name": "search", "description": "", "input_schema": {}}],
        "search": [{"name": "search", "description": "", "input_schema": {}}],
    }
    with pytest.raises(ValueError, match="'search' is served by both 'math' .* and 'search'"):
        tb._check_unique()


# --------------------------------------------------------------------------------------------- CLI
def test_cli_tools_list_json(capsys):
    assert cli_tools_list(argparse.Namespace(servers="math,documents", json=True, workspace=None)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"servers": {"math": EXPECTED_TOOLS["math"], "documents": EXPECTED_TOOLS["documents"]}}
    assert cli_tools_list(argparse.Namespace(servers="math,shell", json=True, workspace=None)) == 2
    assert "unknown tool server(s) ['shell']" in capsys.readouterr().err


def test_cli_tools_call(capsys, tmp_path):
    ns = argparse.Namespace(
        server="math", tool="calculate", arguments='{"expression": "2^8"}', workspace=str(tmp_path)
    )
    assert cli_tools_call(ns) == 0
    assert capsys.readouterr().out.strip() == "256"

    ns.arguments = '{"expression": "1/0"}'
    assert cli_tools_call(ns) == 1
    assert "undefined" in capsys.readouterr().err

    ns.arguments = '{"expression": '
    assert cli_tools_call(ns) == 2
    assert "not valid JSON" in capsys.readouterr().err

    ns.arguments, ns.tool = "{}", "fetch_url"
    assert cli_tools_call(ns) == 2
    assert "server 'math' has no tool 'fetch_url'" in capsys.readouterr().err


@pytest.mark.anyio
async def test_toolbox_opened_and_closed_in_different_tasks(tmp_path):
    """Jupyter runs every cell in its own task: opening in one cell and closing in another must work."""
    import asyncio

    tb = ToolBox(["math"], workspace=tmp_path)
    await asyncio.create_task(tb.__aenter__())
    call = await asyncio.create_task(tb.call("calculate", {"expression": "6*7"}))
    assert call.error is None and "42" in (call.result or "")
    pids = tb._procs["math"].pids()
    assert pids
    await asyncio.create_task(tb.__aexit__(None, None, None))
    assert not tb._procs["math"].pids()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )

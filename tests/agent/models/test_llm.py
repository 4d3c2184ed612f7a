"""The LLM layer: the real embedded model, error paths against a loopback endpoint, record/replay."""

from __future__ import annotations

import json

import pytest
from loopback import FakeOpenAI, completion, endpoint_settings

from memento_lab.agent.models.cassette import Cassette, CassetteMiss
from memento_lab.agent.models.llm import open_llms
from memento_lab.agent.models.tool_calls import parse_json_reply, tool_call_schema, validate_tool_call
from memento_lab.config import Settings

SMALL = "qwen2.5-coder-0.5b"
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
RESPOND = {
    "type": "function",
    "function": {
        "name": "respond",
        "description": "Report the result.",
        "parameters": {
            "type": "object",
            "properties": {"result": {"type": "string"}},
            "required": ["result"],
        },
    },
}


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        (
            'Sure!\n```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n```',
            {"name": "add", "arguments": {"a": 1, "b": 2}},
        ),
        (
            '<tool_call>\n{"name": "respond", "arguments": {"result": "x}"}}\n</tool_call>',
            {"name": "respond", "arguments": {"result": "x}"}},
        ),
        (
            'The plan is {"plan": [{"id": 1, "description": "a {b}"}]} and that is all',
            {"plan": [{"id": 1, "description": "a {b}"}]},
        ),
        ("no json here", None),
        ("[1, 2, 3]", None),
        ("", None),
    ],
)
def test_parse_json_reply(text: str, expected: object) -> None:
    assert parse_json_reply(text) == expected


def test_validate_tool_call_reports_what_is_wrong() -> None:
    tools = [ADD_TOOL, RESPOND]
    ok = validate_tool_call({"name": "add", "arguments": '{"a": 1, "b": 2}'}, tools)
    assert (ok.name, ok.arguments) == ("add", {"a": 1, "b": 2})
    with pytest.raises(ValueError, match="unknown tool 'mul'"):
        validate_tool_call({"name": "mul", "arguments": {}}, tools)
    with pytest.raises(ValueError, match=r"missing required argument\(s\) \['b'\]"):
        validate_tool_call({"name": "add", "arguments": {"a": 1}}, tools)
    with pytest.raises(ValueError, match="not valid JSON"):
        validate_tool_call({"name": "add", "arguments": "{a: 1"}, tools)
    schema = tool_call_schema(tools)
    assert [b["properties"]["name"]["enum"] for b in schema["anyOf"]] == [["add"], ["respond"]]


# --------------------------------------------------------------------------- loopback endpoint
@pytest.mark.anyio
async def test_429_then_200_is_one_retry() -> None:
    state = {"n": 0}

    def handler(req: dict) -> tuple:
        state["n"] += 1
        if state["n"] == 1:
            return 429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"retry-after-ms": "10"}
        return 200, completion("hello"), {}

    with FakeOpenAI(handler) as fake:
        async with open_llms(endpoint_settings(fake)) as llms:
            r = await llms.planner.chat([{"role": "user", "content": "hi"}])
    assert r.error is None and r.content == "hello"
    assert len(fake.requests) == 2
    assert r.call.usage.prompt_tokens == 11 and r.call.usage.completion_tokens == 7
    assert llms.planner.model == "fake-model"  # no model configured: the only model the endpoint serves


@pytest.mark.anyio
async def test_persistent_5xx_and_timeout_are_clear_errors() -> None:
    with FakeOpenAI(lambda req: (503, {"error": {"message": "overloaded"}}, {"retry-after-ms": "1"})) as fake:
        async with open_llms(endpoint_settings(fake, llm_max_retries=1, planner_model="m")) as llms:
            r = await llms.planner.chat([{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 2  # first try + one retry
    assert r.error is not None and "HTTP 503" in r.error and "after 1 retries" in r.error
    assert r.call.error == r.error

    with FakeOpenAI(lambda req: (200, completion("late"), {}), delay=1.5) as fake:
        async with open_llms(
            endpoint_settings(fake, llm_timeout_s=0.3, llm_max_retries=0, planner_model="m")
        ) as llms:
            r = await llms.planner.chat([{"role": "user", "content": "hi"}])
    assert r.error is not None and "timed out" in r.error and fake.base_url in r.error


@pytest.mark.anyio
async def test_native_tool_calls_and_malformed_calls() -> None:
    replies = iter(
        [
            completion(
                "",
                tool_calls=[
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                    }
                ],
            ),
            completion(
                'I will call ```json\n{"name": "add", "arguments": {"a": 4, "b": 5}}\n```'
            ),  # call written as text
            completion("I cannot decide"),  # no call at all
            completion(
                "",
                tool_calls=[
                    {"id": "c2", "type": "function", "function": {"name": "rm_rf", "arguments": "{}"}}
                ],
            ),
        ]
    )
    with FakeOpenAI(lambda req: (200, next(replies), {})) as fake:
        async with open_llms(endpoint_settings(fake, executor_model="m")) as llms:
            assert llms.executor.tool_mode == "native"
            results = [
                await llms.executor.call_tool([{"role": "user", "content": "add"}], [ADD_TOOL, RESPOND])
                for _ in range(4)
            ]
    assert fake.requests[0]["tool_choice"] == "required" and len(fake.requests[0]["tools"]) == 2
    assert (results[0].tool_calls[0].name, results[0].tool_calls[0].arguments) == ("add", {"a": 2, "b": 3})
    assert results[1].tool_calls[0].arguments == {"a": 4, "b": 5} and results[1].error is None
    assert results[2].tool_calls == [] and "malformed tool call" in (results[2].error or "")
    assert "unknown tool 'rm_rf'" in (results[3].error or "")


@pytest.mark.anyio
async def test_malformed_tool_call_is_a_recorded_step_error_not_a_crash(tmp_path) -> None:
    """The agent over a loopback endpoint whose executor answers garbage: the episode completes."""
    from memento_lab.agent.loop import Agent, AgentConfig

    def handler(req: dict) -> tuple:
        name = (req.get("response_format") or {}).get("json_schema", {}).get("name")
        if name == "reply":  # planner
            return (
                200,
                completion(
                    json.dumps({"plan": [{"id": 1, "description": "add 2 and 3"}], "final_answer": ""})
                ),
                {},
            )
        if name == "final_answer":
            return 200, completion('{"final_answer": "5"}'), {}
        return 200, completion("%%% not a call %%%"), {}

    with FakeOpenAI(handler) as fake:
        async with open_llms(endpoint_settings(fake, tool_mode="schema", planner_model="m")) as llms:
            agent = Agent(llms, config=AgentConfig(max_cycles=1, max_steps=1, start_from_direct=False))
            trace = await agent.arun("What is 2 + 3?")
    assert trace.error is None
    assert trace.steps and "malformed tool call" in (trace.steps[0].error or "")
    assert trace.final_answer == "5"
    assert any(c.error and "malformed" in c.error for c in trace.llm_calls)


# --------------------------------------------------------------------------- record / replay
@pytest.mark.anyio
async def test_record_then_replay_without_endpoint(tmp_path) -> None:
    path = tmp_path / "cassette.sqlite"
    with FakeOpenAI(lambda req: (200, completion("recorded " + req["messages"][-1]["content"]), {})) as fake:
        async with open_llms(
            endpoint_settings(fake, planner_model="m"), cassette=Cassette(path, "record")
        ) as llms:
            live = await llms.planner.chat([{"role": "user", "content": "q1"}])
        settings = endpoint_settings(fake, planner_model="m")
    assert live.content == "recorded q1" and not live.call.replayed
    # the endpoint is gone now; replay answers from the cassette
    async with open_llms(settings, cassette=Cassette(path, "replay")) as llms:
        again = await llms.planner.chat([{"role": "user", "content": "q1"}])
        assert again.content == live.content and again.call.replayed, again.error
        assert again.call.request_hash == live.call.request_hash
        with pytest.raises(CassetteMiss, match="q2"):
            await llms.planner.chat([{"role": "user", "content": "q2"}])


@pytest.mark.anyio
async def test_replay_of_embedded_model_starts_no_server(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    cas = Cassette(path, "record")
    cas.put(
        "chat",
        {"model": SMALL, "messages": [{"role": "user", "content": "x"}], "temperature": 0.0},
        completion("y"),
    )
    async with open_llms(Settings(), local_model=SMALL, cassette=Cassette(path, "replay")) as llms:
        assert llms.local is None
        r = await llms.planner.chat([{"role": "user", "content": "x"}])
    assert r.content == "y"


# --------------------------------------------------------------------------- the real embedded model
@pytest.mark.slow
@pytest.mark.anyio
async def test_embedded_model_plan_tool_call_and_final_answer() -> None:
    async with open_llms(Settings(), local_model=SMALL) as llms:
        assert llms.local is not None and llms.local.running
        plain = await llms.planner.chat(
            [{"role": "user", "content": "Reply with the single word: pong"}], max_tokens=8
        )
        assert plain.error is None and "pong" in plain.content.lower()
        assert plain.call.usage.completion_tokens > 0 and plain.call.latency_s > 0

        schema = {
            "type": "object",
            "properties": {
                "plan": {
                    "type": "array",
                    "minItems": 1,
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
        plan = await llms.planner.chat(
            [{"role": "user", "content": "Plan how to compute 12*(3+4)."}], json_schema=schema, max_tokens=160
        )
        assert plan.error is None and plan.parsed is not None
        assert 1 <= len(plan.parsed["plan"]) <= 3 and all(s["description"] for s in plan.parsed["plan"])

        call = await llms.executor.call_tool(
            [{"role": "user", "content": "Use the add tool to add 2 and 3."}], [ADD_TOOL, RESPOND]
        )
        assert call.error is None, call.error
        assert call.tool_calls[0].name in {"add", "respond"}
        if call.tool_calls[0].name == "add":
            assert set(call.tool_calls[0].arguments) == {"a", "b"}

        final = await llms.executor.final_answer(
            [{"role": "user", "content": "What is the capital of France? One word."}]
        )
        assert final.error is None and "paris" in final.parsed["final_answer"].lower()
        server = llms.local
    assert not server.running  # stopped on exit


# --------------------------------------------------------------------------- packaged weights
def test_model_file_checks_names_paths_and_checksums(tmp_path, monkeypatch) -> None:
    from memento_lab.agent.models import local_model
    from memento_lab.agent.models.local_model import MODELS, model_file, provenance

    with pytest.raises(ValueError, match="unknown model 'nope'.*qwen2.5-coder-0.5b"):
        model_file("nope")
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_file(str(gguf)) == gguf  # any local GGUF by path

    rows = {r["name"]: r for r in provenance()}
    assert rows[SMALL]["installed"] and rows[SMALL]["sha256"] == MODELS[SMALL].sha256

    # a corrupted download (wrong checksum) is refused and leaves nothing behind in the cache
    bad = MODELS[SMALL].model_copy(update={"sha256": "0" * 64})
    monkeypatch.setitem(local_model.MODELS, SMALL, bad)
    with pytest.raises(ValueError, match="sha256"):
        model_file(SMALL, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "models").glob("*"))


@pytest.mark.anyio
async def test_cost_from_a_price_table() -> None:
    with FakeOpenAI(lambda req: (200, completion("ok"), {})) as fake:
        async with open_llms(
            endpoint_settings(fake, planner_model="m", judge_model="j"), prices={"m": (2.0, 8.0)}
        ) as llms:
            priced = await llms.planner.chat([{"role": "user", "content": "hi"}])
            unpriced = await llms.judge.chat([{"role": "user", "content": "hi"}])
    assert priced.call.usage.cost == pytest.approx(
        (11 * 2.0 + 7 * 8.0) / 1e6
    )  # 11 prompt, 7 completion tokens
    assert unpriced.call.usage.cost is None and unpriced.call.model == "j"


@pytest.mark.anyio
async def test_an_open_cassette_file_can_be_copied_and_replayed(tmp_path) -> None:
    """Every recorded call is in the .sqlite file itself (no write-ahead log beside it)."""
    import shutil

    live = Cassette(tmp_path / "a.sqlite", "record")

    async def answer() -> dict:
        return completion("42")

    await live.through("chat", {"q": 1}, answer)  # the recording cassette stays open
    shutil.copy(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    assert not list(tmp_path.glob("a.sqlite-*"))  # no -wal / -shm files holding recent writes
    again = await Cassette(tmp_path / "b.sqlite", "replay").through("chat", {"q": 1}, answer)
    assert again["choices"][0]["message"]["content"] == "42"

"""Every endpoint failure names the endpoint and the call (against a loopback endpoint)."""

from __future__ import annotations

import socket

import pytest
from loopback import FakeOpenAI, completion

from memento_lab.agent.models.llm import open_llms
from memento_lab.config import Settings


def settings(base_url: str, **kw) -> Settings:
    return Settings(openai_base_url=base_url, openai_api_key="test", llm_max_retries=0, llm_timeout_s=5, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ((500, {"error": {"message": "boom"}}, {}), "HTTP 500"),
        ((200, b"{not json", {}), "not a JSON model list"),
        ((200, {"object": "list", "data": []}, {}), "serves no models"),
    ],
    ids=["http-500", "malformed-json", "no-models"],
)
async def test_model_listing_faults_name_the_call(reply, says):
    fake = FakeOpenAI(lambda req: (200, completion("unused"), {}), models_handler=lambda: reply)
    with fake, pytest.raises(RuntimeError) as err:
        async with open_llms(settings(fake.base_url)):
            pass
    message = str(err.value)
    assert message.startswith(f"GET {fake.base_url}/models") and says in message
    assert "MEMENTO_PLANNER_MODEL" in message  # and how to avoid the call


@pytest.mark.anyio
async def test_unreachable_model_listing_names_the_call():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(RuntimeError, match=f"GET {url}/models: cannot reach the endpoint"):
        async with open_llms(settings(url)):
            pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ((200, b'{"id": "x", "choices": [', {}), "the reply is not valid JSON"),
        ((200, {**completion("x"), "choices": []}, {}), "the reply has no choices"),
        ((503, {"error": {"message": "overloaded"}}, {}), "HTTP 503 after 0 retries"),
    ],
    ids=["malformed-json", "empty-choices", "http-503"],
)
async def test_chat_faults_name_the_endpoint_and_the_call(reply, says):
    with FakeOpenAI(lambda req: reply) as fake:
        async with open_llms(settings(fake.base_url, planner_model="m")) as llms:
            r = await llms.planner.chat([{"role": "user", "content": "hi"}])
    assert r.error is not None and r.content == "" and r.call.error == r.error
    assert r.error.startswith(f"planner: POST {fake.base_url}/chat/completions (model m)")
    assert says in r.error

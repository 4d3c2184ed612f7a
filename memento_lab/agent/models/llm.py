"""One async chat interface for the planner, executor and judge, over any OpenAI-compatible endpoint.

    async with open_llms(Settings()) as llms:          # endpoint from env / .env, else the embedded model
        r = await llms.planner.chat(messages, json_schema=schema)
        r.parsed, r.error, r.call.usage                   # JSON object, recorded error, tokens + latency

The same code talks to OpenAI, Azure, vLLM, SGLang, Ollama or the embedded llama.cpp server: all of
them speak ``/v1/chat/completions`` through the official ``openai`` client (``AsyncOpenAI``, which
does the retries with backoff on 429 / 5xx / connection errors and the timeouts).

Tool calls come in two flavours. ``native``: ``tools=`` / ``tool_calls`` (OpenAI, vLLM with a tool
parser). ``schema``: small local models ignore ``tool_choice`` and write the call as JSON in the
text, so the call is forced through a ``response_format`` JSON schema (one branch per tool: the
name as a constant, the arguments as that tool's parameters) and parsed tolerantly (fenced, bare or
``<tool_call>``-tagged JSON). Either way an unusable reply is a ``ChatResult.error``, never a crash.

Every request goes through a ``Cassette`` (record / replay), keyed by the request itself.
``llms.sampled(temperature, seed)`` is the same clients sampling: each of their requests carries that
temperature and seed (self-consistency's attempts: distinct, reproducible requests).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx
import openai
from openai import AsyncOpenAI

from memento_lab.agent.models.cassette import Cassette, CassetteMiss, request_key
from memento_lab.agent.models.served import ROLE_VARIABLES, only_served_model
from memento_lab.agent.models.tool_calls import (
    ToolCallRequest,
    parse_json_reply,
    tool_call_schema,
    validate_tool_call,
    with_tool_listing,
)
from memento_lab.agent.prompts import turn
from memento_lab.config import Settings
from memento_lab.trace import LLMCall, Usage

log = logging.getLogger(__name__)

ToolMode = Literal["native", "schema"]
FINAL_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"final_answer": {"type": "string"}},
    "required": ["final_answer"],
}


class _NoChoices(Exception):
    """An endpoint answered 200 with no choices (an endpoint failure, not a model reply)."""


@dataclass
class ChatResult:
    """A model reply: text, the JSON object if one was asked for, tool calls, and the call record."""

    content: str
    call: LLMCall
    parsed: dict[str, Any] | None = None
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    error: str | None = None

    @property
    def answer(self) -> Any:
        """The ``final_answer`` of a JSON reply, else the reply's text (how a forced final turn answers)."""
        return (self.parsed or {}).get("final_answer") if self.parsed else self.content


# --------------------------------------------------------------------------- the client
def _cached_tokens(data: dict[str, Any]) -> int:
    """Prompt tokens the server reused from its prompt cache: OpenAI / vLLM report
    ``usage.prompt_tokens_details.cached_tokens``, llama.cpp ``timings.cache_n``."""
    details = (data.get("usage") or {}).get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None:
        return int(details["cached_tokens"])
    return int((data.get("timings") or {}).get("cache_n") or 0)


class ChatClient:
    """One role's model on one endpoint."""

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        role: str = "other",
        cassette: Cassette | None = None,
        tool_mode: ToolMode = "schema",
        prices: dict[str, tuple[float, float]] | None = None,
        endpoint: str = "",
    ):
        self.client, self.model, self.role = client, model, role
        self.cassette = cassette if cassette is not None else Cassette(None, "off")
        self.tool_mode: ToolMode = tool_mode
        self.prices = prices or {}
        self.endpoint = endpoint
        self.sampling: tuple[float, int] | None = None  # (temperature, seed) every request carries

    def sampled(self, temperature: float, seed: int) -> ChatClient:
        """This client sampling: every request at ``temperature`` with ``seed`` (a distinct request, so
        the cassette keeps each attempt, and reproducible on endpoints that honour the seed)."""
        other = copy.copy(self)
        other.sampling = (temperature, seed)
        return other

    def for_role(self, role: str, model: str | None = None) -> ChatClient:
        """A client of the same endpoint and cassette for another role (and model)."""
        return ChatClient(
            self.client,
            model or self.model,
            role=role,
            cassette=self.cassette,
            tool_mode=self.tool_mode,
            prices=self.prices,
            endpoint=self.endpoint,
        )

    def where(self) -> str:
        """The call, named in every error: ``POST <base url>/chat/completions (model m)``."""
        return f"POST {str(self.client.base_url).rstrip('/')}/chat/completions (model {self.model})"

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the server's own tokenizer (llama.cpp and vLLM serve ``POST /tokenize``),
        through the cassette; an estimate (4 characters a token) where the server has none."""
        from memento_lab.memory.retrieval.render import estimate_tokens

        if not text:
            return 0
        if getattr(self, "_no_tokenizer", False):
            return estimate_tokens(text)
        base = str(self.client.base_url).rstrip("/").removesuffix("/v1")

        async def live() -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=10.0) as http:
                resp = await http.post(f"{base}/tokenize", json={"content": text, "model": self.model})
                resp.raise_for_status()
                return {"tokens": len(resp.json()["tokens"])}

        try:
            data = await self.cassette.through("tokenize", {"model": self.model, "text": text}, live)
            return int(data["tokens"])
        except CassetteMiss:
            raise
        except Exception:  # no tokenizer route on this endpoint: estimate from now on
            self._no_tokenizer = True
            return estimate_tokens(text)

    def _cost(self, usage: Usage) -> float | None:
        price = self.prices.get(self.model)
        if price is None:
            return None
        return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6

    async def _complete(self, request: dict[str, Any]) -> tuple[dict[str, Any] | None, LLMCall]:
        """Send (or replay) one request; errors after the client's retries land in ``LLMCall.error``."""
        t0 = time.perf_counter()
        hits = self.cassette.hits
        call = LLMCall(role=self.role, model=self.model, request_hash=request_key("chat", request)[:16])

        async def live() -> dict[str, Any]:
            resp = await self.client.chat.completions.create(**request)
            data = resp.model_dump(mode="json", exclude_none=True)
            if not data.get("choices"):  # raised before the cassette stores it: never replay a failure
                raise _NoChoices
            return data

        where = self.where()
        retries = f"after {self.client.max_retries} retries"
        data: dict[str, Any] | None = None
        try:
            data = await self.cassette.through("chat", request, live)
        except openai.APITimeoutError:
            call.error = f"{self.role}: {where} timed out after {self.client.timeout}s and {self.client.max_retries} retries"
            call.error_kind = "timeout"
        except openai.APIStatusError as e:
            call.error = f"{self.role}: {where}: HTTP {e.status_code} {retries}: {e.message}"
            call.error_kind = "endpoint_error"
        except openai.APIConnectionError as e:
            call.error = f"{self.role}: {where}: cannot reach the endpoint {retries}: {e}"
            call.error_kind = "endpoint_error"
        except (json.JSONDecodeError, openai.APIResponseValidationError) as e:
            call.error = f"{self.role}: {where}: the reply is not valid JSON ({e})"
            call.error_kind = "endpoint_error"
        except _NoChoices:
            call.error, call.error_kind = f"{self.role}: {where}: the reply has no choices", "endpoint_error"
        if data is not None and not data.get("choices"):  # a reply recorded before the check above
            call.error, call.error_kind, data = (
                f"{self.role}: {where}: the reply has no choices",
                "endpoint_error",
                None,
            )
        call.latency_s = time.perf_counter() - t0
        call.replayed = self.cassette.hits > hits
        if data is not None:
            u = data.get("usage") or {}
            call.usage = Usage(
                prompt_tokens=u.get("prompt_tokens", 0),
                completion_tokens=u.get("completion_tokens", 0),
                cached_tokens=_cached_tokens(data),
            )
            call.usage.cost = self._cost(call.usage)
        return data, call

    def _request(
        self, messages: list[dict[str, Any]], temperature: float, max_tokens: int | None, **extra: Any
    ) -> dict[str, Any]:
        req: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if self.sampling is not None:
            req["temperature"], req["seed"] = self.sampling
        if max_tokens is not None:
            req["max_tokens"] = max_tokens
        req.update({k: v for k, v in extra.items() if v is not None})
        return req

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        schema_name: str = "reply",
    ) -> ChatResult:
        """A completion; with ``json_schema`` the reply is constrained to it and parsed into ``parsed``."""
        fmt = None
        if json_schema is not None:
            fmt = {"type": "json_schema", "json_schema": {"name": schema_name, "schema": json_schema}}
        data, call = await self._complete(
            self._request(messages, temperature, max_tokens, response_format=fmt)
        )
        if data is None:
            return ChatResult(content="", call=call, error=call.error)
        message = (data.get("choices") or [{}])[0].get("message") or {}
        content = message.get("content") or ""
        result = ChatResult(content=content, call=call)
        if json_schema is not None:
            result.parsed = parse_json_reply(content)
            if result.parsed is None:
                result.error = call.error = f"{self.role}: reply is not a JSON object: {content[:200]!r}"
                call.error_kind = "model_output"
        return result

    async def final_answer(self, messages: list[dict[str, Any]], *, max_tokens: int = 256) -> ChatResult:
        """A turn constrained to ``{"final_answer": ...}`` (stops small models from repeating a tool call)."""
        if not any("final_answer" in str(m.get("content", "")) for m in messages):
            messages = [*messages, {"role": "system", "content": turn("final_answer_hint")}]
        return await self.chat(
            messages, json_schema=FINAL_ANSWER_SCHEMA, max_tokens=max_tokens, schema_name="final_answer"
        )

    async def call_tool(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 384,
    ) -> ChatResult:
        """Ask for exactly one call of one of ``tools`` (OpenAI function-tool schemas)."""
        if not tools:
            raise ValueError("call_tool needs at least one tool")
        if self.tool_mode == "native":
            req = self._request(messages, temperature, max_tokens, tools=tools, tool_choice="required")
        else:
            fmt = {
                "type": "json_schema",
                "json_schema": {"name": "tool_call", "schema": tool_call_schema(tools)},
            }
            req = self._request(
                with_tool_listing(messages, tools), temperature, max_tokens, response_format=fmt
            )
        data, call = await self._complete(req)
        if data is None:
            return ChatResult(content="", call=call, error=call.error)
        message = (data.get("choices") or [{}])[0].get("message") or {}
        content = message.get("content") or ""
        result = ChatResult(content=content, call=call)
        try:
            native = message.get("tool_calls") or []
            if native:
                fn = native[0].get("function") or {}
                result.tool_calls = [
                    validate_tool_call(
                        {
                            "name": fn.get("name"),
                            "arguments": fn.get("arguments") or "{}",
                            "id": native[0].get("id"),
                        },
                        tools,
                    )
                ]
            else:  # schema mode, or a native endpoint whose model wrote the call as text
                parsed = parse_json_reply(content)
                if parsed is None:
                    raise ValueError(f"malformed tool call: no JSON object in reply {content[:200]!r}")
                result.parsed = parsed
                result.tool_calls = [validate_tool_call(parsed, tools)]
        except ValueError as e:
            result.error = call.error = f"{self.role}: {e}"
            call.error_kind = "model_output"
        return result


@dataclass
class LLMs:
    """The roles (they may share one client and model) plus where they point. ``memory``: the memory
    methods' maintenance calls (extraction, reflection, rewrite), counted apart from the agent's own;
    the planner's model unless ``MEMENTO_MEMORY_MODEL`` names another."""

    planner: ChatClient
    executor: ChatClient
    judge: ChatClient
    endpoint: str
    local: Any = None  # the LocalServer, when the embedded model serves
    memory: ChatClient = None  # type: ignore[assignment]  # set in __post_init__ when not given

    def __post_init__(self) -> None:
        if self.memory is None:
            self.memory = self.planner.for_role("memory")

    @property
    def clients(self) -> tuple[ChatClient, ...]:
        return (self.planner, self.executor, self.judge, self.memory)

    def sampled(self, temperature: float, seed: int) -> LLMs:
        """The planner and executor sampling at ``temperature`` with ``seed`` (the judge stays as it is)."""
        return replace(
            self,
            planner=self.planner.sampled(temperature, seed),
            executor=self.executor.sampled(temperature, seed),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "planner": self.planner.model,
            "executor": self.executor.model,
            "judge": self.judge.model,
            "memory": self.memory.model,
            "tool_mode": self.executor.tool_mode,
            "embedded": self.endpoint.startswith("embedded:"),
        }


@asynccontextmanager
async def open_llms(
    settings: Settings | None = None,
    *,
    local_model: str | None = None,
    cassette: Cassette | None = None,
    prices: dict[str, tuple[float, float]] | None = None,
) -> AsyncIterator[LLMs]:
    """Planner/executor/judge clients: the configured endpoint, else the embedded model (started here,
    stopped on exit). In cassette ``replay`` mode no model server is started and no request leaves."""
    settings = settings or Settings()
    cassette = cassette if cassette is not None else Cassette(None, "off")
    local = None
    if settings.uses_endpoint:
        base_url = settings.openai_base_url or "https://api.openai.com/v1"
        client = AsyncOpenAI(
            base_url=base_url,
            api_key=settings.openai_api_key or "EMPTY",  # vLLM / SGLang accept any key
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        from memento_lab.agent.models.local_model import MODELS

        if local_model in MODELS or str(local_model).endswith(".gguf"):
            local_model = (
                None  # an embedded-model name means nothing to an endpoint: the endpoint's models win
            )
        configured = settings.role_models
        default = local_model or next((n for n in configured if n), None)
        if default is None:
            default = await only_served_model(client)
        names: list[str] = [n or str(default) for n in configured]
        endpoint, tool_mode = base_url, settings.tool_mode if settings.tool_mode != "auto" else "native"
    else:
        from memento_lab.agent.models.local_model import LocalServer

        if settings.ignored_api_key:
            log.warning(
                "OPENAI_API_KEY is set but no OPENAI_BASE_URL and no model names: using the embedded "
                "model. To use the OpenAI API set %s.",
                ROLE_VARIABLES,
            )

        name = local_model or settings.local_model
        if cassette.replaying:  # everything comes from the cassette: no weights, no server
            base_url = "http://127.0.0.1:9/v1"
        else:
            local = LocalServer(name, settings=settings).start()
            base_url = local.base_url
        client = AsyncOpenAI(
            base_url=base_url,
            api_key="local",
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        names = [name, name, name]
        endpoint = f"embedded:{name}"
        tool_mode = settings.tool_mode if settings.tool_mode != "auto" else "schema"
    try:
        roles = [
            ChatClient(
                client,
                model,
                role=role,
                cassette=cassette,
                tool_mode=tool_mode,
                prices=prices,
                endpoint=endpoint,
            )
            for role, model in zip(("planner", "executor", "judge"), names, strict=True)
        ]
        memory = roles[0].for_role("memory", settings.memory_model if settings.uses_endpoint else None)
        yield LLMs(
            planner=roles[0], executor=roles[1], judge=roles[2], endpoint=endpoint, local=local, memory=memory
        )
    finally:
        await client.close()
        if local is not None:
            local.stop()

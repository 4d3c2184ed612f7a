"""A scripted OpenAI-compatible HTTP server on 127.0.0.1: the test double for a *remote* endpoint.

Each POST (``/v1/chat/completions``, or multipart ``/v1/audio/transcriptions`` kept as
``{"multipart": raw bytes}``) is answered by ``handler(request_json) -> (status, body, headers)``
or sleeps ``delay`` seconds first; every request is kept in ``requests`` for assertions. A body given
as ``bytes`` is sent as it is (malformed JSON); ``models_handler() -> Reply`` overrides ``GET /models``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from memento_lab.config import Settings

Reply = tuple[int, dict[str, Any] | bytes, dict[str, str]]


def completion(
    content: str = "", *, tool_calls: list[dict[str, Any]] | None = None, model: str = "fake-model"
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def endpoint_settings(fake: FakeOpenAI, **kw: object) -> Settings:
    """Settings that point every role at ``fake`` (short timeout, few retries; ``kw`` overrides)."""
    base = {
        "openai_base_url": fake.base_url,
        "openai_api_key": "sk-test",
        "llm_timeout_s": 5.0,
        "llm_max_retries": 2,
    }
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


class FakeOpenAI:
    def __init__(
        self,
        handler: Callable[[dict[str, Any]], Reply],
        *,
        delay: float = 0.0,
        models: tuple[str, ...] = ("fake-model",),
        models_handler: Callable[[], Reply] | None = None,
        tokenize: Callable[[str], list[int]] | None = None,
    ):
        self.handler, self.delay, self.models = handler, delay, models
        self.tokenize = tokenize  # POST /tokenize (llama.cpp, vLLM); OpenAI itself has none: 404
        self.tokenized: list[str] = []
        self.models_handler = models_handler
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []  # the path of each POST, beside its body in ``requests``
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(
                self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
            ) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models") and owner.models_handler is not None:
                    self._send(*owner.models_handler())
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [
                                {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                                for m in owner.models
                            ],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Type", "").startswith("multipart/"):  # /audio/transcriptions
                    body: dict[str, Any] = {"multipart": raw}
                else:
                    body = json.loads(raw or b"{}")
                if self.path.rstrip("/").endswith("/tokenize"):
                    owner.tokenized.append(body.get("content", ""))
                    if owner.tokenize is None:
                        self._send(404, {"error": {"message": "not found"}})
                    else:
                        self._send(200, {"tokens": owner.tokenize(body.get("content", ""))})
                    return
                owner.requests.append(body)
                owner.paths.append(self.path)
                if owner.delay:
                    time.sleep(owner.delay)
                status, reply, headers = owner.handler(body)
                self._send(status, reply, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Loopback:
    """An HTTP server on 127.0.0.1 answering GETs with ``reply(path) -> (status, content_type, body[, headers])``."""

    def __init__(self, reply):
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                status, ctype, body, *extra = reply(self.path)
                raw = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (extra[0] if extra else {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def searxng_reply(path: str) -> tuple[int, str, str]:
    """What SearxNG's ``/search?q=..&format=json`` returns (trimmed to the fields we read)."""
    if not path.startswith("/search?") or "format=json" not in path:
        return 404, "text/plain", "not found"
    return (
        200,
        "application/json",
        json.dumps(
            {
                "query": "ada lovelace",
                "number_of_results": 2,
                "results": [
                    {
                        "url": "https://example.org/ada",
                        "title": "Ada Lovelace",
                        "content": "First programmer.",
                        "engine": "x",
                        "score": 2.0,
                    },
                    {
                        "url": "https://example.org/babbage",
                        "title": "Charles Babbage",
                        "content": "Analytical Engine.",
                        "engine": "x",
                        "score": 1.0,
                    },
                ],
            }
        ),
    )

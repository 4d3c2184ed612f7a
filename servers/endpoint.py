"""The researcher's OpenAI-compatible endpoint, as the media and crawler tools use it (httpx).

    OPENAI_BASE_URL=http://host:8000/v1  OPENAI_API_KEY=...   # the endpoint (as for the agent)
    MEMENTO_VISION_MODEL=...       # describe_image / narrate_video captions (image as a data URL)
    MEMENTO_TRANSCRIBE_MODEL=...   # transcribe_audio via POST /audio/transcriptions
    MEMENTO_SUMMARY_MODEL=...      # crawl: an LLM summary of the top passages

A model variable that is unset means "not configured": callers fall back offline or say so.
Every failure is a ToolError naming the endpoint and the call.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from typing import Any

import httpx
from mcp.server.mcpserver.exceptions import ToolError

TIMEOUT_S = 120.0


def base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL", "").rstrip("/") or "https://api.openai.com/v1"


def model(var: str) -> str | None:
    """The model named by env var ``var`` (e.g. MEMENTO_VISION_MODEL), None when unset."""
    return os.environ.get(var, "").strip() or None


def _headers() -> dict[str, str]:
    key = os.environ.get("OPENAI_API_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _post(path: str, what: str, **kwargs: Any) -> dict[str, Any]:
    url = base_url() + path
    try:
        resp = httpx.post(url, headers=_headers(), timeout=TIMEOUT_S, **kwargs)
    except httpx.HTTPError as e:
        raise ToolError(f"{what}: POST {url} failed: {type(e).__name__}: {e}") from e
    if resp.status_code >= 400:
        raise ToolError(f"{what}: POST {url} returned HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        body = resp.json()
    except ValueError as e:
        raise ToolError(f"{what}: POST {url} returned non-JSON: {resp.text[:200]!r}") from e
    if not isinstance(body, dict):
        raise ToolError(f"{what}: POST {url} returned {type(body).__name__}, expected a JSON object")
    return body


def chat(model_name: str, messages: list[dict[str, Any]], *, what: str, max_tokens: int = 512) -> str:
    """The assistant's text for one chat completion."""
    body = _post(
        "/chat/completions",
        what,
        json={"model": model_name, "messages": messages, "max_tokens": max_tokens, "temperature": 0},
    )
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        raise ToolError(f"{what}: {base_url()}/chat/completions gave no choices[0].message.content") from e
    return str(content or "").strip()


def transcribe(model_name: str, audio: bytes, filename: str, *, what: str) -> str:
    """The text of ``audio`` (a file's bytes) from POST /audio/transcriptions."""
    body = _post(
        "/audio/transcriptions",
        what,
        files={"file": (filename, audio, mimetypes.guess_type(filename)[0] or "audio/wav")},
        data={"model": model_name, "response_format": "json"},
    )
    if not isinstance(body.get("text"), str):
        raise ToolError(f"{what}: {base_url()}/audio/transcriptions gave no 'text' field")
    return body["text"].strip()


def data_url(image: bytes, suffix: str) -> str:
    mime = mimetypes.guess_type("x" + suffix)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def ask_about_image(image: bytes, suffix: str, question: str, *, what: str) -> str:
    """The vision model's answer to ``question`` about one image (MEMENTO_VISION_MODEL)."""
    name = model("MEMENTO_VISION_MODEL")
    if name is None:
        raise ToolError(
            f"{what}: no vision model is configured (set MEMENTO_VISION_MODEL and OPENAI_BASE_URL to an "
            "OpenAI-compatible endpoint); for text in an image use read_image_text, which works offline"
        )
    content = [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": data_url(image, suffix)}},
    ]
    return chat(name, [{"role": "user", "content": content}], what=what)

"""MCP server ``web``: fetch a web page as text (httpx), only when network access is allowed.

    MEMENTO_ALLOW_NETWORK=1 python -m servers.web

Offline (the default) every call is a clear ``ToolError``: nothing leaves the machine.
"""

from __future__ import annotations

import os

import httpx
from mcp.server.mcpserver.exceptions import ToolError

from servers import make_server
from servers.documents import html_to_text

MAX_BYTES = 5 * 2**20
TRUE = {"1", "true", "yes", "on"}


def network_allowed() -> bool:
    return os.environ.get("MEMENTO_ALLOW_NETWORK", "").strip().lower() in TRUE


def fetch_text(url: str, max_chars: int = 20000, *, timeout_s: float = 20.0) -> str:
    """The text of ``url`` (HTML tags stripped), or ToolError naming what went wrong."""
    if not network_allowed():
        raise ToolError("network access is disabled (set MEMENTO_ALLOW_NETWORK=1)")
    if not url.startswith(("http://", "https://")):
        raise ToolError(f"only http(s) URLs can be fetched, got {url!r}")
    try:
        with (
            httpx.Client(
                follow_redirects=True, timeout=timeout_s, headers={"User-Agent": "memento-lab/0.1"}
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 400:
                raise ToolError(f"{url}: HTTP {resp.status_code} {resp.reason_phrase}")
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    break
            ctype = resp.headers.get("content-type", "")
            encoding = resp.encoding or "utf-8"
    except httpx.HTTPError as e:
        raise ToolError(f"{url}: {type(e).__name__}: {e}") from e
    text = body.decode(encoding, errors="replace")
    if "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
        text = html_to_text(text)
    if max_chars > 0 and len(text) > max_chars:
        text = text[:max_chars] + f"\n... [truncated: {len(text) - max_chars} more characters]"
    return text


def _status() -> str:
    return "" if network_allowed() else " (network access is currently DISABLED: calls will fail)"


mcp = make_server("web", "Fetch web pages as text." + _status())


@mcp.tool(description="Fetch a web page (http/https) and return its text, HTML tags stripped." + _status())
def fetch_url(url: str, max_chars: int = 20000) -> str:
    return fetch_text(url, max_chars)


if __name__ == "__main__":
    mcp.run()

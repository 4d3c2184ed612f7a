"""MCP server ``web``: fetch a web page as text, and crawl a site for what a query needs.

    MEMENTO_ALLOW_NETWORK=1 python -m servers.web

Offline (the default) every call is a clear ``ToolError``: nothing leaves the machine. Private,
loopback and link-local targets are refused unless allow-listed (``MEMENTO_WEB_ALLOW_HOSTS``),
checked after resolving the name and again on every redirect (``servers.netguard``).
"""

from __future__ import annotations

import os
from urllib.parse import urljoin

import httpx
from mcp.server.mcpserver.exceptions import ToolError

from servers import make_server
from servers.crawl import Page, crawl_site
from servers.documents import html_to_text
from servers.netguard import check_url

MAX_BYTES = 5 * 2**20
MAX_REDIRECTS = 5
TRUE = {"1", "true", "yes", "on"}


def network_allowed() -> bool:
    return os.environ.get("MEMENTO_ALLOW_NETWORK", "").strip().lower() in TRUE


def fetch_page(url: str, *, timeout_s: float = 20.0) -> Page:
    """GET ``url`` following at most MAX_REDIRECTS redirects, each target checked by the guard."""
    if not network_allowed():
        raise ToolError("network access is disabled (set MEMENTO_ALLOW_NETWORK=1)")
    headers = {"User-Agent": "memento-lab/0.1"}
    try:
        with httpx.Client(follow_redirects=False, timeout=timeout_s, headers=headers) as client:
            for _ in range(MAX_REDIRECTS + 1):
                check_url(url)
                with client.stream("GET", url) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code >= 400:
                        raise ToolError(f"{url}: HTTP {resp.status_code} {resp.reason_phrase}")
                    body = b""
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > MAX_BYTES:
                            break
                    text = body.decode(resp.encoding or "utf-8", errors="replace")
                    return Page(url=url, content_type=resp.headers.get("content-type", ""), text=text)
    except httpx.HTTPError as e:
        raise ToolError(f"{url}: {type(e).__name__}: {e}") from e
    raise ToolError(f"{url}: more than {MAX_REDIRECTS} redirects")


def fetch_text(url: str, max_chars: int = 20000, *, timeout_s: float = 20.0) -> str:
    """The text of ``url`` (HTML tags stripped), or ToolError naming what went wrong."""
    page = fetch_page(url, timeout_s=timeout_s)
    text = html_to_text(page.text) if page.is_html else page.text
    if max_chars > 0 and len(text) > max_chars:
        text = text[:max_chars] + f"\n... [truncated: {len(text) - max_chars} more characters]"
    return text


def _status() -> str:
    return "" if network_allowed() else " (network access is currently DISABLED: calls will fail)"


mcp = make_server("web", "Fetch web pages as text, or crawl a site for what a query needs." + _status())


@mcp.tool(description="Fetch a web page (http/https) and return its text, HTML tags stripped." + _status())
def fetch_url(url: str, max_chars: int = 20000) -> str:
    return fetch_text(url, max_chars)


@mcp.tool(
    description=(
        "Crawl a web page and (depth > 0) the same-site pages it links to, up to max_pages; extract "
        "each page's main text, keep only the passages most relevant to `query` (BM25; summarised by "
        "an LLM when MEMENTO_SUMMARY_MODEL is set), and return them with their source URLs." + _status()
    )
)
def crawl(url: str, query: str, depth: int = 1, max_pages: int = 5, max_chars: int = 4000) -> str:
    return crawl_site(url, query, depth=depth, max_pages=max_pages, max_chars=max_chars, fetch=fetch_page)


if __name__ == "__main__":
    mcp.run()

"""The web server's network guard and its crawler, against a site served on 127.0.0.1.

The guard refuses loopback, private and link-local targets (after resolving the name, and on every
redirect) unless ``MEMENTO_WEB_ALLOW_HOSTS`` lists the host; the crawl tests allow-list 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback import FakeOpenAI, Loopback, completion
from mcp.server.mcpserver.exceptions import ToolError
from support import call

from servers.netguard import check_url
from servers.web import mcp

NAV = '<nav><a href="/">Home</a> <a href="/history">History</a> <a href="/visit#hours">Visit</a> <a href="/shop">Shop</a></nav>'
FOOTER = (
    "<footer><p>Copyright 2026 Friends of the Lighthouse. All rights reserved. Privacy policy.</p></footer>"
)
FILLER = (
    "Volunteers keep the grounds tidy through every season. The museum café serves soup and coffee, "
    "and the gift corner sells postcards, maps and knitted hats made by local members of the society. "
)
RELEVANT = (
    "The Halvorsen lighthouse was built in 1847 by the engineer Maren Dahl, who designed its "
    "cast-iron lantern to survive the winter storms of the northern coast."
)


def page(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title><script>track()</script></head><body>"
        f"<header>{NAV}</header><main><article><h1>{title}</h1>{body}</article></main>{FOOTER}</body></html>"
    )


SITE = {
    "/": page("Halvorsen Point", FILLER * 3, "Welcome to the society's pages about the point and its coast."),
    "/history": page(
        "Our history",
        FILLER * 2,
        "The society was founded by fishermen's families who wanted to keep the old station open.",
        RELEVANT,
        FILLER,
    ),
    "/visit": page("Visit", "Opening hours are ten to four, Tuesday to Sunday. " + FILLER * 2),
    "/shop": page("Shop", "Espresso cups, tea towels and puzzles. " + FILLER * 2),
}


@pytest.fixture
def site(monkeypatch) -> Iterator[Loopback]:
    def reply(path: str):
        if path == "/old-history":
            return 301, "text/plain", "", {"Location": "/history"}
        if path == "/to-localhost":
            return 302, "text/plain", "", {"Location": f"http://127.0.0.1:{port}/history"}
        return (200, "text/html; charset=utf-8", SITE[path]) if path in SITE else (404, "text/plain", "no")

    server = Loopback(reply)
    port = server.httpd.server_address[1]
    monkeypatch.setenv("MEMENTO_ALLOW_NETWORK", "1")
    monkeypatch.setenv("MEMENTO_WEB_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.delenv("MEMENTO_SUMMARY_MODEL", raising=False)
    yield server
    server.close()


# ------------------------------------------------------------------------------------------ guard
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/", "loopback address 127.0.0.1"),
        ("http://localhost/", "loopback address"),  # a name is resolved before it is judged
        ("http://[::1]/", "loopback address ::1"),
        ("http://10.1.2.3/", "private address 10.1.2.3"),
        ("http://192.168.0.1/", "private address 192.168.0.1"),
        ("http://169.254.169.254/latest/meta-data", "link-local address 169.254.169.254"),
        ("http://[::ffff:127.0.0.1]/", "loopback address ::ffff:127.0.0.1"),
        ("http://0.0.0.0/", "address 0.0.0.0"),
    ],
)
def test_guard_refuses_private_targets_without_the_allow_list(url, why, monkeypatch):
    monkeypatch.delenv("MEMENTO_WEB_ALLOW_HOSTS", raising=False)
    with pytest.raises(ToolError, match="refused") as err:
        check_url(url)
    assert why in str(err.value) and "MEMENTO_WEB_ALLOW_HOSTS" in str(err.value)


@pytest.mark.parametrize(
    "address",
    [
        "100.64.0.1",  # shared address space (carrier-grade NAT), 100.64.0.0/10
        "100.100.100.200",  # a cloud metadata address inside it
        "198.18.0.1",  # benchmarking
        "192.0.2.10",  # documentation (TEST-NET-1)
        "192.0.0.8",  # IETF protocol assignments (Python 3.11 calls it global)
        "240.0.0.1",  # reserved
        "255.255.255.255",  # broadcast
        "[fd00:ec2::254]",  # unique local (an IPv6 metadata address)
        "[2001:db8::1]",  # IPv6 documentation
        "[::ffff:100.64.0.1]",  # shared address space, IPv4-mapped
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[64:ff9b:1::1]",  # local-use NAT64
    ],
)
def test_guard_refuses_every_address_that_is_not_global(address, monkeypatch):
    monkeypatch.delenv("MEMENTO_WEB_ALLOW_HOSTS", raising=False)
    with pytest.raises(ToolError, match="refused") as err:
        check_url(f"http://{address}/latest/meta-data")
    assert address.strip("[]") in str(err.value) and "MEMENTO_WEB_ALLOW_HOSTS" in str(err.value)
    monkeypatch.setenv("MEMENTO_WEB_ALLOW_HOSTS", address)  # allowed by name: the user's decision
    check_url(f"http://{address}/latest/meta-data")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]"])
def test_guard_lets_global_addresses_through(address, monkeypatch):
    monkeypatch.delenv("MEMENTO_WEB_ALLOW_HOSTS", raising=False)
    check_url(f"https://{address}/")


def test_guard_allow_list_and_schemes(monkeypatch):
    monkeypatch.setenv("MEMENTO_WEB_ALLOW_HOSTS", " LocalHost , 10.1.2.3")
    check_url("http://localhost:9/x")
    check_url("https://10.1.2.3/")
    with pytest.raises(ToolError, match="refused"):
        check_url("http://127.0.0.1/")  # the name was allowed, not every loopback spelling
    with pytest.raises(ToolError, match="only http"):
        check_url("file:///etc/passwd")


@pytest.mark.anyio
async def test_fetch_url_refuses_loopback_unless_allow_listed(site, monkeypatch):
    monkeypatch.delenv("MEMENTO_WEB_ALLOW_HOSTS")
    err, text = await call(mcp, "fetch_url", url=site.url + "/history")
    assert err and "refused" in text and "loopback address 127.0.0.1" in text
    err, text = await call(mcp, "crawl", url=site.url + "/", query="lighthouse built")
    assert err and "refused" in text
    assert site.requests == []  # refused before connecting

    monkeypatch.setenv("MEMENTO_WEB_ALLOW_HOSTS", "127.0.0.1")
    err, text = await call(mcp, "fetch_url", url=site.url + "/old-history")  # a redirect, allowed
    assert not err and "Maren Dahl" in text
    assert site.requests == ["/old-history", "/history"]


@pytest.mark.anyio
async def test_every_redirect_is_checked(site, monkeypatch):
    port = site.httpd.server_address[1]
    monkeypatch.setenv("MEMENTO_WEB_ALLOW_HOSTS", "localhost")  # the start host only
    err, text = await call(mcp, "fetch_url", url=f"http://localhost:{port}/to-localhost")
    assert err and f"http://127.0.0.1:{port}/history: refused" in text
    assert site.requests == ["/to-localhost"]  # the redirect target was never requested


# ------------------------------------------------------------------------------------------ crawl
@pytest.mark.anyio
async def test_crawl_keeps_the_relevant_paragraph_with_its_source(site):
    query = "When was the Halvorsen lighthouse built, and by whom?"
    err, text = await call(
        mcp, "crawl", url=site.url + "/", query=query, depth=1, max_pages=5, max_chars=1200
    )
    print(text)
    assert not err
    assert len(text) <= 1200
    first = text.split("\n[1] ", 1)[1]
    assert first.startswith(f"{site.url}/history (BM25 ")  # the best passage comes from the history page
    assert first.split("\n[2] ")[0].rstrip().endswith("\n" + RELEVANT)  # the paragraph itself, whole
    assert "Espresso" not in text and "track()" not in text and "Copyright" not in text
    assert sorted(site.requests) == ["/", "/history", "/shop", "/visit"]  # same-site pages, each once
    assert f"Read 4 page(s): {site.url}/," in text


@pytest.mark.anyio
async def test_crawl_respects_depth_and_page_budget(site):
    err, text = await call(mcp, "crawl", url=site.url + "/", query="lighthouse engineer", depth=0)
    assert not err and site.requests == ["/"] and "No passage" in text  # the start page never says it
    site.requests.clear()
    err, text = await call(mcp, "crawl", url=site.url + "/", query="lighthouse engineer", max_pages=2)
    assert not err and site.requests == ["/", "/history"] and "Maren Dahl" in text
    for args, message in [
        ({"query": "  "}, "query is empty"),
        ({"query": "x", "depth": 9}, "depth must be between 0 and 3"),
        ({"query": "x", "max_pages": 0}, "max_pages must be between 1 and 20"),
    ]:
        err, text = await call(mcp, "crawl", url=site.url + "/", **args)
        assert err and message in text


@pytest.mark.anyio
async def test_crawl_summarises_the_top_passages_with_a_model(site, monkeypatch):
    with FakeOpenAI(lambda body: (200, completion("Built in 1847 by Maren Dahl [1]."), {})) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MEMENTO_SUMMARY_MODEL", "sum-model")
        err, text = await call(
            mcp, "crawl", url=site.url + "/history", query="lighthouse built engineer", depth=0
        )
    assert not err
    assert "Summary (sum-model):\nBuilt in 1847 by Maren Dahl [1]." in text
    assert f"Sources:\n[1] {site.url}/history" in text
    prompt = fake.requests[0]["messages"][0]["content"]
    assert fake.requests[0]["model"] == "sum-model" and RELEVANT in prompt
    assert "Volunteers" not in prompt  # passages without the query's terms never reach the model

"""Query-aware crawling: fetch a page and its same-site links, keep only the passages a query needs.

    crawl_site("https://site/a", "when was X founded", depth=1, max_pages=5, fetch=web.fetch_page)

Main text by trafilatura (the page's own text when it finds none), split into passages (one
paragraph each, at most PASSAGE_WORDS words), ranked against the query with BM25 (bm25s); with ``MEMENTO_SUMMARY_MODEL``
the top passages are summarised by the endpoint's LLM. Every passage keeps its source URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urldefrag, urlsplit

from mcp.server.mcpserver.exceptions import ToolError

from servers import endpoint
from servers.documents import html_to_text

PASSAGE_WORDS, MIN_WORDS = 100, 12  # a passage is a paragraph, cut or joined to these sizes
MAX_PAGES, MAX_DEPTH, MAX_CHARS = 20, 3, 20000
RELATIVE_FLOOR = 0.2  # passages scoring under this share of the best one are dropped as noise


@dataclass
class Page:
    """One fetched response: the final URL (after redirects), its content type and decoded text."""

    url: str
    content_type: str
    text: str

    @property
    def is_html(self) -> bool:
        head = self.text.lstrip()[:15].lower()
        return "html" in self.content_type or head.startswith(("<!doctype html", "<html"))


@dataclass
class Passage:
    url: str
    text: str
    score: float = 0.0


def main_text(html: str, url: str) -> str:
    """The article text of a page (trafilatura), else all its visible text."""
    import trafilatura

    text = trafilatura.extract(html, url=url, include_comments=False, include_tables=True, favor_recall=True)
    return text if text and text.strip() else html_to_text(html)


def same_site_links(html: str, url: str) -> list[str]:
    """Absolute http(s) links of the page to the same scheme and host, fragments dropped, in order."""
    import lxml.html

    try:
        doc = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return []
    doc.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
    site = urlsplit(url)[:2]
    out: list[str] = []
    for href in doc.xpath("//a/@href"):
        link = urldefrag(str(href))[0]
        if urlsplit(link)[:2] == site and link not in out:
            out.append(link)
    return out


def passages(text: str, url: str, words: int = PASSAGE_WORDS, min_words: int = MIN_WORDS) -> list[Passage]:
    """One passage per paragraph: short ones (headings) join the next, long ones are cut at ``words``."""
    out: list[Passage] = []
    pending: list[str] = []
    for para in (p.split() for p in text.splitlines() if p.strip()):
        para = pending + para
        if len(para) < min_words:
            pending = para
            continue
        pending = []
        out += [Passage(url, " ".join(para[i : i + words])) for i in range(0, len(para), words)]
    if pending:
        out.append(Passage(url, " ".join(pending)))
    return out


def rank(query: str, found: list[Passage]) -> list[Passage]:
    """The passages scoring > 0 and >= RELATIVE_FLOOR x the best for ``query``, best first (``score`` set)."""
    import bm25s

    def tokens(texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)

    query_tokens = tokens([query])[0]
    if not found or not query_tokens:
        return []
    retriever = bm25s.BM25()
    retriever.index(tokens([p.text for p in found]), show_progress=False)
    scores = retriever.get_scores(query_tokens)
    for p, s in zip(found, scores, strict=True):
        p.score = float(s)
    floor = max(float(scores.max()) * RELATIVE_FLOOR, 1e-9)
    return sorted((p for p in found if p.score >= floor), key=lambda p: -p.score)


def gather(
    url: str, *, depth: int, max_pages: int, fetch: Callable[[str], Page]
) -> tuple[list[Passage], list[str], list[str]]:
    """Breadth-first over same-site links: (passages, pages read, pages skipped with the reason)."""
    queue, seen = [(url, 0)], {url}
    found: list[Passage] = []
    read: list[str] = []
    skipped: list[str] = []
    while queue and len(read) < max_pages:
        link, level = queue.pop(0)
        try:
            page = fetch(link)
        except ToolError as e:
            if not read and link == url:
                raise
            skipped.append(f"{link}: {e}")
            continue
        read.append(page.url)
        html: str = page.text
        if page.is_html:
            found += passages(main_text(html, page.url), page.url)
            if level < depth:
                for nxt in same_site_links(html, page.url):
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append((nxt, level + 1))
        else:
            found += passages(html, page.url)
    return found, read, skipped


def crawl_site(
    url: str,
    query: str,
    *,
    depth: int = 1,
    max_pages: int = 5,
    max_chars: int = 4000,
    fetch: Callable[[str], Page],
) -> str:
    """The passages of the crawled pages that matter for ``query``, with their sources (or a summary)."""
    if not query.strip():
        raise ToolError("query is empty: say what the crawl should look for")
    if not 0 <= depth <= MAX_DEPTH:
        raise ToolError(f"depth must be between 0 and {MAX_DEPTH}, got {depth}")
    if not 1 <= max_pages <= MAX_PAGES:
        raise ToolError(f"max_pages must be between 1 and {MAX_PAGES}, got {max_pages}")
    max_chars = min(max_chars if max_chars > 0 else MAX_CHARS, MAX_CHARS)
    found, read, skipped = gather(url, depth=depth, max_pages=max_pages, fetch=fetch)
    ranked = rank(query, found)
    header = [f"Query: {query}", f"Read {len(read)} page(s): {', '.join(read)}"]
    header += [f"Skipped {s}" for s in skipped]
    if not ranked:
        words = sum(len(p.text.split()) for p in found)
        return "\n".join(
            [*header, f"No passage of the {len(found)} ({words} words) mentions the query's terms."]
        )
    kept: list[tuple[Passage, str]] = []
    used = sum(len(h) + 1 for h in header)
    for p in ranked:
        block = f"[{len(kept) + 1}] {p.url} (BM25 {p.score:.2f})\n{p.text}"
        if kept and used + len(block) + 2 > max_chars:
            break
        kept.append((p, block[: max_chars - used]))
        used += len(block) + 2
    header.append(f"Kept {len(kept)} of {len(found)} passages, best first.")
    summary_model = endpoint.model("MEMENTO_SUMMARY_MODEL")
    if summary_model is None:
        return "\n".join(header) + "\n\n" + "\n\n".join(b for _, b in kept)
    excerpts = "\n\n".join(b for _, b in kept)
    summary = endpoint.chat(
        summary_model,
        [
            {
                "role": "user",
                "content": (
                    f"Question: {query}\n\nExcerpts from web pages:\n\n{excerpts}\n\nWrite only the facts from "
                    "these excerpts that help answer the question, citing excerpt numbers like [1]. "
                    "Say so if they do not answer it."
                ),
            }
        ],
        what="crawl summary",
    )
    sources = "\n".join(f"[{i}] {p.url}" for i, (p, _) in enumerate(kept, 1))
    return "\n".join(header) + f"\n\nSummary ({summary_model}):\n{summary}\n\nSources:\n{sources}"

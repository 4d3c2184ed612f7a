"""Offline search: bm25s's sparse index vs. a plain-Python BM25 scan over the same 10k summaries.

    python benchmarks/bench_search.py [--queries 200]

Both sides score with the same Okapi BM25 formula (k1=1.5, b=0.75, Lucene idf) on the same
tokens (bm25s's tokenizer, English stopwords), so the top hits should agree; the baseline is what
one writes without an index: one pass over every document's term counts per query. Also reports
the one-off cost of building the index (the search server does it on first use, then loads it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from servers.search import SearchIndex, _tokenize, build_index, wikipedia_docs


class NaiveBM25:
    """BM25 without an index: term counters per document, scanned for every query."""

    def __init__(self, docs_tokens: list[list[str]], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tf = [Counter(t) for t in docs_tokens]
        self.len = [len(t) for t in docs_tokens]
        self.avg = sum(self.len) / len(self.len)
        df: Counter[str] = Counter()
        for c in self.tf:
            df.update(c.keys())
        n = len(docs_tokens)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def top(self, query: list[str], k: int) -> list[int]:
        scores = []
        for i, (tf, dl) in enumerate(zip(self.tf, self.len, strict=True)):
            s = 0.0
            norm = self.k1 * (1 - self.b + self.b * dl / self.avg)
            for t in query:
                f = tf.get(t)
                if f:
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
            if s > 0:
                scores.append((s, i))
        scores.sort(reverse=True)
        return [i for _, i in scores[:k]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    docs = wikipedia_docs()
    # queries: the first sentence of every n-th summary, minus its title words (a realistic paraphrase-ish probe)
    step = max(1, len(docs) // args.queries)
    queries = []
    for d in docs[::step][: args.queries]:
        first = d.text.split(". ")[0]
        title_words = set(d.title.lower().split())
        queries.append((d.id, " ".join(w for w in first.split() if w.lower() not in title_words)))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = build_index(docs, Path(tmp) / "wiki")
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = SearchIndex(path)
        load_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        naive = NaiveBM25(_tokenize([f"{d.title}\n{d.text}" for d in docs]))
        naive_build_s = time.perf_counter() - t0

        fast, slow, agree, hit_fast = [], [], 0, 0
        for doc_id, q in queries:
            t0 = time.perf_counter()
            hits = index.search(q, 3)
            fast.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            top = naive.top(_tokenize([q])[0], 3)
            slow.append(time.perf_counter() - t0)
            agree += int(bool(hits) and bool(top) and hits[0].id == docs[top[0]].id)
            hit_fast += int(doc_id in [h.id for h in hits])

    n = len(queries)
    f_ms, s_ms = 1000 * statistics.median(fast), 1000 * statistics.median(slow)
    print(
        f"corpus: {len(docs)} Wikipedia summaries; {n} queries (first sentence of a summary, title words removed)"
    )
    print(
        f"index build (tokenize + bm25s + save): {build_s:.2f} s; load: {load_s:.3f} s; "
        f"naive term counters: {naive_build_s:.2f} s"
    )
    print(
        f"median query latency: bm25s {f_ms:.2f} ms vs naive scan {s_ms:.2f} ms -> {s_ms / f_ms:.0f}x faster"
    )
    print(f"top-1 agreement between the two: {agree}/{n}; source summary in bm25s top 3: {hit_fast}/{n}")


if __name__ == "__main__":
    main()

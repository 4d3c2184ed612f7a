"""Per-query similarity-retrieval latency: cached case vectors vs. the seed's re-embed-every-key.

The original Memento non-parametric retriever embeds every case key again for every query. Ours
embeds each case once (at write time, stored with the bank), so a query costs one encoder pass,
one matrix-vector product and a partial sort.

    python benchmarks/bench_retrieval.py [--sizes 1000 10000 100000] [--queries 20]

Both sides use the same packaged MiniLM encoder in the same run. The baseline is measured
directly at the smallest size (``--baseline-queries`` queries) and, because it is linear in N
(one encoder pass over every key), extrapolated from that measured throughput at larger N; the
output says which numbers are measured and which are extrapolated. Case texts beyond the seed
bank are synthetic, and their vectors are random unit vectors written into the embedding store
(retrieval cost does not depend on the text).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memento_lab.config import shared_seed_dir
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore, SentenceEncoder, text_hash
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever

DEMO = Path(__file__).resolve().parent.parent / "memento_lab" / "data" / "demo_memory.jsonl"


def base_cases() -> list[Case]:
    seed = shared_seed_dir()
    return import_file(seed / "memory.jsonl").cases if seed else import_file(DEMO).cases


def build(
    n: int, real: list[Case], enc: SentenceEncoder, store: EmbeddingStore
) -> tuple[CaseBank, CachedEncoder]:
    rng = np.random.default_rng(n)
    cached = CachedEncoder(enc, store)
    cases = real[:n]
    cached.encode([c.question for c in cases])  # real vectors for the real cases (done once, as at write)
    synth = []
    for i in range(n - len(cases)):
        c = Case.from_episode(f"synthetic task {i}: what is {i} + {i * 7 % 13}?", float(i % 3 != 0))
        synth.append(c)
    if synth:
        v = rng.standard_normal((len(synth), enc.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        store.put_many(enc.name, {text_hash(c.question): row for c, row in zip(synth, v, strict=True)})
    return CaseBank.in_memory(cases + synth), cached


def seed_style_query(query: str, keys: list[str], enc: SentenceEncoder) -> list[int]:
    """The original approach: embed the query and *every* key, cosine, top-k."""
    q = enc.encode([query])[0]
    k = enc.encode(keys)
    return list(np.argsort(-(k @ q))[:4])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--baseline-queries", type=int, default=2)
    args = ap.parse_args()

    enc = SentenceEncoder()
    real = base_cases()
    queries = [f"What is the capital of region number {i}?" for i in range(args.queries)]
    enc.encode(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore(Path(tmp) / "emb.sqlite")
        # baseline throughput, measured at the smallest size
        n0 = min(args.sizes)
        keys0 = [c.question for c in (real * (n0 // max(1, len(real)) + 1))[:n0]]
        base_times = []
        for q in queries[: args.baseline_queries]:
            t = time.perf_counter()
            seed_style_query(q, keys0, enc)
            base_times.append(time.perf_counter() - t)
        base_per_key = statistics.median(base_times) / n0

        print(
            f"{'N':>8} {'ours p50 ms':>12} {'ours p95 ms':>12} {'seed-style ms':>14} {'speed-up':>9}  baseline"
        )
        for n in args.sizes:
            bank, cached = build(n, real, enc, store)
            r = SimilarityRetriever(bank, cached)
            r.retrieve("warm-up query", 4, k_positive=2, k_negative=2)  # loads vectors into the matrix once
            times = []
            for q in queries:
                t = time.perf_counter()
                r.retrieve(q, 4, k_positive=2, k_negative=2)
                times.append(time.perf_counter() - t)
            p50, p95 = np.percentile(times, 50) * 1e3, np.percentile(times, 95) * 1e3
            base_ms = base_per_key * n * 1e3
            how = "measured" if n == n0 else "extrapolated (linear in N)"
            print(f"{n:>8} {p50:>12.2f} {p95:>12.2f} {base_ms:>14.0f} {base_ms / p50:>8.0f}x  {how}")
        print(f"target: p50 < 50 ms at N = 100k; encoder: {enc.name}; real cases: {len(real)}")


if __name__ == "__main__":
    main()

"""Per-query latency of the parametric retriever: cached case vectors vs. the original per-pair re-encoding.

The original Memento parametric retriever (``topk_select``) re-encodes every case, and the query
once per case, for every query: O(N) encoder passes. ``ParametricRetriever`` embeds each case once
(cached by text hash), precomputes the case half of the head's first layer, and per query runs one
encoder pass plus a small matrix product over the N cached rows.

    python benchmarks/bench_parametric.py [--checkpoint checkpoints/retriever] [--queries 20]
                                          [--baseline-cases 256] [--full-baseline]

Both sides use the same weights (a trained checkpoint if given, else a seeded untrained head: the
cost does not depend on the weights) in the same run. N = 1,278 is the seed ``memory.jsonl`` (or,
without ``../shared``, the packaged demo set replicated to that size); N = 10,000 adds synthetic
case texts whose cached vectors are random unit vectors written into a temporary store (scoring
cost does not depend on the text). The baseline is measured on ``--baseline-cases`` cases per query
and extrapolated linearly to N (its cost is one encoder pass per case); ``--full-baseline``
measures it over all 1,278 cases instead. The output says which numbers are measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memento_lab.config import shared_seed_dir
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore, SentenceEncoder, text_hash
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.learned.parametric import ParametricRetriever
from memento_lab.memory.learned.qnet import RetrieverModule

DEMO = Path(__file__).resolve().parent.parent / "memento_lab" / "data" / "demo_memory.jsonl"
N_SEED = 1278


def seed_cases() -> list[Case]:
    seed = shared_seed_dir()
    if seed is not None:
        return import_file(seed / "memory.jsonl").cases
    print("note: ../shared/data/memento-seed is missing; using the demo set replicated to 1,278 cases")
    demo = import_file(DEMO).cases
    return [
        c.model_copy(update={"id": f"{c.id}-{i}", "question": f"{c.question} (#{i})"})
        for i in range(N_SEED // len(demo) + 1)
        for c in demo
    ][:N_SEED]


def synthetic(n: int, dim: int, store: EmbeddingStore, name: str) -> list[Case]:
    cases = [
        Case.from_episode(f"synthetic task {i}: what is {i} + {i * 7 % 13}?", float(i % 3 != 0))
        for i in range(n)
    ]
    v = np.random.default_rng(n).standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    store.put_many(name, {text_hash(c.question): row for c, row in zip(cases, v, strict=True)})
    return cases


def per_query(fn, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoint", default=None, help="a trained retriever (default: a seeded untrained head)"
    )
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--baseline-queries", type=int, default=2)
    ap.add_argument("--baseline-cases", type=int, default=256)
    ap.add_argument("--full-baseline", action="store_true", help="measure the baseline over all 1,278 cases")
    args = ap.parse_args()

    torch.manual_seed(0)
    enc = SentenceEncoder()
    model = RetrieverModule.load(args.checkpoint) if args.checkpoint else RetrieverModule(dim=enc.dim).eval()
    print(
        f"weights: {args.checkpoint or 'untrained head (seed 0)'}; encoder {enc.name}; torch threads {torch.get_num_threads()}"
    )
    real = seed_cases()
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore(Path(tmp) / "emb.sqlite")
        cached = CachedEncoder(enc, store)
        t = time.perf_counter()
        cached.encode([c.question for c in real])  # what a bank does at write time, once
        print(f"embedding the {len(real)} seed cases once (at write/load): {time.perf_counter() - t:.1f} s")
        extra = synthetic(10_000 - len(real), enc.dim, store, enc.name)

        # the original: re-encode query + every case per query (same weights, same run)
        bank = CaseBank.in_memory(real)
        retriever = ParametricRetriever(bank, model, cached)
        cases = bank.cases()
        n_base = len(cases) if args.full_baseline else min(args.baseline_cases, len(cases))
        base_q = [f"Which river flows through city number {i}?" for i in range(args.baseline_queries)]
        retriever.score_per_pair("warm up", cases[:8])
        base = per_query(lambda q: retriever.score_per_pair(q, cases[:n_base]), base_q)
        per_case = statistics.median(base) / n_base
        measured = "measured" if n_base == len(cases) else f"extrapolated from {n_base} cases"
        print(
            f"baseline per-pair re-encoding: {per_case * 1e3:.2f} ms per case ({len(base_q)} queries x {n_base} cases)"
        )

        rows = []
        for n, pool in ((len(real), cases), (10_000, real + extra)):
            b = CaseBank.in_memory(pool)
            r = ParametricRetriever(b, model, cached)
            live = b.cases()
            r.score("warm up", live)
            queries = [
                f"What is the capital of region number {i} of {n}?" for i in range(args.queries)
            ]  # fresh: no cache hits
            lat = statistics.median(per_query(lambda q, r=r, live=live: r.score(q, live), queries))
            base_n = per_case * n
            rows.append((n, lat, base_n, measured if n == len(real) else f"extrapolated from {n_base} cases"))
        # sanity: the fast path returns the original's numbers
        q = "What is the capital of Columbia County?"
        diff = float(np.abs(retriever.score(q, cases[:64]) - retriever.score_per_pair(q, cases[:64])).max())
    print(f"max |cached - per-pair| over 64 cases: {diff:.2e}")
    print(f"\n{'N':>7} {'cached ms/query':>16} {'per-pair ms/query':>18} {'speed-up':>9}  baseline")
    for n, lat, base_n, how in rows:
        print(f"{n:>7} {lat * 1e3:>16.2f} {base_n * 1e3:>18.0f} {base_n / lat:>8.0f}x  {how}")
    target = rows[0][2] / rows[0][1]
    print(f"\ntarget >= 100x at N = {rows[0][0]}: {'met' if target >= 100 else 'NOT met'} ({target:.0f}x)")


if __name__ == "__main__":
    main()

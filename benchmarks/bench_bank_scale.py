"""A case bank at scale: load time, write cost, exact vs. ANN retrieval latency and ANN recall@4.

    python benchmarks/bench_bank_scale.py --n 1000000 --json

Synthetic data: N case records (question, a two-step plan, answer, reward; 2/3 positive) and
384-d unit vectors drawn from a mixture of N/100 Gaussian clusters (centre + noise of the same
scale; clusters of ~100 near-neighbours, like paraphrases of one task family). Queries are 200
fresh draws from the same mixture, not bank members. A stand-in encoder returns those vectors (the
real encoder's cost per query is the same with or without the index and is measured elsewhere).

Measured in one run, in one process:
- ``load_s``: open the bank folder (columnar snapshot read) + load the saved index from disk;
- ``add_ms``: p50 of one ``bank.add(case)`` plus the incremental index update (20 writes);
- ``exact_p50_ms``: exact top-4 by brute force (one matrix-vector product + partial sort over all
  live vectors, already in memory: the best case for the exact scan);
- ``ann_p50_ms``: ``SimilarityRetriever.retrieve(query, 4)`` end to end through the index
  (shortlist search, then the 4 Case objects built from the bank);
- ``ann_recall_at_4``: overlap of those 4 with the exact top-4, averaged over the queries.
Setup (writing the bank, building the index) is timed too and printed on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memento_lab.memory.bank import index as ann
from memento_lab.memory.bank.bank import Case, CaseBank, label_for
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever
from memento_lab.trace import PlanStep

DIM = 384
QUERIES = 200
BATCH = 20_000


class SyntheticVectors:
    """Vectors for ``task <i>: ...`` (bank row i) and ``query <j>`` texts, from arrays made up front."""

    name = "synthetic-384"
    dim = DIM

    def __init__(self, bank_vecs: np.ndarray, query_vecs: np.ndarray):
        self.bank_vecs, self.query_vecs = bank_vecs, query_vecs

    def encode(self, texts):
        rows = [
            self.query_vecs[int(t.split()[1])]
            if t.startswith("query ")
            else self.bank_vecs[int(t.split(":")[0][5:])]
            for t in texts
        ]
        return np.stack(rows) if rows else np.zeros((0, DIM), dtype=np.float32)


def mixture(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(10, n // 100), DIM), dtype=np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, DIM), dtype=np.float32)
        for s in range(0, m, 100_000):
            e = min(m, s + 100_000)
            x = centers[rng.integers(0, len(centers), e - s)] + rng.standard_normal(
                (e - s, DIM), dtype=np.float32
            )
            out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    return draw(n), draw(n_queries)


def record(i: int) -> Case:
    """A synthetic case; built without validation (valid by construction) so that setup stays quick."""
    reward = 1.0 if i % 3 else 0.0
    return Case.model_construct(
        id=f"c{i:08d}",
        question=f"task {i}: combine the values of family {i % 997} and report the result",
        plan=[
            PlanStep.model_construct(id=1, description=f"Look up the inputs of family {i % 997}."),
            PlanStep.model_construct(id=2, description="Compute the result with the math tool."),
        ],
        answer=str(i * 7 % 1013),
        reward=reward,
        label=label_for(reward),
    )


def exact_top(vecs: np.ndarray, live: np.ndarray, q: np.ndarray, k: int = 4) -> np.ndarray:
    s = vecs @ q
    s[~live] = -np.inf
    part = np.argpartition(-s, k)[:k]
    return part[np.argsort(-s[part])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--dir", default=None, help="bank folder (default: a temporary one)")
    args = ap.parse_args()

    def note(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    n = args.n
    t = time.perf_counter()
    vecs, qvecs = mixture(n + 20, QUERIES)  # 20 extra rows for the timed adds
    enc = SyntheticVectors(vecs, qvecs)
    note(f"vectors: {time.perf_counter() - t:.1f}s")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bank"
        t = time.perf_counter()
        bank = CaseBank(path)
        for s in range(0, n, BATCH):
            bank.add([record(i) for i in range(s, min(n, s + BATCH))])
        bank.snapshot()
        note(
            f"bank written: {time.perf_counter() - t:.1f}s, {sum(f.stat().st_size for f in path.iterdir()) / 1e6:.0f} MB"
        )
        t = time.perf_counter()
        ann.BankIndex(bank, enc).build().save()
        build_s = time.perf_counter() - t
        note(f"index built and saved: {build_s:.1f}s")
        del bank

        t, cpu = time.perf_counter(), time.process_time()
        bank = CaseBank(path)
        bank_load = time.perf_counter() - t
        t = time.perf_counter()
        index = ann.BankIndex(bank, enc)
        assert index.load(), "the saved index did not load"
        index_load = time.perf_counter() - t
        load_cpu = time.process_time() - cpu
        ann._OPEN[bank] = {enc.name: index}  # what open_index would find after its own load
        note(f"load: bank {bank_load:.2f}s + index {index_load:.2f}s")

        add_times = []
        for i in range(n, n + 20):
            t = time.perf_counter()
            bank.add(record(i))
            ann.open_index(bank, enc)  # incremental: the one new vector
            add_times.append(time.perf_counter() - t)

        retriever = SimilarityRetriever(bank, enc)
        retriever.index_threshold = 0  # measure the index path at every size (default: from ANN_THRESHOLD)
        live = np.zeros(len(vecs), dtype=bool)
        live[bank.live_rows()] = True
        exact_t, ann_t, overlap = [], [], 0.0
        for j in range(QUERIES):
            q = qvecs[j]
            t = time.perf_counter()
            truth = exact_top(vecs, live, q)
            exact_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = retriever.retrieve(f"query {j}", 4)
            ann_t.append(time.perf_counter() - t)
            overlap += len({r.case.id for r in got} & set(bank.row_ids(truth))) / 4
    out = {
        "n": n,
        "load_s": round(bank_load + index_load, 3),
        "add_ms": round(float(np.median(add_times)) * 1e3, 3),
        "exact_p50_ms": round(float(np.median(exact_t)) * 1e3, 3),
        "ann_p50_ms": round(float(np.median(ann_t)) * 1e3, 3),
        "ann_recall_at_4": round(overlap / QUERIES, 4),
        "bank_load_s": round(bank_load, 3),
        "load_cpu_s": round(load_cpu, 3),  # CPU seconds of the load (wall time suffers on a shared machine)
        "loadavg_1m": round(os.getloadavg()[0], 1),
        "index_load_s": round(index_load, 3),
        "index_build_s": round(build_s, 1),
        "ann_p95_ms": round(float(np.percentile(ann_t, 95)) * 1e3, 3),
        "index_used_by_default": n >= ann.ANN_THRESHOLD,
        "nprobe": ann.NPROBE,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()

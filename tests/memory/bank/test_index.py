"""The ANN index beside a bank: same answers as the exact scan where it is exact, high recall where it is
approximate, incremental adds/removals, persistence, and a rebuild when the saved index is damaged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from memento_lab.memory.bank import index as index_mod
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.dedupe import find_duplicates, leakage_report
from memento_lab.memory.bank.encoders import bank_encoder
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.bank.index import BankIndex, open_index
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever

DEMO = Path(__file__).resolve().parents[3] / "memento_lab" / "data" / "demo_memory.jsonl"


class ClusteredEncoder:
    """Deterministic unit vectors per text, grouped by a ``cN:`` prefix (a stand-in for sentence vectors)."""

    name = "clustered-test"
    dim = 32

    def __init__(self) -> None:
        self.centers = np.random.default_rng(7).standard_normal((50, self.dim)).astype(np.float32)
        self.calls = 0

    def encode(self, texts):
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            base = t.removesuffix(" (again)")  # a near copy: the same vector plus a nudge
            seed = int.from_bytes(hashlib.sha256(base.encode()).digest()[:8], "little")
            c = int(t.split(":")[0][1:]) if t.startswith("c") and ":" in t else seed % 50
            v = self.centers[c] + 0.5 * np.random.default_rng(seed).standard_normal(self.dim)
            v += 0.01 * (t != base)
            out[i] = v / np.linalg.norm(v)
        return out


def synth(n: int, start: int = 0) -> list[Case]:
    return [
        Case.from_episode(f"c{i % 50}: synthetic task {i}", 1.0 if i % 3 else 0.0, id=f"case{i:06d}")
        for i in range(start, start + n)
    ]


def exact(
    bank: CaseBank, enc: ClusteredEncoder, query: str, k: int, positive: bool | None = None
) -> list[str]:
    rows = bank.live_rows()
    if positive is not None:
        rows = rows[bank.row_positive(rows) == positive]
    sims = enc.encode(bank.row_questions(rows)) @ enc.encode([query])[0]
    return bank.row_ids(rows[np.argsort(-sims, kind="stable")[:k]])


def test_index_path_equals_exact_scan_on_the_demo_bank(tmp_path: Path, encoder):
    """Below FLAT_BELOW per label the index is exact: forcing it on must not change a single answer."""
    bank = CaseBank(tmp_path / "b", encoder=bank_encoder(tmp_path / "b", encoder))
    bank.add(import_file(DEMO).cases)
    scan, indexed = SimilarityRetriever(bank), SimilarityRetriever(bank)
    indexed.index_threshold = 0
    assert indexed.uses_index() and not scan.uses_index()
    for q in ["What is 17 * 23?", "Write a function that reverses a string", "capital of France"]:
        for kw in [{}, {"k_positive": 2, "k_negative": 1}, {"exclude_question": True}]:
            a = [(r.case.id, round(r.score, 5)) for r in scan.retrieve(q, 4, **kw)]
            b = [(r.case.id, round(r.score, 5)) for r in indexed.retrieve(q, 4, **kw)]
            assert a == b, (q, kw)
    assert (tmp_path / "b" / "index").is_dir()


@pytest.fixture
def ivf(monkeypatch):
    """Force the approximate (IVF) path at test size."""
    monkeypatch.setattr(index_mod, "FLAT_BELOW", 400)
    monkeypatch.setattr(index_mod, "SAVE_EVERY", 3)


def test_ivf_recall_quotas_and_incremental_updates(tmp_path: Path, ivf):
    enc = ClusteredEncoder()
    bank = CaseBank(tmp_path / "b", encoder=None)
    bank.add(synth(3000))
    ix = open_index(bank, enc)
    assert ix.trained["positive"] == 2000 and ix.trained["negative"] == 1000  # both labels are IVF here
    queries = [f"c{i % 50}: a new task {i}" for i in range(40)]
    hits = sum(
        len(set(bank.row_ids(ix.search(enc.encode([q])[0], 4)[0])) & set(exact(bank, enc, q, 4)))
        for q in queries
    )
    assert hits / (4 * len(queries)) >= 0.95
    neg_rows, _ = ix.search(enc.encode([queries[0]])[0], 5, "negative")
    assert not bank.row_positive(neg_rows).any() and len(neg_rows) == 5

    # incremental: a removed case disappears, a new one is found, without a rebuild
    before = enc.calls
    top = bank.row_ids(ix.search(enc.encode([queries[1]])[0], 1)[0])[0]
    bank.remove([top])
    bank.add(Case.from_episode(queries[1], 1.0, id="fresh"))
    ix = open_index(bank, enc)
    got = bank.row_ids(ix.search(enc.encode([queries[1]])[0], 2)[0])
    assert got[0] == "fresh" and top not in got
    assert enc.calls - before <= 4  # the new case and the queries only, not the bank

    # the index was saved (SAVE_EVERY=3 writes); a new process catches up from the bank's log
    bank.add(Case.from_episode("c3: later", 1.0, id="later"))
    again = CaseBank(tmp_path / "b")
    fresh_ix = BankIndex(again, enc)
    assert fresh_ix.load() and fresh_ix.version < again.version
    fresh_ix.sync()
    assert len(fresh_ix) == len(again) == 3000 - 1 + 2
    assert "later" in again.row_ids(fresh_ix.search(enc.encode(["c3: later"])[0], 1)[0])


def test_damaged_or_foreign_index_is_rebuilt(tmp_path: Path, ivf, caplog):
    enc = ClusteredEncoder()
    bank = CaseBank(tmp_path / "b")
    bank.add(synth(600))
    ix = open_index(bank, enc)
    ix.save()
    folder = ix.folder
    assert folder is not None
    victim = next(folder.glob("positive-*.faiss"))
    victim.write_bytes(victim.read_bytes()[:100])  # truncated file
    reopened = CaseBank(tmp_path / "b")
    assert not BankIndex(reopened, enc).load()
    assert "index unusable" in caplog.text
    rebuilt = open_index(reopened, enc)
    assert len(rebuilt) == 600 and BankIndex(reopened, enc).load()

    # an index copied next to a different bank is not trusted
    other = CaseBank(tmp_path / "other")
    other.add(synth(600, start=10_000))
    (tmp_path / "other" / "index").mkdir()
    for f in folder.iterdir():
        (tmp_path / "other" / "index" / folder.name).mkdir(exist_ok=True)
        (tmp_path / "other" / "index" / folder.name / f.name).write_bytes(f.read_bytes())
    assert not BankIndex(CaseBank(tmp_path / "other"), enc).load()


def test_retriever_at_scale_honours_quotas_and_exclusions(tmp_path: Path, ivf):
    enc = ClusteredEncoder()
    bank = CaseBank(tmp_path / "b")
    bank.add(synth(1200))
    r = SimilarityRetriever(bank, enc)
    r.index_threshold = 1000
    assert r.uses_index()
    q = "c7: synthetic task 7"
    got = r.retrieve(q, k_positive=3, k_negative=2)
    assert sorted(x.case.label for x in got) == ["negative"] * 2 + ["positive"] * 3
    assert [x.case.id for x in got if x.case.positive] == exact(bank, enc, q, 3, positive=True)
    no_self = r.retrieve(q, 4, exclude_question=True, exclude_ids={"case000057"})
    ids = [x.case.id for x in no_self]
    assert "case000007" not in ids and "case000057" not in ids and len(ids) == 4
    sampled = r.retrieve(q, 4, temperature=0.05, seed=1)
    assert len(sampled) == 4 and all(x.case.question.startswith("c7:") for x in sampled)


def test_dedupe_and_leakage_use_the_index_above_the_threshold(tmp_path: Path, monkeypatch):
    enc = ClusteredEncoder()
    monkeypatch.setattr(index_mod, "ANN_THRESHOLD", 10**9)  # exact scan
    cases = synth(300)
    twin = cases[5].model_copy(update={"id": "twin", "question": cases[5].question + " "})
    cases.append(twin)  # exact duplicate after normalisation
    near = Case.from_episode("c10: synthetic task 10 (again)", 1.0, id="near")
    groups_small = find_duplicates([*cases, near], enc, threshold=0.999)
    monkeypatch.setattr(index_mod, "ANN_THRESHOLD", 10)
    groups_big = find_duplicates([*cases, near], enc, threshold=0.999)
    as_set = lambda gs: sorted((g.keep, tuple(sorted(g.duplicates)), g.kind) for g in gs)  # noqa: E731
    assert as_set(groups_big) == as_set(groups_small)
    assert ("case000005", ("twin",), "exact") in as_set(groups_big)
    assert ("case000010", ("near",), "near") in as_set(groups_big)
    leak = leakage_report(cases, ["c3: synthetic task 3", "unrelated"], enc, threshold=0.99)
    assert {h.case_id for h in leak.hits} == {"case000003"}


def test_parametric_at_scale_reranks_the_index_shortlist(tmp_path: Path, encoder):
    import torch

    from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore
    from memento_lab.memory.learned.parametric import ParametricRetriever, RetrievalConfig
    from memento_lab.memory.learned.qnet import RetrieverModule

    torch.manual_seed(0)
    cached = CachedEncoder(encoder, EmbeddingStore(tmp_path / "e.sqlite"))
    bank = CaseBank.in_memory(import_file(DEMO).cases)
    model = RetrieverModule(dim=cached.dim).eval()
    plain = RetrievalConfig(min_q=None)  # no abstention floor: this test is about the shortlist
    full = ParametricRetriever(bank, model, cached, choose=plain)
    staged = ParametricRetriever(bank, model, cached, choose=plain)
    staged.index_threshold = 0
    assert staged.uses_index() and not full.uses_index()
    q = "What is 31 * 17?"
    # a shortlist as large as each label: the two-stage answer is the full scan's answer
    for kw in [{}, {"k_positive": 2, "k_negative": 2}]:
        a = [(h.case.id, round(h.score, 5)) for h in full.retrieve(q, 4, **kw)]
        assert a == [(h.case.id, round(h.score, 5)) for h in staged.retrieve(q, 4, **kw)]
    # a shortlist of 3 per label: Q picks among the 3 nearest questions of each label, not beyond
    staged.shortlist = 3
    near = set()
    for flag in (True, False):
        rows = bank.live_rows()[bank.row_positive(bank.live_rows()) == flag]
        sims = cached.encode(bank.row_questions(rows)) @ cached.encode([q])[0]
        near |= set(bank.row_ids(rows[np.argsort(-sims)[:3]]))
    hits = staged.retrieve(q, 4, k_positive=2, k_negative=2)
    assert len(hits) == 4 and {h.case.id for h in hits} <= near
    scores = full.score(q, [h.case for h in hits])
    assert np.allclose([h.score for h in hits], scores, atol=1e-5)  # the learned Q, not the cosine


def _zero_vectors(path: Path) -> None:
    """Zero the vector data of a saved flat index, header and ids intact (a bad disk, a bad copy)."""
    import faiss

    ix = faiss.read_index(str(path))
    flat = faiss.downcast_index(ix.index)
    faiss.copy_array_to_vector(np.zeros(flat.ntotal * flat.code_size, dtype=np.uint8), flat.codes)
    faiss.write_index(ix, str(path))


def test_zeroed_vectors_in_a_saved_index_are_detected_and_rebuilt(tmp_path: Path, caplog):
    enc = ClusteredEncoder()
    bank = CaseBank(tmp_path / "b")
    bank.add(synth(200))
    open_index(bank, enc).save()
    folder = BankIndex(bank, enc).folder
    assert folder is not None
    victim = next(folder.glob("positive-*.faiss"))
    _zero_vectors(victim)
    reopened = CaseBank(tmp_path / "b")
    with caplog.at_level("WARNING"):
        assert not BankIndex(reopened, enc).load()
    assert any(victim.name in r.getMessage() for r in caplog.records)
    ix = open_index(reopened, enc)
    for i in (1, 2, 4, 5):  # positive cases: each finds itself first
        q = f"c{i % 50}: synthetic task {i}"
        assert reopened.row_ids(ix.search(enc.encode([q])[0], 1)[0]) == [f"case{i:06d}"]
    assert BankIndex(CaseBank(tmp_path / "b"), enc).load()  # the rebuilt files are trusted again


def test_an_index_saved_for_an_earlier_state_of_a_copied_bank_is_not_trusted(tmp_path: Path):
    """Two copies of one bank diverge: the same first case, the same version, other later cases."""
    import shutil

    enc = ClusteredEncoder()
    bank = CaseBank(tmp_path / "a")
    bank.add(synth(50))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    bank.add(synth(10, start=100))
    open_index(bank, enc).save()
    other = CaseBank(tmp_path / "b")
    other.add(synth(10, start=200))  # same version and row count, different cases
    assert other.version == bank.version
    folder = BankIndex(bank, enc).folder
    assert folder is not None
    shutil.copytree(folder.parent, tmp_path / "b" / "index")
    assert not BankIndex(CaseBank(tmp_path / "b"), enc).load()

"""Retrieval: quotas, soft sampling, caching of embeddings, modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore, bank_encoder
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.read_write import make_retriever
from memento_lab.memory.retrieval.retrievers import NoMemory, RandomRetriever, SimilarityRetriever, select

DEMO = Path(__file__).resolve().parents[3] / "memento_lab" / "data" / "demo_memory.jsonl"


def test_select_top_k_and_quotas():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = np.array([False, False, True, True, True, False])
    assert select(scores, positive, 3).tolist() == [0, 1, 2]
    assert select(scores, positive, k_positive=2, k_negative=1).tolist() == [0, 2, 3]
    assert select(scores, positive, k_positive=5, k_negative=0).tolist() == [
        2,
        3,
        4,
    ]  # quota capped by supply
    assert select(scores, positive, k_negative=2).tolist() == [0, 1]


def test_soft_policy_samples_by_score():
    scores = np.array([5.0, 0.0, 0.0, 0.0])
    positive = np.ones(4, dtype=bool)
    rng = np.random.default_rng(0)
    firsts = [select(scores, positive, 1, temperature=1.0, rng=rng)[0] for _ in range(400)]
    share = np.mean(np.array(firsts) == 0)
    assert 0.9 < share < 1.0  # softmax: e^5 / (e^5 + 3) ~ 0.98, but not always
    hot = [select(scores, positive, 1, temperature=100.0, rng=rng)[0] for _ in range(400)]
    assert np.mean(np.array(hot) == 0) < 0.5  # a high temperature is nearly uniform
    with pytest.raises(ValueError):
        select(scores, positive, 1, temperature=0)


def test_similarity_retrieval_quotas_on_demo_bank(tmp_path: Path, encoder):
    bank = CaseBank(tmp_path / "b", encoder=bank_encoder(tmp_path / "b", encoder))
    bank.add(import_file(DEMO).cases)
    r = SimilarityRetriever(bank)
    hits = r.retrieve("Reverse the word 'galaxy'.", 4)
    assert "backwards" in hits[0].case.question or "Reverse" in hits[0].case.question
    assert [h.rank for h in hits] == [0, 1, 2, 3] and hits[0].score >= hits[-1].score
    quota = r.retrieve("Reverse the word 'galaxy'.", k_positive=2, k_negative=1)
    assert sum(h.case.positive for h in quota) == 2 and sum(not h.case.positive for h in quota) == 1
    assert quota[0].to_trace().case_id == quota[0].case.id


def test_embedding_computed_once_per_text(tmp_path: Path, encoder):
    calls_before = encoder.calls
    cached = CachedEncoder(encoder, EmbeddingStore(tmp_path / "e.sqlite"))
    bank = CaseBank(tmp_path / "b", encoder=cached)
    cases = import_file(DEMO).cases
    bank.add(cases[:10])
    assert encoder.calls - calls_before == 10  # embedded at write time
    r = SimilarityRetriever(bank)
    r.retrieve("What is 2 + 2?")
    r.retrieve("What is 2 + 2?")
    assert encoder.calls - calls_before == 11  # the query once; no case re-embedded
    bank.add(cases[10:])
    r.retrieve("Another question?")
    assert encoder.calls - calls_before == 22  # 10 new cases at write + one new query
    # a new process-equivalent (fresh cache object, same store) recomputes nothing
    again = CachedEncoder(encoder, EmbeddingStore(tmp_path / "e.sqlite"))
    SimilarityRetriever(CaseBank(tmp_path / "b", encoder=again)).retrieve("What is 2 + 2?")
    assert encoder.calls - calls_before == 22


def test_retriever_sees_cases_written_after_it_was_made(tmp_path: Path, encoder):
    bank = CaseBank(tmp_path / "b", encoder=bank_encoder(tmp_path / "b", encoder))
    r = SimilarityRetriever(bank)
    assert r.retrieve("anything") == []
    bank.add(Case.from_episode("What is the boiling point of water?", 1.0))
    assert [h.case.question for h in r.retrieve("boiling water")] == ["What is the boiling point of water?"]
    # and a past version is retrievable too
    bank.add(Case.from_episode("What is the freezing point of water?", 1.0))
    assert len(r.retrieve("water", bank=bank.at(1))) == 1


def test_modes_and_exclusions(tmp_path: Path, encoder):
    bank = CaseBank.in_memory(import_file(DEMO).cases)
    assert NoMemory(bank).retrieve("x") == []
    a = RandomRetriever(bank, seed=1).retrieve("q", 4)
    b = RandomRetriever(bank, seed=1).retrieve("q", 4)
    c = RandomRetriever(bank, seed=2).retrieve("q", 4)
    assert [h.case.id for h in a] == [h.case.id for h in b] != [h.case.id for h in c]
    sim = make_retriever("similarity", bank, encoder=encoder)
    q = bank.cases()[0].question
    assert sim.retrieve(q, 1)[0].case.question == q
    assert sim.retrieve(q, 1, exclude_question=True)[0].case.question != q
    with pytest.raises(ValueError, match="memory mode"):
        make_retriever("psychic", bank)


def test_pairs_from_bank_copy_the_query_outcome_and_never_pair_a_case_with_itself(tmp_path: Path, encoder):
    from memento_lab.memory.retrieval.pairs import pairs_from_bank

    bank = CaseBank(tmp_path / "b", encoder=CachedEncoder(encoder, EmbeddingStore(tmp_path / "e.sqlite")))
    bank.add(import_file(DEMO).cases[:6])
    pairs = pairs_from_bank(bank, SimilarityRetriever(bank), k=2)
    by_question = {c.question: c for c in bank.cases()}
    assert len(pairs) == 6 * 2
    for p in pairs:
        query_case = by_question[p.query]
        assert p.case_id != query_case.id and p.case_question != p.query
        assert p.helped == query_case.positive and p.reward == query_case.reward
    assert {p.rank for p in pairs} == {0, 1}


def test_loading_the_encoder_draws_no_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    """One "Loading weights" bar per run piled up in notebook 04's output."""
    from transformers.utils import logging as hf_logging

    from memento_lab.memory.bank.encoders import SentenceEncoder

    before = hf_logging.is_progress_bar_enabled()
    assert SentenceEncoder().dim == 384  # loads the model
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled() == before  # other bars stay as they were

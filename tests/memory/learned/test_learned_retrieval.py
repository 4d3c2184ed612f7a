"""The learned retriever's choosing: abstention (parametric floor and similarity threshold), the
"no memory" pair, cosine shortlist + Q re-rank, logged propensities, off-policy IPS on synthetic logs
with a known answer, online state saved in a run folder and restored (real MiniLM encoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.online import (
    ONLINE_CKPT,
    attach_online,
    probe_due,
    probe_memory,
    retriever_options,
)
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.learned.parametric import ParametricRetriever, RetrievalConfig, UpdateConfig
from memento_lab.memory.learned.qnet import RetrieverModule
from memento_lab.memory.read_write import Memory, open_memory
from memento_lab.memory.retrieval.offpolicy import draw_slate, ips_estimate, slate_propensities
from memento_lab.memory.retrieval.pairs import NO_CASE, PairLog, RetrievalPair
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever
from memento_lab.trace import Trace

DEMO = Path(__file__).resolve().parents[3] / "memento_lab" / "data" / "demo_memory.jsonl"


@pytest.fixture(scope="module")
def demo_cases() -> list[Case]:
    return import_file(DEMO).cases


@pytest.fixture
def cached(encoder, tmp_path: Path) -> CachedEncoder:
    return CachedEncoder(encoder, EmbeddingStore(tmp_path / "emb.sqlite"))


def _retriever(bank: CaseBank, cached: CachedEncoder, **choose) -> ParametricRetriever:
    torch.manual_seed(0)
    return ParametricRetriever(
        bank, RetrieverModule(dim=cached.dim).eval(), cached, choose=RetrievalConfig(**choose)
    )


# --------------------------------------------------------------------------- abstention
def test_abstention_returns_zero_cases_when_every_case_scores_below_threshold(demo_cases, cached):
    bank = CaseBank.in_memory(demo_cases)
    query = "What is 19 * 21?"
    r = _retriever(bank, cached, min_q=None)
    q = r.score(query, bank.cases())
    assert len(r.retrieve(query, 4)) == 4  # no floor: always K
    r.choose = RetrievalConfig(min_q=float(q.max()) + 1e-3)  # every case below the floor
    assert r.retrieve(query, 4) == []
    # a floor between the scores: fewer than K, all at or above it
    mid = float(np.sort(q)[-2])
    r.choose = RetrievalConfig(min_q=mid)
    hits = r.retrieve(query, 4)
    assert len(hits) == 2 and all(h.score >= mid for h in hits)
    # similarity's threshold variant behaves the same way
    sim = SimilarityRetriever(bank, cached, min_score=1.01)
    assert sim.retrieve(query, 4) == []
    assert len(SimilarityRetriever(bank, cached).retrieve(query, 4)) == 4


def test_abstaining_episode_logs_a_no_memory_pair_the_head_learns_from(demo_cases, cached, tmp_path):
    bank = CaseBank(tmp_path / "bank")
    bank.add(demo_cases)
    r = _retriever(bank, cached, min_q=1.0, none_option=True)
    r.config = UpdateConfig(every=1, steps=10, lr=5e-3)
    memory = Memory(bank, r, pairs=PairLog(tmp_path / "pairs.jsonl"))
    query = "What is 23 * 17?"
    slate = memory.read(query)
    assert slate == [] and slate.stop == 1.0  # it abstained: "stop" was drawn first, for sure
    before = r.q_none(query)
    trace = Trace(
        task_id="t1", question=query, reward=1.0, run_id="r", iteration=0, stop_propensity=slate.stop
    )
    memory.write(trace)
    pairs = PairLog(tmp_path / "pairs.jsonl").read()
    assert [(p.case_id, p.propensity, p.reward) for p in pairs] == [(NO_CASE, 1.0, 1.0)]
    assert r.q_none(query) > before  # the "no memory" option learned that no memory went well


# --------------------------------------------------------------------------- shortlist + re-rank
def test_shortlist_is_cosine_top_m_reranked_by_q(demo_cases, cached):
    bank = CaseBank.in_memory(demo_cases)
    query = "Spell the word 'harvest' backwards."
    r = _retriever(bank, cached, min_q=None, shortlist=5)
    cases = bank.cases()
    cos = SimilarityRetriever(bank, cached).score(query, cases)
    top5 = {cases[i].id for i in np.argsort(-cos)[:5]}
    scores = r.score(query, cases)
    assert (
        np.isfinite(scores).sum() == 5
        and {c.id for c, s in zip(cases, scores, strict=True) if np.isfinite(s)} == top5
    )
    full = _retriever(bank, cached, min_q=None).score(query, cases)
    assert np.allclose(scores[np.isfinite(scores)], full[np.isfinite(scores)], atol=1e-6)  # the same Q
    hits = r.retrieve(query, 8)  # asks for more than the shortlist: only the shortlist is shown
    assert len(hits) == 5 and {h.case.id for h in hits} == top5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)  # ordered by Q


# --------------------------------------------------------------------------- propensities, IPS
def test_logged_propensities_are_the_policy_probabilities():
    scores, t = np.array([1.0, 0.0, -1.0]), 0.5
    rng = np.random.default_rng(0)
    firsts = [int(draw_slate(scores, 1, temperature=t, rng=rng)[0][0]) for _ in range(4000)]
    soft = np.exp(scores / t) / np.exp(scores / t).sum()
    assert np.abs(np.bincount(firsts, minlength=3) / 4000 - soft).max() < 0.03
    idx, props = draw_slate(scores, 2, temperature=t, rng=np.random.default_rng(3))
    assert props == slate_propensities(scores, list(idx), 2, temperature=t) and len(props) == 2
    # with a floor the stop is an option: its probability is logged when fewer than K are shown
    idx, props = draw_slate(scores, 3, temperature=None, floor=0.5)
    assert list(idx) == [0] and props == [1.0, 1.0]
    assert slate_propensities(scores, [1], 3, temperature=None, floor=0.5) == [0.0, 0.0]


def test_ips_recovers_a_known_policy_value_from_logs_of_another():
    rewards = np.array([1.0, 0.0, 0.5])  # per case (K = 1); the stop ("no memory") earns 0.3
    r_stop = 0.3
    old_scores, t_old, floor = np.zeros(3), 1.0, 0.0  # uniform over 3 cases + stop
    new_scores, t_new = np.array([2.0, -1.0, 1.0]), 0.5
    ext = np.append(new_scores, floor) / t_new
    p_new_true = np.exp(ext) / np.exp(ext).sum()
    truth = float(p_new_true @ np.append(rewards, r_stop))
    rng = np.random.default_rng(7)
    r, p_old, p_new = [], [], []
    for _ in range(6000):
        idx, props = draw_slate(old_scores, 1, temperature=t_old, floor=floor, rng=rng)
        chosen = list(idx)
        r.append(rewards[chosen[0]] if chosen else r_stop)
        p_old.append(float(np.prod(props)))
        p_new.append(
            float(np.prod(slate_propensities(new_scores, chosen, 1, temperature=t_new, floor=floor)))
        )
    est = ips_estimate(r, p_old, p_new)
    assert (
        abs(est.on_policy - float(np.mean(np.append(rewards, r_stop)))) < 0.03
    )  # the logging policy's value
    assert abs(est.ips - truth) < 0.04 and abs(est.snips - truth) < 0.03  # type: ignore[operator]
    assert abs(est.ips - est.on_policy) > 0.15  # the estimate is not just the logged mean
    # a greedy new policy (always case 0) on exactly balanced logs: IPS is exact
    exact = ips_estimate([1.0, 0.0, 0.5, r_stop], [0.25] * 4, [1.0, 0.0, 0.0, 0.0])
    assert exact.ips == pytest.approx(1.0) and exact.matched == 1
    with pytest.raises(ValueError, match="propensity 0"):
        ips_estimate([1.0], [0.0], [1.0])


# --------------------------------------------------------------------------- online state in a run
def test_online_state_is_saved_in_the_run_and_restored_on_resume(demo_cases, tmp_path, monkeypatch):
    init = tmp_path / "init.ckpt"
    torch.manual_seed(0)
    RetrieverModule(dim=384).save(init)
    run = tmp_path / "run"
    bank_dir = run / "bank"
    seed_bank = CaseBank(bank_dir)
    for c in demo_cases:
        seed_bank.add(c)
    cfg = ExperimentConfig(
        memory="parametric", checkpoint=str(init), online_update=True, min_q=None, out=str(run)
    )

    def opened() -> Memory:
        checkpoint, kw = retriever_options(cfg, run)
        memory = open_memory(
            bank_dir, "parametric", pairs=run / "pairs.jsonl", checkpoint=checkpoint, retriever_kw=kw
        )
        attach_online(memory, cfg, run)
        return memory

    first = opened()
    assert retriever_options(cfg, run)[0] == str(init)  # nothing saved yet: the initial checkpoint
    query = "What is 12 * 13?"
    shown = first.read(query)
    assert len(shown) == 4
    trace = Trace(task_id="t", question=query, reward=0.0, run_id="r", iteration=0)
    trace.retrieved = [h.to_trace() for h in shown]
    w0 = first.retriever.model.head.fc2.weight.detach().clone()
    before = first.retriever.score(query, [h.case for h in shown])
    first.write(trace)
    assert not torch.equal(first.retriever.model.head.fc2.weight, w0)  # the update changed the head
    after = first.retriever.score(query, [h.case for h in shown])
    assert (after < before).all()  # a failed episode lowers the Q of the cases it showed
    assert (run / ONLINE_CKPT).exists() and retriever_options(cfg, run)[0] == str(run / ONLINE_CKPT)
    assert len(PairLog(run / "pairs.jsonl").read()) == 4  # logged once (by the memory), not twice
    # resume: a new process opens the saved weights and replays the run's earlier pairs
    second = opened()
    assert np.array_equal(second.retriever.score(query, [h.case for h in shown]), after)
    assert len(second.retriever._history or []) == 4


def test_probe_schedule_every_and_share():
    every = ExperimentConfig(counterfactual_every=3)
    assert [probe_due(every, i, "t", 0) for i in range(6)] == [True, False, False, True, False, False]
    share = ExperimentConfig(counterfactual_share=0.5, seed=1)
    due = [probe_due(share, 0, f"t{i}", 0) for i in range(400)]
    assert 150 < sum(due) < 250 and due == [probe_due(share, 0, f"t{i}", 0) for i in range(400)]
    assert not any(probe_due(ExperimentConfig(), 0, f"t{i}", 0) for i in range(50))


def test_probe_never_sees_its_own_task_or_a_later_bank_version(demo_cases, cached, tmp_path):
    bank = CaseBank(tmp_path / "bank", encoder=cached)
    bank.add(demo_cases[:6])
    memory = Memory(bank, SimilarityRetriever(bank, cached), k=8)
    query = "What is 19 * 21?"
    own = Case.from_episode(query, 1.0, answer="399")  # the probed task's own earlier case
    bank.add(own)
    trace = Trace(task_id="t", question=query, reward=1.0, bank_version=bank.version)
    later = Case.from_episode("What is 19 * 22?", 1.0, answer="418")  # written after the episode read
    bank.add(later)
    assert {own.id, later.id} <= {h.case.id for h in memory.read(query)}  # the live memory sees both
    past = probe_memory(memory, trace, k=8)
    seen = {h.case.id for h in past.read(query)}
    assert seen and own.id not in seen and later.id not in seen
    assert seen <= {c.id for c in demo_cases[:6]}
    assert not past.write_enabled


def test_retriever_report_on_a_run_folder(demo_cases, cached, tmp_path):
    from memento_lab.experiments.retriever_report import logged_ranking, off_policy
    from memento_lab.trace import RetrievedCase, write_traces

    run = tmp_path / "run"
    bank = CaseBank(run / "bank", encoder=cached)
    bank.add(demo_cases[:6])
    a, b = demo_cases[0], demo_cases[1]
    # within-query ranking of the logged scores: right order for q1, reversed for q2
    pairs = [
        RetrievalPair(
            query="q1",
            case_id=a.id,
            case_question=a.question,
            case_label=a.label,
            reward=1,
            helped=True,
            delta=1.0,
            score=0.9,
        ),
        RetrievalPair(
            query="q1",
            case_id=b.id,
            case_question=b.question,
            case_label=b.label,
            reward=1,
            helped=True,
            delta=-1.0,
            score=0.1,
        ),
        RetrievalPair(
            query="q2",
            case_id=a.id,
            case_question=a.question,
            case_label=a.label,
            reward=0,
            helped=False,
            delta=-1.0,
            score=0.8,
        ),
        RetrievalPair(
            query="q2",
            case_id=b.id,
            case_question=b.question,
            case_label=b.label,
            reward=0,
            helped=False,
            delta=1.0,
            score=0.2,
        ),
        RetrievalPair(
            query="q2",
            case_id=NO_CASE,
            case_question="",
            case_label="none",
            reward=0,
            helped=False,
            delta=1.0,
        ),
    ]
    rank = logged_ranking(pairs, "delta", k=1)
    assert rank["pairs"] == 4 and rank["n_mixed_queries"] == 2  # the "no memory" pair is not a case
    assert rank["wq_auc"] == 0.5 and rank["p_at_1"] == 0.5
    # off-policy: a greedy K=1 retriever; logged slates drawn with propensity 0.5 each
    new = SimilarityRetriever(bank, cached)
    questions = [
        "What is 19 * 21?",
        "Spell 'garden' backwards.",
        "What is 7 + 8?",
        "Spell 'rocket' backwards.",
    ]
    traces, expect = [], []
    for i, q in enumerate(questions):
        best = new.retrieve(q, 1)[0].case
        other = next(c for c in bank.cases() if c.id != best.id)
        shown = best if i % 2 == 0 else other
        reward = 1.0 if i < 2 else 0.5
        rc = RetrievedCase(
            case_id=shown.id, question=shown.question, label=shown.label, score=0.0, propensity=0.5
        )
        traces.append(
            Trace(task_id=f"t{i}", question=q, reward=reward, bank_version=bank.version, retrieved=[rc])
        )
        expect.append((1.0 if shown.id == best.id else 0.0) / 0.5 * reward)
    write_traces(run / "traces.jsonl", traces)
    est = off_policy(run, new, k=1)
    assert est.episodes == 4 and est.matched == 2 and est.on_policy == pytest.approx(0.75)
    assert est.ips == pytest.approx(float(np.mean(expect)))


@pytest.mark.slow
@pytest.mark.anyio
async def test_online_updates_in_a_real_run_change_the_head_and_survive_resume(tmp_path):
    """The embedded 0.5B model over a real suite: each episode updates the head, the weights land in
    the run folder, and the resumed run starts from them and keeps learning."""
    from memento_lab.experiments.run import run_experiment

    init = tmp_path / "init.ckpt"
    torch.manual_seed(0)
    RetrieverModule(dim=384).save(init)
    run = tmp_path / "run"
    cfg = ExperimentConfig(
        suite="reasoning-gym:spell_backward",
        n=2,
        iterations=1,
        memory="parametric",
        checkpoint=str(init),
        online_update=True,
        min_q=None,  # always show cases, so every episode after the first has pairs to learn from
        k=2,
        tools=[],
        model="qwen2.5-coder-0.5b",
        max_cycles=1,
        max_steps=1,
        out=str(run),
    )
    first = await run_experiment(cfg, progress=False)
    assert first.rows == 2
    state = run / ONLINE_CKPT
    assert state.exists()
    head = lambda path: RetrieverModule.load(path).head.fc2.weight.detach().clone()  # noqa: E731
    after_first = head(state)
    assert not torch.equal(after_first, head(init))
    assert retriever_options(cfg, run)[0] == str(state)
    second = await run_experiment(cfg.model_copy(update={"iterations": 2}), progress=False)
    assert second.rows == 4 and second.run_id == first.run_id
    assert not torch.equal(head(state), after_first)  # resumed from the saved head and updated it again
    assert {p.case_id for p in PairLog(run / "pairs.jsonl").read()} <= {
        c.id for c in CaseBank(run / "bank", readonly=True).cases()
    }


def test_cli_run_flags_reach_the_experiment_config(monkeypatch, tmp_path, capsys):
    import memento_lab.experiments.run as run_mod
    from memento_lab.cli import main
    from memento_lab.experiments.config import RunResult

    seen: list[ExperimentConfig] = []

    async def capture(cfg: ExperimentConfig, **kw) -> RunResult:
        seen.append(cfg)
        return RunResult(out=cfg.out, run_id="x", rows=1, accuracy_by_iteration={0: 1.0}, scored=1)

    monkeypatch.setattr(run_mod, "run_experiment", capture)
    argv = ["run", "--memory", "parametric", "--out", str(tmp_path / "r"), "--online-update"]
    argv += ["--online-target", "delta", "--min-q", "0.6", "--none-option", "--shortlist", "16"]
    argv += ["--counterfactual-share", "0.25"]
    assert main(argv) == 0
    cfg = seen[0]
    assert cfg.online_update and cfg.online_target == "delta" and cfg.min_q == 0.6 and cfg.none_option
    assert cfg.shortlist == 16 and cfg.counterfactual_share == 0.25 and cfg.min_score is None
    main(["run", "--memory", "similarity", "--out", str(tmp_path / "s"), "--min-score", "0.7"])
    assert seen[1].min_score == 0.7 and not seen[1].online_update and seen[1].min_q == 0.5

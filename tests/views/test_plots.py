"""Figures built from small result tables shaped exactly like ``ResultRow``: trace names and numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.io as pio
import polars as pl
import pytest

from memento_lab.experiments import stats
from memento_lab.experiments.config import ExperimentConfig, ResultRow
from memento_lab.memory.bank.bank import Case, CaseBank, Source
from memento_lab.memory.retrieval.pairs import RetrievalPair
from memento_lab.trace import JudgeVerdict, RetrievedCase, Trace
from memento_lab.views import plots, retrieval_plots

# rewards[memory][run][iteration] for one family "fa" (2 tasks each) — hand-checkable means
REWARDS = {
    "none": [[0.0, 0.5], [0.5, 0.5], [0.0, 0.0]],
    "similarity": [[0.5, 1.0], [0.0, 1.0], [0.5, 0.5]],
}


def rows(
    memory: str, run: int, iteration: int, rewards: list[float], *, k: int = 4, family: str = "fa"
) -> list[dict]:
    cfg = ExperimentConfig(memory=memory, k=k, seed=run, suite="test")  # type: ignore[arg-type]
    out = []
    for i, r in enumerate(rewards):
        t = Trace(
            task_id=f"{family}-{i}",
            question=f"q{i}",
            run_id=f"{memory}-{k}-{run}",
            iteration=iteration,
            reward=r,
            verdicts=[JudgeVerdict(judge="em", score=r, correct=r >= 1.0)],
            family=family,
            retrieved=[RetrievedCase(case_id=f"case{i}", question="c", label="positive", score=0.5)]
            if memory != "none"
            else [],
        )
        out.append(ResultRow.of(t, cfg).model_dump())
    return out


def frame() -> pl.DataFrame:
    """Each (memory, run, iteration) has two tasks with the same reward (so the mean is that reward)."""
    data = []
    for memory, runs in REWARDS.items():
        for run, per_it in enumerate(runs):
            for it, r in enumerate(per_it):
                data += rows(memory, run, it, [r, r])
    return pl.DataFrame(data, infer_schema_length=None)


def by_name(fig) -> dict:
    return {t.name: t for t in fig.data}


def boot(matrix: list[list[float]]) -> tuple[float, float, float]:
    """The bootstrap interval summarize() must give for a runs x tasks matrix."""
    return stats.bootstrap_mean(np.array(matrix))


def test_frame_matches_result_rows() -> None:
    df = frame()
    assert {"memory", "iteration", "reward", "run_id", "family", "k", "retrieved_ids"} <= set(df.columns)
    assert df.height == 2 * 3 * 2 * 2


def test_learning_curves_means_and_ci_bands() -> None:
    fig = plots.learning_curves(frame())
    t = by_name(fig)
    assert set(t) == {"none", "none 95% CI", "similarity", "similarity 95% CI"}
    assert list(t["none"].x) == [0, 1]
    assert t["none"].y == pytest.approx([1 / 6, 1 / 3])
    assert t["similarity"].y == pytest.approx([1 / 3, 5 / 6])
    band = t["similarity 95% CI"]
    assert band.fill == "toself" and list(band.x) == [0, 1, 1, 0] and band.mode == "lines"
    _, lo0, hi0 = boot([[0.5, 0.5], [0.0, 0.0], [0.5, 0.5]])  # iteration 0: three runs x two tasks
    assert (band.y[0], band.y[3]) == pytest.approx((hi0, lo0)) and lo0 < 1 / 3 < hi0
    assert band.y[1] == pytest.approx(boot([[1.0, 1.0], [1.0, 1.0], [0.5, 0.5]])[2])


def test_learning_curves_single_run_has_an_interval_over_tasks() -> None:
    df = pl.DataFrame(rows("similarity", 0, 0, [0.0, 1.0]) + rows("similarity", 0, 1, [1.0, 1.0]))
    fig = plots.learning_curves(df)
    t = by_name(fig)
    assert set(t) == {"similarity", "similarity 95% CI"} and t["similarity"].y == pytest.approx([0.5, 1.0])
    band = t["similarity 95% CI"]
    assert (band.y[0], band.y[3]) == (1.0, 0.0)  # two tasks, 0 and 1: the bootstrap spans both
    assert (band.y[1], band.y[2]) == (1.0, 1.0)  # constant data: a point


def test_learning_curves_baseline_line() -> None:
    fig = plots.learning_curves(frame(), baselines={"fa": 0.2, "fb": 0.4})
    base = by_name(fig)["trivial baseline (mean of 2 families)"]
    assert base.y == pytest.approx([0.3, 0.3]) and list(base.x) == [0, 1] and base.line.dash == "dash"


def test_learning_curves_facets_per_family() -> None:
    df = pl.DataFrame(
        rows("none", 0, 0, [0.0])
        + rows("none", 0, 1, [0.0])
        + rows("similarity", 1, 0, [1.0])
        + rows("similarity", 1, 1, [0.0])
        + rows("none", 0, 0, [1.0], family="fb")
        + rows("none", 0, 1, [1.0], family="fb")
        + rows("similarity", 1, 0, [0.0], family="fb")
        + rows("similarity", 1, 1, [1.0], family="fb")
    )
    fig = plots.learning_curves(df, facet_family=True, baselines={"fa": 0.25, "fb": 0.75})
    assert [a.text for a in fig.layout.annotations] == ["fa", "fb"]
    sim = [t for t in fig.data if t.name == "similarity"]
    assert [tuple(t.y) for t in sim] == [(1.0, 0.0), (0.0, 1.0)]
    assert [t.xaxis for t in sim] == ["x", "x2"]
    assert [t.showlegend for t in sim] == [True, False]  # one legend entry per mode
    bases = [t for t in fig.data if t.name == "trivial baseline"]
    assert [(t.xaxis, t.y[0]) for t in bases] == [("x", 0.25), ("x2", 0.75)]


def test_k_sweep_uses_each_runs_final_iteration() -> None:
    data = []
    for k, finals in ((2, [0.0, 0.5]), (4, [1.0, 0.5])):
        for run, final in enumerate(finals):
            data += rows("similarity", run, 0, [0.0, 0.0], k=k) + rows(
                "similarity", run, 1, [final, final], k=k
            )
    fig = plots.k_sweep(pl.DataFrame(data))
    (t,) = fig.data
    assert t.name == "similarity" and list(t.x) == [2, 4]
    assert t.y == pytest.approx([0.25, 0.75])
    expected = [boot([[0.0, 0.0], [0.5, 0.5]]), boot([[1.0, 1.0], [0.5, 0.5]])]
    assert t.error_y.array == pytest.approx([hi - m for m, _, hi in expected])
    assert t.error_y.arrayminus == pytest.approx([m - lo for m, lo, _ in expected])


def test_paired_differences_draws_each_comparison_with_its_ci() -> None:
    from memento_lab.experiments.report import Comparison

    def comparison(iteration: int, diff: float, lo: float, hi: float) -> Comparison:
        return Comparison(
            a="s", b="n", a_label="memory=similarity", b_label="memory=none", split="stream",
            measures="recall", iteration=iteration, diff=diff, ci_low=lo, ci_high=hi, p_value=0.5, tasks=8,
        )  # fmt: skip

    positive = [comparison(1, 0.5, 0.25, 0.75), comparison(0, 0.125, -0.125, 0.375)]
    negative = [comparison(0, 0.0, -0.25, 0.25), comparison(1, -0.125, -0.375, 0.125)]
    fig = plots.paired_differences({"positive control": positive, "negative control": negative})
    t = by_name(fig)
    assert list(t["positive control"].x) == pytest.approx([-0.03, 0.97])  # sorted by iteration, dodged
    assert list(t["negative control"].x) == pytest.approx([0.03, 1.03])
    assert t["positive control"].y == pytest.approx([0.125, 0.5])
    assert t["positive control"].error_y.array == pytest.approx([0.25, 0.25])
    assert t["negative control"].error_y.arrayminus == pytest.approx([0.25, 0.25])
    assert [s.y0 for s in fig.layout.shapes] == [0]  # the line at 0
    with pytest.raises(ValueError, match="negative control: no paired comparison"):
        plots.paired_differences({"negative control": []})


def pair(
    query: str, case_id: str, label: str, reward: float, advantage: float | None = None
) -> RetrievalPair:
    return RetrievalPair(
        query=query,
        case_id=case_id,
        case_question=f"question of {case_id}",
        case_label=label,
        reward=reward,
        helped=reward >= 0.5,
        advantage=advantage,
    )


def test_retrieval_diagnostics_from_pairs() -> None:
    pairs = [
        pair("q1", "good", "positive", 1.0, 0.5),
        pair("q2", "good", "positive", 1.0, 0.3),
        pair("q3", "good", "positive", 0.0, -0.1),
        pair("q1", "bad", "negative", 0.0, -0.4),
        pair("q2", "bad", "negative", 1.0, None),  # advantage filled from q2's mean
    ]
    eff = retrieval_plots.case_effects(pairs)
    assert eff["case_id"].to_list() == ["good", "bad"] and eff["times_retrieved"].to_list() == [3, 2]
    assert eff["mean_advantage"].to_list() == pytest.approx(
        [0.7 / 3, (-0.4 + 0.0) / 2]
    )  # q2 mean reward = 1.0
    fig = retrieval_plots.retrieval_diagnostics(pairs)
    bars, by_label = fig.data
    assert list(bars.y) == pytest.approx(eff["mean_advantage"].to_list())
    assert [c[0] for c in bars.customdata] == [3, 2]
    assert list(by_label.x) == ["negative", "positive"] and by_label.y == pytest.approx([0.5, 2 / 3])


def test_retrieval_diagnostics_from_result_rows_and_pair_file(tmp_path: Path) -> None:
    df = pl.DataFrame(rows("similarity", 0, 0, [1.0, 0.0]) + rows("similarity", 0, 1, [1.0, 1.0]))
    frame_ = retrieval_plots.pairs_frame(df)
    assert sorted(frame_["case_id"].to_list()) == ["case0", "case0", "case1", "case1"]
    # task fa-1 has rewards 0 and 1 (mean 0.5): advantages -0.5 and +0.5
    adv = frame_.filter(pl.col("task_id") == "fa-1").sort("iteration")["advantage"].to_list()
    assert adv == pytest.approx([-0.5, 0.5])
    assert retrieval_plots.retrieval_diagnostics(df).data[1].x == ("unknown",)
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps(p.model_dump(mode="json")) + "\n"
            for p in [pair("q", "c", "positive", 1.0, 0.2), pair("r", "c", "positive", 1.0, 0.0)]
        )
    )
    assert retrieval_plots.case_effects(path)["mean_advantage"].to_list() == pytest.approx([0.1])
    with pytest.raises(ValueError, match="no retrieval pairs"):
        retrieval_plots.retrieval_diagnostics(pl.DataFrame(rows("none", 0, 0, [1.0])))


METRICS_CSV = """epoch,step,train_loss,val_acc,val_auc,val_f1,val_loss,val_wq_auc
0,7,,0.70,0.65,0.53,1.18,nan
0,7,1.06,,,,,
1,15,,0.75,0.67,0.56,1.17,0.6
1,15,0.88,,,,,
2,23,,0.75,0.68,0.44,1.22,0.7
2,23,0.62,,,,,
"""


def test_training_curves_from_sparse_lightning_csv(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    m = retrieval_plots.read_metrics(path)
    assert m["epoch"].to_list() == [0, 1, 2] and m["train_loss"].to_list() == [1.06, 0.88, 0.62]
    assert m["val_wq_auc"].to_list() == [None, 0.6, 0.7]  # "nan" becomes a gap
    t = by_name(retrieval_plots.training_curves(path))
    assert set(t) == {"train loss", "val loss", "val AUC", "val within-query AUC"}
    assert (
        list(t["val loss"].y) == [1.18, 1.17, 1.22]
        and t["val AUC"].yaxis == "y2"
        and t["train loss"].yaxis == "y"
    )
    with pytest.raises(FileNotFoundError, match="no such metrics file"):
        retrieval_plots.training_curves(tmp_path / "missing.csv")


def test_retriever_comparison_from_fit_summary_and_evaluate_dict() -> None:
    summary = {
        "learned": {
            "n": 128,
            "auc": 0.8,
            "wq_auc": 0.7,
            "p_at_1": 0.6,
            "p_at_4": 0.5,
            "p_random": 0.4,
            "n_mixed_queries": 9,
        },
        "similarity": {"auc": 0.55, "wq_auc": 0.6, "p_at_1": 0.5, "p_at_4": None},
    }
    t = by_name(retrieval_plots.retriever_comparison(summary))
    assert list(t["learned"].x) == ["pair AUC", "within-query AUC", "precision@1", "precision@4"]
    assert list(t["learned"].y) == [0.8, 0.7, 0.6, 0.5] and list(t["similarity"].y) == [0.55, 0.6, 0.5, None]
    assert list(t["chance"].y) == [0.5, 0.5, 0.4, 0.4]
    flat = {
        "n": 10,
        "auc": 0.9,
        "wq_auc": None,
        "p_at_1": None,
        "similarity_auc": 0.5,
        "similarity_wq_auc": None,
        "similarity_p_at_1": None,
    }
    t = by_name(retrieval_plots.retriever_comparison(flat))
    assert list(t["learned"].x) == ["pair AUC"] and list(t["similarity"].y) == [
        0.5
    ]  # all-None metrics are left out
    with pytest.raises(TypeError):
        retrieval_plots.retriever_comparison(3)


def test_notebook_renderer() -> None:
    before = pio.renderers.default
    try:
        assert plots.use_notebook_renderer() == "plotly_mimetype" == pio.renderers.default
    finally:
        pio.renderers.default = before


def test_bank_composition_counts() -> None:
    bank = CaseBank.in_memory(
        [
            Case(
                question=f"q{i}",
                reward=float(i % 2),
                label="positive" if i % 2 else "negative",
                source=Source(benchmark=b),
            )
            for i, b in enumerate(["a", "a", "a", "b", None])  # type: ignore[list-item]
        ]
    )
    t = by_name(plots.bank_composition(bank.to_polars()))
    assert list(t["positive"].x) == ["a", "b"] and list(t["positive"].y) == [1, 1]
    assert list(t["negative"].x) == ["a", "unknown"] and list(t["negative"].y) == [2, 1]


def test_memory_costs_one_point_per_arm_in_each_panel() -> None:
    from memento_lab.experiments.report import Cost

    costs = [
        Cost(arm="a", label="memory_tokens=150", split="stream", episodes=4, accuracy=0.5, seconds=1.0,
             prompt_tokens=200, completion_tokens=10, memory_tokens=120, cache_share=0.5, bank_size=3.0,
             reward_per_1k_prompt_tokens=2.5, ci_low=1.0, ci_high=4.0, reward_per_stored_case=0.5,
             tokens_per_episode=210, total_prompt_tokens=800, total_completion_tokens=40),
        Cost(arm="b", label="memory_tokens=600", split="stream", episodes=4, accuracy=0.75, seconds=2.0,
             prompt_tokens=500, completion_tokens=10, memory_tokens=400, cache_share=None, bank_size=None,
             reward_per_1k_prompt_tokens=1.5, ci_low=0.5, ci_high=2.0, reward_per_stored_case=None,
             tokens_per_episode=510, total_prompt_tokens=2000, total_completion_tokens=40),
    ]  # fmt: skip
    fig = plots.memory_costs(costs)
    by_axis = {(t.name, t.xaxis): (t.x[0], t.y[0]) for t in fig.data}
    assert by_axis[("memory_tokens=150", "x")] == (120, 0.5) and by_axis[("memory_tokens=600", "x")] == (
        400,
        0.75,
    )
    assert by_axis[("memory_tokens=150", "x2")] == (3.0, 0.5) and by_axis[("memory_tokens=600", "x2")] == (
        0.0,
        0.75,
    )
    assert (
        "per stored case n/a" in fig.data[2].hovertext[0]
        and "2.500 [1.000, 4.000]" in fig.data[0].hovertext[0]
    )
    with pytest.raises(ValueError, match="no costs"):
        plots.memory_costs([])

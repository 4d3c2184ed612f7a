"""Figures of retrieval (plotly): per-case effects and diagnostics from pairs or result rows, the learned
retriever's training curves and its comparison with similarity. Like ``plots``, every function takes
plain data and returns a ``go.Figure`` (or a frame); nothing is shown here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from memento_lab.memory.retrieval.pairs import RetrievalPair
from memento_lab.views.plots import color


def pairs_frame(data: pl.DataFrame | Sequence[RetrievalPair] | str | Path) -> pl.DataFrame:
    """Retrieval pairs as one row per (episode, shown case) with ``advantage`` filled in.

    Accepts pairs (or a pair file), or result rows (``experiments.results.load_results``): then each row's
    ``retrieved_ids`` become pairs, labels are unknown and the advantage is the reward minus the
    task's mean reward over all rows.
    """
    if isinstance(data, str | Path):
        from memento_lab.memory.learned.pair_data import load_pairs

        data = load_pairs(data)
    if not isinstance(data, pl.DataFrame):
        rows = [
            p.model_dump(
                include={
                    "query",
                    "case_id",
                    "case_question",
                    "case_label",
                    "reward",
                    "advantage",
                    "baseline",
                    "task_id",
                }
            )
            for p in data
        ]
        data = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if data.is_empty():
        return pl.DataFrame(
            schema={
                "query": pl.String,
                "case_id": pl.String,
                "case_question": pl.String,
                "case_label": pl.String,
                "reward": pl.Float64,
                "advantage": pl.Float64,
            }
        )
    if "retrieved_ids" in data.columns:  # result rows (their own case_id is the case they wrote: dropped)
        base = data.drop("case_id", strict=False).with_columns(
            pl.col("reward").mean().over("task_id").alias("_task_mean")
        )
        data = (
            base.with_columns(pl.col("retrieved_ids").str.json_decode(pl.List(pl.String)).alias("case_id"))
            .explode("case_id")
            .filter(pl.col("case_id").is_not_null())
            .with_columns(
                (pl.col("reward") - pl.col("_task_mean")).alias("advantage"),
                pl.lit("unknown").alias("case_label"),
                pl.col("case_id").alias("case_question"),
                pl.col("task_id").alias("query"),
            )
        )
    elif not {"case_id", "query", "reward"} <= set(data.columns):
        raise ValueError(
            f"expected retrieval pairs (query, case_id, reward) or result rows (retrieved_ids); got {data.columns}"
        )
    data = data.with_columns(pl.col("reward").cast(pl.Float64))
    mean_by_query = pl.col("reward").mean().over("query")
    fill = pl.col("reward") - (pl.col("baseline") if "baseline" in data.columns else mean_by_query).fill_null(
        mean_by_query
    )
    adv = pl.col("advantage").cast(pl.Float64).fill_null(fill) if "advantage" in data.columns else fill
    return data.with_columns(adv.alias("advantage"))


def case_effects(data: pl.DataFrame | Sequence[RetrievalPair] | str | Path) -> pl.DataFrame:
    """Per retrieved case: times shown, mean reward and mean advantage when shown (most shown first)."""
    df = pairs_frame(data)
    return (
        df.group_by("case_id")
        .agg(
            pl.col("case_question").first(),
            pl.col("case_label").first(),
            pl.len().alias("times_retrieved"),
            pl.col("reward").mean().alias("mean_reward"),
            pl.col("advantage").mean().alias("mean_advantage"),
        )
        .sort(["times_retrieved", "mean_advantage", "case_id"], descending=[True, True, False])
    )


def retrieval_diagnostics(
    data: pl.DataFrame | Sequence[RetrievalPair] | str | Path, *, top: int = 20
) -> go.Figure:
    """Which retrieved cases helped: mean advantage of the ``top`` most retrieved cases (left), and the
    episode reward when a positive vs a negative case was shown (right, mean ± 95% CI)."""
    df = pairs_frame(data)
    if df.is_empty():
        raise ValueError("no retrieval pairs to plot (a run with memory 'none' retrieves nothing)")
    effects = case_effects(df).head(top)
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.7, 0.3],
        subplot_titles=(
            f"Mean advantage of the {len(effects)} most retrieved cases",
            "Reward by label of shown case",
        ),
    )
    color_of = {"positive": "#2ca02c", "negative": "#d62728", "unknown": "#7f7f7f"}
    labels = [str(q)[:40] for q in effects["case_question"].to_list()]
    fig.add_trace(
        go.Bar(
            x=list(range(len(effects))),
            y=effects["mean_advantage"].to_list(),
            name="mean advantage",
            marker_color=[color_of.get(lbl, "#7f7f7f") for lbl in effects["case_label"].to_list()],
            customdata=list(
                zip(
                    effects["times_retrieved"].to_list(),
                    effects["mean_reward"].to_list(),
                    labels,
                    effects["case_label"].to_list(),
                    strict=True,
                )
            ),
            hovertemplate="%{customdata[2]}<br>label=%{customdata[3]}<br>retrieved %{customdata[0]}×"
            "<br>mean reward %{customdata[1]:.2f}<br>mean advantage %{y:.3f}<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(effects))),
        ticktext=[
            f"{lbl[:18]} ({n}×)" for lbl, n in zip(labels, effects["times_retrieved"].to_list(), strict=True)
        ],
        tickangle=-45,
        row=1,
        col=1,
    )
    by_label = (
        df.group_by("case_label")
        .agg(
            pl.col("reward").mean().alias("mean"),
            pl.col("reward").std().fill_null(0.0).alias("std"),
            pl.len().alias("n"),
        )
        .with_columns((1.96 * pl.col("std") / pl.col("n").sqrt()).alias("ci95"))
        .sort("case_label")
    )
    fig.add_trace(
        go.Bar(
            x=by_label["case_label"].to_list(),
            y=by_label["mean"].to_list(),
            name="reward when shown",
            marker_color=[color_of.get(lbl, "#7f7f7f") for lbl in by_label["case_label"].to_list()],
            error_y={"type": "data", "array": by_label["ci95"].to_list(), "visible": True},
            customdata=by_label["n"].to_list(),
            hovertemplate="%{x}: %{y:.3f} (n=%{customdata})<extra></extra>",
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(title_text="reward − task baseline", row=1, col=1)
    fig.update_yaxes(title_text="episode reward", range=[0, 1.02], row=1, col=2)
    fig.update_layout(title="Retrieval diagnostics: did the shown cases help?", bargap=0.2)
    return fig


# ============================================================================ retriever training
def read_metrics(metrics_csv: str | Path) -> pl.DataFrame:
    """Lightning CSVLogger metrics, one row per epoch (its rows are sparse: train and val log separately)."""
    path = Path(metrics_csv)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such metrics file")
    raw = pl.read_csv(path, infer_schema_length=None)
    if "epoch" not in raw.columns:
        raise ValueError(f"{path}: no 'epoch' column (not a Lightning CSVLogger metrics.csv?)")
    cols = [c for c in raw.columns if c not in ("epoch", "step")]
    return (
        raw.filter(pl.col("epoch").is_not_null())
        .group_by("epoch")
        .agg(
            [
                pl.col(c).cast(pl.Float64, strict=False).fill_nan(None).drop_nulls().last().alias(c)
                for c in cols
            ]
        )
        .sort("epoch")
    )


def training_curves(metrics_csv: str | Path) -> go.Figure:
    """Train / validation loss (left axis) and validation AUCs (right axis) per epoch."""
    m = read_metrics(metrics_csv)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = m["epoch"].to_list()
    styles = {
        "train_loss": ("train loss", False, {"color": color(0)}),
        "val_loss": ("val loss", False, {"color": color(1)}),
        "val_auc": ("val AUC", True, {"color": color(2), "dash": "dot"}),
        "val_wq_auc": ("val within-query AUC", True, {"color": color(3), "dash": "dot"}),
    }
    for col, (name, right, line) in styles.items():
        if col in m.columns and m[col].drop_nulls().len():
            fig.add_trace(
                go.Scatter(x=epochs, y=m[col].to_list(), mode="lines+markers", name=name, line=line),
                secondary_y=right,
            )
    if not fig.data:
        raise ValueError(f"{metrics_csv}: none of {list(styles)} were logged")
    fig.update_layout(title="Retriever training", hovermode="x unified")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="AUC", range=[0, 1], secondary_y=True)
    return fig


def comparison_metrics(result: Any) -> dict[str, dict[str, float | None]]:
    """{"learned": {...}, "similarity": {...}} from a ``FitResult``, its dict, or ``evaluate``'s flat dict."""
    if hasattr(result, "learned") and hasattr(result, "similarity"):
        learned, similarity = dict(result.learned), dict(result.similarity)
    elif isinstance(result, Mapping) and "learned" in result:
        learned, similarity = dict(result["learned"]), dict(result.get("similarity") or {})
    elif isinstance(result, Mapping):
        learned = {k: v for k, v in result.items() if not str(k).startswith("similarity_")}
        similarity = {
            str(k).removeprefix("similarity_"): v
            for k, v in result.items()
            if str(k).startswith("similarity_")
        }
    else:
        raise TypeError(f"expected a FitResult or a metrics dict, got {type(result).__name__}")
    return {"learned": learned, "similarity": similarity}


METRIC_NAMES = {"auc": "pair AUC", "wq_auc": "within-query AUC", "p_at_1": "precision@1"}


def retriever_comparison(result: Any) -> go.Figure:
    """Grouped bars, learned Q(query, case) vs similarity-only, on the metrics both report, with chance level."""
    m = comparison_metrics(result)
    learned, similarity = m["learned"], m["similarity"]
    keys = [
        k
        for k in (
            "auc",
            "wq_auc",
            "p_at_1",
            *sorted(k for k in similarity if k.startswith("p_at_") and k != "p_at_1"),
        )
        if k in learned and k in similarity and (learned[k] is not None or similarity[k] is not None)
    ]
    if not keys:
        raise ValueError(
            f"no metric reported by both: learned {sorted(learned)}, similarity {sorted(similarity)}"
        )
    names = [METRIC_NAMES.get(k, k.replace("p_at_", "precision@")) for k in keys]
    p_random = learned.get("p_random")
    chance = [0.5 if "auc" in k else p_random for k in keys]
    fig = go.Figure()
    for i, (name, values) in enumerate(
        (
            ("learned", [learned[k] for k in keys]),
            ("similarity", [similarity[k] for k in keys]),
            ("chance", chance),
        )
    ):
        fig.add_trace(
            go.Bar(
                x=names,
                y=values,
                name=name,
                marker_color=color(i) if name != "chance" else "#bbbbbb",
                text=[None if v is None else f"{v:.3f}" for v in values],
                textposition="outside",
            )
        )
    n = learned.get("n")
    mixed = learned.get("n_mixed_queries")
    sub = (
        f" (n={n} pairs" + (f", {mixed} queries with mixed labels" if mixed is not None else "") + ")"
        if n
        else ""
    )
    fig.update_layout(title=f"Learned vs similarity retrieval on validation queries{sub}", barmode="group")
    fig.update_yaxes(range=[0, 1.1], title_text="score")
    return fig


# ============================================================================ case bank

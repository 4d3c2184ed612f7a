"""Figures for notebooks (plotly): learning curves, K sweeps, retrieval diagnostics, retriever training.

Every function takes plain data (result rows from ``experiments.results.load_results``, pairs, a Lightning
``metrics.csv``, a ``FitResult``) and returns a ``go.Figure``; nothing is shown here. Call
``use_notebook_renderer()`` once per notebook: figures are saved as plotly's mimetype only (JupyterLab
renders it; ``views.export`` turns it into static HTML with plotly.js once per page).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from memento_lab.experiments.results import summarize

NOTEBOOK_RENDERER = "plotly_mimetype"
COLORS = qualitative.Plotly


def use_notebook_renderer() -> str:
    """Save figures as the plotly mimetype only: no plotly.js copy inside the notebook (see ``views.export``)."""
    pio.renderers.default = NOTEBOOK_RENDERER
    return NOTEBOOK_RENDERER


def color(i: int) -> str:
    """The i-th colour of the figures' palette (cycling)."""
    return COLORS[i % len(COLORS)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _band(x: list[Any], lo: list[float], hi: list[float], *, name: str, color: str, group: str) -> go.Scatter:
    """A filled confidence band: the upper edge left to right, then the lower edge back."""
    return go.Scatter(
        x=x + x[::-1],
        y=hi + lo[::-1],
        mode="lines",  # plotly's default adds markers at the band's corners on short series
        fill="toself",
        fillcolor=_rgba(color, 0.18),
        line={"width": 0},
        hoverinfo="skip",
        name=name,
        legendgroup=group,
        showlegend=False,
    )


def _curve_traces(
    summary: pl.DataFrame, by: str, x: str, *, color_of: dict[Any, str], legend: bool
) -> list[go.Scatter]:
    """One line per group with its 95% bootstrap band (over tasks, and runs when several: a single
    run has an honest interval too)."""
    traces: list[go.Scatter] = []
    for key in sorted(summary[by].unique().to_list(), key=str):
        part = summary.filter(pl.col(by) == key).sort(x)
        xs, acc = part[x].to_list(), part["accuracy"].to_list()
        lo, hi = part["ci_low"].to_list(), part["ci_high"].to_list()
        color = color_of[key]
        traces.append(_band(xs, lo, hi, name=f"{key} 95% CI", color=color, group=str(key)))
        traces.append(
            go.Scatter(
                x=xs,
                y=acc,
                mode="lines+markers",
                name=str(key),
                legendgroup=str(key),
                showlegend=legend,
                line={"color": color},
                customdata=list(zip(lo, hi, part["tasks"].to_list(), part["runs"].to_list(), strict=True)),
                hovertemplate=f"{by}={key}<br>{x}=%{{x}}<br>accuracy=%{{y:.3f}} "
                "[%{customdata[0]:.3f}, %{customdata[1]:.3f}]<br>tasks=%{customdata[2]} runs=%{customdata[3]}"
                "<extra></extra>",
            )
        )
    return traces


def _baseline_trace(value: float, x: list[Any], name: str, *, legend: bool) -> go.Scatter:
    return go.Scatter(
        x=[min(x), max(x)],
        y=[value, value],
        mode="lines",
        name=name,
        legendgroup="baseline",
        showlegend=legend,
        line={"color": "gray", "dash": "dash"},
        hovertemplate=f"{name}: {value:.3f}<extra></extra>",
    )


def learning_curves(
    df: pl.DataFrame,
    *,
    by: str = "memory",
    facet_family: bool = False,
    baselines: Mapping[str, float] | None = None,
    title: str = "Accuracy per iteration",
) -> go.Figure:
    """Mean reward per iteration for each ``by`` group (``arm`` from ``load_results``, or memory mode),
    with 95% bootstrap bands (``results.summarize``).

    ``facet_family`` draws one panel per task family. ``baselines`` (family -> trivial-baseline
    score, as ``experiments.results.report`` gives) adds dashed lines: per panel when faceted, else their mean.
    """
    if df.is_empty():
        raise ValueError("no result rows to plot")
    groups = sorted(df[by].unique().to_list(), key=str)
    color_of = {g: color(i) for i, g in enumerate(groups)}
    iterations = sorted(df["iteration"].unique().to_list())
    if not facet_family:
        fig = go.Figure(
            _curve_traces(
                summarize(df, by=(by, "iteration")), by, "iteration", color_of=color_of, legend=True
            )
        )
        if baselines:
            value = sum(baselines.values()) / len(baselines)
            name = (
                "trivial baseline"
                if len(baselines) == 1
                else f"trivial baseline (mean of {len(baselines)} families)"
            )
            fig.add_trace(_baseline_trace(value, iterations, name, legend=True))
    else:
        fams = sorted(df["family"].drop_nulls().unique().to_list())
        if not fams:
            raise ValueError("facet_family=True needs a non-empty 'family' column")
        cols = min(3, len(fams))
        rows = math.ceil(len(fams) / cols)
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=fams, shared_yaxes=True)
        summary = summarize(df.filter(pl.col("family").is_not_null()), by=("family", by, "iteration"))
        for i, fam in enumerate(fams):
            r, c = i // cols + 1, i % cols + 1
            for t in _curve_traces(
                summary.filter(pl.col("family") == fam), by, "iteration", color_of=color_of, legend=i == 0
            ):
                fig.add_trace(t, row=r, col=c)
            if baselines and fam in baselines:
                fig.add_trace(
                    _baseline_trace(baselines[fam], iterations, "trivial baseline", legend=i == 0),
                    row=r,
                    col=c,
                )
    fig.update_layout(title=title, hovermode="closest", legend_title_text=by)
    fig.update_xaxes(title_text="iteration", tickmode="array", tickvals=iterations)
    fig.update_yaxes(title_text="accuracy (mean reward)", range=[0, 1.02])
    return fig


def paired_differences(
    series: Mapping[str, Sequence[Any]],
    *,
    title: str = "Memory minus no memory, paired over the same tasks (95% bootstrap CI)",
) -> go.Figure:
    """One line per named series of paired comparisons (``Report.comparisons``, or their dicts):
    the difference A − B per iteration with its 95% CI as error bars, and a line at 0. A gain shows
    as a CI above 0; no effect as a CI that covers 0."""
    fig = go.Figure()
    iterations: set[int] = set()
    for i, (name, comparisons) in enumerate(series.items()):
        rows = sorted(
            (c.model_dump() if hasattr(c, "model_dump") else dict(c) for c in comparisons),
            key=lambda r: r["iteration"],
        )
        if not rows:
            raise ValueError(f"{name}: no paired comparison to plot (two arms on the same tasks are needed)")
        xs = [r["iteration"] for r in rows]
        iterations.update(xs)
        dodge = (i - (len(series) - 1) / 2) * 0.06  # side by side, so overlapping error bars stay apart
        fig.add_trace(
            go.Scatter(
                x=[x + dodge for x in xs],
                y=[r["diff"] for r in rows],
                mode="lines+markers",
                name=name,
                line={"color": color(i)},
                error_y={
                    "type": "data",
                    "array": [r["ci_high"] - r["diff"] for r in rows],
                    "arrayminus": [r["diff"] - r["ci_low"] for r in rows],
                    "visible": True,
                },
                customdata=[
                    (r["ci_low"], r["ci_high"], r["p_value"], r["tasks"], r["iteration"]) for r in rows
                ],
                hovertemplate=f"{name}<br>iteration %{{customdata[4]}}: %{{y:+.3f}} [%{{customdata[0]:+.3f}}, "
                "%{customdata[1]:+.3f}]<br>p=%{customdata[2]:.3f}, tasks=%{customdata[3]}<extra></extra>",
            )
        )
    ticks = sorted(iterations)
    fig.add_hline(y=0, line={"color": "gray", "dash": "dash"})
    fig.update_layout(title=title, hovermode="closest", legend_title_text="comparison")
    fig.update_xaxes(title_text="iteration", tickmode="array", tickvals=ticks)
    fig.update_yaxes(title_text="difference in accuracy", range=[-1.02, 1.02], zeroline=False)
    return fig


def final_iteration(df: pl.DataFrame) -> pl.DataFrame:
    """The rows of each run's last iteration."""
    return df.filter(pl.col("iteration") == pl.col("iteration").max().over("run_id"))


def k_sweep(df: pl.DataFrame, *, by: str = "memory") -> go.Figure:
    """Accuracy at each run's final iteration against K, one line per memory mode, with 95% bootstrap error bars."""
    if df.is_empty():
        raise ValueError("no result rows to plot")
    summary = summarize(final_iteration(df), by=(by, "k"))
    fig = go.Figure()
    for i, key in enumerate(sorted(summary[by].unique().to_list(), key=str)):
        part = summary.filter(pl.col(by) == key).sort("k")
        fig.add_trace(
            go.Scatter(
                x=part["k"].to_list(),
                y=part["accuracy"].to_list(),
                mode="lines+markers",
                name=str(key),
                line={"color": color(i)},
                error_y={
                    "type": "data",
                    "array": (part["ci_high"] - part["accuracy"]).to_list(),
                    "arrayminus": (part["accuracy"] - part["ci_low"]).to_list(),
                    "visible": True,
                },
            )
        )
    fig.update_layout(title="Accuracy vs K (final iteration)", legend_title_text=by)
    fig.update_xaxes(
        title_text="K (cases retrieved)", tickmode="array", tickvals=sorted(summary["k"].unique().to_list())
    )
    fig.update_yaxes(title_text="accuracy (mean reward)", range=[0, 1.02])
    return fig


# ============================================================================ memory costs and the bank
def memory_costs(costs: Sequence[Any]) -> go.Figure:
    """Reward against what memory cost, one point per arm: mean memory-block tokens (left) and mean
    bank size when retrieving (right), from ``Report.costs``; hover shows reward per 1k prompt tokens
    and per stored case."""
    rows = [c.model_dump() if hasattr(c, "model_dump") else dict(c) for c in costs]
    if not rows:
        raise ValueError("no costs to plot (the report has no scored episodes)")
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, subplot_titles=("memory-block tokens", "bank size")
    )
    for i, row in enumerate(sorted(rows, key=lambda r: str(r["label"]))):
        hover = (
            f"{row['label']}<br>reward per 1k prompt tokens {row['reward_per_1k_prompt_tokens']:.3f}"
            f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]<br>reward per stored case "
            + (f"{row['reward_per_stored_case']:.3f}" if row["reward_per_stored_case"] is not None else "n/a")
        )
        for col, x in ((1, row["memory_tokens"]), (2, row["bank_size"] or 0.0)):
            fig.add_trace(
                go.Scatter(
                    x=[x],
                    y=[row["accuracy"]],
                    mode="markers",
                    marker={"size": 12, "color": color(i)},
                    name=str(row["label"]),
                    legendgroup=str(row["label"]),
                    showlegend=col == 1,
                    hovertext=[hover],
                    hoverinfo="text",
                ),
                row=1,
                col=col,
            )
    fig.update_layout(title="Reward against memory cost (one point per arm)", legend_title_text="arm")
    fig.update_yaxes(title_text="accuracy (mean reward)", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="mean memory-block tokens", row=1, col=1)
    fig.update_xaxes(title_text="mean cases in the bank", row=1, col=2)
    return fig


def bank_composition(df: pl.DataFrame) -> go.Figure:
    """Cases per source and label, from ``CaseBank.to_polars()``."""
    if df.is_empty():
        raise ValueError("the bank is empty")
    counts = (
        df.with_columns(pl.col("benchmark").fill_null("unknown"))
        .group_by(["benchmark", "label"])
        .agg(pl.len().alias("cases"))
        .sort(["benchmark", "label"])
    )
    fig = go.Figure()
    for label, color in (("positive", "#2ca02c"), ("negative", "#d62728")):
        part = counts.filter(pl.col("label") == label)
        fig.add_trace(
            go.Bar(x=part["benchmark"].to_list(), y=part["cases"].to_list(), name=label, marker_color=color)
        )
    fig.update_layout(title=f"Case bank: {df.height} live cases by source and label", barmode="stack")
    fig.update_yaxes(title_text="cases")
    return fig

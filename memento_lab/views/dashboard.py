"""A run dashboard: one self-contained HTML page for a set of run folders, to open offline anywhere.

    memento-lab report data/runs/sweep --html sweep.html

Learning curves with 95% CIs and trivial baselines, the report's tables (overall, comparisons,
per family, error counts, anything else the report carries), retrieval diagnostics, and every
episode with its trace as static ``<details>`` (no kernel, no widget manager). plotly.js is inlined
once in the head; a few lines of script only filter the episode list.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict

from memento_lab.trace import Trace, read_traces
from memento_lab.views.html_parts import esc, html_table
from memento_lab.views.widgets import trace_correct, trace_html, trace_label

# report keys with a section of their own; every other key lands in "More from the report"
OWN_SECTIONS = {"runs", "episodes", "curves", "by_family", "trivial_baseline"}

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.muted{color:#666;font-size:.9em} details.episode{margin:.2em 0;padding:.2em .5em;border-left:3px solid #ccc}
details.episode.ok{border-left-color:#2ca02c} details.episode.bad{border-left-color:#d62728}
details.episode>summary{cursor:pointer;font-family:monospace;font-size:12px}
.filters{margin:.5em 0} .filters *{margin-right:.6em}
"""

FILTER_JS = """
function filterEpisodes(){
  var q=document.getElementById('ep-text').value.toLowerCase();
  var ok=document.getElementById('ep-ok').value;
  document.querySelectorAll('details.episode').forEach(function(d){
    var show=(!q||d.textContent.toLowerCase().indexOf(q)>=0)&&(!ok||d.dataset.correct===ok);
    d.style.display=show?'':'none';
  });
}
"""


class RunData(BaseModel):
    """One run folder's records, as the dashboard shows them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path
    traces: list[Trace]


class DashboardData(BaseModel):
    """Everything one page shows: the report dict, the result rows, retrieval pairs, traces per run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    title: str
    sources: list[str]
    report: dict[str, Any]
    rows: pl.DataFrame
    pairs: list[Any]
    runs: list[RunData]


def run_folders(paths: Sequence[str | Path]) -> list[Path]:
    """The run folders (those holding ``results.jsonl``) given directly or one level below."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such run folder")
        out.extend(
            [p] if (p / "results.jsonl").exists() else sorted(d.parent for d in p.glob("*/results.jsonl"))
        )
    return out


def load_dashboard(paths: Sequence[str | Path], *, title: str | None = None) -> DashboardData:
    """Read the runs under ``paths`` (run folders or folders of runs) and their report."""
    from memento_lab.experiments.report import build_report
    from memento_lab.experiments.results import load_results
    from memento_lab.memory.retrieval.pairs import PairLog

    folders = run_folders(paths)
    if not folders:
        raise ValueError(f"no run folder (with results.jsonl) in {[str(p) for p in paths]}")
    runs = [
        RunData(path=d, traces=list(read_traces(d / "traces.jsonl", strict=False)))
        if (d / "traces.jsonl").exists()
        else RunData(path=d, traces=[])
        for d in folders
    ]
    pairs = [p for d in folders if (d / "pairs.jsonl").exists() for p in PairLog(d / "pairs.jsonl").read()]
    return DashboardData(
        title=title or "Runs: " + ", ".join(Path(p).name for p in paths),
        sources=[str(Path(p).resolve()) for p in paths],
        report=build_report(folders).model_dump(),
        rows=load_results(folders),
        pairs=pairs,
        runs=runs,
    )


# ============================================================================ generic tables
def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, float) for x in v):
        return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"
    return str(v)


def value_html(value: Any) -> str:
    """Any report value as HTML: a list of records or a mapping as a table, else escaped text."""
    if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
        headers = list(dict.fromkeys(k for r in value for k in r))
        return html_table(headers, [[_cell(r.get(h, "")) for h in headers] for r in value])
    if isinstance(value, Mapping) and value:
        if all(isinstance(v, Mapping) for v in value.values()):
            headers = list(dict.fromkeys(k for v in value.values() for k in v))
            rows = [[str(k), *(_cell(v.get(h, "")) for h in headers)] for k, v in value.items()]
            return html_table(["", *headers], rows)
        return html_table(["", ""], [[str(k), _cell(v)] for k, v in value.items()])
    if value in (None, [], {}):
        return '<p class="muted">(none)</p>'
    return f"<p>{esc(_cell(value))}</p>"


def _section(title: str, body: str, *, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


# ============================================================================ figures
def _figures(data: DashboardData) -> tuple[list[tuple[str, str]], set[str]]:
    """(title, HTML) per figure that the data allows, and the plotly trace types used."""
    from memento_lab.views import plots, retrieval_plots
    from memento_lab.views.export import figure_html

    df, baselines = data.rows, data.report.get("trivial_baseline") or {}
    out: list[tuple[str, str]] = []
    types: set[str] = set()

    def add(title: str, make: Any) -> None:
        try:
            body, used = figure_html(make())
        except (ValueError, KeyError, pl.exceptions.PolarsError) as e:  # not drawable from these runs
            body, used = f'<p class="muted">{esc(title)}: not drawn ({esc(e)})</p>', set()
        out.append((title, body))
        types.update(used)

    if df.is_empty():
        return out, types
    if "k" in df.columns and df["k"].n_unique() > 1:  # a K sweep: one curve per memory mode and K
        df = df.with_columns(pl.format("{} k={}", "memory", "k").alias("memory"))
    add("Learning curves", lambda: plots.learning_curves(df, baselines=baselines))
    if "family" in df.columns and df["family"].drop_nulls().n_unique() > 1:
        add(
            "Learning curves per family",
            lambda: plots.learning_curves(df, facet_family=True, baselines=baselines, title="Per family"),
        )
    if "k" in data.rows.columns and data.rows["k"].n_unique() > 1:
        add("K sweep", lambda: plots.k_sweep(data.rows))
    if data.pairs:
        add("Retrieval diagnostics", lambda: retrieval_plots.retrieval_diagnostics(data.pairs))
    return out, types


# ============================================================================ errors, episodes
def error_counts(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Episodes that ended in an error, per memory mode and error kind (the text before the first ':')."""
    if df.is_empty() or "error" not in df.columns:
        return []
    errs = df.filter(pl.col("error").is_not_null())
    if errs.is_empty():
        return []
    by = [c for c in ("memory", "k") if c in errs.columns]
    return (
        errs.with_columns(pl.col("error").cast(pl.Utf8).str.split(":").list.first().alias("kind"))
        .group_by([*by, "kind"])
        .agg(pl.len().alias("episodes"))
        .sort([*by, "kind"])
        .to_dicts()
    )


def episodes_html(runs: Sequence[RunData]) -> str:
    """Every episode of every run as a collapsed ``<details>`` (its full trace inside), run by run."""
    parts = [
        '<div class="filters"><input id="ep-text" placeholder="filter: text in question, answer, trace" '
        'oninput="filterEpisodes()" size="40"><select id="ep-ok" onchange="filterEpisodes()">'
        '<option value="">all</option><option value="1">correct</option><option value="0">wrong</option>'
        "</select></div>"
    ]
    for run in runs:
        ok = sum(trace_correct(t) for t in run.traces)
        items = "".join(
            f'<details class="episode {"ok" if trace_correct(t) else "bad"}" '
            f'data-correct="{int(trace_correct(t))}" data-iteration="{t.iteration}">'
            f"<summary>{esc(trace_label(t))}</summary>{trace_html(t, open_first=False)}</details>"
            for t in sorted(run.traces, key=lambda t: (t.iteration, t.started_at))
        )
        parts.append(
            f'<details class="run"><summary><b>{esc(run.path.name)}</b> · {len(run.traces)} episodes, '
            f"{ok} correct</summary>{items or '<p class=muted>(no traces.jsonl)</p>'}</details>"
        )
    return "".join(parts)


# ============================================================================ the page
def dashboard_html(data: DashboardData) -> str:
    """The whole page (plotly.js inline once, when there is a figure)."""
    from memento_lab.views.assets import plotly_js

    rep = data.report
    figures, types = _figures(data)
    sections = [
        _section(
            "Accuracy per arm and iteration (mean reward, 95% bootstrap CI over tasks and runs)",
            value_html(rep.get("curves")),
            anchor="overall",
        ),
        _section(
            "Trivial baselines (always the family's most common answer of the other tasks)",
            value_html(rep.get("trivial_baseline")),
            anchor="baselines",
        ),
        *(_section(t, body, anchor=f"fig-{i}") for i, (t, body) in enumerate(figures)),
    ]
    sections += [
        _section(_title(k), value_html(v), anchor=k)
        for k, v in rep.items()
        if "compar" in k and k not in OWN_SECTIONS
    ]
    sections.append(_section("Per family", value_html(rep.get("by_family")), anchor="by-family"))
    rest = {k: v for k, v in rep.items() if k not in OWN_SECTIONS and "compar" not in k}
    if not any("error" in k for k in rest):  # the report has no error counts: count them from the rows
        rest["error_counts"] = error_counts(data.rows)
    sections += [_section(_title(k), value_html(v), anchor=k) for k, v in rest.items()]
    sections.append(_section("Episodes", episodes_html(data.runs), anchor="episodes"))
    head_js = f"<script>{plotly_js(types)}</script>" if types else ""
    sources = "".join(f"<li><code>{esc(s)}</code></li>" for s in data.sources)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(data.title)}</title>'
        f"<style>{STYLE}</style>{head_js}<script>{FILTER_JS}</script></head><body>"
        f"<h1>{esc(data.title)}</h1><p class=muted>{rep.get('runs', 0)} runs, {rep.get('episodes', 0)} "
        f"episodes · written {html.escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p><ul>{sources}</ul>"
        + "".join(sections)
        + "</body></html>"
    )


def write_dashboard(paths: Sequence[str | Path], out: str | Path, *, title: str | None = None) -> Path:
    """Write the page for the runs under ``paths`` to ``out`` (atomically); returns ``out``."""
    from memento_lab.jsonl import atomic_write_bytes

    out = Path(out)
    atomic_write_bytes(out, dashboard_html(load_dashboard(paths, title=title)).encode("utf-8"))
    out.chmod(0o644)
    return out

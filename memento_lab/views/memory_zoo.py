"""The memory zoo viewer: what each method's memory holds after a run, and how it changed episode by
episode (ipywidgets, built by pure functions from a method's op log).

    display(zoo_viewer({"expel": expel, "awm": awm, "similarity": cases}))

One tab per method. Each tab has a slider over the method's versions (0 = empty, one per write):
the items the memory held at that version, grouped by kind (insights with their counts, workflows,
examples, bullets, the cheatsheet, cases ...), and the write that made it: the episode and every op
with the item before and after. The HTML comes from ``items_html`` and ``write_html``, which tests
read without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from memento_lab.experiments.pricing import MemoryPrice
from memento_lab.memory.methods.base import MemoryItem, MemoryMethod, MemoryOp, MemoryWrite
from memento_lab.views.html_parts import esc, html_table
from memento_lab.views.plots import color

DATA_SHOWN = 4  # data fields of an item shown in the table (count, q, helpful, harmful, ...)


def _data(item: MemoryItem) -> str:
    fields = [f"{k}={v}" for k, v in item.data.items() if not isinstance(v, (list, dict))][:DATA_SHOWN]
    return ", ".join(fields)


def items_html(items: Sequence[MemoryItem], *, limit: int = 60) -> str:
    """The items grouped by kind: one table per kind (id, text, data fields, last changed)."""
    if not items:
        return "<i>empty</i>"
    kinds: dict[str, list[MemoryItem]] = {}
    for item in items:
        kinds.setdefault(item.kind, []).append(item)
    parts = []
    for kind, group in kinds.items():
        rows = [
            (i.id, esc(i.text, 400).replace("\n", "<br>"), esc(_data(i)), i.updated) for i in group[:limit]
        ]
        more = f" (first {limit})" if len(group) > limit else ""
        parts.append(
            f"<h4>{esc(kind)}: {len(group)}{more}</h4>"
            + html_table(["id", "text", "data", "changed at"], rows, raw=True)
        )
    return "".join(parts)


def _op_row(op: MemoryOp) -> tuple[str, str, str, str]:
    def side(item: MemoryItem | None) -> str:
        if item is None:
            return "<i>none</i>"
        return esc(item.text, 300).replace("\n", "<br>") + (
            f"<br><small>{esc(_data(item))}</small>" if item.data else ""
        )

    merged = f"<br><small>merged: {esc(', '.join(m.id for m in op.merged))}</small>" if op.merged else ""
    return (esc(op.op), esc(op.id) + merged, side(op.before), side(op.after))


def write_html(write: MemoryWrite | None) -> str:
    """One write: the episode it came from, its maintenance calls and tokens, and its ops."""
    if write is None:
        return "<i>version 0: the memory before any episode</i>"
    usage = write.usage
    head = (
        f"<b>version {write.version}</b> · task {esc(write.task_id)} · iteration {write.iteration} · "
        f"{len(write.calls)} maintenance call(s), {usage.prompt_tokens}+{usage.completion_tokens} tokens · "
        f"{write.seconds:.2f} s"
    )
    if write.reverts is not None:
        head += f" · <b>undoes version {write.reverts}</b>"
    if not write.ops:
        return head + "<br><i>no change</i>"
    rows = [_op_row(op) for op in write.ops if op.op != "state"]
    return head + (
        html_table(["op", "item", "before", "after"], rows, raw=True)
        if rows
        else "<br><i>bookkeeping only</i>"
    )


def method_summary(method: MemoryMethod) -> dict[str, Any]:
    """Version, live items by kind, writes and their ops by kind, maintenance calls and tokens."""
    history = method.history()
    kinds: dict[str, int] = {}
    for item in method.items():
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    ops: dict[str, int] = {}
    for w in history:
        for name, n in w.counts().items():
            ops[name] = ops.get(name, 0) + n
    tokens = sum(w.usage.total_tokens for w in history)
    return {
        "method": method.name,
        "version": method.version,
        "items": kinds,
        "ops": ops,
        "maintenance_calls": sum(len(w.calls) for w in history),
        "maintenance_tokens": tokens,
        "unusable": sum(c.error_kind == "model_output" for w in history for c in w.calls),
    }


def summary_html(summary: Mapping[str, Any]) -> str:
    """One line: the method, its version, what it holds, its ops so far and what maintenance cost."""
    held = ", ".join(f"{n} {k}" for k, n in summary["items"].items()) or "nothing"
    ops = ", ".join(f"{k} {n}" for k, n in summary["ops"].items()) or "none"
    return (
        f"<b>{esc(summary['method'])}</b> · version {summary['version']} · holds {esc(held)} · ops so far: "
        f"{esc(ops)} · {summary['maintenance_calls']} maintenance call(s), "
        f"{summary['maintenance_tokens']} tokens"
        + (f", {summary['unusable']} of them unusable" if summary.get("unusable") else "")
    )


def method_viewer(method: MemoryMethod) -> widgets.VBox:
    """A slider over versions; the items at that version and the write that made it."""
    history = method.history()
    summary = widgets.HTML(summary_html(method_summary(method)))
    slider = widgets.IntSlider(
        value=method.version, min=0, max=method.version, description="version", continuous_update=False
    )
    held = widgets.HTML()
    change = widgets.HTML()
    by_version = {w.version: w for w in history}

    def show(version: int) -> None:
        held.value = items_html(method.at(version).items() if version != method.version else method.items())
        change.value = write_html(by_version.get(version))

    slider.observe(lambda ch: show(int(ch["new"])), names="value")
    show(slider.value)
    changes = widgets.Accordion(
        children=[change, held], titles=("the write that made this version", "what the memory held")
    )
    changes.selected_index = 1
    return widgets.VBox([summary, slider, changes])


def zoo_viewer(methods: Mapping[str, MemoryMethod]) -> widgets.Tab:
    """One tab per method (titled by its name)."""
    tab = widgets.Tab(children=[method_viewer(m) for m in methods.values()])
    tab.titles = tuple(methods)
    return tab


def price_figure(prices: Sequence[MemoryPrice], *, split: str = "stream") -> go.Figure:
    """Accuracy gained over ``none`` (paired, 95% CI) against the extra tokens each arm spends per
    episode: memories as circles, ``none`` with voting as diamonds. Up and left is better."""
    fig = go.Figure()
    points = [p for p in prices if p.split == split and p.vs_none is not None and p.extra_tokens is not None]
    for i, p in enumerate(points):
        d = p.vs_none
        assert d is not None
        fig.add_trace(
            go.Scatter(
                x=[p.extra_tokens],
                y=[d.diff],
                error_y={"type": "data", "array": [d.ci_high - d.diff], "arrayminus": [d.diff - d.ci_low]},
                mode="markers+text",
                text=[p.label],
                textposition="top center",
                marker={"size": 12, "color": color(i), "symbol": "diamond" if p.samples > 1 else "circle"},
                name=p.label,
                hovertemplate=(
                    f"{esc(p.label)}<br>gain %{{y:+.3f}} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]<br>"
                    f"extra tokens %{{x:.0f}} (maintenance {p.maintenance_tokens:.0f}, read {p.read_tokens:.0f})"
                    "<extra></extra>"
                ),
            )
        )
    fig.add_hline(y=0.0, line_dash="dash", line_color="gray")
    fig.update_layout(
        title=f"The price of memory ({split}): accuracy gained over none vs extra tokens per episode",
        xaxis_title="extra tokens per episode beyond none (agent + maintenance)",
        yaxis_title="accuracy - none (paired, 95% CI)",
        showlegend=False,
        template="plotly_white",
    )
    return fig

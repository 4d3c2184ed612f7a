"""Exported notebook pages open offline: headless Chromium with the network off renders the saved
widgets (``lm-Widget`` elements) and the plotly figures (``main-svg``), from scripts inlined once."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from browser import count_elements, rendered_dom, screenshot

from memento_lab.notebook_runner import ROOT, export_html
from memento_lab.views.assets import PLOTLY_BASIC, WIDGET_MANAGER
from memento_lab.views.export import PLOTLY_MIME, inline_figures

CELLS = [
    "import ipywidgets as w\nimport plotly.graph_objects as go\nfrom memento_lab.views import plots\n"
    "plots.use_notebook_renderer()",
    'w.VBox([w.HTML("<b>hello from a widget</b>"),\n'
    '        w.Accordion(children=[w.HTML("inside section A")], titles=("Section A",), selected_index=0)])',
    'go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2], name="curve-one")).show()',
    'go.Figure(go.Bar(x=["a", "b"], y=[2, 1], name="bars-two")).show()',
]


def figure_cell_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_inline_figures_replaces_the_mimetype_and_reports_trace_types() -> None:
    nb = figure_cell_notebook()
    fig = {"data": [{"type": "bar", "x": [1], "y": [2]}, {"y": [1]}], "layout": {}}
    nb.cells[2].outputs = [nbformat.v4.new_output("display_data", data={PLOTLY_MIME: fig, "text/plain": "F"})]
    assert inline_figures(nb) == {"bar", "scatter"}  # a trace without a type is a scatter
    html = nb.cells[2].outputs[0]["data"]["text/html"]
    assert list(nb.cells[2].outputs[0]["data"]) == ["text/html"] and "Plotly.newPlot" in html
    assert "<script src" not in html


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small notebook (one widget tree, two figures) executed with papermill and exported."""
    import papermill

    tmp = tmp_path_factory.mktemp("offline")
    src = tmp / "src.ipynb"
    nbformat.write(figure_cell_notebook(), src)
    out = tmp / "small.ipynb"
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    export_html(out)
    return out


@pytest.mark.slow
def test_exported_page_inlines_each_script_once_and_loads_nothing(executed: Path) -> None:
    nb = nbformat.read(executed, as_version=4)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]  # saved by papermill
    assert "Section A" in str(state["state"])
    assert executed.stat().st_size < 100_000, "the notebook itself carries no plotly.js copy"
    html = executed.with_suffix(".html").read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]+src=\"([^\"]*)\"", html) == ["data:text/javascript,"], (
        "a script from elsewhere"
    )
    assert "cdnjs" not in html and "unpkg" not in html
    assert html.count("Plotly.newPlot") == 2
    # basic bundle (scatter + bar) once, and the widget manager once
    basic = PLOTLY_BASIC.path().read_text(encoding="utf-8")
    assert html.count(basic[:200]) == 1
    manager = WIDGET_MANAGER.path().read_text(encoding="utf-8")
    assert html.count(manager[-200:]) == 1
    assert html.count("url(data:font/woff2;base64,") == 2  # the widgets' icon fonts, after the manager's CSS


@pytest.mark.slow
def test_exported_page_renders_widgets_and_figures_offline(executed: Path, tmp_path: Path) -> None:
    page = executed.with_suffix(".html")
    dom = rendered_dom(page)
    assert count_elements(dom, "lm-Widget") >= 5, "the widget manager rendered no widget views"
    assert count_elements(dom, "widget-html-content") == 2 and count_elements(dom, "widget-accordion") == 1
    assert re.search(r"widget-html-content\">\s*<b>hello from a widget</b>", dom)
    assert count_elements(dom, "main-svg") >= 2 * 2, "plotly drew no figure (two SVG layers each)"
    assert "curve-one" in dom and "bars-two" in dom  # the legends were drawn
    png = screenshot(page, tmp_path / "small-notebook.png")
    print(f"screenshot: {png}")

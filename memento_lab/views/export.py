"""Executed notebooks as HTML pages that open offline, in any browser, with no kernel.

nbconvert's lab page loads require.js, the widget manager and MathJax from CDNs, and plotly's
notebook renderer needs require.js: offline, widgets and figures stay blank. Here every plotly
figure (saved as the ``application/vnd.plotly.v1+json`` mimetype) becomes a ``<div>`` plus a
``Plotly.newPlot`` call, plotly.js is inlined once in the page head (the small basic bundle when the
figures allow it), and the widget manager is inlined when the notebook saved widget state.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def figure_html(fig: Any) -> tuple[str, set[str]]:
    """A figure (``go.Figure`` or its JSON dict) as a ``<div>`` + ``Plotly.newPlot`` call that needs
    plotly.js already on the page, and the trace types it uses (``scatter``, ``bar`` ...)."""
    import plotly.io as pio

    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    types = {t.get("type", "scatter") for t in spec.get("data", [])}
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, validate=False), types


def inline_figures(nb: Any) -> set[str]:
    """Replace each plotly mimetype output of ``nb`` (in place) by its static HTML (``figure_html``);
    returns the trace types used."""
    types: set[str] = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            fig = out.get("data", {}).get(PLOTLY_MIME)
            if fig is None:
                continue
            body, used = figure_html(fig)
            types |= used
            out["data"] = {"text/html": body}
    return types


def notebook_html(nb: Any) -> str:
    """The page of an executed notebook (``nbformat`` node; not modified)."""
    from nbconvert import HTMLExporter

    from memento_lab.views.assets import AssetError, plotly_js, widget_icons_css, widget_manager_js

    nb = copy.deepcopy(nb)
    types = inline_figures(nb)
    resources: dict[str, Any] = {"plotly_js": plotly_js(types) if types else ""}
    if "widgets" in nb.metadata:
        try:
            resources["widget_manager_js"] = widget_manager_js()
            resources["widget_icons_css"] = widget_icons_css()
        except AssetError as e:  # the page still works online (CDN); say why it will not offline
            warnings.warn(f"widgets will need the network to show: {e}", stacklevel=2)
    exporter = HTMLExporter(
        template_name="lab", extra_template_paths=[str(TEMPLATES)], template_file="offline.html.j2"
    )
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body

"""Headless Chromium (Debian's ``chromium``) with the network off: a page's DOM after its scripts ran,
and a screenshot (copied to ``$MEMENTO_TEST_ARTIFACTS`` when set). The real browser renders the real page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # no network: every request goes to a closed proxy, every host name fails to resolve
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium() -> str:
    """The Chromium binary, or skip (``.ci/run`` installs it)."""
    path = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    return path


def _run(page: Path, *mode: str, budget_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                *mode,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )


def rendered_dom(page: Path, *, budget_ms: int = 15000) -> str:
    """The page's DOM after its scripts ran (``--dump-dom`` after ``budget_ms`` of virtual time)."""
    return _run(page, "--dump-dom", budget_ms=budget_ms).stdout


def screenshot(page: Path, png: Path, *, size: str = "1280,1600", budget_ms: int = 15000) -> Path:
    """A PNG of the page's first ``size`` pixels (the folder is made)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, f"--screenshot={png.resolve()}", f"--window-size={size}", budget_ms=budget_ms)
    assert png.exists() and png.stat().st_size > 0, f"no screenshot of {page}"
    if keep := os.environ.get("MEMENTO_TEST_ARTIFACTS"):  # CI: keep screenshots past pytest's tmp rotation
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, Path(keep) / png.name)
    return png


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.classes: list[set[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes.append(set((dict(attrs).get("class") or "").split()))


def count_elements(dom: str, css_class: str) -> int:
    """How many elements of ``dom`` carry ``css_class`` (script and style text does not count)."""
    parser = _Elements()
    parser.feed(dom)
    return sum(css_class in c for c in parser.classes)


@dataclass
class PlotlyFigure:
    """What plotly drew for one figure of a rendered page."""

    title: str
    legend: list[str] = field(default_factory=list)  # legend entries, in order
    annotations: list[str] = field(default_factory=list)  # e.g. subplot titles
    error_bars: int = 0  # drawn error bars (one per point that has one)
    bands: int = 0  # filled areas (CI bands)


class _FigureParts(HTMLParser):
    TEXTS = {"gtitle": "title", "legendtext": "legend", "annotation-text": "annotations"}

    def __init__(self) -> None:
        super().__init__()
        self.figure = PlotlyFigure(title="")
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        self.figure.error_bars += "errorbar" in classes
        self.figure.bands += "js-fill" in classes
        self._capture = next((key for cls, key in self.TEXTS.items() if cls in classes), None)

    def handle_endtag(self, tag: str) -> None:
        self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture == "title":
            self.figure.title += data
        elif self._capture:
            getattr(self.figure, self._capture).append(data)


FIGURE_DIV = re.compile(r'<div [^>]*class="[^"]*\bjs-plotly-plot\b[^"]*"')


def plotly_figures(dom: str) -> list[PlotlyFigure]:
    """Every plotly figure of a rendered DOM (``rendered_dom``), in page order: its title, legend,
    annotations, and how many error bars and filled bands plotly drew."""
    figures = []
    for chunk in FIGURE_DIV.split(dom)[1:]:  # each figure's div up to the next one
        parser = _FigureParts()
        parser.feed(chunk)
        figures.append(parser.figure)
    return figures

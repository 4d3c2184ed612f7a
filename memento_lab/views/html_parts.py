"""The HTML pieces every view builds with: escaped text, preformatted blocks, errors, small tables.
All text from records goes through ``esc``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

ERROR_STYLE = "color:#b00020;font-weight:bold"
TABLE_STYLE = "border-collapse:collapse;font-size:12px"
CELL_STYLE = "border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top"
MAX_TEXT = 2000  # characters of one result / answer shown before clipping


def esc(value: Any, limit: int | None = MAX_TEXT) -> str:
    """``value`` as escaped HTML text (``None`` as an empty string), clipped to ``limit`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"… [{len(text) - limit} more characters]"
    return html.escape(text)


def pre(value: Any, limit: int | None = MAX_TEXT) -> str:
    """Escaped text in a wrapping ``<pre>`` block (tool results, JSON arguments)."""
    return f'<pre style="white-space:pre-wrap;margin:0">{esc(value, limit)}</pre>'


def error_html(error: str | None) -> str:
    """An error in red, or nothing."""
    return f'<span style="{ERROR_STYLE}">error: {esc(error)}</span>' if error else ""


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    """A small HTML table; cells are escaped unless ``raw`` (then they must already be HTML)."""
    head = "".join(f'<th style="{CELL_STYLE}">{esc(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{CELL_STYLE}">{c if raw else esc(c)}</td>' for c in row) + "</tr>"
        for row in rows
    )
    return f'<table style="{TABLE_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def num(x: float | None, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def short(text: str | None, n: int = 100) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"

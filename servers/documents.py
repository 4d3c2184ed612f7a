"""MCP server ``documents``: read text, Markdown, HTML, PDF, CSV and Excel files from the workspace.

    python -m servers.documents     # stdio; files are resolved inside MEMENTO_WORKSPACE

Paths are relative to the workspace; a path that resolves outside it (``..``, absolute paths,
symlinks out) is refused, and so is a file larger than ``MEMENTO_DOC_MAX_BYTES`` (default 20 MB).
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from servers import episode_workspace, make_server, workspace

TEXT = {".txt", ".md", ".markdown", ".rst", ".json", ".jsonl", ".py", ".log", ".yaml", ".yml", ".toml"}
HTML = {".html", ".htm"}
TABLES = {".csv", ".tsv", ".xlsx", ".xls", ".ods"}
SUPPORTED = TEXT | HTML | TABLES | {".pdf"}


def max_bytes() -> int:
    return int(os.environ.get("MEMENTO_DOC_MAX_BYTES", str(20 * 2**20)))


def resolve(path: str, root: Path | None = None) -> Path:
    """``path`` inside the workspace, or ToolError naming the problem."""
    root = root or workspace()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise ToolError(f"{path!r} is outside the workspace; give a path relative to it (see list_files)")
    if not target.exists():
        raise ToolError(f"{path!r}: no such file in the workspace (see list_files)")
    if not target.is_file():
        raise ToolError(f"{path!r} is not a file")
    return target


class _TextOfHTML(HTMLParser):
    """Visible text of an HTML page: drops script/style, keeps block breaks."""

    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template") and self.skip:
            self.skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHTML()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def pdf_to_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    pages = [f"[page {i}]\n{(page.extract_text() or '').strip()}" for i, page in enumerate(reader.pages, 1)]
    return "\n\n".join(pages)


def table_to_text(path: Path, max_rows: int = 200) -> str:
    import polars as pl

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        df = pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=1000)
        sheets = {path.name: df}
    else:
        sheets = pl.read_excel(path, sheet_id=0)  # every sheet: {name: DataFrame}
    out = []
    with pl.Config(tbl_rows=max_rows, tbl_cols=50, fmt_str_lengths=80, tbl_width_chars=200):
        for name, df in sheets.items():
            out.append(f"[{name}: {df.height} rows x {df.width} columns]\n{df.head(max_rows)}")
    return "\n\n".join(out)


def read_text(path: Path) -> str:
    """The text of one file, by its suffix."""
    suffix = path.suffix.lower()
    if suffix in HTML:
        return html_to_text(path.read_text(encoding="utf-8", errors="replace"))
    if suffix == ".pdf":
        return pdf_to_text(path)
    if suffix in TABLES:
        return table_to_text(path)
    return path.read_text(encoding="utf-8", errors="replace")


mcp = make_server("documents", "Read files from the task's workspace.")


@mcp.tool(
    description=(
        "Read a document from the workspace and return its text. Supports text/Markdown, HTML (tags "
        "stripped), PDF, CSV/TSV and Excel (shown as tables). `path` is relative to the workspace."
    )
)
def read_document(path: str, ctx: Context, max_chars: int = 20000) -> str:
    target = resolve(path, episode_workspace(ctx))
    size = target.stat().st_size
    if size > max_bytes():
        raise ToolError(f"{path!r} is {size} bytes, over the limit of {max_bytes()} bytes")
    if target.suffix.lower() not in SUPPORTED:
        raise ToolError(
            f"{path!r}: unsupported file type {target.suffix!r}; supported: {', '.join(sorted(SUPPORTED))}"
        )
    try:
        text = read_text(target)
    except Exception as e:  # a corrupt file is the model's problem to hear about, not a crash
        raise ToolError(f"{path!r}: could not read {target.suffix} file: {type(e).__name__}: {e}") from e
    if max_chars > 0 and len(text) > max_chars:
        text = text[:max_chars] + f"\n... [truncated: {len(text) - max_chars} more characters]"
    return text


@mcp.tool(description="List the files in the workspace (relative paths and sizes).")
def list_files(ctx: Context) -> str:
    root = episode_workspace(ctx)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        return "The workspace is empty."
    return "\n".join(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size} bytes" for p in files[:500])


if __name__ == "__main__":
    mcp.run()

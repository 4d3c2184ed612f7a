"""The MCP tool servers, talked to for real: in-process ``Client(server)`` for their logic.

(Stdio round trips through ``ToolBox`` live in tests/agent/tools/test_tools.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import Loopback, searxng_reply
from mcp import Client
from support import ROOT, call

from memento_lab.sandbox.isolation import bwrap_available, bwrap_origin, bwrap_path
from servers import search


@pytest.fixture
def fake_searxng() -> Iterator[Loopback]:
    server = Loopback(searxng_reply)
    yield server
    server.close()


# -------------------------------------------------------------------------------------------- code
@pytest.mark.anyio
async def test_code_runs_python_and_keeps_files_in_the_workspace(workspace):
    from servers.code import mcp

    err, text = await call(mcp, "run_python", code="open('data.txt', 'w').write('7')\nprint(6 * 7)")
    assert not err
    assert "exit code 0" in text and "42" in text
    assert (workspace / "data.txt").read_text() == "7"
    err, text = await call(mcp, "run_python", code="print(int(open('data.txt').read()) + 1)")
    assert not err and "8" in text


@pytest.mark.anyio
async def test_code_failures_are_tool_errors_with_output(workspace, monkeypatch):
    from servers.code import mcp

    err, text = await call(mcp, "run_python", code="print('before')\nraise ValueError('boom')")
    assert err
    assert "exit code 1" in text and "before" in text and "ValueError: boom" in text
    monkeypatch.setenv("MEMENTO_CODE_TIMEOUT", "1")
    err, text = await call(mcp, "run_python", code="while True:\n    pass")
    assert err and "timed out after 1 s" in text


@pytest.mark.anyio
@pytest.mark.parametrize("forced", [None, "rlimits"])
async def test_code_tool_description_states_the_isolation(workspace, monkeypatch, forced):
    """With bwrap (system or packaged: which one is named) and with the fallback forced by the switch."""
    import importlib

    import servers.code

    if forced:
        monkeypatch.setenv("MEMENTO_SANDBOX", forced)
    else:
        monkeypatch.delenv("MEMENTO_SANDBOX", raising=False)
    code = importlib.reload(servers.code)  # the description is fixed when the server is built
    try:
        async with Client(code.mcp) as client:
            (tool,) = (await client.list_tools()).tools
            err, text = await call(code.mcp, "run_python", code="import os\nprint(os.getuid())")
    finally:
        monkeypatch.undo()
        importlib.reload(servers.code)
    description = tool.description or ""
    assert tool.name == "run_python" and not err
    if forced is None and bwrap_available():
        assert f"Runs in a bubblewrap sandbox ({bwrap_origin()})" in description
        assert bwrap_path() in description and "unprivileged user" in description
    else:
        assert (
            "WARNING: bubblewrap isolation is NOT in use" in description
            and "unset MEMENTO_SANDBOX" in description
        )
        assert "resource limits ONLY" in description or forced is None
        assert text.splitlines()[-1] == str(os.geteuid())  # it really ran without the sandbox's uid


# ------------------------------------------------------------------------------------------ search
@pytest.fixture(scope="module")
def wiki_index(tmp_path_factory) -> Path:
    """The default corpus indexed into a temp cache (as the server does on first use)."""
    return search.build_index(search.wikipedia_docs(), tmp_path_factory.mktemp("search") / "wiki")


@pytest.fixture
def use_index(monkeypatch):
    def use(path: Path) -> None:
        monkeypatch.setenv("MEMENTO_SEARCH_INDEX", str(path))
        monkeypatch.delenv("SEARXNG_URL", raising=False)
        search.load_index.cache_clear()

    yield use
    search.load_index.cache_clear()


def test_wikipedia_corpus_is_the_packaged_summaries():
    docs = search.wikipedia_docs()
    assert len(docs) > 10_000
    by_title = {d.title: d for d in docs}
    assert "Gustave Eiffel" in by_title["Eiffel Tower"].text
    assert by_title["Eiffel Tower"].url == "https://en.wikipedia.org/wiki/Eiffel_Tower"
    assert len({d.id for d in docs}) == len(docs)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("process by which plants convert light energy into chemical energy", "Photosynthesis"),
        ("wrought-iron lattice tower on the Champ de Mars in Paris", "Eiffel Tower"),
        ("who painted the Mona Lisa", "Mona Lisa"),
    ],
)
async def test_offline_search_finds_the_wikipedia_summary_in_the_top_3(
    wiki_index, use_index, query, expected
):
    use_index(wiki_index)
    err, text = await call(search.mcp, "search", query=query, k=3)
    assert not err
    ids = [line.split("]")[0].split("[")[1] for line in text.splitlines() if line[:1].isdigit()]
    assert len(ids) == 3
    assert expected.replace(" ", "_") in ids


@pytest.mark.anyio
async def test_fetch_returns_the_full_summary_with_attribution(wiki_index, use_index):
    use_index(wiki_index)
    err, text = await call(search.mcp, "fetch", doc_id="Eiffel_Tower")
    assert not err
    assert text.startswith("Eiffel Tower\n") and "Gustave Eiffel" in text
    assert "CC BY-SA" in text and "https://en.wikipedia.org/wiki/Eiffel_Tower" in text
    err, text = await call(search.mcp, "fetch", doc_id="No_Such_Article_xyz")
    assert err and "No_Such_Article_xyz" in text


@pytest.mark.anyio
async def test_search_rejects_bad_input(wiki_index, use_index):
    use_index(wiki_index)
    err, text = await call(search.mcp, "search", query="   ")
    assert err and "empty" in text
    err, text = await call(search.mcp, "search", query="tower", k=500)
    assert err and "k must be" in text
    err, text = await call(search.mcp, "search", query="the of and")  # stopwords only
    assert not err and text.startswith("No results")


def test_custom_index_from_a_folder_via_the_cli(tmp_path, use_index):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "alpha.md").write_text("# Alpha protocol\nThe alpha protocol uses quantum tunnelling relays.\n")
    (docs / "sub" / "beta.txt").write_text("Beta notes\nBeta covers sourdough bread fermentation times.\n")
    (docs / "ignored.bin").write_bytes(b"\0\1")
    out = tmp_path / "index"
    proc = subprocess.run(
        [sys.executable, "-m", "servers.search", "--build-index", str(docs), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "indexed 2 documents" in proc.stdout
    use_index(out)
    assert "[sub/beta.txt] Beta notes" in search.search_tool("sourdough fermentation", k=1)
    assert "quantum tunnelling" in search.fetch_tool("alpha.md")


def test_build_index_rejects_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        search.build_index(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .txt"):
        search.build_index(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="not unique"):
        search.build_index(
            [{"id": "a", "title": "A", "text": "x"}, {"id": "a", "title": "B", "text": "y"}], tmp_path / "o"
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.anyio
async def test_missing_custom_index_is_a_tool_error(tmp_path, use_index):
    use_index(tmp_path / "nowhere")
    err, text = await call(search.mcp, "search", query="tower")
    assert err and "index is unavailable" in text and "nowhere" in text


@pytest.mark.anyio
async def test_searxng_backend_queries_the_json_api(fake_searxng, monkeypatch):
    monkeypatch.setenv("SEARXNG_URL", fake_searxng.url)
    err, text = await call(search.mcp, "search", query="ada lovelace", k=1)
    assert not err
    assert "[https://example.org/ada] Ada Lovelace" in text and "Babbage" not in text  # k honoured
    assert fake_searxng.requests == ["/search?q=ada+lovelace&format=json"]


@pytest.mark.anyio
async def test_searxng_failure_is_a_tool_error(monkeypatch):
    server = Loopback(lambda path: (500, "text/plain", "internal error"))
    try:
        monkeypatch.setenv("SEARXNG_URL", server.url)
        err, text = await call(search.mcp, "search", query="x")
    finally:
        server.close()
    assert err and "SearxNG" in text and "500" in text


# --------------------------------------------------------------------------------------- documents
def write_pdf(path: Path, lines: list[str]) -> None:
    """A minimal one-page PDF with Helvetica text (offsets computed, so any reader accepts it)."""
    text = "BT /F1 14 Tf 72 720 Td " + " ".join(f"({ln}) Tj 0 -20 Td" for ln in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text)} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def write_xlsx(path: Path, rows: list[list[Any]]) -> None:
    """A minimal .xlsx (one sheet, inline strings) written with zipfile: no Excel writer needed."""

    def cell(r: int, c: int, v: Any) -> str:
        ref = f"{chr(65 + c)}{r + 1}"
        if isinstance(v, int | float):
            return f'<c r="{ref}"><v>{v}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{v}</t></is></c>'

    sheet_rows = "".join(
        f'<row r="{r + 1}">' + "".join(cell(r, c, v) for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows)
    )
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    files = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>",
        "_rels/.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook {ns} xmlns:r="{rel}"><sheets>'
        '<sheet name="Scores" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0"?><worksheet {ns}><sheetData>{sheet_rows}</sheetData></worksheet>',
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)


@pytest.mark.anyio
async def test_documents_reads_every_supported_format(workspace):
    from servers.documents import mcp

    (workspace / "notes.md").write_text("# Title\nSome *markdown* text.\n")
    (workspace / "page.html").write_text(
        "<html><head><style>p {color: red}</style><script>alert('x')</script></head>"
        "<body><h1>Heading</h1><p>Caf&eacute; &amp; <b>bold</b> text.</p></body></html>"
    )
    (workspace / "data.csv").write_text("city,population\nOslo,709000\nBergen,291000\n")
    write_pdf(workspace / "report.pdf", ["Quarterly report", "Revenue grew 12 percent"])
    write_xlsx(workspace / "scores.xlsx", [["name", "score"], ["ada", 91], ["alan", 88]])

    err, text = await call(mcp, "read_document", path="notes.md")
    assert not err and text == "# Title\nSome *markdown* text.\n"
    err, text = await call(mcp, "read_document", path="page.html")
    assert not err and text == "Heading\nCafé & bold text."  # tags, script and style stripped
    err, text = await call(mcp, "read_document", path="data.csv")
    assert not err and "2 rows x 2 columns" in text and "Bergen" in text and "709000" in text
    err, text = await call(mcp, "read_document", path="report.pdf")
    assert not err and "Quarterly report" in text and "Revenue grew 12 percent" in text and "[page 1]" in text
    err, text = await call(mcp, "read_document", path="scores.xlsx")
    assert not err and "[Scores: 2 rows x 2 columns]" in text and "alan" in text and "91" in text
    err, text = await call(mcp, "list_files")
    assert not err
    assert [line.split("\t")[0] for line in text.splitlines()] == [
        "data.csv",
        "notes.md",
        "page.html",
        "report.pdf",
        "scores.xlsx",
    ]


@pytest.mark.anyio
async def test_documents_refuses_paths_outside_the_workspace(workspace, tmp_path):
    from servers.documents import mcp

    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (workspace / "link.txt").symlink_to(secret)
    for path in ["../secret.txt", str(secret), "link.txt", "/etc/passwd"]:
        err, text = await call(mcp, "read_document", path=path)
        assert err and "outside the workspace" in text, path
        assert "top secret" not in text
    err, text = await call(mcp, "read_document", path="missing.txt")
    assert err and "no such file" in text


@pytest.mark.anyio
async def test_documents_limits_size_and_reports_bad_files(workspace, monkeypatch):
    from servers.documents import mcp

    (workspace / "big.txt").write_text("x" * 5000)
    err, text = await call(mcp, "read_document", path="big.txt", max_chars=100)
    assert not err and text.startswith("x" * 100) and "truncated: 4900 more characters" in text
    monkeypatch.setenv("MEMENTO_DOC_MAX_BYTES", "1000")
    err, text = await call(mcp, "read_document", path="big.txt")
    assert err and "5000 bytes" in text and "1000" in text
    (workspace / "broken.pdf").write_bytes(b"not a pdf at all")
    err, text = await call(mcp, "read_document", path="broken.pdf")
    assert err and "broken.pdf" in text and "could not read" in text
    (workspace / "image.png").write_bytes(b"\x89PNG")
    err, text = await call(mcp, "read_document", path="image.png")
    assert err and "unsupported file type '.png'" in text


# -------------------------------------------------------------------------------------------- math
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2^100", "1267650600228229401496703205376"),
        ("(3/7 + 1/3) * 21", "16"),
        ("1/3 + 1/6", "1/2 ≈ 0.500000000000000"),
        ("sqrt(50)", "5*sqrt(2) ≈ 7.07106781186548"),
        ("factorial(20) / 2", "1216451004088320000"),
        ("gcd(84, 36)", "12"),
        ("2x + 3x", "5*x"),
        ("integrate(x^2, x)", "x**3/3"),
    ],
)
async def test_calculate_is_exact(expression, expected):
    from servers.math_server import mcp

    err, text = await call(mcp, "calculate", expression=expression)
    assert not err and text == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('touch /tmp/pwned')", "'__' is not allowed"),
        ("x.__class__", "not allowed"),
        ("Integer(1).evalf", "'.' is only allowed in decimal numbers"),
        ("(1 + 2", "unbalanced brackets"),
        ("1/0", "undefined"),
        ("9^9^9^9", "too large"),
        ("factorial(10^7)", "too large"),
        ("", "empty expression"),
        ("lambda: 1", "'lambda' is not allowed"),
    ],
)
async def test_calculate_rejects_bad_or_dangerous_input(expression, problem):
    from servers.math_server import mcp

    err, text = await call(mcp, "calculate", expression=expression)
    assert err and problem in text
    assert not Path("/tmp/pwned").exists()


@pytest.mark.anyio
async def test_solve_and_simplify():
    from servers.math_server import mcp

    assert await call(mcp, "solve", equation="x^2 - 5x + 6 = 0") == (False, "x = 2\nx = 3")
    assert await call(mcp, "solve", equation="2y + 3 = 11", variable="y") == (False, "y = 4")
    assert await call(mcp, "solve", equation="x + y = 10, x - y = 2", variable="x, y") == (
        False,
        "x = 6, y = 4",
    )
    assert await call(mcp, "solve", equation="x^2 + 1 = 0, x = 3") == (False, "No solution for x.")
    err, text = await call(mcp, "solve", equation="y = 2")
    assert err and "variable x does not appear" in text
    err, text = await call(mcp, "solve", equation="x = 1", variable="x; import os")
    assert err and "variable must be a name" in text
    assert await call(mcp, "simplify", expression="(x^2 - 1)/(x - 1)") == (False, "x + 1")


# --------------------------------------------------------------------------------------------- web
@pytest.mark.anyio
async def test_web_is_disabled_offline(monkeypatch):
    from servers.web import mcp

    page = Loopback(lambda path: (200, "text/plain", "hello"))
    try:
        monkeypatch.delenv("MEMENTO_ALLOW_NETWORK", raising=False)
        err, text = await call(mcp, "fetch_url", url=page.url + "/x")
    finally:
        page.close()
    assert err and text.endswith("network access is disabled (set MEMENTO_ALLOW_NETWORK=1)")
    assert page.requests == []  # nothing left the process


@pytest.mark.anyio
async def test_web_fetches_and_strips_html_when_allowed(monkeypatch):
    from servers.web import mcp

    pages = {
        "/page": (
            200,
            "text/html; charset=utf-8",
            "<html><body><h1>Hi</h1><script>x()</script><p>Body text</p></body></html>",
        ),
        "/plain": (200, "text/plain", "just text " * 10),
    }
    site = Loopback(lambda path: pages.get(path, (404, "text/plain", "nope")))
    try:
        monkeypatch.setenv("MEMENTO_ALLOW_NETWORK", "1")
        monkeypatch.setenv("MEMENTO_WEB_ALLOW_HOSTS", "127.0.0.1")
        assert await call(mcp, "fetch_url", url=site.url + "/page") == (False, "Hi\nBody text")
        err, text = await call(mcp, "fetch_url", url=site.url + "/plain", max_chars=20)
        assert not err and text.startswith("just text just text ") and "truncated" in text
        err, text = await call(mcp, "fetch_url", url=site.url + "/missing")
        assert err and "HTTP 404" in text
        err, text = await call(mcp, "fetch_url", url="file:///etc/passwd")
        assert err and "only http(s)" in text
    finally:
        site.close()
    assert site.requests == ["/page", "/plain", "/missing"]

"""What sandboxed code can see (memento_lab.sandbox.fs) and the per-episode workspaces (memento_lab.workspace).

Each denial is proven from inside the bwrap sandbox; targets live outside /tmp (in /var/tmp) so the
private /tmp alone cannot be what hides them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion
from mcp import Client

from memento_lab.sandbox import isolation as sandbox
from memento_lab.sandbox.isolation import bwrap_available, run_python
from memento_lab.workspace import META_KEY, current_episode, episode_dir, episode_workspace

ROOT = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(
    not bwrap_available(), reason="bubblewrap (bwrap) is not installed or cannot create namespaces here"
)
PROBE = (
    "import sys\n"
    "for p in sys.argv[1:] or {targets!r}:\n"
    "    try:\n"
    "        open(p).read()\n"
    "        print('READ', p)\n"
    "    except OSError as e:\n"
    "        print('DENIED', p, type(e).__name__)\n"
)


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder on the host outside /tmp (the private /tmp would hide anything under /tmp anyway)."""
    d = Path(tempfile.mkdtemp(prefix="memento-test-", dir="/var/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def probe(targets: list[Path], workspace: Path) -> dict[str, str]:
    """{path: 'READ' | 'DENIED <error>'} as seen by code in the sandbox."""
    r = run_python(PROBE.format(targets=[str(t) for t in targets]), workspace=workspace)
    assert r.ok and r.isolation == "bwrap", r.stderr
    seen = {}
    for line in r.stdout.splitlines():
        verdict, path, *rest = line.split(" ")
        seen[path] = " ".join([verdict, *rest])
    return seen


@needs_bwrap
def test_secrets_and_other_homes_are_not_there(tmp_path):
    assert Path("/etc/shadow").exists()
    seen = probe([Path("/etc/shadow"), Path("/etc/passwd")], tmp_path)
    assert seen["/etc/shadow"] == "DENIED FileNotFoundError"
    assert seen["/etc/passwd"] == "DENIED FileNotFoundError"
    r = run_python(
        "import os\nprint(sorted(os.listdir('/')))\nprint(os.path.exists('/root/.bashrc'), "
        f"os.path.exists('/home'), os.path.exists({str(ROOT / 'pyproject.toml')!r}))",
        workspace=tmp_path,
    )
    listing, exists = r.stdout.splitlines()
    assert "'home'" not in listing and "'var'" not in listing and "'mnt'" not in listing
    assert exists == "False False False"  # no /root, no /home, no checkout


@needs_bwrap
def test_a_file_beside_the_workspace_is_not_there(outside_tmp):
    ws = outside_tmp / "ws"
    ws.mkdir()
    (ws / "mine.txt").write_text("mine")
    (outside_tmp / "secret.txt").write_text("expected answer")
    seen = probe([ws / "mine.txt", outside_tmp / "secret.txt"], ws)
    assert seen[str(ws / "mine.txt")] == "READ"
    assert seen[str(outside_tmp / "secret.txt")] == "DENIED FileNotFoundError"


@needs_bwrap
def test_root_of_the_sandbox_is_read_only(tmp_path):
    r = run_python("open('/etc/x', 'w')", workspace=tmp_path)
    assert not r.ok and "Read-only file system" in r.stderr


@needs_bwrap
def test_libraries_and_certificates_still_work(tmp_path):
    code = "import ssl, numpy, json, sqlite3\nprint(numpy.arange(4).sum(), bool(ssl.create_default_context().cert_store_stats()['x509_ca']))"
    r = run_python(code, workspace=tmp_path)
    assert r.ok, r.stderr
    assert r.stdout.split() == ["6", "True"]


def test_fallbacks_say_what_they_cannot_hide(monkeypatch):
    from servers.code import isolation_note

    monkeypatch.setattr(sandbox, "bwrap_available", lambda: False)
    monkeypatch.setattr(sandbox, "unshare_available", lambda: True)
    monkeypatch.delenv("MEMENTO_SANDBOX", raising=False)
    note = isolation_note()
    assert note.startswith("WARNING") and "NO filesystem isolation" in note
    assert "/etc/shadow" in note and "run folder" in note
    monkeypatch.setattr(sandbox, "unshare_available", lambda: False)
    note = isolation_note()
    assert "resource limits ONLY" in note and "network" in note and "/etc/shadow" in note


# ----------------------------------------------------------------------------- a venv under /tmp
@pytest.fixture(scope="module")
def tmp_venv(tmp_path_factory) -> Path:
    """A virtualenv under /tmp whose interpreter sees this checkout and the project's packages."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    assert str(venv).startswith(tempfile.gettempdir())
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    packages = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "mcp").is_dir())
    (site / "memento.pth").write_text(f"{ROOT}\n{packages}\n")
    return venv


@needs_bwrap
def test_code_tool_runs_from_a_virtualenv_under_tmp(tmp_venv):
    """The issue's "Done when": the CLI prints 42 with the interpreter under /tmp and bwrap present."""
    python = tmp_venv / "bin" / "python"
    out = subprocess.run(
        [
            str(python),
            "-m",
            "memento_lab.cli",
            "tools",
            "call",
            "code",
            "run_python",
            '{"code": "print(6*7)"}',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MEMENTO_SANDBOX": "bwrap"},
    )
    assert out.returncode == 0, out.stderr
    assert "42" in out.stdout.splitlines()[-1], out.stdout


# ---------------------------------------------------------------------------- episode workspaces
def test_episode_workspace_copies_files_and_is_removed(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    root = tmp_path / "root"
    root.mkdir()
    with episode_workspace(root, [data]) as folder:
        assert current_episode() == folder.name and folder.parent == root
        assert (folder / "data.csv").read_text() == "a,b\n1,2\n"
        assert episode_dir(root, folder.name) == folder
    assert not folder.exists() and current_episode() is None
    with pytest.raises(FileNotFoundError, match="nope.txt"), episode_workspace(root, [tmp_path / "nope.txt"]):
        pass
    for bad in ("../x", "ep-" + "0" * 32):  # a path out, and a name that was never made
        with pytest.raises(ValueError):
            episode_dir(root, bad)


@pytest.mark.anyio
async def test_server_refuses_a_workspace_name_that_escapes(tmp_path, monkeypatch):
    import servers
    from servers.documents import mcp

    monkeypatch.setenv("MEMENTO_WORKSPACE", str(tmp_path))
    servers.workspace.cache_clear()
    try:
        async with Client(mcp) as client:
            r = await client.call_tool("list_files", {}, meta={META_KEY: "../../etc"})
    finally:
        servers.workspace.cache_clear()
    assert r.is_error and "not an episode workspace name" in r.content[0].text


@needs_bwrap
@pytest.mark.anyio
async def test_episodes_get_fresh_folders_outside_the_run_folder(outside_tmp):
    """Through the session a run opens: the run folder's results are out of reach, and nothing one
    episode wrote is seen by the next."""
    from memento_lab.agent.session import open_session
    from memento_lab.config import Settings

    run = outside_tmp / "run"
    run.mkdir()
    (run / "results.jsonl").write_text('{"expected": "the canonical solution"}\n')
    data = outside_tmp / "input.txt"
    data.write_text("input file")
    with FakeOpenAI(lambda req: (200, completion("unused"), {})) as fake:  # the models are not asked
        settings = Settings(
            openai_base_url=fake.base_url,
            openai_api_key="test",
            planner_model="m",
            executor_model="m",
            judge_model="m",
            cache_dir=outside_tmp / "cache",
            allow_network=False,
            searxng_url=None,
        )
        async with open_session(run, tools=["code", "documents"], settings=settings) as session:
            tb = session.tools
            assert tb is not None
            assert run not in tb.workspace.parents and not (run / "workspace").exists()
            with tb.episode([data]) as first:
                assert first.parent == tb.workspace
                probe_run = PROBE.format(targets=[str(run / "results.jsonl")])
                call = await tb.call("run_python", {"code": probe_run})
                assert (
                    call.error is None and f"DENIED {run / 'results.jsonl'} FileNotFoundError" in call.result
                )
                call = await tb.call(
                    "run_python", {"code": "print(open('input.txt').read())\nopen('left', 'w')"}
                )
                assert call.error is None and "input file" in call.result
                assert "input.txt" in (await tb.call("list_files")).result
            assert not first.exists()
            with tb.episode() as second:
                listing = json.dumps((await tb.call("list_files")).result)
                call = await tb.call("run_python", {"code": "import os\nprint(sorted(os.listdir('.')))"})
            assert second != first and "input.txt" not in listing and call.result.endswith("[]")

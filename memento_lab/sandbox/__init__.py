"""Untrusted Python run in a real sandbox: bubblewrap namespaces, an unprivileged uid, limits, a timeout.

- ``isolation``: ``run_python``, ``sandboxed``, which isolation this machine gives and what it cannot hide
- ``run``: one sandboxed process (``SandboxLimits``, ``SandboxResult``)
- ``fs``: what the code sees of the filesystem (bwrap's mounts)
- ``launch``: the tiny launcher that sets the limits and ``exec``\\ s bwrap (run by path)
- ``cgroups``, ``workspace``: pids/memory cgroups; the disk quota of the writable workspace

This package had the path of the old ``sandbox`` module: its names still import from here.
"""

from memento_lab.exports import lazy

_ISOLATION = "memento_lab.sandbox.isolation"
_EXPORTS = {
    "run_python": _ISOLATION,
    "sandboxed": _ISOLATION,
    "describe_isolation": _ISOLATION,
    "describe_signal": _ISOLATION,
    "bwrap_available": _ISOLATION,
    "isolation_limits": _ISOLATION,
    "SandboxLimits": "memento_lab.sandbox.run",
    "SandboxResult": "memento_lab.sandbox.run",
    "SANDBOX_ID": "memento_lab.sandbox.fs",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS, rest=_ISOLATION)

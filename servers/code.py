"""MCP server ``code``: run Python in the sandbox of ``memento_lab.sandbox.isolation``.

    python -m servers.code          # stdio; workspace from MEMENTO_WORKSPACE (else a temp dir)

Env: ``MEMENTO_WORKSPACE`` (root of the episode workspaces; a call works in the folder its ``_meta``
names, the only folder of the host the sandbox mounts writable),
``MEMENTO_CODE_TIMEOUT`` (seconds, default 10), ``MEMENTO_SANDBOX`` (auto | bwrap | unshare | rlimits).
A failing run (exception, non-zero exit, timeout) is a ``ToolError`` carrying the captured output.
"""

from __future__ import annotations

import logging
import os

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from memento_lab.sandbox.isolation import (
    SandboxResult,
    bwrap_origin,
    describe_signal,
    isolation_limits,
    resolve_isolation,
    run_python,
)
from servers import episode_workspace, make_server

log = logging.getLogger(__name__)


def isolation_note() -> str:
    """The tool description's sentence on isolation; a fallback says what it cannot hide."""
    mode = resolve_isolation()
    if mode == "bwrap":
        return (
            f"Runs in a bubblewrap sandbox ({bwrap_origin()}): {isolation_limits(mode)}; read-only except "
            "the working directory, no network, resource limits, a disk quota and a wall-clock timeout."
        )
    return "WARNING: " + isolation_limits(mode) + "."


def format_result(result: SandboxResult) -> str:
    """Combined text the model sees: status line, stdout, stderr (empty parts left out)."""
    parts = [f"[{describe_signal(result.exit_code)}, {result.duration_s:.2f} s]"]
    if result.stdout:
        parts.append("--- stdout ---\n" + result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("--- stderr ---\n" + result.stderr.rstrip("\n"))
    if not result.stdout and not result.stderr:
        parts.append("(no output; use print() to show values)")
    return "\n".join(parts)


mcp = make_server("code", "Execute Python code. " + isolation_note())


@mcp.tool(
    name="run_python",
    description=(
        "Execute a Python 3.11 program and return its stdout and stderr. Print every value you need. "
        "Files persist in the working directory between calls. numpy, sympy and polars are importable. "
        + isolation_note()
    ),
)
def run_python_code(code: str, ctx: Context) -> str:
    timeout = float(os.environ.get("MEMENTO_CODE_TIMEOUT", "10"))
    result = run_python(code, workspace=episode_workspace(ctx), timeout_s=timeout)
    text = format_result(result)
    if result.timed_out:
        raise ToolError(f"Python timed out after {timeout:g} s (infinite loop?).\n{text}")
    if result.exit_code != 0:
        raise ToolError(f"Python failed ({describe_signal(result.exit_code)}).\n{text}")
    return text


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    mcp.run()

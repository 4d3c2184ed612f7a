"""MCP server ``bfcl``: the stateful tools of one BFCL multi-turn task (bfcl-eval's own classes).

    MEMENTO_BFCL_TASK=multi_turn_base_0 python -m servers.bfcl

On start it instantiates the task's classes (GorillaFileSystem, MathAPI, TwitterAPI, ...) with the
task's initial configuration and serves their public methods as tools, described by BFCL's own
function docs (the task's excluded functions left out). State lives as long as the process: one
process per episode. Results are what BFCL's executor shows a model (a dict as JSON, else str);
an exception inside a method is a ``ToolError`` with its message.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from memento_lab import bfcl_data
from servers import make_server


def _as_text(result: Any) -> str:
    """The result as bfcl-eval's executor renders it for a model."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def _tool(method: Callable[..., Any]) -> Callable[..., str]:
    @functools.wraps(method)  # keeps the signature: MCP validates the arguments against it
    def call(*args: Any, **kwargs: Any) -> str:
        try:
            return _as_text(method(*args, **kwargs))
        except Exception as e:
            raise ToolError(f"{type(e).__name__}: {e}") from e

    return call


def build(task_id: str) -> tuple[MCPServer, dict[str, Any]]:
    """The server for one task and its live instances (class name -> instance)."""
    task = bfcl_data.entry(task_id)
    instances = bfcl_data.instantiate(task)
    mcp = make_server("bfcl", f"Tools of BFCL task {task_id} (bfcl-eval {bfcl_data.bfcl_version()}).")
    for cls, doc in bfcl_data.available_functions(task):
        method = getattr(instances[cls], doc["name"])
        mcp.add_tool(_tool(method), name=doc["name"], description=doc["description"], structured_output=False)
        # list BFCL's documented schema (with parameter descriptions), not only the signature's
        listed = mcp._tool_manager.get_tool(doc["name"])
        if listed is not None:
            listed.parameters = bfcl_data.json_schema(doc["parameters"])
    return mcp, instances


def main() -> None:
    task_id = os.environ.get("MEMENTO_BFCL_TASK")
    if not task_id:
        raise SystemExit("servers.bfcl needs MEMENTO_BFCL_TASK (a BFCL task id such as multi_turn_base_0)")
    build(task_id)[0].run()


if __name__ == "__main__":
    main()

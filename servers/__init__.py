"""MCP tool servers for the executor, each runnable as ``python -m servers.<module>`` over stdio.

    code         servers.code         run Python in a bubblewrap sandbox (memento_lab.sandbox.isolation)
    search       servers.search       BM25 over Wikipedia summaries offline, SearxNG when configured
    documents    servers.documents    read txt/md/html/pdf/csv/xlsx from the workspace
    math         servers.math_server  exact arithmetic and algebra (sympy)
    web          servers.web          fetch a URL, crawl a site for a query (only with MEMENTO_ALLOW_NETWORK=1)
    media        servers.media        OCR, image questions, transcription, video narration (offline models)

Shared by all: the workspace root (``MEMENTO_WORKSPACE``; each call works in the episode folder its
``_meta`` names, see ``memento_lab.workspace``) and the server log level
(``MEMENTO_SERVER_LOG_LEVEL``, default WARNING). Clients: ``memento_lab.agent.tools.mcp_client.ToolBox``.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from memento_lab.workspace import META_KEY, episode_dir


@cache
def workspace() -> Path:
    """The episode's workspace: ``MEMENTO_WORKSPACE``, else one temp dir for this process's lifetime."""
    env = os.environ.get("MEMENTO_WORKSPACE")
    path = Path(env) if env else Path(tempfile.mkdtemp(prefix="memento-workspace-"))
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def episode_workspace(ctx: Context | None) -> Path:
    """The calling episode's folder (named in the request's ``_meta``), else the shared workspace."""
    root = workspace()
    meta = ctx.request_context.meta if ctx is not None else None
    try:
        return episode_dir(root, (meta or {}).get(META_KEY))
    except ValueError as e:
        raise ToolError(str(e)) from e


def make_server(name: str, instructions: str) -> MCPServer:
    """An ``MCPServer`` logging at ``MEMENTO_SERVER_LOG_LEVEL`` (tool failures are INFO: quiet by default)."""
    level = os.environ.get("MEMENTO_SERVER_LOG_LEVEL", "WARNING").upper()
    return MCPServer(name, instructions=instructions, log_level=level)  # type: ignore[arg-type]

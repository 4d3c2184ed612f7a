"""One MCP tool server as the toolbox holds it: its spec, the live client, its process or connection.

``transport`` opens the way to it (the process's stdio, its stderr to a log file; or the URL with its
headers), ``failed_to_start`` words the error when that fails (the command line or URL and the tail of
what it wrote to stderr), ``pids`` finds its process for a restart.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from memento_lab.agent.tools.servers import ServerSpec, SpecError, expand, stdio_launch
from memento_lab.config import Settings

if TYPE_CHECKING:
    from mcp import Client


class ServerConnection:
    """One server (a process or an HTTP connection) and its MCP client, owned by a runner task."""

    def __init__(self, name: str, spec: ServerSpec, log_path: Path):
        self.name, self.spec, self.log_path = name, spec, log_path
        self.argv: list[str] = []  # the command line it was last started with (stdio)
        self.client: Client | None = None
        self.stop = anyio.Event()
        self.done = anyio.Event()
        self.lock = anyio.Lock()

    def stderr_tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def failed_to_start(self, error: BaseException) -> RuntimeError:
        """The error for a server that could not be started or reached: its command line or URL, and
        what it wrote to stderr before it died."""
        while isinstance(error, BaseExceptionGroup) and error.exceptions:  # the cause, not its wrapping
            error = error.exceptions[0]
        if isinstance(error, SpecError):  # nothing was started: the spec itself is at fault
            return RuntimeError(str(error))
        cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if self.spec.transport == "http":
            return RuntimeError(
                f"tool server {self.name!r} ({self.spec.describe()}) is not reachable: {cause}"
            )
        message = f"tool server {self.name!r} ({self.spec.describe()}) failed to start: {cause}"
        if self.argv:  # it was spawned: what it said before it died
            tail = self.stderr_tail()
            message += f"\nits stderr (last lines):\n{tail}" if tail else " (it wrote nothing to stderr)"
        return RuntimeError(message)

    def pids(self) -> list[int]:
        """Pids of this toolbox's process(es) for the server: children of ours running its command
        line (directly, or as a script under the interpreter of its #! line)."""
        if not self.argv:
            return []
        me, want = os.getpid(), [a.encode() for a in self.argv]
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me and want in (argv, argv[1:]):
                found.append(int(entry.name))
        return found

    async def transport(
        self,
        stack: AsyncExitStack,
        workspace: Path,
        settings: Settings,
        extra_env: dict[str, str] | None,
        call_timeout_s: float,
    ) -> Any:
        """The MCP transport to the server: its process's stdio (stderr to its log), or its URL."""
        spec, name = self.spec, self.name
        if spec.transport == "http":
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            headers = {k: expand(name, f"header {k}", v, workspace) for k, v in spec.headers.items()}
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=call_timeout_s + 5))
            )
            url = expand(name, "url", str(spec.url), workspace)
            return streamable_http_client(url, http_client=http)
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        self.argv = []
        command, args, env, cwd = stdio_launch(
            name, spec, workspace=workspace, settings=settings, extra_env=extra_env
        )
        self.argv = [command, *args]
        errlog = stack.enter_context(self.log_path.open("a"))
        return stdio_client(
            StdioServerParameters(command=command, args=args, env=env, cwd=cwd), errlog=errlog
        )

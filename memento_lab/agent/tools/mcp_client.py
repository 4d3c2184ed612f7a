"""The MCP client side: start tool servers, list their tools as OpenAI schemas, route calls.

    async with ToolBox(["code", "math"]) as tb:        # workspace root: a temp folder
        tools = tb.openai_tools()                     # -> chat.completions(tools=...)
        with tb.episode(files=[...]):                 # a fresh folder per episode, files copied in
            call = await tb.call("calculate", {"expression": "2^100"})
        call.result, call.error, call.duration_s      # a memento_lab.trace.ToolCall

    ToolBox(resolve_servers(["math"], {"time": ServerSpec(command="mcp-server-time")}))  # anyone's server

Each server is a ``ServerSpec`` (``memento_lab.agent.tools.servers``): a command spoken to over stdio
in its own process with an explicit environment (the built-ins: ``python -m servers.<module>``, whose
child sees only what ``server_env`` lists), or a streamable-HTTP URL. ``call`` never raises for a
tool's failure: a ``ToolError``, an unknown tool, bad arguments, a timeout or a crashed server all end
up in ``ToolCall.error``. A server that dies is restarted once and the call retried once
(``restarts`` counts them, ``events`` says what happened). With a ``Cassette`` every listing and call
goes through it; in replay mode no server is ever started (nor need it be installed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio

from memento_lab.agent.tools.connection import ServerConnection
from memento_lab.agent.tools.servers import ServerSpec, as_spec, available_servers, resolve_servers
from memento_lab.config import Settings
from memento_lab.trace import ToolCall
from memento_lab.workspace import episode_meta, episode_workspace

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import RequestParamsMeta

    from memento_lab.agent.models.cassette import Cassette

log = logging.getLogger(__name__)

__all__ = ["ServerSpec", "ToolBox", "available_servers", "resolve_servers"]

ERROR_PREFIX = "Error executing tool "
SERVER_FAILED = "tool server"  # how an infrastructure failure's message starts (ToolCall.server_failed)


def _tool_record(tool: Any) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description or "", "input_schema": tool.input_schema}


def _text(result: Any) -> str:
    parts = []
    for item in result.content:
        text = getattr(item, "text", None)
        parts.append(text if text is not None else f"[{item.type} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class _ServerFailed(Exception):
    """Carries the response of a call whose server failed past the cassette (so it is not recorded)."""


class ToolBox:
    """A set of MCP tool servers behind one ``call(name, arguments) -> ToolCall``."""

    def __init__(
        self,
        servers: Sequence[str] | Mapping[str, ServerSpec],
        *,
        workspace: Path | str | None = None,
        cassette: Cassette | None = None,
        settings: Settings | None = None,
        call_timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        cassette_scope: str | None = None,
    ):
        """``servers``: built-in names, or name -> ``ServerSpec`` (see ``resolve_servers``).
        ``env`` is added to every started server's environment. ``cassette_scope`` marks stateful
        tools (one task's instances): the cassette keys then carry the scope and a digest of the
        calls made before, so a replay returns what the call returned in that very state."""
        if isinstance(servers, Mapping):
            self.specs = {name: as_spec(name, spec) for name, spec in servers.items()}
        else:
            self.specs = resolve_servers(servers)
        self.servers = list(self.specs)
        self.settings = settings or Settings()
        self.cassette = cassette
        self.call_timeout_s = call_timeout_s
        self._own_workspace = workspace is None
        self._workspace_arg = workspace
        self._extra_env = env
        self.cassette_scope = cassette_scope
        self._history = hashlib.sha256((cassette_scope or "").encode())
        self.restarts = 0
        self.events: list[str] = []
        self._tools: dict[str, list[dict[str, Any]]] = {}
        self._route: dict[str, str] = {}
        self._procs: dict[str, ServerConnection] = {}
        self._open = False
        self._tasks: dict[str, asyncio.Task[None]] = {}  # one owner task per server
        self._tmp: Path | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> ToolBox:
        self._tmp = Path(tempfile.mkdtemp(prefix="memento-toolbox-"))
        self.workspace = (
            (self._tmp / "workspace") if self._workspace_arg is None else Path(self._workspace_arg)
        )
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.workspace = self.workspace.resolve()
        self._procs = {
            s: ServerConnection(s, self.specs[s], self._tmp / f"{s}.stderr.log") for s in self.servers
        }
        self._open = True
        try:
            try:
                async with anyio.create_task_group() as listing:  # start / list all servers concurrently
                    for name in self.servers:
                        listing.start_soon(self._list, name)
            except BaseExceptionGroup as group:  # report the first failure itself, not a group of one
                raise group.exceptions[0] from None
            self._check_unique()
        except BaseException as e:
            await self.__aexit__(type(e), e, e.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for srv in self._procs.values():
            srv.stop.set()
        self._open = False
        tasks, self._tasks = list(self._tasks.values()), {}
        if tasks:  # each owner task closes its own client (anyio scopes must exit where they were entered)
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def _run_server(self, srv: ServerConnection, ready: asyncio.Future[None]) -> None:
        """Owner task of one server's client. The toolbox may be opened and closed in different tasks
        (Jupyter runs each cell in its own task), but a client's anyio scopes must close in the task
        that opened them: so each client lives in a plain asyncio task of its own."""
        from mcp import Client

        started = False
        try:
            async with AsyncExitStack() as stack:
                transport = await srv.transport(
                    stack, self.workspace, self.settings, self._extra_env, self.call_timeout_s
                )
                client = await stack.enter_async_context(
                    Client(transport, read_timeout_seconds=self.call_timeout_s)
                )
                srv.client = client
                started = True
                ready.set_result(None)
                await srv.stop.wait()
        except Exception as e:
            if not started:
                ready.set_exception(srv.failed_to_start(e))
                return
            log.debug("tool server %s closed with %r", srv.name, e)  # e.g. it had already died
        finally:
            srv.client = None
            srv.done.set()
            if not ready.done():  # cancelled before it started: never leave the starter waiting
                ready.set_exception(RuntimeError(f"tool server {srv.name!r} stopped before it started"))

    async def _client(self, name: str) -> Client:
        """The live client of server ``name``, starting the server on first use."""
        srv = self._procs[name]
        async with srv.lock:
            if srv.client is None:
                if not self._open:
                    raise RuntimeError("ToolBox is not open: use `async with ToolBox(...) as tb`")
                srv.stop, srv.done = anyio.Event(), anyio.Event()
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._tasks[name] = asyncio.create_task(self._run_server(srv, ready), name=f"mcp-{name}")
                await ready
            assert srv.client is not None
            return srv.client

    async def restart(self, name: str, reason: str) -> None:
        """Stop server ``name`` (killing it if needed) and start it again."""
        srv = self._procs[name]
        self.restarts += 1
        self.events.append(f"restarted {name}: {reason}")
        log.warning("restarting tool server %s: %s", name, reason)
        srv.stop.set()
        with anyio.move_on_after(5):
            await srv.done.wait()
        for pid in srv.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, 9)
        await self._client(name)

    # -------------------------------------------------------------------------------------- listing
    async def _list(self, name: str) -> None:
        async def live() -> dict[str, Any]:
            client = await self._client(name)
            listed = await client.list_tools()
            return {"tools": [_tool_record(t) for t in listed.tools]}

        if self.cassette is not None:
            request: dict[str, Any] = {"server": name}
            if self.cassette_scope is not None:
                request["scope"] = self.cassette_scope
            response = await self.cassette.through("tool_list", request, live)
        else:
            response = await live()
        self._tools[name] = response["tools"]

    def _check_unique(self) -> None:
        self._route = {}
        for name in self.servers:
            for tool in self._tools[name]:
                other = self._route.get(tool["name"])
                if other is not None:
                    raise ValueError(
                        f"tool {tool['name']!r} is served by both {other!r} ({self.specs[other].describe()}) "
                        f"and {name!r} ({self.specs[name].describe()}); tool names must be unique: "
                        "drop one of the servers"
                    )
                self._route[tool["name"]] = name

    def tool_names(self) -> dict[str, list[str]]:
        """Server name -> its tool names."""
        return {s: [t["name"] for t in self._tools.get(s, [])] for s in self.servers}

    def openai_tools(self) -> list[dict[str, Any]]:
        """OpenAI function-tool schemas for every tool of every server."""
        return [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"] or {"type": "object", "properties": {}},
                },
            }
            for s in self.servers
            for t in self._tools.get(s, [])
        ]

    def episode(self, files: Sequence[str | Path] = ()) -> AbstractContextManager[Path]:
        """A fresh workspace for one episode (``files`` copied in), used by the calls made inside
        the block (in this task) and removed after it: ``with tb.episode(files) as folder: ...``."""
        if not self._open:
            raise RuntimeError("ToolBox is not open: use `async with ToolBox(...) as tb`")
        return episode_workspace(self.workspace, files)

    def server_of(self, tool: str) -> str | None:
        return self._route.get(tool)

    # ---------------------------------------------------------------------------------------- calls
    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> ToolCall:
        """Call tool ``name``; every failure lands in ``ToolCall.error`` (never raised)."""
        arguments = {} if arguments is None else arguments
        server = self._route.get(name)
        started = time.time()
        if server is None:
            return ToolCall(
                server="",
                name=name,
                arguments=arguments if isinstance(arguments, dict) else {},
                error=f"unknown tool {name!r}; available tools: {sorted(self._route)}",
                started_at=started,
            )
        if not isinstance(arguments, dict):
            return ToolCall(
                server=server,
                name=name,
                error=f"arguments must be a JSON object, got {type(arguments).__name__}",
                started_at=started,
            )

        async def live() -> dict[str, Any]:
            t0 = time.perf_counter()
            result, error = await self._call_live(server, name, arguments)
            out = {"server": server, "result": result, "error": error, "duration_s": time.perf_counter() - t0}
            if error and error.startswith(SERVER_FAILED):  # not stored: a resumed run must retry it
                raise _ServerFailed({**out, "server_failed": True})
            return out

        try:
            if self.cassette is not None:
                request = {"name": name, "arguments": arguments}
                if self.cassette_scope is not None:
                    request |= {"scope": self.cassette_scope, "after": self._history.hexdigest()}
                response = await self.cassette.through("tool", request, live)
            else:
                response = await live()
        except _ServerFailed as failed:
            response = failed.args[0]
        self._history.update(json.dumps([name, arguments], sort_keys=True, default=str).encode())
        return ToolCall(
            server=response.get("server", server),
            name=name,
            arguments=arguments,
            result=response.get("result"),
            error=response.get("error"),
            server_failed=bool(response.get("server_failed", False)),
            duration_s=float(response.get("duration_s", 0.0)),
            started_at=started,
        )

    async def _call_live(
        self, server: str, name: str, arguments: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """(result, error) of one live call, restarting a crashed server once and retrying once."""
        from mcp import MCPError
        from mcp.types import REQUEST_TIMEOUT

        first_error = ""
        for attempt in (1, 2):
            try:
                client = await self._client(server)
                with anyio.fail_after(self.call_timeout_s + 5):
                    result = await client.call_tool(
                        name,
                        arguments,
                        read_timeout_seconds=self.call_timeout_s,
                        meta=cast("RequestParamsMeta | None", episode_meta()),
                    )
            except Exception as e:
                if isinstance(e, TimeoutError) or (isinstance(e, MCPError) and e.code == REQUEST_TIMEOUT):
                    # a hung call: do not retry it (it would hang again), but leave a working server behind
                    await self._safe_restart(server, f"{name} timed out after {self.call_timeout_s:g} s")
                    return (
                        None,
                        f"tool {name!r} timed out after {self.call_timeout_s:g} s (server {server!r} restarted)",
                    )
                detail = f"{type(e).__name__}: {e}"  # the server died or the connection broke
                if attempt == 2:
                    tail = self._procs[server].stderr_tail()
                    return None, (
                        f"{SERVER_FAILED} {server!r} failed during {name!r} ({first_error}); restarted and "
                        f"retried once, which failed too: {detail}"
                        + (f"\nserver stderr:\n{tail}" if tail else "")
                    )
                first_error = detail
                if not await self._safe_restart(server, f"{name} failed: {detail}"):
                    return (
                        None,
                        f"{SERVER_FAILED} {server!r} failed during {name!r} ({detail}) and could not be restarted",
                    )
                continue
            text = _text(result)
            if result.is_error:
                prefix = f"{ERROR_PREFIX}{name}: "
                return None, text[len(prefix) :] if text.startswith(prefix) else text
            return text, None
        raise AssertionError("unreachable")

    async def _safe_restart(self, server: str, reason: str) -> bool:
        try:
            await self.restart(server, reason)
            return True
        except Exception as e:
            self.events.append(f"restart of {server} failed: {e}")
            log.error("could not restart tool server %s: %s", server, e)
            return False

    def pids(self, server: str) -> list[int]:
        """Process ids of a running server (for diagnostics and tests)."""
        return self._procs[server].pids()

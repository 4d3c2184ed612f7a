"""One place that wires an episode's parts: one cassette, the model clients, the tool servers, the agent.

    async with open_session(run_dir, tools=["code", "math"], cassette="auto") as s:
        agent = s.agent(memory=open_memory(run_dir / "bank", "similarity"), suite=suite)
        trace = await agent.arun(task)

Servers of one's own come with ``tool_servers={"time": ServerSpec(command="mcp-server-time")}``.

Everything records into (or replays from) the single ``<folder>/cassette.sqlite``, so a run, a
notebook and a test never open two cassettes on one file. ``replay`` starts no model server and no
tool server. A sweep opens one session for its model server and tool servers and gives each run its
own cassette with ``session.use_cassette`` (runs of a sweep execute one after another).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memento_lab.agent.loop import Agent, AgentConfig
from memento_lab.agent.models.cassette import Cassette
from memento_lab.agent.models.llm import LLMs, open_llms
from memento_lab.agent.tools.mcp_client import ToolBox
from memento_lab.agent.tools.servers import ServerSpec, resolve_servers
from memento_lab.config import CassetteMode, Settings
from memento_lab.tasks.suites import JudgeContext

if TYPE_CHECKING:
    from memento_lab.memory.methods.base import MemoryMethod
    from memento_lab.memory.read_write import Memory
    from memento_lab.tasks.suites import Suite

CASSETTE_FILE = "cassette.sqlite"


@dataclass
class Session:
    """The open model clients and tool servers of one folder, recording through one cassette."""

    folder: Path
    cassette: Cassette
    llms: LLMs
    tools: ToolBox | None
    settings: Settings
    running: Path | None = None  # the run folder using this session now (runs on a session take turns)

    def agent(
        self,
        *,
        memory: MemoryMethod | Memory | None = None,
        suite: Suite | None = None,
        config: AgentConfig | None = None,
        run_id: str | None = None,
    ) -> Agent:
        """An agent on this session's models and tools; the suite's LLM judge is the judge role."""
        return Agent(
            self.llms,
            tools=self.tools,
            memory=memory,
            suite=suite,
            judge_ctx=JudgeContext(judge=self.llms.judge),
            config=config,
            run_id=run_id,
        )

    def use_cassette(self, path: Path, mode: CassetteMode) -> Cassette:
        """Route every model and tool call through the cassette at ``path`` from now on (one per run of
        a sweep); the session's own cassette object when it is that file already."""
        if self.cassette.path != path or self.cassette.mode != mode:
            self.cassette = Cassette(path, mode=mode)
        cassette = self.cassette
        for client in self.llms.clients:
            client.cassette = cassette
        if self.tools is not None:
            self.tools.cassette = cassette
        return cassette


@asynccontextmanager
async def open_session(
    folder: str | Path,
    *,
    tools: Sequence[str] = (),
    tool_servers: Mapping[str, ServerSpec] | None = None,
    cassette: CassetteMode = "off",
    model: str | None = None,
    settings: Settings | None = None,
    concurrency: int = 1,
    workspace: str | Path | None = None,
    cassette_path: str | Path | None = CASSETTE_FILE,
) -> AsyncIterator[Session]:
    """Open ``<folder>/cassette.sqlite``, the model clients and the tool servers; close them on exit.

    ``tools`` names servers (built-in, or defined in ``tool_servers``: name -> ``ServerSpec``, each
    of which is used too). ``model`` names the embedded model (or a GGUF path) when no endpoint is configured;
    ``concurrency`` sets the embedded server's parallel slots; the tool servers work in a fresh
    folder per episode under ``workspace`` (default: a temp folder, outside ``folder``). ``cassette_path`` is relative to ``folder``
    (``None``: no cassette file, e.g. a sweep's root, whose runs each bring their own).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = settings or Settings()
    settings = settings.model_copy(update={"local_parallel": max(settings.local_parallel, concurrency)})
    servers = resolve_servers(tools, tool_servers)  # a bad name fails before anything starts
    tape = Cassette(folder / cassette_path if cassette_path is not None else None, mode=cassette)
    async with AsyncExitStack() as stack:
        llms = await stack.enter_async_context(open_llms(settings, local_model=model, cassette=tape))
        toolbox = None
        if servers:  # workspaces default to a temp folder: the sandbox must never see the run folder
            toolbox = await stack.enter_async_context(
                ToolBox(servers, workspace=workspace, cassette=tape, settings=settings)
            )
        yield Session(folder=folder, cassette=tape, llms=llms, tools=toolbox, settings=settings)

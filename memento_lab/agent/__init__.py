"""One episode: the loop and its records, the models it talks to, the tools it calls.

- ``loop``: ``Agent`` (retrieve -> plan -> execute -> judge -> write, in one place), ``AgentConfig``
- ``episode``, ``program``: what depends on the answer kind (a program is its own kind of episode)
- ``plans``: the planner's reply schemas; ``status``: failures are not outcomes; ``prompts/``: every prompt
- ``session``: one folder's cassette, models and tools wired together (``open_session``)
- ``models``: the chat clients (any OpenAI-compatible endpoint), the embedded model, the cassette
- ``tools``: MCP tool servers (built-in and your own) behind one ``ToolBox``

The tasks and their judges are ``memento_lab.tasks``.
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "Agent": "memento_lab.agent.loop",
    "AgentConfig": "memento_lab.agent.loop",
    "open_session": "memento_lab.agent.session",
    "Session": "memento_lab.agent.session",
    "open_llms": "memento_lab.agent.models.llm",
    "ToolBox": "memento_lab.agent.tools.mcp_client",
    "ServerSpec": "memento_lab.agent.tools.servers",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)

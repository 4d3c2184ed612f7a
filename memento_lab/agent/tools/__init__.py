"""The tools an episode calls: MCP servers over stdio or streamable HTTP, built-in or your own.

- ``mcp_client``: ``ToolBox``, every server's tools as one OpenAI tool list, calls through the cassette
- ``servers``: ``ServerSpec`` (a command or a URL), the built-in servers, their environment
- ``connection``: one live connection to one server (restarted once when it dies)
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "ToolBox": "memento_lab.agent.tools.mcp_client",
    "ServerSpec": "memento_lab.agent.tools.servers",
    "available_servers": "memento_lab.agent.tools.servers",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)

"""The models an episode talks to, all recorded through one cassette.

- ``llm``: ``ChatClient`` (one role on any OpenAI-compatible endpoint), ``LLMs``, ``open_llms``
- ``tool_calls``: reading small models' replies and forcing their tool calls through a JSON schema
- ``local_model``: the embedded llama.cpp model (packaged GGUF weights), ``LocalServer``
- ``cassette``: record / replay of model and tool calls, keyed by the request
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "ChatClient": "memento_lab.agent.models.llm",
    "ChatResult": "memento_lab.agent.models.llm",
    "LLMs": "memento_lab.agent.models.llm",
    "open_llms": "memento_lab.agent.models.llm",
    "LocalServer": "memento_lab.agent.models.local_model",
    "Cassette": "memento_lab.agent.models.cassette",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)

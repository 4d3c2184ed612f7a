"""Finding past cases for a new task, and what the finding taught (no torch here).

- ``retrievers``: the ``Retriever`` protocol (``retrieve`` -> a ``Slate``: the shown cases and the
  propensity of an abstaining stop; ``update`` from an episode's pairs) and ``NoMemory``,
  ``RandomRetriever``, ``SimilarityRetriever``; ``select`` (top-K, quotas, softmax sampling)
- ``offpolicy``: the slate's logged propensities and IPS estimates of another policy
- ``pairs``: ``RetrievalPair`` and the append-only pair log (the learned retriever's data)
- ``render``: the memory block a prompt shows, within a token budget

This package had the path of the old ``retrieval`` module: its names still import from here.
"""

from memento_lab.exports import lazy

_RETRIEVERS = "memento_lab.memory.retrieval.retrievers"
_EXPORTS = {
    "Retriever": _RETRIEVERS,
    "NoMemory": _RETRIEVERS,
    "RandomRetriever": _RETRIEVERS,
    "SimilarityRetriever": _RETRIEVERS,
    "Retrieved": _RETRIEVERS,
    "Slate": _RETRIEVERS,
    "UpdateReport": _RETRIEVERS,
    "select": _RETRIEVERS,
    "DEFAULT_K": _RETRIEVERS,
    "MEMORY_MODES": _RETRIEVERS,
    "RetrievalPair": "memento_lab.memory.retrieval.pairs",
    "PairLog": "memento_lab.memory.retrieval.pairs",
    "NO_CASE": "memento_lab.memory.retrieval.pairs",
    "render_memory": "memento_lab.memory.retrieval.render",
    "draw_slate": "memento_lab.memory.retrieval.offpolicy",
    "ips_estimate": "memento_lab.memory.retrieval.offpolicy",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS, rest=_RETRIEVERS)

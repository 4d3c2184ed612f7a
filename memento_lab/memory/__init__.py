"""What was experienced and how it is found again: Memento's case memory, in three rooms.

- ``memory.bank``: the case bank (``Case``, ``CaseBank``: an append-only log, a columnar snapshot,
  versions), its ANN index, Memento's file formats, the sentence encoders, duplicates and leakage.
- ``memory.retrieval``: finding cases for a task (``Retriever``: none, random, similarity; a ``Slate``
  of shown cases with their propensities), the pair log, off-policy estimates, the memory block.
- ``memory.learned``: the learned retriever Q(query, case), everything torch (``FitConfig``, ``fit``,
  ``ParametricRetriever``).

``Memory`` ties them around one episode (``read_write``: read before planning, write after judging);
``policies`` says what a bank keeps; ``sources`` finds the seed data.

    memory = open_memory("runs/x/bank", "similarity")
    slate = memory.read(question)          # ... the episode ...
    memory.write(trace)

Names load on first use (torch only with a learned one).
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "Memory": "memento_lab.memory.read_write",
    "open_memory": "memento_lab.memory.read_write",
    "make_retriever": "memento_lab.memory.read_write",
    "Case": "memento_lab.memory.bank.case",
    "CaseBank": "memento_lab.memory.bank.bank",
    "Retriever": "memento_lab.memory.retrieval.retrievers",
    "SimilarityRetriever": "memento_lab.memory.retrieval.retrievers",
    "Slate": "memento_lab.memory.retrieval.retrievers",
    "RetrievalPair": "memento_lab.memory.retrieval.pairs",
    "PairLog": "memento_lab.memory.retrieval.pairs",
    "ParametricRetriever": "memento_lab.memory.learned.parametric",
    "FitConfig": "memento_lab.memory.learned.config",
    "fit": "memento_lab.memory.learned.training",
    "make_policy": "memento_lab.memory.policies",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)

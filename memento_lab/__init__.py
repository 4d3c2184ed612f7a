"""memento-lab: a workbench for memory-based continual learning of LLM agents (Memento).

The public API, imported lazily (``import memento_lab`` stays fast; torch and the models load
only when used)::

    from memento_lab import CaseBank, Case, SimilarityRetriever, Agent, run_experiment
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # memory
    "Case": "memento_lab.cases",
    "CaseBank": "memento_lab.cases",
    "label_for": "memento_lab.cases",
    "import_file": "memento_lab.memento_formats",
    "export_memory": "memento_lab.memento_formats",
    "RetrievalPair": "memento_lab.pairs",
    "PairLog": "memento_lab.pairs",
    "SentenceEncoder": "memento_lab.encoders",
    "CachedEncoder": "memento_lab.encoders",
    "bank_encoder": "memento_lab.encoders",
    "NoMemory": "memento_lab.retrieval",
    "RandomRetriever": "memento_lab.retrieval",
    "SimilarityRetriever": "memento_lab.retrieval",
    "make_retriever": "memento_lab.retrieval",
    "find_duplicates": "memento_lab.dedupe",
    "dedupe": "memento_lab.dedupe",
    "leakage_report": "memento_lab.dedupe",
    "Memory": "memento_lab.memory",
    # records and settings
    "Trace": "memento_lab.trace",
    "read_traces": "memento_lab.trace",
    "Settings": "memento_lab.config",
    # agent and experiments
    "Agent": "memento_lab.agent",
    "AgentConfig": "memento_lab.agent",
    "ExperimentConfig": "memento_lab.runner",
    "run_experiment": "memento_lab.runner",
    "run_sweep": "memento_lab.runner",
    "load_results": "memento_lab.runner",
    "report": "memento_lab.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'memento_lab' has no attribute {name!r}")

"""memento-lab: a workbench for memory-based continual learning of LLM agents (Memento).

The public API, imported lazily (``import memento_lab`` stays fast; torch and the models load
only when used)::

    from memento_lab import CaseBank, Case, SimilarityRetriever, Agent, run_experiment
"""

from __future__ import annotations

from memento_lab.exports import lazy

__version__ = "0.1.0"

_EXPORTS = {
    # memory
    "Case": "memento_lab.memory.bank.bank",
    "CaseBank": "memento_lab.memory.bank.bank",
    "label_for": "memento_lab.memory.bank.bank",
    "import_file": "memento_lab.memory.bank.formats",
    "export_memory": "memento_lab.memory.bank.formats",
    "export_cases": "memento_lab.memory.bank.formats",
    "write_memento_pairs": "memento_lab.memory.retrieval.pairs",
    "RetrievalPair": "memento_lab.memory.retrieval.pairs",
    "PairLog": "memento_lab.memory.retrieval.pairs",
    "SentenceEncoder": "memento_lab.memory.bank.encoders",
    "CachedEncoder": "memento_lab.memory.bank.encoders",
    "bank_encoder": "memento_lab.memory.bank.encoders",
    "NoMemory": "memento_lab.memory.retrieval.retrievers",
    "RandomRetriever": "memento_lab.memory.retrieval.retrievers",
    "SimilarityRetriever": "memento_lab.memory.retrieval.retrievers",
    "make_retriever": "memento_lab.memory.read_write",
    "find_duplicates": "memento_lab.memory.bank.dedupe",
    "dedupe": "memento_lab.memory.bank.dedupe",
    "leakage_report": "memento_lab.memory.bank.dedupe",
    "Memory": "memento_lab.memory.read_write",
    "open_memory": "memento_lab.memory.read_write",
    "FitConfig": "memento_lab.memory.learned.config",
    "fit": "memento_lab.memory.learned.training",
    # records and settings
    "Trace": "memento_lab.trace",
    "read_traces": "memento_lab.trace",
    "Settings": "memento_lab.config",
    # agent and experiments
    "Agent": "memento_lab.agent.loop",
    "AgentConfig": "memento_lab.agent.loop",
    "open_session": "memento_lab.agent.session",
    "ServerSpec": "memento_lab.agent.tools.servers",
    "load_suite": "memento_lab.tasks",
    "suite": "memento_lab.tasks",
    "suite_kinds": "memento_lab.tasks",
    "Task": "memento_lab.tasks.base",
    "Suite": "memento_lab.tasks.base",
    "ExperimentConfig": "memento_lab.experiments.config",
    "ResultRow": "memento_lab.experiments.config",
    "run_experiment": "memento_lab.experiments.run",
    "run_experiment_sync": "memento_lab.experiments.run",
    "run_sweep": "memento_lab.experiments.sweep",
    "load_results": "memento_lab.experiments.results",
    "summarize": "memento_lab.experiments.results",
    "build_report": "memento_lab.experiments.report",
    "export_mlflow": "memento_lab.experiments.tracking",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)

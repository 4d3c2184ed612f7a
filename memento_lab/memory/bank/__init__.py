"""The case bank: what was experienced, kept durably and found by vector at scale.

- ``case``: ``Case`` (question, plan, answer, reward, label, trajectory, source) and its limits
- ``bank``: ``CaseBank``, an append-only JSONL log with versions (``bank.at(v)``), embeddings at write
- ``columns``, ``snapshots``: the columnar table of live cases and its fingerprinted snapshot
- ``index``: the FAISS index that shortlists candidates once a bank is large
- ``encoders``: sentence encoders and their SQLite embedding cache
- ``formats``: Memento's files (``memory.jsonl``, ``dummy_memo.jsonl``, pair files), in and out
- ``dedupe``: duplicates, and leakage of test questions into a bank
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "Case": "memento_lab.memory.bank.case",
    "AnswerKind": "memento_lab.memory.bank.case",
    "label_for": "memento_lab.memory.bank.case",
    "CaseBank": "memento_lab.memory.bank.bank",
    "is_bank": "memento_lab.memory.bank.bank",
    "BankIndex": "memento_lab.memory.bank.index",
    "SentenceEncoder": "memento_lab.memory.bank.encoders",
    "CachedEncoder": "memento_lab.memory.bank.encoders",
    "bank_encoder": "memento_lab.memory.bank.encoders",
    "import_file": "memento_lab.memory.bank.formats",
    "export_cases": "memento_lab.memory.bank.formats",
    "export_memory": "memento_lab.memory.bank.formats",
    "find_duplicates": "memento_lab.memory.bank.dedupe",
    "dedupe": "memento_lab.memory.bank.dedupe",
    "leakage_report": "memento_lab.memory.bank.dedupe",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)

"""What a memory method is built from: one settings object, passed whole to its factory.

    setup = MethodSetup(folder=run / "memory", k=4, seed=0, options={"max_num_rules": 20})
    method = make_method("expel", setup)

``options`` are the method's own settings (``memory_options`` of a run), validated by the method's
``Options`` model; ``encoder`` embeds texts for the methods that retrieve by similarity (loaded on
first use; by default the packaged sentence encoder, cached in ``<folder>/embeddings.sqlite``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memento_lab.memory.bank.case import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from memento_lab.memory.bank.encoders import CachedEncoder, Encoder


@dataclass(frozen=True)
class MethodSetup:
    """A method's settings: where it keeps its log, how many items it retrieves, its seed, the reward
    that counts as success, whether it may show a task its own question, and its own ``options``."""

    folder: Path | None = None  # None: in memory only (a notebook's scratch memory, a test)
    k: int = 4  # items retrieved per read, where a method retrieves (few-shots, memory items)
    seed: int = 0
    threshold: float = DEFAULT_THRESHOLD
    exclude_question: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    encoder: CachedEncoder | Encoder | None = None
    run_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # what a factory needs beyond these (cases)

    def options_for(self, method: str) -> dict[str, Any]:
        """The options meant for ``method``: plain keys, and ``METHOD.key`` keys of its own name (a sweep
        over several methods shares one table: ``expel.success_every = 2`` reaches expel alone)."""
        own: dict[str, Any] = {}
        for key, value in self.options.items():
            name, dot, field_name = key.partition(".")
            if not dot:
                own[key] = value
            elif name.strip().lower() == method:
                own[field_name] = value
        return own

    @functools.cached_property
    def embedder(self) -> CachedEncoder | Encoder:
        """The encoder (given, else the packaged one cached beside the log, else uncached)."""
        if self.encoder is not None:
            return self.encoder
        from memento_lab.memory.bank.encoders import SentenceEncoder, bank_encoder

        return bank_encoder(self.folder) if self.folder is not None else SentenceEncoder()

    def similarity(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of ``query`` to each text (the encoders return unit vectors)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        vecs = self.embedder.encode([query, *texts])
        return vecs[1:] @ vecs[0]

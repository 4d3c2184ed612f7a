"""Where a bank's cases and a retriever's training pairs come from, by one name.

    sources = case_sources("auto")          # the seed files when this machine has them, else the demo set
    kind, pairs = training_pairs("auto", bank)

``auto`` uses the original Memento files in ``../shared/data/memento-seed`` when present (1,278
cases, 5,528 pairs), else the small demo bank packaged with ``memento_lab`` (and pairs derived
from the bank itself); a path names a Memento file, a bank folder or a run folder holding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from memento_lab.config import shared_seed_dir
from memento_lab.jsonl import FormatError
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.formats import import_file
from memento_lab.memory.retrieval.pairs import RetrievalPair, pairs_from_bank
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever


@dataclass
class CaseSource:
    """The cases of one file or bank, with the lines a tolerant import skipped."""

    name: str
    cases: list[Case]
    errors: list[FormatError] = field(default_factory=list)


def demo_file() -> Path:
    """The demo case bank packaged with memento_lab (original ``memory.jsonl`` format)."""
    return Path(str(resources.files("memento_lab.data").joinpath("demo_memory.jsonl")))


def case_sources(source: str = "auto", fmt: str = "memento") -> list[CaseSource]:
    """Cases to build a bank from: ``auto`` | ``seed`` | ``demo`` | a file (``fmt``) | a bank or run folder."""
    seed_dir = shared_seed_dir()
    kind = ("seed" if seed_dir else "demo") if source == "auto" else source
    if kind == "seed":
        if seed_dir is None:
            raise FileNotFoundError("source 'seed': ../shared/data/memento-seed is not on this machine")
        files = [(seed_dir / "memory.jsonl", "memento"), (seed_dir / "dummy_memo.jsonl", "dummy_memo")]
    elif kind == "demo":
        files = [(demo_file(), "memento")]
    else:
        files = [(Path(source), fmt)]
    out = []
    for path, file_fmt in files:
        if path.is_dir():  # another bank, or a run folder holding one
            folder = path / "bank" if (path / "bank" / "log.jsonl").exists() else path
            if not (folder / "log.jsonl").exists():
                raise FileNotFoundError(f"{path}: neither a case bank nor a run folder with one")
            out.append(CaseSource(str(folder), CaseBank(folder, readonly=True).cases()))
        else:
            result = import_file(path, file_fmt, strict=False)
            out.append(CaseSource(path.name, result.cases, list(result.errors)))
    return out


def training_pairs(source: str, bank: CaseBank, *, k: int = 4) -> tuple[str, list[RetrievalPair]]:
    """(kind, pairs) to train the retriever on: ``auto`` | ``seed`` (the original training_data.jsonl) |
    ``bank`` (every case as a query with its ``k`` most similar cases, labelled by the query's outcome) |
    a pair file (original format or a workbench pair log) | a run folder (its ``pairs.jsonl``)."""
    from memento_lab.memory.learned.pair_data import load_pairs  # lazy: torch loads only when training

    seed_dir = shared_seed_dir()
    kind = ("seed" if seed_dir else "bank") if source == "auto" else source
    if kind == "seed":
        if seed_dir is None:
            raise FileNotFoundError("pairs 'seed': ../shared/data/memento-seed is not on this machine")
        return kind, load_pairs(seed_dir / "training_data.jsonl")
    if kind == "bank":
        return kind, pairs_from_bank(bank, SimilarityRetriever(bank, bank.encoder), k)
    path = Path(source)
    return "file", load_pairs(path / "pairs.jsonl" if path.is_dir() else path)

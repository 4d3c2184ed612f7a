"""A run's memory: the method its config names, opened in the run folder, made ready to resume.

    <run>/bank/      Memento's case bank (none, random, similarity, parametric): versioned cases
    <run>/memory/    any other method: its op log (log.jsonl) and the embeddings it computed

Every method sees the same stream, orders and seeds (the run decides them, not the method); the
first attempt of a task is scored before its episode is written (the agent's order); the feedback is
the judge's reward unless the config's ``feedback`` is the labelled ``gold`` variant. Resuming replays
the method's log; an attempt interrupted before its result row is undone first (``recovery.py``).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.online import attach_online, retriever_options
from memento_lab.memory.methods.base import MemoryMethod
from memento_lab.memory.methods.cases import CaseMemory
from memento_lab.memory.methods.registry import make_method, method_spec
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.memory.policies import make_policy

BANK_DIR = "bank"
MEMORY_DIR = "memory"


@dataclass
class RunMemory:
    """The run's memory method and, for a case memory, the keyword arguments its probes reuse."""

    method: MemoryMethod
    memory_kw: dict[str, Any] = field(default_factory=dict)

    @property
    def cases(self) -> CaseMemory | None:
        return self.method if isinstance(self.method, CaseMemory) else None


def memory_folder(config: ExperimentConfig, out: Path) -> Path:
    """Where the run keeps its memory: ``bank/`` for the case memories, ``memory/`` for the others."""
    return out / (BANK_DIR if method_spec(config.memory).keeps == "cases" else MEMORY_DIR)


def open_run_memory(config: ExperimentConfig, out: Path) -> RunMemory:
    """The memory method of the run in ``out`` (created, or as it was left: resume)."""
    folder = memory_folder(config, out)
    setup = MethodSetup(
        folder=folder,
        k=config.k,
        seed=config.seed,
        exclude_question=config.exclude_question,
        options=config.memory_options,
        run_id=config.run_id,
    )
    if method_spec(config.memory).keeps != "cases":
        return RunMemory(make_method(config.memory, setup))
    if config.initial_bank:
        copy_initial_bank(config.initial_bank, folder)
    checkpoint, retriever_kw = retriever_options(config, out)
    memory_kw: dict[str, Any] = {
        "k": config.k,
        "k_positive": config.k_positive,
        "k_negative": config.k_negative,
        "temperature": config.temperature,
        "policy": make_policy(config.bank_policy, cap=config.bank_cap),
    }
    extra = {
        "pairs": out / "pairs.jsonl",
        "checkpoint": checkpoint,
        "retriever_kw": retriever_kw,
        **{k: v for k, v in memory_kw.items() if k != "k"},
    }
    method = make_method(config.memory, dataclasses.replace(setup, extra=extra))
    assert isinstance(method, CaseMemory)
    attach_online(method.memory, config, out)
    return RunMemory(method, memory_kw)


def copy_initial_bank(source: str, bank_dir: Path) -> None:
    """Copy a starting bank into the run, whole or not at all (a crash mid-copy leaves no half bank)."""
    if bank_dir.exists():
        return
    partial = bank_dir.with_name(f".{bank_dir.name}.copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(".lock"))
    partial.rename(bank_dir)


def load_run_memory(run: str | Path) -> MemoryMethod:
    """The memory of a run folder as it was left (to look at it: its items, history, ``at(v)``)."""
    run = Path(run)
    config_path = run / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run}: no config.json (not a run folder)")
    config = ExperimentConfig.model_validate_json(config_path.read_text())
    return open_run_memory(config, run).method

"""The learned retriever inside a run: its options from the config, online updates with replay from
the run's pair log, weights saved in the run folder and restored on resume, probe pairs fed back.

    <run>/retriever/online.ckpt   the head after the latest update (written atomically)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.memory.read_write import Memory
from memento_lab.memory.retrieval.pairs import RetrievalPair
from memento_lab.trace import RetrievedCase, Trace

ONLINE_CKPT = Path("retriever") / "online.ckpt"


def retriever_options(config: ExperimentConfig, out: Path) -> tuple[str | None, dict[str, Any]]:
    """(checkpoint, retriever keyword arguments) for ``open_memory``: a resumed parametric run with
    online updates starts from its own saved weights, not from the initial checkpoint."""
    if config.memory == "similarity":
        return config.checkpoint, {"min_score": config.min_score}
    if config.memory != "parametric":
        return config.checkpoint, {}
    from memento_lab.memory.learned.parametric import RetrievalConfig, UpdateConfig

    state = out / ONLINE_CKPT
    checkpoint = str(state) if config.online_update and state.exists() else config.checkpoint
    return checkpoint, {
        "update": UpdateConfig(
            every=1 if config.online_update else 0, target=config.online_target, seed=config.seed
        ),
        "choose": RetrievalConfig(
            shortlist=config.shortlist, min_q=config.min_q, none_option=config.none_option
        ),
    }


def attach_online(memory: Memory, config: ExperimentConfig, out: Path) -> None:
    """Give a parametric retriever the run's pair log (replay) and its state file (online updates)."""
    if config.memory != "parametric" or not config.online_update or memory.pairs is None:
        return  # (and torch is not imported for a run that does not need it)
    from memento_lab.memory.learned.parametric import ParametricRetriever

    if isinstance(memory.retriever, ParametricRetriever):
        memory.retriever.attach(memory.pairs, out / ONLINE_CKPT)


def probe_due(config: ExperimentConfig, n_probed: int, task_id: str, iteration: int) -> bool:
    """Whether this episode gets a counterfactual probe: every Nth (``counterfactual_every``, by the
    running count ``n_probed``) or a seeded draw with probability ``counterfactual_share``."""
    if config.counterfactual_every and n_probed % config.counterfactual_every == 0:
        return True
    share = config.counterfactual_share
    return share > 0 and random.Random(f"{config.seed}:{task_id}:{iteration}").random() < share


def probe_choice(config: ExperimentConfig, trace: Trace) -> RetrievedCase:
    """The shown case a probe drops: drawn at random among the shown cases (seeded by the run's seed,
    the task and the iteration: a resumed or replayed run drops the same one), or the top one. A random
    draw probes lower-ranked cases too, so one query's delta pairs get mixed labels and within-query
    ranking (the learned Q's job) can be measured."""
    if config.counterfactual_drop == "top" or len(trace.retrieved) == 1:
        return trace.retrieved[0]
    rng = random.Random(f"probe:{config.seed}:{trace.task_id}:{trace.iteration}")
    return rng.choice(trace.retrieved)


def probe_memory(memory: Memory, trace: Trace, **memory_kw: Any) -> Memory:
    """What a counterfactual probe of ``trace`` reads: the bank at the version that episode saw (not
    the case it wrote, nor anything later), never a case of the same question, and no writes."""
    version = trace.bank_version if trace.bank_version is not None else memory.bank.version
    return Memory(memory.bank.at(version), memory.retriever, exclude_question=True, write=False, **memory_kw)


def learn_from_probe(memory: Memory, pair: RetrievalPair) -> None:
    """A probe's delta pair is logged and, for a learning retriever, one more online update."""
    if memory.pairs is not None:
        memory.pairs.append([pair])
    update = getattr(memory.retriever, "update", None)
    if callable(update):
        update([pair], logged=memory.pairs is not None)

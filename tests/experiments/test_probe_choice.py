"""The counterfactual probe drops a randomly chosen shown case (seeded, recorded), not always the top
one, so one query's delta pairs can disagree and within-query ranking can be measured."""

from __future__ import annotations

import json

import pytest
from loopback import FakeOpenAI
from support import config, endpoint, good

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.online import probe_choice
from memento_lab.experiments.run import run_experiment
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.trace import RetrievedCase, Trace, read_traces


def shown(n: int) -> list[RetrievedCase]:
    return [
        RetrievedCase(case_id=f"c{r}", question=f"q{r}", label="positive", score=1 - r / 10, rank=r)
        for r in range(n)
    ]


def test_the_choice_is_seeded_spread_over_ranks_and_the_top_on_request() -> None:
    cfg = ExperimentConfig(memory="similarity", seed=3)
    traces = [Trace(task_id=f"t{i}", question="q", iteration=i % 2, retrieved=shown(4)) for i in range(40)]
    picks = [probe_choice(cfg, t).rank for t in traces]
    assert picks == [
        probe_choice(cfg, t).rank for t in traces
    ]  # the same run, the same drops (resume, replay)
    assert set(picks) == {0, 1, 2, 3}  # every rank gets probed
    other = [probe_choice(cfg.model_copy(update={"seed": 4}), t).rank for t in traces]
    assert other != picks  # another seed, other drops
    top = cfg.model_copy(update={"counterfactual_drop": "top"})
    assert {probe_choice(top, t).rank for t in traces} == {0}


@pytest.mark.anyio
async def test_a_run_records_which_case_each_probe_dropped(tmp_path) -> None:
    seeded = CaseBank(tmp_path / "seed")
    seeded.add([Case.from_episode(f"Background question {i}?", 1.0, answer=f"x{i}") for i in range(4)])
    cfg = config(
        tmp_path,
        memory="similarity",
        k=4,
        counterfactual_every=1,
        initial_bank=str(tmp_path / "seed"),
        leakage="off",
    )
    with FakeOpenAI(good) as fake:
        await run_experiment(
            cfg.model_copy(update={"iterations": 3}), settings=endpoint(fake), progress=False
        )
    traces = list(read_traces(tmp_path / "run" / "traces.jsonl"))
    probes = [t.counterfactual for t in traces if t.counterfactual is not None]
    assert len(probes) == 6 and all(p.choice == "random" and p.shown == 4 for p in probes)
    for t in traces:  # the recorded case is the one at the recorded rank, and its pair says so
        assert t.counterfactual and t.retrieved[t.counterfactual.rank].case_id == t.counterfactual.case_id
    pairs = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
    dropped = [(p["case_id"], p["rank"]) for p in pairs if p["source"] == "counterfactual"]
    assert dropped == [(p.case_id, p.rank) for p in probes]
    assert len({r for _, r in dropped}) > 1  # not always the top case

"""Faithful runs: resume refuses another config, leakage ignores the run's own cases, the
counterfactual probe sees the with-episode's bank version and never its own question, the
transfer protocol never writes the test stream, and the report never pools different arms."""

from __future__ import annotations

import json

import pytest
from loopback import FakeOpenAI, completion
from support import QUESTIONS, bank_size, config, endpoint, good

from memento_lab.experiments.report import build_report
from memento_lab.experiments.results import load_results, read_rows
from memento_lab.experiments.run import run_experiment
from memento_lab.memory.bank.bank import Case, CaseBank


@pytest.mark.anyio
async def test_resume_refuses_a_different_config_naming_the_fields(tmp_path) -> None:
    cfg = config(tmp_path, memory="random")
    with FakeOpenAI(good) as fake:
        first = await run_experiment(cfg, settings=endpoint(fake), progress=False)
        with pytest.raises(ValueError, match=r"memory: stored 'random', now 'none'.*k: stored 4, now 2"):
            await run_experiment(
                cfg.model_copy(update={"memory": "none", "k": 2}), settings=endpoint(fake), progress=False
            )
        with pytest.raises(ValueError, match="iterations: stored 2, now 1 \\(may only grow\\)"):
            await run_experiment(
                cfg.model_copy(update={"iterations": 2}), settings=endpoint(fake), progress=False
            )
            await run_experiment(
                cfg.model_copy(update={"iterations": 1}), settings=endpoint(fake), progress=False
            )
        # what may change: more iterations, concurrency, the cassette mode
        grown = cfg.model_copy(update={"iterations": 3, "concurrency": 2, "cassette": "auto"})
        again = await run_experiment(grown, settings=endpoint(fake), progress=False)
    assert again.run_id == first.run_id and sorted(again.accuracy_by_iteration) == [0, 1, 2]
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["iterations"] == 3
    run_info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_info["llms"]["planner"] == "fake-model" and run_info["llms"]["endpoint"].startswith(
        "http://127.0.0.1"
    )


@pytest.mark.anyio
async def test_leakage_counts_outside_cases_not_the_runs_own(tmp_path) -> None:
    cfg = config(tmp_path, memory="random", leakage="refuse")
    with FakeOpenAI(good) as fake:
        await run_experiment(cfg, settings=endpoint(fake), progress=False)
        # resume: the bank now holds this run's own cases of the eval questions; that is not leakage
        await run_experiment(
            cfg.model_copy(update={"iterations": 2}), settings=endpoint(fake), progress=False
        )
        assert bank_size(tmp_path) == 4
        # a bank from elsewhere that contains an eval question is refused
        seeded = CaseBank(tmp_path / "seed")
        seeded.add(Case.from_episode(next(iter(QUESTIONS)), 1.0, answer="amber"))
        leaky = cfg.model_copy(
            update={"initial_bank": str(tmp_path / "seed"), "out": str(tmp_path / "leaky")}
        )
        with pytest.raises(Exception, match="(?i)contaminat|leak"):
            await run_experiment(leaky, settings=endpoint(fake), progress=False)


@pytest.mark.anyio
async def test_counterfactual_probe_sees_the_with_episodes_bank_version_and_never_its_question(
    tmp_path,
) -> None:
    qa, qb = list(QUESTIONS)
    seeded = CaseBank(tmp_path / "seed")
    seeded.add(Case.from_episode("What is the capital of an unrelated place?", 1.0, answer="x"))
    cfg = config(
        tmp_path,
        memory="similarity",
        k=1,
        concurrency=2,
        counterfactual_every=1,
        initial_bank=str(tmp_path / "seed"),
        leakage="off",
    )
    with FakeOpenAI(good, delay=0.3) as fake:  # both tasks read memory before either writes
        await run_experiment(cfg, settings=endpoint(fake), progress=False)
    asked = [
        (
            next(m["content"] for m in r["messages"] if m["content"].startswith("Task: ")),
            json.dumps(r["messages"]),
        )
        for r in fake.requests
    ]
    for q, other in ((qa, qb), (qb, qa)):
        with_ep, probe = [text for task, text in asked if task.split("\n\n")[0] == f"Task: {q}"]
        assert "unrelated place" in with_ep  # the with-episode was shown the seed case (its top case)
        # the probe: the bank at the with-episode's version (only the seed case, which is dropped);
        # the live bank would show the other task's case, written meanwhile
        assert json.dumps(other)[1:-1] not in probe and "Case 1:" not in probe
    pairs = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
    assert sorted(p["source"] for p in pairs) == ["counterfactual", "counterfactual", "episode", "episode"]

    # iteration 2: the with-episode is shown its own question's case; the probe never is
    with FakeOpenAI(good) as fake:
        await run_experiment(
            cfg.model_copy(update={"iterations": 2, "concurrency": 1}),
            settings=endpoint(fake),
            progress=False,
        )
    for q in QUESTIONS:
        texts = [
            json.dumps(r["messages"])
            for r in fake.requests
            if any(
                m["content"].split("\n\n")[0] == f"Task: {q}" for m in r["messages"]
            )  # memory, then the task
        ]
        with_ep, probe = texts
        needle = json.dumps(f"Task: {q}")[1:-1]
        assert with_ep.count(needle) == 2 and probe.count(needle) == 1


@pytest.mark.anyio
async def test_transfer_protocol_never_writes_the_test_stream(tmp_path) -> None:
    path = tmp_path / "six.jsonl"
    path.write_text(
        "".join(json.dumps({"question": f"Code word {i}?", "answer": f"w{i}"}) + "\n" for i in range(6))
    )
    cfg = config(tmp_path, suite=f"jsonl:{path}", memory="random", protocol="transfer", iterations=2)
    with FakeOpenAI(lambda req: (200, completion('{"final_answer": "w0"}'), {})) as fake:
        await run_experiment(cfg, settings=endpoint(fake), progress=False)
    rows = read_rows(tmp_path / "run")
    test = {r.task_id for r in rows if r.split == "test"}
    train = {r.task_id for r in rows if r.split == "train"}
    assert len(test) == 3 and len(train) == 3 and not test & train
    cases = CaseBank(tmp_path / "run" / "bank").cases()
    assert len(cases) == 6 and {c.source.task_id for c in cases} == train  # 3 train tasks x 2 iterations
    rep = build_report([tmp_path / "run"])
    assert {(p.split, p.measures) for p in rep.curves} == {("train", "recall"), ("test", "transfer")}


@pytest.mark.anyio
async def test_report_never_pools_different_arms_and_pairs_the_same_tasks(tmp_path) -> None:
    runs = tmp_path / "runs"
    with FakeOpenAI(good) as fake:
        for name, kw in {
            "none-s0": {"memory": "none", "seed": 0},
            "none-s1": {"memory": "none", "seed": 1},  # a replication of the same arm
            "random-k4": {"memory": "random", "k": 4},
            "random-k1": {"memory": "random", "k": 1},  # another arm: never pooled with k4
        }.items():
            await run_experiment(
                config(tmp_path, out=str(runs / name), **kw), settings=endpoint(fake), progress=False
            )
    rep = build_report([runs])
    labels = sorted(a.label for a in rep.arms)
    assert labels == [f"agent=direct memory={m}" for m in ("none k=4", "random k=1", "random k=4")]
    assert {a.label: len(a.runs) for a in rep.arms}["agent=direct memory=none k=4"] == 2
    none_vs = [c for c in rep.comparisons if c.b_label == "agent=direct memory=none k=4"]
    assert len(none_vs) == 2 and all(c.tasks == 2 and c.diff == 0.0 and c.p_value == 1.0 for c in none_vs)
    # a single run has an honest interval: here every task is solved, so it is the point 1.0
    assert all((p.ci_low, p.ci_high) == (1.0, 1.0) for p in rep.curves)
    assert [e.by_status for e in rep.errors] == [{"ok": 2}] * 4
    df = load_results([runs])
    assert df["arm"].n_unique() == 3 and df["measures"].unique().to_list() == ["recall"]

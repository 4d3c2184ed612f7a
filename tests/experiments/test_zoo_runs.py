"""Every memory method in a real run against a loopback endpoint: ``run --memory M``, maintenance
counted apart, resume and cassette replay reproducing the same memory states, a failed maintenance
call never scored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from loopback import FakeOpenAI, completion
from support import QUESTIONS, asked, config, endpoint

from memento_lab.experiments.results import read_rows
from memento_lab.experiments.run import run_experiment
from memento_lab.experiments.run_memory import load_run_memory
from memento_lab.memory.methods.base import MemoryMethod
from memento_lab.memory.methods.registry import method_names

METHODS = [n for n in method_names() if n != "parametric"]  # parametric needs a trained checkpoint
REPLIES = {  # the memory role's scripted answers, by what its prompt asks for
    "EXISTING RULES": "ADD 1: Check the code word twice.\nAGREE 1: Check the code word twice.",
    "Summary Workflows": "## Look up a code word\n  Step 1: find the name\n  Step 2: answer its code word",
    "Write each item exactly in this Markdown form": "# Memory Item 1\n## Title Read the name\n"
    "## Description Code word lookups.\n## Content Find the name in the question, then its code word.",
    "You keep a CHEATSHEET": "Fine.\n<cheatsheet>\n<memory_item>Find the name, then its code word.</memory_item>\n</cheatsheet>",
    "Diagnose an agent's attempt": json.dumps(
        {
            "reasoning": "r",
            "key_insight": "read the name",
            "bullet_tags": [{"id": "ctx-00001", "tag": "helpful"}],
        }
    ),
    "You curate a PLAYBOOK": json.dumps(
        {
            "reasoning": "r",
            "operations": [{"type": "ADD", "section": "others", "content": "Read the name first."}],
        }
    ),
}
CALLS_MODEL = {"expel", "awm", "reasoningbank", "dc-cu", "dc-rs", "ace"}  # the methods that call their model
CALLS_AT_READ = {"dc-rs"}  # ... when it reads (DC-RS's curator writes each task's cheatsheet before it)


def tokens(text: str) -> list[int]:
    return list(range(len(text) // 4))


def zoo_model(fail_memory: bool = False, replies: dict[str, str] | None = None):
    """The agent knows Zeta's code word, and Omega's only when its prompt shows it (a function of the
    request alone, like a model at temperature 0: replay needs that); the memory role answers from
    ``REPLIES`` updated with ``replies`` (or fails with HTTP 500: ``fail_memory``)."""
    scripted = {**REPLIES, **(replies or {})}

    def handle(body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        text = "\n".join(str(m.get("content", "")) for m in body["messages"])
        for marker, reply in scripted.items():
            if marker in text:
                return (
                    (500, {"error": {"message": "down"}}, {}) if fail_memory else (200, completion(reply), {})
                )
        question = asked(body)
        wrong = question.endswith("Omega?") and "basalt" not in text
        return 200, completion(json.dumps({"final_answer": "granite" if wrong else QUESTIONS[question]})), {}

    return handle


def state(method: MemoryMethod) -> list[tuple[str, str, str]]:
    """The memory's items, comparable across runs (a case's id is random: its content instead)."""
    if method.keeps == "cases":
        return sorted((i.kind, i.text, repr(sorted(i.data.items()))) for i in method.items())
    return [(i.id, i.text, repr(sorted(i.data.items()))) for i in method.items()]


def ops(method: MemoryMethod) -> list[list[str]]:
    return [
        [f"{o.op}:{o.id if method.keeps != 'cases' else o.after.text if o.after else ''}" for o in w.ops]
        for w in method.history()
    ]


async def run(tmp_path: Path, name: str, out: str, *, fake: FakeOpenAI, **kw: Any):
    cfg = config(tmp_path, memory=name, iterations=2, out=str(tmp_path / out), **kw)
    return cfg, await run_experiment(cfg, settings=endpoint(fake), progress=False)


@pytest.mark.anyio
@pytest.mark.parametrize("name", METHODS)
async def test_every_method_runs_against_an_endpoint(tmp_path: Path, name: str) -> None:
    with FakeOpenAI(zoo_model(), tokenize=tokens) as fake:
        _, result = await run(tmp_path, name, "run", fake=fake)
    rows = read_rows(tmp_path / "run")
    assert result.status_counts == {"ok": 4} and {r.memory for r in rows} == {name}
    assert result.accuracy_by_iteration[0] == 0.5  # Omega fails first, whatever the memory
    method = load_run_memory(tmp_path / "run")
    assert method.name == name and method.version >= 4  # every episode written (a policy may add more)
    history = method.history()
    maintenance = sum(w.usage.total_tokens for w in history)
    counted = sum(r.maintenance_prompt_tokens + r.maintenance_completion_tokens for r in rows)
    if name in CALLS_AT_READ:  # the rows count the reads' calls too (the op log keeps the writes')
        assert counted > maintenance and sum(r.maintenance_calls for r in rows) > 0
    else:
        assert counted == maintenance
        assert sum(r.maintenance_calls for r in rows) == sum(len(w.calls) for w in history)
    if name in CALLS_MODEL:
        assert counted > 0
        memory_calls = [b for b in fake.requests if any(m in json.dumps(b) for m in REPLIES)]
        assert len(memory_calls) == sum(r.maintenance_calls for r in rows)
    assert [r.maintenance_unusable for r in rows] == [0] * len(rows)  # every scripted reply is usable
    later = [r for r in rows if r.iteration == 1]
    assert all(r.memory_version_after is not None for r in rows)
    if name != "none":
        assert any(r.n_retrieved > 0 for r in later)  # the second pass saw memory


@pytest.mark.anyio
@pytest.mark.parametrize("name", [n for n in METHODS if n != "none"])  # every method with a memory
async def test_resume_and_replay_reproduce_the_memory_states(tmp_path: Path, name: str) -> None:
    with FakeOpenAI(zoo_model(), tokenize=tokens) as fake:
        cfg, _ = await run(tmp_path, name, "full", fake=fake, cassette="record")
    full = load_run_memory(tmp_path / "full")
    with FakeOpenAI(zoo_model(), tokenize=tokens) as fake:  # one iteration, then resumed to two
        part = config(tmp_path, memory=name, iterations=1, out=str(tmp_path / "resumed"))
        await run_experiment(part, settings=endpoint(fake), progress=False)
        await run_experiment(
            part.model_copy(update={"iterations": 2}), settings=endpoint(fake), progress=False
        )
    resumed = load_run_memory(tmp_path / "resumed")
    assert state(resumed) == state(full) and ops(resumed) == ops(full)
    # replay: the recorded cassette, no live call (the endpoint fails everything)
    (tmp_path / "replayed").mkdir()
    shutil.copy(tmp_path / "full" / "cassette.sqlite", tmp_path / "replayed" / "cassette.sqlite")
    with FakeOpenAI(lambda body: (500, {"error": {"message": "no live calls"}}, {})) as dead:
        replay = cfg.model_copy(
            update={"out": str(tmp_path / "replayed"), "cassette": "replay", "run_id": None}
        )
        result = await run_experiment(replay, settings=endpoint(dead), progress=False)
        assert not dead.requests
    assert result.status_counts == {"ok": 4}
    replayed = load_run_memory(tmp_path / "replayed")
    assert state(replayed) == state(full) and ops(replayed) == ops(full)
    for v in range(full.version + 1):  # and every version between
        assert state(replayed.at(v)) == state(full.at(v))


@pytest.mark.anyio
async def test_a_failed_maintenance_call_is_never_scored_and_is_retried(tmp_path: Path) -> None:
    with FakeOpenAI(zoo_model(fail_memory=True), tokenize=tokens) as fake:
        cfg, result = await run(tmp_path, "awm", "run", fake=fake)
    rows = read_rows(tmp_path / "run")
    failed = [r for r in rows if r.status == "memory_error"]
    assert failed and all("memory" in (r.error or "") for r in failed)
    assert result.status_counts.get("memory_error") == len(failed)
    method = load_run_memory(tmp_path / "run")
    assert method.items("workflow") == []  # nothing of a failed write stayed
    with FakeOpenAI(zoo_model(), tokenize=tokens) as fake:  # resumed: the failed attempts again
        again = await run_experiment(cfg, settings=endpoint(fake), progress=False)
    assert again.unresolved == 0
    assert load_run_memory(tmp_path / "run").items("workflow")


@pytest.mark.anyio
async def test_curator_replies_thrown_away_are_priced_as_unusable(tmp_path: Path) -> None:
    """A curator that never writes a cheatsheet block costs its tokens and changes nothing: the rows
    and the report say so, beside the arm whose curator's replies were all usable."""
    from memento_lab.experiments.report import build_report

    lost, kept = "I would keep everything as it is.", REPLIES["You keep a CHEATSHEET"]
    for out, reply, words in (("lost", lost, 300), ("kept", kept, 200)):  # two arms: their options differ
        with FakeOpenAI(zoo_model(replies={"You keep a CHEATSHEET": reply}), tokenize=tokens) as fake:
            await run(tmp_path, "dc-cu", out, fake=fake, memory_options={"sheet_words": words})
    rows = read_rows(tmp_path / "lost")
    assert [r.maintenance_unusable for r in rows] == [r.maintenance_calls for r in rows] == [1] * 4
    assert load_run_memory(tmp_path / "lost").cheatsheet() == "(empty)"  # type: ignore[attr-defined]
    report = build_report([tmp_path / "lost", tmp_path / "kept"])
    shares = {p.label: p.maintenance_unusable for p in report.prices}
    assert len(shares) == 2 and sorted(shares.values()) == [0.0, 1.0]


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["expel", "awm-rule"])
async def test_the_transfer_protocol_never_writes_the_test_stream(tmp_path: Path, name: str) -> None:
    from memento_lab.experiments.results import load_results

    with FakeOpenAI(zoo_model(), tokenize=tokens) as fake:
        await run(tmp_path, name, "run", fake=fake, protocol="transfer", test_fraction=0.5)
    rows = read_rows(tmp_path / "run")
    train, test = [r for r in rows if r.split == "train"], [r for r in rows if r.split == "test"]
    assert len(train) == len(test) == 2
    assert all(r.memory_version_after is None and r.maintenance_calls == 0 for r in test)
    history = load_run_memory(tmp_path / "run").history()
    assert [(w.task_id, w.iteration) for w in history] == [(r.task_id, r.iteration) for r in train]
    measures = load_results([tmp_path / "run"]).select("split", "measures").unique().sort("split").rows()
    assert measures == [("test", "transfer"), ("train", "recall")]


def test_the_zoo_example_sweep_builds_every_method_with_its_own_options(tmp_path: Path) -> None:
    import tomllib

    from support import ROOT

    from memento_lab.cli.experiments import build_config
    from memento_lab.experiments.run_memory import open_run_memory
    from memento_lab.experiments.sweep import sweep_configs

    data = tomllib.loads((ROOT / "examples" / "zoo.toml").read_text())
    grid = data.pop("sweep")
    base = build_config({**data, "out": str(tmp_path / "zoo")}, source="examples/zoo.toml")
    configs = sweep_configs(base, **grid)
    assert [c.memory for c in configs] == grid["memories"]
    methods = {c.memory: open_run_memory(c, Path(c.out)).method for c in configs}
    assert methods["expel"].options.success_every == 4  # type: ignore[attr-defined]
    assert methods["awm"].options.samples_per_template == 1  # type: ignore[attr-defined]  # not expel's
    with pytest.raises(ValueError, match="memory 'similarity' takes no memory options"):
        open_run_memory(configs[1].model_copy(update={"memory_options": {"k": 2}}), tmp_path / "x")


def test_a_sweep_keeps_the_case_options_with_the_case_memories(tmp_path) -> None:
    """A base made for Memento's cases (a checkpoint, a bank policy) sweeps over every method: the case
    memories keep those options, another method gets the defaults; a swept case option is refused there."""
    from memento_lab.experiments.config import ExperimentConfig
    from memento_lab.experiments.sweep import sweep_configs

    base = ExperimentConfig(
        suite="reasoning-gym:chain_sum", checkpoint="q.ckpt", bank_policy="one-per-task", out=str(tmp_path)
    )
    configs = {
        c.memory: c for c in sweep_configs(base, memories=["parametric", "expel", "dc-cu"], orders=[0])
    }
    assert (configs["parametric"].checkpoint, configs["parametric"].bank_policy) == ("q.ckpt", "one-per-task")
    for name in ("expel", "dc-cu"):
        assert (configs[name].checkpoint, configs[name].bank_policy) == (None, "keep-all")
    with pytest.raises(ValueError, match="bank_policy only apply to the case memories"):
        sweep_configs(base, memories=["expel"], orders=[0], vary={"bank_policy": ["one-per-task"]})

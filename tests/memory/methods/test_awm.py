"""Agent Workflow Memory with a scripted memory model: induction from successes only, workflows replaced
by name (added, edited, removed), one example per template, the rule variant's selection."""

from __future__ import annotations

import dataclasses
import random

import pytest
from zoo_support import ScriptedModel, Task, episode, feedback

from memento_lab.memory.methods.awm import (
    AWM,
    AWMRule,
    abstract_trajectory,
    parse_workflows,
    sample_per_template,
)
from memento_lab.memory.methods.base import MemoryEnv, MemoryItem
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.trace import ExecStep, ToolCall

FIND = "## Find a letter\n  Step 1: spell {word}\n  Step 2: count {letter}"
SUM = "## Add numbers\n  Step 1: list them\n  Step 2: add them up"


def setup(tmp_path, encoder, **options) -> MethodSetup:
    return MethodSetup(folder=tmp_path / "memory", k=2, encoder=encoder, options=options, seed=3)


def test_parse_workflows_keeps_named_blocks_and_drops_the_worked_example() -> None:
    reply = "\n".join(
        [
            "Here are the workflows.",
            "## Summary Workflows",
            FIND,
            "",
            "## Look up a price in the catalog",  # echoes the worked example: left out
            "  Step 1: search_catalog",
            SUM,
            "## Empty",
        ]
    )
    got = parse_workflows(reply, marker="catalog")
    assert [name for name, _ in got] == ["Find a letter", "Add numbers"]
    assert got[0][1] == FIND
    assert parse_workflows("no headings at all") == []


@pytest.mark.anyio
async def test_induction_from_successes_replaces_workflows_by_name(tmp_path, encoder) -> None:
    queue = [f"{FIND}\n{SUM}", f"{FIND}\n  Step 3: check\n## Sort numbers\n  Step 1: sort\n  Step 2: answer"]
    model = ScriptedModel(lambda m: queue.pop(0))
    method = AWM(setup(tmp_path, encoder))
    env = MemoryEnv(chat=model)
    for ep in (
        episode("t1", "How many r are in strawberry?", "3", 1.0),
        episode("t2", "What is 2 + 3?", "6", 0.0),  # a failure: nothing induced
        episode("t3", "What is 4 + 4?", "8", 1.0, family="sums"),
    ):
        await method.write(ep, feedback(ep), env)
    assert len(model.requests) == 2
    second = model.requests[1][0]["content"]
    assert "strawberry" in second and "4 + 4" in second and "2 + 3" not in second  # successes only
    changes = [
        [
            (o.op, o.after.data.get("name") if o.after else o.before.data["name"])
            for o in w.ops
            if o.after is None or o.after.kind == "workflow"
        ]
        for w in method.history()
    ]  # type: ignore[union-attr]
    assert changes == [
        [("add", "Find a letter"), ("add", "Add numbers")],
        [],
        [("edit", "Find a letter"), ("add", "Sort numbers"), ("remove", "Add numbers")],
    ]
    assert [i.data["name"] for i in method.items("workflow")] == ["Find a letter", "Sort numbers"]
    block = await method.read(Task("t9", "How many e are in cheese?"), env)
    assert block.text.startswith("Workflows that solved earlier tasks")
    assert [s.kind for s in block.items] == ["workflow", "workflow"]
    assert block.items[0].id == method.items("workflow")[0].id  # the letter workflow is the closest


@pytest.mark.anyio
async def test_an_unusable_reply_keeps_the_workflows(tmp_path, encoder) -> None:
    queue = [FIND, "I cannot help with that."]
    method = AWM(setup(tmp_path, encoder))
    env = MemoryEnv(chat=ScriptedModel(lambda m: queue.pop(0)))
    writes = []
    for i in range(2):
        ep = episode(f"t{i}", f"How many r are in word{i}?", "1", 1.0)
        writes.append(await method.write(ep, feedback(ep), env))
    assert [i.data["name"] for i in method.items("workflow")] == ["Find a letter"]
    assert len(method.items("example")) == 2
    assert [c.error_kind for w in writes for c in w.calls] == [None, "model_output"]  # counted, not used


def test_one_example_per_template_seeded() -> None:
    items = [MemoryItem(id=f"e{i}", kind="example", data={"template": "ab"[i % 2]}, seq=i) for i in range(6)]
    picked = sample_per_template(items, 1, random.Random("3:1"))
    assert sorted(i.data["template"] for i in picked) == ["a", "b"]
    assert picked == sample_per_template(items, 1, random.Random("3:1"))  # the same seed, the same draw
    assert len(sample_per_template(items, 2, random.Random(0))) == 4


def test_the_abstract_trajectory_keeps_actions_and_first_arguments() -> None:
    ep = episode("t1", "q", "4", 1.0)
    assert abstract_trajectory(ep) == "answer"
    ep.steps = [
        ExecStep(
            cycle=0,
            step_id=1,
            description="compute",
            tool_calls=[ToolCall(server="code", name="run_python", arguments={"code": "print(2+2)", "t": 5})],
        )
    ]
    assert abstract_trajectory(ep) == "run_python(print(2+2))_answer"


@pytest.mark.anyio
async def test_the_rule_variant_keeps_one_example_per_template_and_trajectory(tmp_path, encoder) -> None:
    method = AWMRule(setup(tmp_path, encoder))
    env = MemoryEnv()
    eps = [
        episode("t1", "How many r are in strawberry?", "3", 1.0, family="letters"),
        episode("t2", "How many e are in cheese?", "3", 1.0, family="letters"),
        episode("t3", "What is 4 + 4?", "8", 1.0, family="sums"),
        episode("t4", "What is 2 + 3?", "6", 0.0, family="sums"),
    ]
    for ep in eps:
        await method.write(ep, feedback(ep), env)
    chosen = [i for i in method.items("example") if i.data.get("selected")]
    assert len(method.items("example")) == 3  # the failure is not an example
    assert len(chosen) == 1  # two templates, but tool-less episodes share one abstract trajectory
    block = await method.read(Task("t9", "How many o are in balloon?"), env)
    assert [s.id for s in block.items] == [chosen[0].id] and block.text.startswith("Examples of solved tasks")
    excluded = AWMRule(dataclasses.replace(setup(tmp_path, encoder), exclude_question=True))
    own = await excluded.read(Task("tx", chosen[0].question or ""), env)
    assert own.items == []  # exclude_question: never its own question

"""ACE's loop with a scripted reflector and curator: the bullets the agent used go to the reflector, its
tags move the counters, the curator's operations change the playbook, near-duplicates merge, the
curator runs every ``curator_every`` episodes, and a budget keeps the bullets most similar to the task."""

from __future__ import annotations

import json
from typing import Any

import pytest
from zoo_support import GOLD, ScriptedModel, Task, episode

from memento_lab.agent.memory_slot import read_memory, write_memory
from memento_lab.memory.methods.ace import ACE, cited_ids
from memento_lab.memory.methods.base import MemoryEnv
from memento_lab.memory.methods.registry import make_method
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.trace import Trace

LETTERS = "Spell the word letter by letter before counting a letter."
SUMS = "Add the units first, then carry to the tens."


def reflection(*tags: tuple[str, str]) -> dict[str, Any]:
    fields = ("reasoning", "error_identification", "root_cause_analysis", "correct_approach", "key_insight")
    return {**{f: f"the {f}" for f in fields}, "bullet_tags": [{"id": i, "tag": t} for i, t in tags]}


def scripted(reflections: list[dict[str, Any]], curations: list[list[dict[str, Any]]]) -> ScriptedModel:
    """The reflector's and the curator's replies, in order (told apart by their system prompts)."""
    refl, cur = iter(reflections), iter(curations)

    def answer(messages: list[dict[str, Any]]) -> str:
        system = messages[0]["content"]
        if "expert analyst" in system:
            return json.dumps(next(refl, reflection()))
        if "PLAYBOOK" in system:
            return json.dumps({"reasoning": "r", "operations": next(cur, [])})
        return "merged text"

    return ScriptedModel(answer)


def ace(encoder, **options: Any) -> ACE:
    method = make_method("ace", MethodSetup(encoder=encoder, options=options))
    assert isinstance(method, ACE)
    return method


def add(section: str, content: str) -> dict[str, Any]:
    return {"type": "ADD", "section": section, "content": content}


async def run(method: ACE, env: MemoryEnv, trace: Trace, task: Task | None = None) -> Trace:
    """One episode as the agent makes it: read (what was shown lands in the trace), then write."""
    await read_memory(method, task or Task(trace.task_id, trace.question), trace, env)
    await write_memory(method, trace, env)
    return trace


def ask_of(model: ScriptedModel, kind: str) -> list[str]:
    """The user messages of the reflector ("expert analyst") or curator ("PLAYBOOK") calls."""
    return [r[1]["content"] for r in model.requests if kind in r[0]["content"]]


@pytest.mark.anyio
async def test_reflector_tags_the_cited_bullets_and_the_curator_changes_the_playbook(encoder) -> None:
    model = scripted(
        [reflection(), reflection(("err-00001", "helpful"), ("calc-00002", "harmful"))],
        [
            [add("common_mistakes_to_avoid", LETTERS), add("formulas_and_calculations", SUMS)],
            [
                {"type": "UPDATE", "bullet_id": "calc-00002", "content": SUMS + " Check the carry."},
                {"type": "DELETE", "bullet_id": "err-00042"},  # no such bullet: rejected, the rest applies
            ],
        ],
    )
    method = ace(encoder)
    env = MemoryEnv(chat=model)
    first = await run(method, env, episode("t1", "How many r are in strawberry?", "3", 1.0))
    assert "Playbook bullets the agent had:\n(none)" in ask_of(model, "expert analyst")[0]
    assert [b.id for b in method.playbook().bullets] == ["err-00001", "calc-00002"]
    assert first.memory_ops == {"add": 2, "state": 1} and len(first.memory_calls) == 2

    second = episode("t2", "How many e are in cheese?", "3", 0.0)
    second.cycles[0].raw = "Following [err-00001] I spelled it: c-h-e-e-s-e, so 3."
    await run(method, env, second)
    assert [s.id for s in second.shown] == ["calc-00002", "err-00001"]  # playbook (section) order
    asked = ask_of(model, "expert analyst")[1]
    assert "[err-00001] helpful=0 harmful=0 :: " + LETTERS in asked and "calc-00002" not in asked
    assert "judged wrong (reward 0.00)" in asked and GOLD not in model.seen()
    book = method.playbook()
    assert [(b.id, b.helpful, b.harmful) for b in book.bullets] == [("err-00001", 1, 0), ("calc-00002", 0, 0)]
    assert book.get("calc-00002").content.endswith("Check the carry.")  # type: ignore[union-attr]
    assert method.state["rejected_operations"] == 1 and method.state["cited"] == 1
    assert second.memory_ops == {"tag": 1, "update": 1, "state": 1}
    curated = ask_of(model, "PLAYBOOK")[1]
    assert '"total_bullets": 2' in curated and "key_insight: the key_insight" in curated


@pytest.mark.anyio
async def test_without_citations_every_shown_bullet_goes_to_the_reflector(encoder) -> None:
    model = scripted(
        [
            reflection(),
            reflection(("err-00001", "helpful"), ("calc-00002", "harmful"), ("xyz-00077", "harmful")),
        ],
        [[add("common_mistakes_to_avoid", LETTERS), add("formulas_and_calculations", SUMS)]],
    )
    method = ace(encoder)
    env = MemoryEnv(chat=model)
    await run(method, env, episode("t1", "How many r are in strawberry?", "3", 1.0))
    await run(method, env, episode("t2", "How many e are in cheese?", "3", 1.0))
    assert (
        "err-00001" in ask_of(model, "expert analyst")[1]
        and "calc-00002" in ask_of(model, "expert analyst")[1]
    )
    assert [(b.helpful, b.harmful) for b in method.playbook().bullets] == [(1, 0), (0, 1)]  # xyz- ignored


@pytest.mark.anyio
async def test_near_duplicates_merge_into_the_first_with_summed_counters(encoder) -> None:
    model = scripted(
        [reflection(), reflection(("err-00001", "helpful"))],
        [
            [add("common_mistakes_to_avoid", LETTERS)],
            [add("problem_solving_heuristics", LETTERS + " "), add("formulas_and_calculations", SUMS)],
        ],
    )
    method = ace(encoder)
    env = MemoryEnv(chat=model)
    await run(method, env, episode("t1", "How many r are in strawberry?", "3", 1.0))
    second = await run(method, env, episode("t2", "How many e are in cheese?", "3", 1.0))
    book = method.playbook()
    assert [b.id for b in book.bullets] == ["err-00001", "calc-00003"] and book.next_id == 4
    assert book.bullets[0].content == LETTERS and book.bullets[0].helpful == 1
    merge = [op for w in method.history() for op in w.ops if op.op == "merge"]
    assert len(merge) == 1 and merge[0].note == "dedupe" and [m.id for m in merge[0].merged] == ["prob-00002"]
    assert second.memory_ops == {"tag": 1, "add": 2, "merge": 1, "state": 1}
    kept = ace(encoder, dedupe=False)
    await run(
        kept,
        MemoryEnv(chat=scripted([], [[add("others", LETTERS), add("others", LETTERS)]])),
        episode("t1", "q?", "a", 1.0),
    )
    assert len(kept.playbook().bullets) == 2  # grow-and-refine off: both stay


@pytest.mark.anyio
async def test_curator_every_n_episodes_and_unusable_replies_change_nothing(encoder) -> None:
    model = scripted([], [[add("others", LETTERS)], [{"type": "ADD"}]])
    method = ace(encoder, curator_every=2)
    env = MemoryEnv(chat=model)
    for i in range(4):
        await run(method, env, episode(f"t{i}", f"How many r are in word {i}?", "1", 1.0))
    assert len(ask_of(model, "expert analyst")) == 4 and len(ask_of(model, "PLAYBOOK")) == 2
    assert "Progress: task 2 of the stream" in ask_of(model, "PLAYBOOK")[0]
    assert len(method.playbook().bullets) == 1 and method.state["rejected_operations"] == 1
    junk = ace(encoder)
    ep = await run(junk, MemoryEnv(chat=ScriptedModel("no JSON at all")), episode("t1", "q?", "a", 1.0))
    assert junk.playbook().bullets == [] and junk.state["unusable_curations"] == 1
    assert ep.maintenance_unusable == 2  # the reflector's reply and the curator's, both thrown away


@pytest.mark.anyio
async def test_gold_reaches_the_reflector_only_in_the_gold_variant(encoder) -> None:
    model = scripted([], [])
    method = ace(encoder)
    env = MemoryEnv(chat=model)
    await write_memory(method, episode("t1", "q?", "a", 0.0), env, feedback="gold")
    assert f"Correct answer:\n{GOLD}" in ask_of(model, "expert analyst")[0]
    await write_memory(method, episode("t2", "q2?", "a", 0.0), env)
    assert GOLD not in ask_of(model, "expert analyst")[1]


@pytest.mark.anyio
async def test_budget_keeps_the_most_similar_bullets_in_playbook_order(encoder) -> None:
    contents = [
        ("formulas_and_calculations", SUMS),
        ("others", "Answer dates in ISO format, year first."),
        ("common_mistakes_to_avoid", LETTERS),
        ("others", "Family relations: the father of a father is a grandfather."),
    ]
    method = ace(encoder)
    env = MemoryEnv(chat=scripted([], [[add(s, c) for s, c in contents]]))
    await write_memory(method, episode("t0", "q?", "a", 1.0), env)
    task = Task("t1", "How many letters s are in the word mississippi?")
    full = await method.read(task, MemoryEnv())
    assert len(full.items) == 4 and full.text.startswith("PLAYBOOK") and "mention its id" in full.text
    capped = await method.read(task, MemoryEnv(max_tokens=full.tokens - 20))
    shown = [s.id for s in capped.items]
    assert capped.tokens <= full.tokens - 20 and "err-00003" in shown and len(shown) < 4
    assert shown == [i for i in [s.id for s in full.items] if i in shown]  # still in playbook order


def test_cited_ids_are_read_from_the_agents_replies() -> None:
    trace = episode("t1", "q?", "see [err-00001] and calc-00002, not x-1", 1.0)
    trace.cycles[0].raw = "I used [prob-00010]."
    assert cited_ids(trace) == ["prob-00010", "err-00001", "calc-00002"]

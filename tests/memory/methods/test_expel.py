"""ExpeL on a stream with a scripted memory model: which attempts a critique compares, when the success
critique runs, insight counts through the memory's ops, and what a read shows."""

from __future__ import annotations

import pytest
from zoo_support import ScriptedModel, Task, episode, feedback

from memento_lab.memory.methods.base import MemoryEnv
from memento_lab.memory.methods.expel import Expel
from memento_lab.memory.methods.setup import MethodSetup

A = "Check every letter twice."
B = "Spell the word out first."


def expel(tmp_path, encoder, **options) -> Expel:
    return Expel(MethodSetup(folder=tmp_path / "memory", k=2, encoder=encoder, options=options))


def replies(*texts: str) -> ScriptedModel:
    queue = list(texts)
    return ScriptedModel(lambda messages: queue.pop(0) if queue else "")


async def feed(method: Expel, model: ScriptedModel, *episodes) -> None:
    for ep in episodes:
        await method.write(ep, feedback(ep), MemoryEnv(chat=model))


def insights(method: Expel) -> list[tuple[str, int]]:
    return [(i.text, i.data["count"]) for i in method.insights()]


@pytest.mark.anyio
async def test_a_failure_is_compared_with_the_success_of_its_own_task(tmp_path, encoder) -> None:
    model = replies(f"ADD 1: {A}")
    m = expel(tmp_path, encoder)
    await feed(
        m,
        model,
        episode("t1", "How many r are in strawberry?", "3", 1.0),
        episode("t2", "How many r are in raspberry?", "3", 1.0),  # more similar to nothing in particular
        episode("t1", "How many r are in strawberry?", "2", 0.0, iteration=1),
    )
    assert len(model.requests) == 1  # two successes (< success_every) and one failure
    prompt = model.requests[0][1]["content"]
    success = prompt.split("SUCCESSFUL ATTEMPT:")[1].split("\nFAILED ATTEMPT:")[0]
    assert "strawberry" in success and "Answer: 3" in success and "raspberry" not in success
    assert "Answer: 2" in prompt.split("\nFAILED ATTEMPT:")[1]
    assert "(none yet)" in prompt  # no rules yet
    assert insights(m) == [(A, 2)]  # ADD starts at 2


@pytest.mark.anyio
async def test_a_failure_before_any_success_is_only_counted(tmp_path, encoder) -> None:
    model = replies()
    m = expel(tmp_path, encoder)
    await feed(m, model, episode("t1", "How many r are in strawberry?", "2", 0.0))
    assert model.requests == [] and m.state["unpaired"] == 1 and m.items() == []


@pytest.mark.anyio
async def test_a_failure_of_a_new_task_meets_the_most_similar_success(tmp_path, encoder) -> None:
    model = replies("")
    m = expel(tmp_path, encoder)
    await feed(
        m,
        model,
        episode("t1", "What is the capital of France?", "Paris", 1.0),
        episode("t2", "How many r are in strawberry?", "3", 1.0),
        episode("t3", "How many r are in cranberry?", "1", 0.0),
    )
    success = model.requests[0][1]["content"].split("SUCCESSFUL ATTEMPT:")[1].split("\nFAILED ATTEMPT:")[0]
    assert "strawberry" in success and "France" not in success


@pytest.mark.anyio
async def test_the_success_critique_reads_every_few_successes(tmp_path, encoder) -> None:
    model = replies(f"ADD 1: {A}", f"AGREE 1: {A}\nADD 2: {B}")
    m = expel(tmp_path, encoder, success_every=2)
    eps = [episode(f"t{i}", f"How many r are in word{i}?", "1", 1.0) for i in range(5)]
    await feed(m, model, *eps)
    assert len(model.requests) == 2  # after the 2nd and the 4th success; the 5th is pending
    first = model.requests[0][1]["content"]
    assert "word0" in first and "word1" in first and "word2" not in first
    assert "Here are the attempts:" in first and m.state["pending"] == ["trajectory-7"]  # ids: kind-seq
    assert insights(m) == [(A, 3), (B, 2)]


@pytest.mark.anyio
async def test_counts_edits_and_deletion_through_the_memory_ops(tmp_path, encoder) -> None:
    model = replies(
        f"ADD 1: {A}\nADD 2: {B}",
        "EDIT 2: Spell the word out letter by letter.",
        "REMOVE 1: Check every letter twice.\nREMOVE 2: Spell the word out letter by letter.",
        "REMOVE 1: Check every letter twice.",
    )
    m = expel(tmp_path, encoder, success_every=1)
    eps = [episode(f"t{i}", f"How many r are in word{i}?", "1", 1.0) for i in range(4)]
    await feed(m, model, *eps)
    history = [[(o.op, o.id) for o in w.ops if o.op != "state"] for w in m.history()]
    assert history[0][1:] == [("add", "insight-2"), ("add", "insight-3")]
    assert history[1][1:] == [("edit", "insight-3")]  # count 3, text changed
    assert history[2][1:] == [("remove", "insight-2"), ("remove", "insight-3")]  # 2 -> 1, 3 -> 2
    assert history[3][1:] == [("remove", "insight-2"), ("delete", "insight-2")]  # 1 -> 0: gone
    assert insights(m) == [("Spell the word out letter by letter.", 2)]
    assert [i.text for i in m.at(2).insights()] == [B.replace("first", "letter by letter"), A]  # by count


@pytest.mark.anyio
async def test_a_full_list_removes_by_three_and_asks_to_remove_first(tmp_path, encoder) -> None:
    rules = [f"Rule number {n} holds." for n in range(6)]
    model = replies("\n".join(f"ADD {n}: {r}" for n, r in enumerate(rules, 1)), f"REMOVE 1: {rules[0]}")
    m = expel(tmp_path, encoder, success_every=1, max_num_rules=1)  # full at 1 + 5 = 6 rules
    await feed(m, model, *(episode(f"t{i}", f"Question {i}?", "1", 1.0) for i in range(2)))
    assert "Focus on REMOVE first" in model.requests[1][1]["content"]
    assert len(insights(m)) == 5 and rules[0] not in [t for t, _ in insights(m)]  # 2 - 3 < 0: deleted


@pytest.mark.anyio
async def test_a_read_shows_insights_then_similar_successes_never_the_task_itself(tmp_path, encoder) -> None:
    model = replies(f"ADD 1: {A}\nADD 2: {B}\nAGREE 1: {B}", f"AGREE 2: {B}")
    m = expel(tmp_path, encoder, success_every=2)
    await feed(
        m,
        model,
        episode("t1", "How many r are in strawberry?", "3", 1.0),
        episode("t2", "What is the capital of France?", "Paris", 1.0),
        episode("t3", "How many r are in cranberry?", "2", 1.0),
        episode("t1", "How many r are in strawberry?", "3", 1.0, iteration=1),
    )
    block = await m.read(Task("t1", "How many r are in strawberry?"), MemoryEnv())
    kinds = [(s.kind, s.id) for s in block.items]
    assert kinds[:2] == [("insight", "insight-4"), ("insight", "insight-3")]  # B (3) before A (2)
    examples = [i for k, i in kinds if k == "trajectory"]
    assert examples and all(m.log.replay(m.version)[i].data["task_id"] != "t1" for i in examples)
    assert "cranberry" in block.text.split("Solved examples")[1].split("Task:")[1]  # most similar first
    # under a tight budget the examples go first, the insights stay
    small = await m.read(Task("t1", "How many r are in strawberry?"), MemoryEnv(max_tokens=40))
    assert [s.kind for s in small.items] == ["insight", "insight"] and small.tokens <= 40


@pytest.mark.anyio
async def test_a_critique_without_operations_is_counted_as_unusable(tmp_path, encoder) -> None:
    model = replies("Looks fine to me.", f"ADD 1: {A}")
    m = expel(tmp_path, encoder)
    ok = episode("t1", "How many r are in strawberry?", "3", 1.0)
    miss, again = (
        episode("t1", "How many r are in strawberry?", a, 0.0, iteration=i) for i, a in ((1, "2"), (2, "4"))
    )
    writes = [await m.write(ep, feedback(ep), MemoryEnv(chat=model)) for ep in (ok, miss, again)]
    assert [[c.error_kind for c in w.calls] for w in writes] == [[], ["model_output"], [None]]
    assert insights(m) == [(A, 2)]  # the unusable reply changed nothing; the next one applied

"""The memory-method contract, for every registered method: read, write, state round-trip, time travel,
the block's budget, maintenance tokens counted apart, no gold answer under judge feedback.

A method that calls its memory model gets a scripted reply from ``REPLIES`` (add yours there); a
method not listed gets an empty (unusable) reply, which it must handle as an outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_support import GOLD, ScriptedModel, Task, feedback, stream

from memento_lab.agent.memory_slot import write_memory
from memento_lab.memory.methods.base import MemoryEnv, MemoryMethod
from memento_lab.memory.methods.registry import make_method, method_names, method_spec
from memento_lab.memory.methods.setup import MethodSetup

REPLIES: dict[str, str] = {
    "expel": "ADD 1: Count the letters one by one before answering.\nAGREE 1: Count the letters one by one before answering.",
    "awm": "## Count a letter\nTo count {letter} in {word}:\n  Step 1: spell {word}\n  Step 2: count {letter}",
    "reasoningbank": "# Memory Item 1\n## Title Spell first\n## Description Letter counts.\n## Content Spell the word out, then count.",
    "dc-cu": "Looks right.\n<cheatsheet>\n<memory_item>Spell the word, then count the letter.</memory_item>\n</cheatsheet>",
    "dc-rs": "<cheatsheet>\n<memory_item>Spell the word, then count the letter.</memory_item>\n</cheatsheet>",
    # one JSON object serves the reflector (tags) and the curator (operations)
    "ace": '{"reasoning": "r", "key_insight": "spell first", "bullet_tags": [{"id": "err-00001", "tag": "helpful"}], '
    '"operations": [{"type": "ADD", "section": "common_mistakes_to_avoid", "content": "Spell the word before counting."}]}',
}
# parametric needs a trained retriever checkpoint: its read and write are Memento's (tests/memory/learned)
METHODS = [n for n in method_names() if n != "parametric"]


def make(name: str, folder: Path, encoder) -> MemoryMethod:
    sub = "bank" if method_spec(name).keeps == "cases" else "memory"
    return make_method(name, MethodSetup(folder=folder / sub, k=2, encoder=encoder))


def snapshot(method: MemoryMethod) -> list[tuple[str, str, str]]:
    return [(i.id, i.text, repr(sorted(i.data.items()))) for i in method.items()]


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel(lambda messages: "")


@pytest.mark.anyio
@pytest.mark.parametrize("name", METHODS)
async def test_contract(name: str, tmp_path: Path, encoder) -> None:
    model = ScriptedModel(REPLIES.get(name, ""))
    env = MemoryEnv(chat=model)
    method = make(name, tmp_path, encoder)
    assert method.name == name and method.version == 0
    block = await method.read(Task("t0", "How many r are in strawberry?"), env)
    assert block.version == 0 and not block.items

    states, versions = [], []
    for trace in stream():
        agent_usage = trace.usage
        await write_memory(method, trace, env)  # the agent's own call: feedback from the judge
        assert trace.usage == agent_usage  # maintenance tokens never count as the agent's
        assert all(c.role == "memory" for c in trace.memory_calls)
        assert trace.maintenance.total_tokens == sum(c.usage.total_tokens for c in trace.memory_calls)
        assert trace.memory_version_after == method.version
        versions.append(method.version)
        states.append(snapshot(method))
    assert versions == sorted(versions) and versions[-1] > 0
    assert GOLD not in model.seen()  # the gold answer never reaches the memory model ...
    assert all(GOLD not in text + data for _, text, data in snapshots_of(method))  # ... nor the memory

    # the history replays to the same items; a past version is what the memory held then
    history = method.history()
    assert [w.version for w in history][-1] == method.version
    for version, state in zip(versions, states, strict=True):
        past = method.at(version)
        assert snapshot(past) == state and past.version == version
        with pytest.raises(PermissionError):
            await past.write(stream()[0], feedback(stream()[0]), env)
    assert snapshot(method.at(0)) == []

    # state round-trip: the folder opened again (resume) holds the same memory
    again = make(name, tmp_path, encoder)
    assert again.version == method.version and snapshot(again) == snapshot(method)

    # the block: read again, and capped by the budget
    task = Task("t9", "How many r are in carrot?")
    full = await method.read(task, env)
    assert full.version == method.version and full.size == len(method.items())
    assert {s.id for s in full.items} <= {i.id for i in method.items()}
    if full.text:
        budget = max(1, full.tokens // 2)
        capped = await method.read(task, MemoryEnv(chat=model, max_tokens=budget))
        assert capped.tokens <= budget
        assert {s.id for s in capped.items} <= {s.id for s in full.items}


def snapshots_of(method: MemoryMethod) -> list[tuple[str, str, str]]:
    return [(i.id, i.text, repr(i.data)) for i in method.items()]

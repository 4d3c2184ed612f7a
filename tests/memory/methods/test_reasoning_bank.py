"""ReasoningBank's rules with a scripted memory model: one extraction per episode (the success or the
failure prompt), at most 3 items appended as one record, the most similar record's items shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_support import GOLD, ScriptedModel, Task, episode

from memento_lab.agent.memory_slot import write_memory
from memento_lab.memory.methods.base import MemoryEnv
from memento_lab.memory.methods.reasoning_bank import MAX_ITEMS, ReasoningBank, parse_items
from memento_lab.memory.methods.registry import make_method
from memento_lab.memory.methods.setup import MethodSetup


def items_reply(*titles: str) -> str:
    return "\n\n".join(
        f"# Memory Item {n}\n## Title {t}\n## Description When {t.lower()} applies.\n## Content Do {t.lower()}."
        for n, t in enumerate(titles, 1)
    )


def bank(folder: Path | None, encoder, **options) -> ReasoningBank:
    method = make_method("reasoningbank", MethodSetup(folder=folder, encoder=encoder, options=options))
    assert isinstance(method, ReasoningBank)
    return method


def test_parse_keeps_at_most_three_items_with_content() -> None:
    reply = "Why it worked: spelled it out.\n" + items_reply("A", "B", "C", "D")
    assert [i["title"] for i in parse_items(reply)] == ["A", "B", "C"]
    assert len(parse_items(reply)) == MAX_ITEMS
    no_content = "# Memory Item 1\n## Title Lonely\n## Description Nothing to do."
    assert parse_items(no_content) == []
    wrapped = "```\n# Memory Item 1\n## Title T\n## Description D\n## Content first line\ncontinued here\n```"
    assert parse_items(wrapped) == [
        {"title": "T", "description": "D", "content": "first line continued here"}
    ]


@pytest.mark.anyio
async def test_success_and_failure_prompts_and_one_record_per_episode(encoder) -> None:
    model = ScriptedModel(items_reply("Spell first", "Count twice"))
    method = bank(None, encoder)
    env = MemoryEnv(chat=model)
    win = episode("t1", "How many r are in strawberry?", "3", 1.0)
    loss = episode("t2", "How many s are in mississippi?", "2", 0.0)
    await write_memory(method, win, env)
    await write_memory(method, loss, env)
    system = [req[0]["content"] for req in model.requests]
    assert "solved it correctly" in system[0] and "got it wrong" in system[1]
    assert "Outcome: success (reward 1.00)" in model.requests[0][1]["content"]
    assert "Outcome: failure (reward 0.00)" in model.requests[1][1]["content"]
    assert GOLD not in model.seen()  # judge feedback: no gold answer, no judge detail quoting it
    items = method.items("item")
    assert len(items) == 4 and [w.counts() for w in method.history()] == [{"add": 2}, {"add": 2}]
    assert [i.data["status"] for i in items] == ["success", "success", "failure", "failure"]
    assert len({i.data["record"] for i in items}) == 2  # consolidation: appended, nothing merged
    assert win.maintenance.total_tokens > 0 and win.memory_ops == {"add": 2}


@pytest.mark.anyio
async def test_read_shows_the_most_similar_record_only(encoder, tmp_path: Path) -> None:
    replies = iter([items_reply("Letters"), items_reply("Sums", "Carries")])
    model = ScriptedModel(lambda _m: next(replies))
    method = bank(tmp_path, encoder)
    env = MemoryEnv(chat=model)
    await write_memory(method, episode("t1", "How many r are in strawberry?", "3", 1.0), env)
    await write_memory(method, episode("t2", "What is 17 + 25?", "42", 1.0), env)
    block = await method.read(Task("t3", "What is 38 + 47?"), env)
    titles = {i.id: i.data["title"] for i in method.items()}
    assert [titles[s.id] for s in block.items] == ["Sums", "Carries"]  # top_k = 1 record (the paper's)
    assert "## Title Sums" in block.text and "Letters" not in block.text and not block.calls
    both = await bank(tmp_path, encoder, top_k=2).read(Task("t3", "What is 38 + 47?"), env)
    assert [titles[s.id] for s in both.items] == ["Sums", "Carries", "Letters"]
    assert both.items[0].score is not None and both.items[2].score is not None
    assert both.items[0].score > both.items[2].score


@pytest.mark.anyio
async def test_unusable_reply_adds_nothing_and_is_counted(encoder) -> None:
    method = bank(None, encoder)
    ep = episode("t1", "How many r are in strawberry?", "3", 1.0)
    await write_memory(method, ep, MemoryEnv(chat=ScriptedModel("I cannot.")))
    assert method.items() == [] and method.state["empty_extractions"] == 1 and method.version == 1
    assert ep.maintenance_unusable == 1 and ep.memory_calls[0].error_kind == "model_output"


@pytest.mark.anyio
async def test_budget_exclusion_and_round_trip(encoder, tmp_path: Path) -> None:
    model = ScriptedModel(items_reply("Spell first", "Count twice", "Check the end"))
    method = bank(tmp_path / "memory", encoder)
    env = MemoryEnv(chat=model)
    await write_memory(method, episode("t1", "How many r are in strawberry?", "3", 1.0), env)
    task = Task("t1", "How many r are in strawberry?")
    full = await method.read(task, env)
    capped = await method.read(task, MemoryEnv(chat=model, max_tokens=full.tokens - 5))
    assert len(capped.items) == 2 and capped.tokens <= full.tokens - 5  # the last item goes first
    hidden = make_method(
        "reasoningbank", MethodSetup(folder=tmp_path / "memory", encoder=encoder, exclude_question=True)
    )
    assert (await hidden.read(task, env)).items == []  # the task's own record is never shown to it
    assert (await hidden.read(Task("t8", "How many r are in carrot?"), env)).items
    again = bank(tmp_path / "memory", encoder)
    assert [(i.id, i.text, i.data) for i in again.items()] == [(i.id, i.text, i.data) for i in method.items()]
    assert again.at(0).items() == []

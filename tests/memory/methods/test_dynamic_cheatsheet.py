"""Dynamic Cheatsheet's rules with a scripted curator: DC-Cu rewrites after each answer (the old sheet
stays when the reply has none), DC-RS synthesizes before each answer from the most similar past
solutions and carries its sheet forward, the two baselines show past solutions with no curator."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_support import GOLD, ScriptedModel, Task, episode

from memento_lab.agent.memory_slot import write_memory
from memento_lab.memory.methods.base import MemoryEnv, MemoryMethod
from memento_lab.memory.methods.dynamic_cheatsheet import EMPTY, SHEET_ID, extract_cheatsheet
from memento_lab.memory.methods.registry import make_method
from memento_lab.memory.methods.setup import MethodSetup

SHEET = "<memory_item>Spell the word, then count.</memory_item>\n** Count: 1"
PAST = [  # (task id, question, answer)
    ("t1", "How many r are in strawberry?", "3"),
    ("t2", "What is 17 + 25?", "42"),
    ("t3", "How many e are in cheese?", "3"),
    ("t4", "Sort these numbers: 5, 2, 9", "2, 5, 9"),
]


def dc(name: str, encoder, folder: Path | None = None, **options) -> MemoryMethod:
    return make_method(name, MethodSetup(folder=folder, encoder=encoder, options=options))


async def fill(method: MemoryMethod, env: MemoryEnv) -> None:
    for task_id, question, answer in PAST:
        await write_memory(method, episode(task_id, question, answer, 1.0), env)


def test_extract_cheatsheet_keeps_the_old_one_without_a_block() -> None:
    assert extract_cheatsheet("ok\n<cheatsheet>\nnew\n</cheatsheet> bye", old="old") == "new"
    assert extract_cheatsheet("<cheatsheet> cut off at the end", old="old") == "cut off at the end"
    assert extract_cheatsheet("no block here", old="old") == "old"
    assert extract_cheatsheet("<cheatsheet>  </cheatsheet>", old="old") == "old"


@pytest.mark.anyio
async def test_cumulative_curator_rewrites_after_each_answer(encoder) -> None:
    replies = iter([f"Correct.\n<cheatsheet>\n{SHEET}\n</cheatsheet>", "I forgot the tags."])
    model = ScriptedModel(lambda _m: next(replies))
    method = dc("dc-cu", encoder)
    env = MemoryEnv(chat=model, max_tokens=200)
    first = episode("t1", "How many r are in strawberry?", "3", 0.0)
    await write_memory(method, first, env)
    prompt = model.requests[0][0]["content"]
    assert "## PREVIOUS CHEATSHEET\n(empty)" in prompt and "How many r are in strawberry?" in prompt
    assert "I think it is 3." in prompt and "Answer: 3" in prompt  # the model's whole solution
    assert "under 150 words" in prompt  # the block's budget (200 tokens) bounds the length asked
    assert "reward" not in prompt.lower() and GOLD not in prompt  # DC's curator judges it alone
    assert method.items(SHEET_ID)[0].text == SHEET and first.memory_ops == {"rewrite": 1, "state": 1}
    second = episode("t2", "How many s are in mississippi?", "4", 1.0)
    await write_memory(method, second, env)
    assert SHEET in model.requests[1][0]["content"]  # the previous cheatsheet goes back to the curator
    assert method.items(SHEET_ID)[0].text == SHEET and method.state["kept_old"] == 1
    assert second.memory_ops == {"state": 1}  # no block in the reply: the old cheatsheet stays
    # paid for and thrown away: the report counts it (maintenance_unusable), the usable one not
    assert (first.maintenance_unusable, second.maintenance_unusable) == (0, 1)
    assert "<cheatsheet>" in (second.memory_calls[0].error or "")

    block = await method.read(Task("t3", "How many e are in cheese?"), env)
    assert block.text.startswith("CHEATSHEET") and SHEET in block.text and not block.calls
    assert [s.id for s in block.items] == [SHEET_ID]
    tight = await method.read(Task("t3", "How many e are in cheese?"), MemoryEnv(chat=model, max_tokens=30))
    assert tight.tokens <= 30 and tight.text.endswith("…")  # one document: cut to the budget


@pytest.mark.anyio
async def test_retrieval_synthesis_curates_before_the_answer_and_carries_it(encoder) -> None:
    method = dc("dc-rs", encoder)
    model = ScriptedModel(f"<cheatsheet>\n{SHEET}\n</cheatsheet>")
    env = MemoryEnv(chat=model)
    empty = await method.read(Task("t0", "How many a are in banana?"), env)
    assert empty.text == "" and not empty.calls and not model.requests  # nothing to synthesize from
    await fill(method, env)
    assert not model.requests and method.items(SHEET_ID) == []  # writes alone never call the curator

    task = Task("t5", "How many a are in banana?")
    block = await method.read(task, env)
    assert len(block.calls) == 1 and SHEET in block.text  # the synthesis is a maintenance call of the read
    prompt = model.requests[0][0]["content"]
    notes = prompt.split("## NOTES")[1].split("## NEXT TASK")[0]
    assert notes.count("Earlier task #") == 3  # k = 3 pairs (the paper's retrieve_top_k)
    assert "Sort these numbers" not in notes  # the least similar past task is not among them
    letters = [notes.index(q) for q in ("How many r are in strawberry?", "How many e are in cheese?")]
    assert notes.index("What is 17 + 25?") < min(letters)  # the most similar come last, as in the paper
    assert "## NEXT TASK (Q5)\nHow many a are in banana?" in prompt

    trace = episode("t5", "How many a are in banana?", "3", 1.0)
    await write_memory(method, trace, env)
    assert method.items(SHEET_ID)[0].text == SHEET  # the synthesized sheet is carried forward
    assert trace.memory_ops == {"add": 1, "rewrite": 1, "state": 1} and len(method.items("pair")) == 5


@pytest.mark.anyio
async def test_retrieval_baseline_shows_the_most_similar_pairs_first(encoder, tmp_path: Path) -> None:
    method = dc("dc-retrieval", encoder, tmp_path)
    model = ScriptedModel("")
    env = MemoryEnv(chat=model)
    await fill(method, env)
    block = await method.read(Task("t9", "How many o are in balloon?"), env)
    assert not model.requests and not block.calls  # no curator
    shown = [i.question for s in block.items for i in method.items() if i.id == s.id]
    assert len(shown) == 3 and set(shown[:2]) == {PAST[0][1], PAST[2][1]}
    scores = [s.score for s in block.items]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    same = dc("dc-retrieval", encoder, tmp_path, retrieve_k=1)
    assert [s.id for s in (await same.read(Task("t1", PAST[0][1]), env)).items] == ["pair-1"]
    hidden = make_method("dc-retrieval", MethodSetup(folder=tmp_path, encoder=encoder, exclude_question=True))
    assert "pair-1" not in [s.id for s in (await hidden.read(Task("t1", PAST[0][1]), env)).items]


@pytest.mark.anyio
async def test_full_history_shows_every_pair_and_the_budget_drops_the_oldest(encoder) -> None:
    method = dc("dc-history", encoder)
    env = MemoryEnv(chat=ScriptedModel(""))
    await fill(method, env)
    block = await method.read(Task("t9", "How many o are in balloon?"), env)
    assert [s.id for s in block.items] == ["pair-4", "pair-3", "pair-2", "pair-1"]
    capped = await method.read(
        Task("t9", "How many o are in balloon?"), MemoryEnv(max_tokens=block.tokens // 2)
    )
    assert [s.id for s in capped.items] == ["pair-4", "pair-3"][: len(capped.items)] and capped.items
    assert capped.tokens <= block.tokens // 2
    assert EMPTY not in block.text

"""The op log under a method: staged writes, merges, roll back by inverse ops, a torn or bad log line,
and a block fitted to its budget (whole entries, or a clipped document)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from zoo_support import ScriptedModel, Task, episode, feedback

from memento_lab.jsonl import FormatError
from memento_lab.memory.methods.base import Feedback, MaintenanceError, MemoryEnv
from memento_lab.memory.methods.blocks import Entry, Recall, Section, fit
from memento_lab.memory.methods.logged import Draft, LoggedMethod
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.trace import LLMCall, Trace


class Notes(LoggedMethod):
    """A toy method: every answer a note; notes of one task merged; a long summary document."""

    name = "notes"

    async def recall(self, task: Any, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        notes = [Entry(i, f"- {i.text}") for i in self.items("note")]
        doc = [Entry(i, i.text, clip=True) for i in self.items("doc")]
        return Recall([Section("Notes:", notes), Section("Summary:", doc)])

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        same = [i for i in draft.items("note") if episode.task_id in i.sources]
        note = draft.add("note", f"{episode.task_id}: {episode.final_answer}", sources=[episode.task_id])
        if same:
            draft.merge(same[0].id, [note.id], text=f"{same[0].text} / {episode.final_answer}")
        draft.set_state(writes=draft.state.get("writes", 0) + 1)
        if feedback.success and draft.chat is not None:
            reply = await draft.ask([{"role": "user", "content": "summarise"}])
            doc = draft.items("doc")
            if doc:
                draft.change(doc[0].id, "rewrite", text=reply.content)
            else:
                draft.add("doc", reply.content)


def notes(tmp_path) -> Notes:
    return Notes(MethodSetup(folder=tmp_path / "memory"))


def view(m: LoggedMethod) -> list[tuple[str, str, int]]:
    return [(i.id, i.text, i.seq) for i in m.items()]


async def write(m: LoggedMethod, ep: Trace, model: ScriptedModel | None = None) -> None:
    await m.write(ep, feedback(ep), MemoryEnv(chat=model))


@pytest.mark.anyio
async def test_merge_rewrite_and_a_roll_back_by_inverse_ops(tmp_path) -> None:
    m, model = notes(tmp_path), ScriptedModel("the summary " * 20)
    await write(m, episode("t1", "q1", "a", 1.0, run_id="r"), model)
    await write(m, episode("t2", "q2", "b", 0.0, run_id="r"), model)
    before = view(m)
    await write(m, episode("t1", "q1", "c", 1.0, iteration=1, run_id="r"), model)  # never reaches its row
    merge = next(o for o in m.history()[-1].ops if o.op == "merge")
    assert merge.merged[0].text == "t1: c" and merge.after.text == "t1: a / c"  # type: ignore[union-attr]
    committed = {("t1", 0): "ok", ("t2", 0): "ok"}
    assert m.roll_back(committed, "r") == 1
    assert view(m) == before and m.version == 4  # appended: version 4 undoes version 3
    assert m.history()[-1].reverts == 3 and m.at(3).items("note")[0].text == "t1: a / c"
    assert m.state == {"writes": 2}
    assert m.roll_back(committed, "r") == 0  # undone once, never twice
    again = notes(tmp_path)  # and the log, opened again, says the same
    assert view(again) == before and again.version == 4


@pytest.mark.anyio
async def test_a_failed_maintenance_call_leaves_nothing(tmp_path) -> None:
    class Down(ScriptedModel):
        async def chat(self, messages, **kw):
            result = await super().chat(messages, **kw)
            result.call.error, result.call.error_kind = "memory: HTTP 500", "endpoint_error"
            return result

    m = notes(tmp_path)
    with pytest.raises(MaintenanceError, match="HTTP 500"):
        await write(m, episode("t1", "q1", "a", 1.0), Down("x"))
    assert m.version == 0 and m.items() == [] and not (tmp_path / "memory" / "log.jsonl").exists()


@pytest.mark.anyio
async def test_a_torn_last_line_is_set_aside_and_a_bad_line_named(tmp_path) -> None:
    m = notes(tmp_path)
    await write(m, episode("t1", "q1", "a", 0.0))
    log = tmp_path / "memory" / "log.jsonl"
    with log.open("a") as f:
        f.write('{"version": 2, "ops": [')  # a writer died mid-line
    assert notes(tmp_path).version == 1 and list(log.parent.glob("log.jsonl.torn-*"))
    with log.open("a") as f:
        f.write(json.dumps({"version": 2, "ops": [{"op": "add"}]}) + "\n")
    with pytest.raises(FormatError, match=r"log.jsonl:2: field 'ops.0.id'"):
        notes(tmp_path)


@pytest.mark.anyio
async def test_a_clipped_document_fills_what_the_budget_leaves() -> None:
    from memento_lab.memory.methods.base import MemoryItem

    doc = MemoryItem(id="doc-1", kind="doc", text="word " * 200)
    note = MemoryItem(id="note-1", kind="note", text="short note")
    recall = Recall(
        [
            Section("Notes:", [Entry(note, "- short note")]),
            Section("Summary:", [Entry(doc, doc.text, clip=True)]),
        ]
    )
    text, tokens, shown = await fit(recall, MemoryEnv(max_tokens=60))
    assert tokens <= 60 and [e.item.id for e in shown if e.item] == ["note-1", "doc-1"]
    assert text.startswith("Notes:\n- short note") and text.endswith("…") and tokens > 40
    whole, n, all_shown = await fit(recall, MemoryEnv())
    assert len(all_shown) == 2 and n > 200


@pytest.mark.anyio
async def test_a_past_version_reads_as_it_was(tmp_path) -> None:
    m, model = notes(tmp_path), ScriptedModel("summary one")
    await write(m, episode("t1", "q1", "a", 1.0), model)
    model.answer = lambda messages: "summary two"
    await write(m, episode("t2", "q2", "b", 1.0), model)
    old = await m.at(1).read(Task("t3", "q3"), MemoryEnv())
    new = await m.read(Task("t3", "q3"), MemoryEnv())
    assert "summary one" in old.text and "t2" not in old.text and old.version == 1
    assert "summary two" in new.text and new.version == 2

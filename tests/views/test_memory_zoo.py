"""The memory zoo viewer: one tab per method, a slider over versions showing what the memory held and
the write that made it."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
from zoo_support import ScriptedModel, episode, feedback

from memento_lab.memory.methods.base import MemoryEnv
from memento_lab.memory.methods.expel import Expel
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.views.memory_zoo import items_html, method_summary, write_html, zoo_viewer


@pytest.mark.anyio
async def test_the_viewer_shows_each_method_and_each_version(tmp_path, encoder) -> None:
    model = ScriptedModel(lambda m: "ADD 1: Spell the word out first.")
    expel = Expel(MethodSetup(folder=tmp_path / "expel", encoder=encoder, options={"success_every": 1}))
    for ep in (
        episode("t1", "How many r are in strawberry?", "3", 1.0),
        episode("t2", "How many e in tree?", "1", 0.0),
    ):
        await expel.write(ep, feedback(ep), MemoryEnv(chat=model))
    tab = zoo_viewer({"expel": expel})
    assert isinstance(tab, widgets.Tab) and tab.titles == ("expel",)
    summary, slider, accordion = tab.children[0].children
    assert "holds 1 trajectory, 1 insight" in summary.value and "2 maintenance call(s)" in summary.value
    assert slider.max == expel.version == 2 and slider.value == 2
    change, held = accordion.children
    assert "Spell the word out first." in held.value and "version 2" in change.value
    slider.value = 1  # back to after the first episode: the trajectory and the first insight
    assert "version 1" in change.value and "task t1" in change.value and "add" in change.value
    assert "trajectory: 1" in held.value
    slider.value = 0
    assert held.value == "<i>empty</i>" and "before any episode" in change.value
    assert method_summary(expel)["maintenance_calls"] == 2


def test_html_escapes_and_groups_by_kind() -> None:
    from memento_lab.memory.methods.base import MemoryItem, MemoryOp, MemoryWrite

    items = [MemoryItem(id="a", kind="insight", text="<b>x</b>", data={"count": 2})]
    html = items_html(items)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "insight: 1" in html and "count=2" in html
    w = MemoryWrite(version=3, task_id="t", ops=[MemoryOp(op="delete", id="a", before=items[0])], reverts=2)
    assert "undoes version 2" in write_html(w) and "delete" in write_html(w)


def test_the_trace_viewer_shows_another_memorys_items_and_maintenance() -> None:
    from memento_lab.trace import LLMCall, ShownItem, Usage
    from memento_lab.views.widgets import trace_sections

    ep = episode("t1", "q", "a", 1.0)
    ep.shown = [ShownItem(id="insight-3", kind="insight", score=4.0)]
    ep.memory_calls = [
        LLMCall(role="memory", model="m", usage=Usage(prompt_tokens=120, completion_tokens=30))
    ]
    ep.memory_ops = {"agree": 1}
    title, body = trace_sections(ep)[0]
    assert title == "Memory shown (1 items)" and "insight-3" in body
    assert "1 call(s), 120+30 tokens" in body and "agree 1" in body and "thrown away" not in body
    ep.memory_calls[0].error, ep.memory_calls[0].error_kind = "no <cheatsheet> block", "model_output"
    body = trace_sections(ep)[0][1]
    assert "unusable reply, thrown away: no &lt;cheatsheet&gt; block" in body

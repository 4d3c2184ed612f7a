"""The method of docs/memory-zoo.md ("Add a method of your own, in one file") registers and works as the
page says: its option validated, lessons from failures, the oldest forgotten, a block within budget."""

from __future__ import annotations

import re

import pytest
from support import ROOT
from zoo_support import ScriptedModel, Task, episode, feedback

from memento_lab.memory.methods.base import MemoryEnv
from memento_lab.memory.methods.registry import forget_method, make_method, method_names
from memento_lab.memory.methods.setup import MethodSetup


def docs_method() -> None:
    page = (ROOT / "docs" / "memory-zoo.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "@memory_method" in b)
    exec(compile(code, "docs/memory-zoo.md", "exec"), {"__name__": "docs_memory_zoo"})


@pytest.fixture
def lessons():
    docs_method()
    yield
    forget_method("lessons")


@pytest.mark.anyio
async def test_the_documented_method_registers_and_learns(tmp_path, lessons) -> None:
    assert "lessons" in method_names()
    with pytest.raises(ValueError, match="option 'max_lesons'.*its options: max_lessons"):
        make_method("lessons", MethodSetup(options={"max_lesons": 2}))
    method = make_method("lessons", MethodSetup(folder=tmp_path / "memory", options={"max_lessons": 2}))
    model = ScriptedModel(lambda messages: "Counted the wrong letter.")
    env = MemoryEnv(chat=model)
    for i, reward in enumerate([0.0, 1.0, 0.0, 0.0]):
        ep = episode(f"t{i}", f"How many r are in word{i}?", "1", reward)
        await method.write(ep, feedback(ep), env)
    assert len(model.requests) == 3  # failures only
    assert [i.id for i in method.items("lesson")] == ["lesson-2", "lesson-3"]  # the first one forgotten
    assert [o.op for o in method.history()[-1].ops] == ["add", "forget"]
    block = await method.read(Task("t9", "q"), MemoryEnv(max_tokens=16))
    assert block.tokens <= 16 and [s.id for s in block.items] == ["lesson-3"]  # newest first, in budget

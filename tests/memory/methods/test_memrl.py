"""The MemRL-style value memory: Q of every shown experience moves toward the episode's reward, new
experiences start at q_init, reading recalls by similarity and ranks by similarity and value."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_support import Task, episode

from memento_lab.agent.memory_slot import read_memory, write_memory
from memento_lab.memory.methods.base import MemoryEnv
from memento_lab.memory.methods.memrl import MemRL, MemRLOptions, hybrid_scores, q_update
from memento_lab.memory.methods.registry import make_method
from memento_lab.memory.methods.setup import MethodSetup
from memento_lab.trace import ShownItem

LETTER_TASKS = [
    ("t1", "How many r are in strawberry?"),
    ("t2", "How many s are in mississippi?"),
    ("t3", "How many e are in cheese?"),
]


def memrl(encoder, k: int = 2, **options) -> MemRL:
    method = make_method("memrl", MethodSetup(encoder=encoder, k=k, options=options))
    assert isinstance(method, MemRL)
    return method


def q_of(method: MemRL) -> dict[str, float]:
    return {i.id: round(float(i.data["q"]), 6) for i in method.items()}


def test_value_update_and_hybrid_scores() -> None:
    assert q_update(0.5, 1.0, 0.3) == pytest.approx(0.65)
    assert q_update(0.5, 0.0, 0.3) == pytest.approx(0.35)
    o = MemRLOptions(sim_mean=0.2, sim_std=0.2)
    # z(Q) over the candidates: Q 0.2 / 0.8 -> -1 / +1; z(sim) fixed: (0.6 - 0.2) / 0.2 = 2
    assert hybrid_scores([0.6, 0.6], [0.2, 0.8], o) == pytest.approx([0.5, 1.5])
    assert hybrid_scores([0.6], [0.9], o) == pytest.approx([1.0])  # one candidate: z(Q) = 0
    wide = hybrid_scores([0.2] * 11, [0.0] * 10 + [100.0], o)
    assert wide[-1] == pytest.approx(0.5 * 3.0)  # z(Q) clipped to 3


@pytest.mark.anyio
async def test_every_shown_experience_learns_from_the_reward(encoder) -> None:
    method = memrl(encoder)
    env = MemoryEnv()
    for (task_id, question), reward in zip(LETTER_TASKS[:2], (1.0, 0.0), strict=True):
        await write_memory(method, episode(task_id, question, "3", reward), env)
    assert q_of(method) == {"experience-1": 0.5, "experience-2": 0.5}  # q_init for a success and a failure
    assert [i.data["success"] for i in method.items()] == [True, False]

    win = episode("t3", LETTER_TASKS[2][1], "2", 1.0)
    await read_memory(method, Task("t3", LETTER_TASKS[2][1]), win, env)
    assert {s.id for s in win.shown} == {"experience-1", "experience-2"}
    await write_memory(method, win, env)
    assert q_of(method) == {"experience-1": 0.65, "experience-2": 0.65, "experience-3": 0.5}
    assert win.memory_ops == {"update": 2, "add": 1} and not win.memory_calls  # no model call

    loss = episode("t3", LETTER_TASKS[2][1], "5", 0.0, iteration=1)
    await read_memory(method, Task("t3", LETTER_TASKS[2][1]), loss, env)
    await write_memory(method, loss, env)
    shown = {s.id for s in loss.shown}
    assert all(q_of(method)[i] < 0.65 for i in shown if i != "experience-3") and len(shown) == 2
    assert method.items()[0].data["visits"] >= 1


@pytest.mark.anyio
async def test_read_recalls_by_similarity_then_ranks_by_value(encoder) -> None:
    method = memrl(encoder, k=1)
    env = MemoryEnv()
    for task_id, question in LETTER_TASKS[:2]:
        await write_memory(method, episode(task_id, question, "3", 1.0), env)
    await write_memory(method, episode("t9", "What is the capital of Peru?", "Lima", 1.0), env)
    task = Task("t5", "How many a are in banana?")
    assert {i.id for i, _ in method.candidates(task)} == {"experience-1", "experience-2"}  # phase A
    block = await method.read(task, env)
    assert len(block.items) == 1 and block.text.startswith("Experiences from earlier tasks that succeeded")
    first = block.items[0].id

    # the other candidate is shown to three successful episodes: its Q rises, phase B now prefers it
    other = ({"experience-1", "experience-2"} - {first}).pop()
    for n in range(3):
        trace = episode(f"c{n}", "What is the capital of Chile?", "Santiago", 1.0)
        trace.shown = [ShownItem(id=other, kind="experience")]
        await write_memory(method, trace, env)
    assert q_of(method)[other] == pytest.approx(0.8285) and q_of(method)[first] == 0.5
    assert [s.id for s in (await method.read(task, env)).items] == [other]


@pytest.mark.anyio
async def test_epsilon_draw_is_seeded_failures_show_apart_and_exclusion(encoder, tmp_path: Path) -> None:
    env = MemoryEnv()
    method = make_method("memrl", MethodSetup(folder=tmp_path, encoder=encoder, k=3))
    for (task_id, question), reward in zip(LETTER_TASKS, (1.0, 0.0, 1.0), strict=True):
        await write_memory(method, episode(task_id, question, "3", reward), env)
    task = Task("t5", "How many a are in banana?")
    block = await method.read(task, env)
    assert len(block.items) == 3
    good, bad = block.text.split("that failed")
    assert "mississippi" in bad and "mississippi" not in good  # the failed experience in its own section

    random_k = make_method(
        "memrl", MethodSetup(folder=tmp_path, encoder=encoder, k=2, options={"epsilon": 1.0})
    )
    draws = [[s.id for s in (await random_k.read(task, env)).items] for _ in range(3)]
    assert draws[0] == draws[1] == draws[2] and len(draws[0]) == 2  # seeded by seed, task and version

    own = Task("t1", LETTER_TASKS[0][1])
    assert "experience-1" in [s.id for s in (await method.read(own, env)).items]
    hidden = make_method("memrl", MethodSetup(folder=tmp_path, encoder=encoder, k=3, exclude_question=True))
    shown = [s.id for s in (await hidden.read(own, env)).items]
    assert "experience-1" not in shown and shown  # the task's own experience is hidden, the others stay

"""The agent's two calls to its memory, for any memory method: read before the episode, write after
it is judged.

    block = await read_memory(memory, task, trace, env, drop=...)      # recorded in the trace
    await write_memory(memory, trace, env, feedback="judge")           # ops, maintenance calls recorded

The agent lends the method a ``MemoryEnv``: the ``memory`` model role (maintenance calls, recorded in
the run's cassette and counted apart from the agent's tokens), its own tokenizer, the block's token
budget (``memory_tokens``) and how a quoted episode shows (``memory_style``). The method sees the
episode without the gold answer unless the feedback is the labelled ``gold`` variant. A write that
fails for the infrastructure leaves the memory as it was and the episode unscored (``memory_error``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memento_lab.memory.methods.base import (
    Feedback,
    FeedbackSource,
    MemoryBlock,
    MemoryEnv,
    MemoryMethod,
    episode_view,
)
from memento_lab.tasks.base import Task
from memento_lab.trace import Trace

if TYPE_CHECKING:
    from memento_lab.agent.models.llm import LLMs


def memory_env(llms: LLMs, *, max_tokens: int | None, style: str, outcomes: bool = False) -> MemoryEnv:
    """What the agent lends its memory: the memory role, the planner's tokenizer, the budget, and
    whether quoted episodes show their outcome (the direct profiles)."""
    return MemoryEnv(
        chat=llms.memory,
        count_tokens=llms.planner.count_tokens,
        max_tokens=max_tokens,
        style=style,
        outcomes=outcomes,
    )


async def read_memory(
    memory: MemoryMethod,
    task: Task,
    trace: Trace,
    env: MemoryEnv,
    *,
    drop: frozenset[str] | set[str] = frozenset(),
) -> MemoryBlock:
    """The block for ``task`` (``drop``: items hidden from this episode), recorded in ``trace``."""
    block = await memory.read(task, env, drop=drop)
    block.record(trace)
    return block


async def write_memory(
    memory: MemoryMethod, trace: Trace, env: MemoryEnv, *, feedback: FeedbackSource = "judge"
) -> None:
    """Give the judged episode to the memory; its ops and maintenance calls land in ``trace``."""
    fb = Feedback.of(trace, threshold=memory.threshold, source=feedback)
    episode = episode_view(trace, fb)
    change = await memory.write(episode, fb, env)
    change.record(trace)
    if episode is not trace and episode.case_id:  # the case a case bank wrote for this episode
        trace.case_id = episode.case_id

"""ReasoningBank (Ouyang et al. 2025, "ReasoningBank: Scaling Agent Self-Evolving with Reasoning
Memory"): memory items distilled from every judged attempt, successes and failures alike, retrieved by
the similarity of the task.

The rule, as the paper's code runs it (google-research/reasoning-bank, ``WebArena/induce_memory.py``,
``memory_management.py``, ``run.py``):

- **write**: after each episode, one extraction call. A success (the judge's verdict) gets the success
  prompt ("why did it succeed"), a failure the failure prompt ("why did it fail, what prevents it");
  both ask for at most 3 non-overlapping items ``{title, description, content}`` in Markdown. The
  items are appended as one record of that task: no de-duplication, no pruning (the paper's
  deliberately minimal consolidation). A reply without a parsable item adds nothing.
- **read**: the current task's question is compared with the question of every record (cosine of the
  embeddings); the items of the ``top_k`` most similar records are shown (the paper's default and best
  setting: 1 record), after a header inviting the agent to use them where they apply.

Departures, each for a reason:

- The paper's extraction prompt also receives the LLM judge's explanation ("The task failed because:
  ..."). Here the feedback is the judge's reward by default and its details are withheld (they may
  quote the gold answer); the prompt says success or failure and the reward.
- Temperature 0 instead of the paper's 1.0: every model call of the workbench is greedy so that a run
  redone without its cassette builds the same memory (``temperature`` option).
- The paper embeds the query with an instruction prefix (an asymmetric Gemini embedding); the packaged
  MiniLM encoder is symmetric, so the plain question is embedded.
- Several records of one question (a task met again in a later iteration): the newest ranks first
  (the paper's code takes the first record of the task id; it never meets a task twice).
- More than 3 items in a reply: the first 3 are kept (the cap the prompt states).
- Under a ``memory_tokens`` budget the items of the best record come first; the least similar record's
  last items are the first to go.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memento_lab.memory.methods.base import Feedback, MemoryEnv, MemoryItem, TaskLike
from memento_lab.memory.methods.blocks import Entry, Recall, Section, episode_text, outcome_text
from memento_lab.memory.methods.logged import Draft, LoggedMethod, unusable
from memento_lab.memory.methods.prompts import prompt_table
from memento_lab.memory.methods.registry import memory_method
from memento_lab.trace import LLMCall, Trace

MAX_ITEMS = 3  # "You can extract *at most 3* memory items" (both extraction prompts)
_FIELD = re.compile(r"^\s*#{1,3}\s*(title|description|content)\s*[:\-]?\s*(.*)$", re.I)
_ITEM = re.compile(r"^\s*#\s*memory\s+item\b.*$", re.I)


class ReasoningBankOptions(BaseModel):
    """ReasoningBank's settings (defaults: the paper's, where it has one)."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(1, ge=1, description="records (past tasks) whose items are shown (paper: 1)")
    extract_tokens: int = Field(512, ge=32, description="token budget of one extraction reply")
    temperature: float = Field(0.0, ge=0.0, description="extraction temperature (paper: 1.0)")


def _prompts() -> dict[str, str]:
    return prompt_table("reasoning_bank.toml")


def parse_items(reply: str) -> list[dict[str, str]]:
    """The memory items of an extraction reply (Markdown ``# Memory Item`` blocks with ``## Title``,
    ``## Description``, ``## Content``), at most ``MAX_ITEMS``; an item without content is dropped."""
    items: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    field: str | None = None
    for line in (reply or "").splitlines():
        if _ITEM.match(line):
            current, field = {}, None
            items.append(current)
            continue
        m = _FIELD.match(line)
        if m:
            field = m.group(1).lower()
            if current is None or field in current:  # a field again without an item header: a new item
                current = {}
                items.append(current)
            current[field] = m.group(2).strip()
        elif (
            current is not None and field is not None and line.strip() and not line.strip().startswith("```")
        ):
            current[field] = f"{current[field]} {line.strip()}".strip()
    kept = [
        {k: " ".join(it.get(k, "").split()) for k in ("title", "description", "content")}
        for it in items
        if it.get("content", "").strip()
    ]
    return kept[:MAX_ITEMS]


@memory_method(
    "reasoningbank",
    summary="ReasoningBank: up to 3 items distilled from each success and failure, by task similarity",
    keeps="items",
)
class ReasoningBank(LoggedMethod):
    Options = ReasoningBankOptions

    # ------------------------------------------------------------------ reading
    def records(self, task: TaskLike) -> list[tuple[str, float, list[MemoryItem]]]:
        """(record id, similarity, its items) of every record, most similar first (newest on ties)."""
        groups: dict[str, list[MemoryItem]] = {}
        for item in self.items("item"):
            if self.setup.exclude_question and item.question == task.question:
                continue
            groups.setdefault(str(item.data["record"]), []).append(item)
        if not groups:
            return []
        ids = list(groups)
        sims = self.setup.similarity(task.question, [groups[r][0].question or "" for r in ids])
        newest = {r: max(i.created for i in groups[r]) for r in ids}
        order = sorted(range(len(ids)), key=lambda j: (-round(float(sims[j]), 6), -newest[ids[j]]))
        return [(ids[j], float(sims[j]), groups[ids[j]]) for j in order]

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        entries: list[Entry] = []
        for _, sim, items in self.records(task)[: self.options.top_k]:
            for item in items:
                entries.append(Entry(item, "", score=sim))
        for n, e in enumerate(entries, 1):
            assert e.item is not None
            d = e.item.data
            e.text = p["item"].format(
                n=n, title=d["title"], description=d["description"], content=e.item.text
            )
        return Recall([Section(p["header"], entries)], hint=p["hint"])

    # ------------------------------------------------------------------ writing
    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        p, opts = _prompts(), self.options
        system = p["success"] if feedback.success else p["failure"]
        user = p["episode"].format(
            question=episode.question,
            attempt="\n".join(episode_text(episode, style="full").split("\n")[1:]),
            outcome=outcome_text(feedback.reward, feedback.success),
        )
        reply = await draft.ask(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=opts.extract_tokens,
            temperature=opts.temperature,
        )
        items = parse_items(reply.content or "") if not reply.error else []
        if not items:
            unusable(reply, "no memory item in the extraction reply")
            draft.set_state(empty_extractions=draft.state.get("empty_extractions", 0) + 1)
            return
        record = f"{episode.task_id}@{draft.version}"
        for it in items:
            draft.add(
                "item",
                it["content"],
                question=episode.question,
                sources=[episode.task_id],
                data={
                    "title": it["title"],
                    "description": it["description"],
                    "record": record,
                    "status": "success" if feedback.success else "failure",
                    "reward": feedback.reward,
                },
            )

    def describe(self) -> dict[str, Any]:
        items = self.items("item")
        return {**super().describe(), "records": len({i.data["record"] for i in items})}

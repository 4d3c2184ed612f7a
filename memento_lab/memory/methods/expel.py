"""ExpeL (Zhao et al. 2023, "ExpeL: LLM Agents Are Experiential Learners"): insights extracted by
critique, and successful trajectories retrieved as few-shot examples.

The memory holds two kinds of items:

- ``insight``: a rule with an importance ``count``, changed only by the critique's ADD / EDIT / AGREE /
  REMOVE operations, applied exactly as the paper's code does (``expel_rules.py``: ADD starts at 2,
  AGREE and EDIT +1, REMOVE -1 or -3 when the list is full, deleted at 0, sorted by count);
- ``trajectory``: every successful episode, the pool of few-shot examples.

ExpeL gathers all training experience first and extracts insights in one pass (each success compared
with the failures of the same task, then the successes in chunks of ``success_critique_num``). On a
stream, a method must learn as it goes, so here:

- after each **failure**, one *compare* critique pairs it with its nearest success: the latest
  success of the same task when there is one, else the most similar successful task (cosine of the
  questions). A failure before any success has nothing to contrast and is only counted (``unpaired``);
- after every ``success_every`` **successes**, one *success* critique reads those successes.

Reading shows the insights (highest count first) and the ``k`` most similar successful trajectories,
as ExpeL's ``task_similarity`` few-shot strategy does: ``k x buffer_ratio`` nearest tasks, never the
task itself (ExpeL's rule), one trajectory per task (its shortest), none longer than
``max_fewshot_tokens``. The insights come first: under a tight ``memory_tokens`` budget the examples
go first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memento_lab.memory.methods.base import Feedback, MemoryEnv, MemoryItem, TaskLike
from memento_lab.memory.methods.blocks import Entry, Recall, Section, episode_text
from memento_lab.memory.methods.expel_rules import FULL_MARGIN, Rule, parse_operations, update_rules
from memento_lab.memory.methods.logged import Draft, LoggedMethod, unusable
from memento_lab.memory.methods.prompts import prompt_table
from memento_lab.memory.methods.registry import memory_method
from memento_lab.memory.retrieval.render import estimate_tokens
from memento_lab.trace import LLMCall, Trace


class ExpelOptions(BaseModel):
    """ExpeL's settings (defaults: the paper's configuration where it has one)."""

    model_config = ConfigDict(extra="forbid")

    max_num_rules: int = Field(20, ge=1, description="the list counts as full from here (ExpeL: 20)")
    success_every: int = Field(
        4, ge=1, description="a success critique after this many new successes (ExpeL: chunks of 8)"
    )
    buffer_ratio: int = Field(4, ge=1, description="few-shot candidates retrieved per example shown")
    max_fewshot_tokens: int = Field(600, ge=1, description="a longer trajectory is never an example")
    critique_tokens: int = Field(400, ge=16, description="token budget of one critique reply")
    temperature: float = Field(0.0, ge=0.0)


def _prompts() -> dict[str, str]:
    return prompt_table("expel.toml")


@memory_method(
    "expel",
    summary="ExpeL: insights (ADD/EDIT/AGREE/REMOVE with counts) + few-shot successes",
    keeps="insights",
)
class Expel(LoggedMethod):
    Options = ExpelOptions
    transfer_safe = False  # an insight distilled from a task's own attempts may carry its answer

    # ------------------------------------------------------------------ reading
    def insights(
        self, items: dict[str, MemoryItem] | None = None, order: list[str] | None = None
    ) -> list[MemoryItem]:
        """The insights in ExpeL's order (count, highest first; ties in their earlier order)."""
        live = {i.id: i for i in self.items("insight")} if items is None else items
        order = self.state.get("order", []) if order is None else order
        return [live[i] for i in order if i in live]

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        insights = Section(
            p["insights_header"],
            [Entry(i, f"- {i.text}", score=float(i.data.get("count", 0))) for i in self.insights()],
        )
        examples = Section(p["examples_header"], self.fewshots(task, env.style))
        return Recall([insights, examples], hint=p["hint"])

    def fewshots(self, task: TaskLike, style: str) -> list[Entry]:
        pool = self.items("trajectory")
        if not pool:
            return []
        k, opts = self.setup.k, self.options
        by_task: dict[str, list[MemoryItem]] = {}
        for t in pool:
            by_task.setdefault(t.data.get("task_id", t.id), []).append(t)
        sims = self.setup.similarity(task.question, [t.question or "" for t in pool])
        ranked = sorted(range(len(pool)), key=lambda j: -sims[j])[: k * opts.buffer_ratio]
        out: list[Entry] = []
        seen: set[str] = set()
        for j in ranked:
            item = pool[j]
            tid = item.data.get("task_id", item.id)
            if tid == task.id or item.question == task.question or tid in seen:
                continue  # ExpeL never shows a task its own trajectory
            shortest = min(by_task[tid], key=lambda t: len(t.text))
            if estimate_tokens(shortest.text) > opts.max_fewshot_tokens:
                continue
            seen.add(tid)
            out.append(Entry(shortest, shortest.text, score=float(sims[j])))
            if len(out) == k:
                break
        return out

    # ------------------------------------------------------------------ writing
    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        text = episode_text(episode, style="full")
        state = draft.state
        if feedback.success:
            item = draft.add(
                "trajectory",
                text,
                question=episode.question,
                sources=[episode.task_id],
                data={"task_id": episode.task_id, "family": episode.family, "reward": feedback.reward},
            )
            pending = [*state.get("pending", []), item.id]
            if len(pending) >= self.options.success_every:
                chunk = "\n\n".join(draft.get(i).text for i in pending if i in draft)
                await self.critique(draft, "success", success=chunk)
                pending = []
            draft.set_state(pending=pending)
            return
        partner = self.nearest_success(draft, episode)
        if partner is None:
            draft.set_state(unpaired=state.get("unpaired", 0) + 1)
            return
        await self.critique(draft, "compare", task=episode.question, success=partner.text, failure=text)

    def nearest_success(self, draft: Draft, episode: Trace) -> MemoryItem | None:
        """The latest success of the same task, else the most similar successful task."""
        pool = draft.items("trajectory")
        same = [t for t in pool if t.data.get("task_id") == episode.task_id]
        if same:
            return same[-1]
        if not pool:
            return None
        sims = self.setup.similarity(episode.question, [t.question or "" for t in pool])
        return pool[int(sims.argmax())]

    async def critique(self, draft: Draft, kind: str, **parts: str) -> None:
        """One critique call and its operations applied to the insights (through the draft)."""
        p, opts = _prompts(), self.options
        live = {i.id: i for i in draft.items("insight")}
        current = self.insights(live, draft.state.get("order", []))
        rules = [Rule(i.text, int(i.data["count"]), i.id) for i in current]
        listing = "\n".join(f"{n}. {r.text}" for n, r in enumerate(rules, 1)) or p["no_rules"]
        suffix = p["suffix_full"] if len(rules) >= opts.max_num_rules else p["suffix"]
        messages = [
            {"role": "system", "content": p["system"].format(instruction=p[f"{kind}_instruction"])},
            {"role": "user", "content": p[kind].format(rules=listing, format=p["format"], **parts) + suffix},
        ]
        reply = await draft.ask(messages, max_tokens=opts.critique_tokens, temperature=opts.temperature)
        operations = parse_operations(reply.content or "") if not reply.error else []
        if not operations:
            unusable(reply, "no ADD / EDIT / AGREE / REMOVE operation in the critique reply")
        update = update_rules(
            rules,
            operations,
            list_full=len(rules) >= opts.max_num_rules + FULL_MARGIN,
        )
        apply_update(draft, update.events, note=kind)
        draft.set_state(order=[r.id for r in update.rules])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "insights": len(self.items("insight")),
            "trajectories": len(self.items("trajectory")),
        }


def apply_update(draft: Draft, events: list[Any], *, note: str) -> None:
    """The insight list's events as memory ops: add / edit / agree / remove (a count down) / delete."""
    for ev in events:
        if ev.verb == "ADD":
            ev.after.id = draft.add("insight", ev.after.text, data={"count": ev.after.count}, note=note).id
        elif ev.verb == "DELETE":
            draft.remove(ev.before.id, "delete", note=f"count {ev.before.count}")
        else:
            draft.change(ev.before.id, ev.verb.lower(), text=ev.after.text, count=ev.after.count, note=note)

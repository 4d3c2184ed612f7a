"""ACE (Zhang et al. 2025, "Agentic Context Engineering: Evolving Contexts for Self-Improving Language
Models"): a playbook of bullets with helpful / harmful counters, grown by a reflector and a curator.

The rule, as the paper (§3) and its code run it (ace-agent/ace, ``ace/ace.py::_train_single_sample``,
``playbook_utils.py``, ``ace/core/bulletpoint_analyzer.py``), after every episode:

1. **reflector** (one call): the task, the agent's reasoning and answer, the feedback ("judged correct /
   wrong"; the gold answer only in the labelled ``gold`` variant: the paper's no-ground-truth prompt
   otherwise) and the bullets the agent used -> a diagnosis and a tag per bullet;
2. **counters**: ``helpful`` +1 or ``harmful`` +1 per tag, ``neutral`` nothing (``update_bullet_counts``);
3. **curator** (one call every ``curator_every`` episodes; paper: 1): the playbook, its stats, the
   reflection and the task -> JSON operations, applied deterministically (``ace_playbook.py``): ADD
   (a fresh id in its section; an unknown section is OTHERS), UPDATE (new text, same id and counters),
   MERGE (the first id stays, counters add up), DELETE. An operation that cannot apply is rejected
   with its reason, the others still apply; an unusable reply changes nothing;
4. **grow-and-refine** (proactive: after each delta): bullets whose embeddings are within cosine
   ``dedupe_threshold`` (code: 0.90) are grouped greedily and merged (first id kept, counters summed).

The agent sees the whole playbook (section headers and ``[id] helpful=X harmful=Y :: content`` lines).

Departures, each for a reason:

- The generator cites the bullets it used (``bullet_ids`` in its JSON reply). The workbench's agent
  answers with its own prompts (one protocol for every method), so the block asks it to mention the
  ids it uses; the ids found in its replies are the ones it used, and when it mentions none the
  reflector is given every bullet it was shown (its ``neutral`` tag covers the unused ones).
- The tags count only for the bullets the reflector was given (a small model invents ids).
- No re-generation rounds after a failure (the code's ``max_num_rounds``): they are extra agent
  episodes on the same task, while the protocol scores the first attempt and a write makes only
  maintenance calls.
- UPDATE, MERGE and DELETE: the curator's docstring names them; the public code applies ADD only.
- Merging near-duplicates keeps the first bullet's text (``merge_with_model`` asks the memory model to
  merge the texts, as the code's analyzer does, at one more call per group).
- Under a ``memory_tokens`` budget (the paper shows everything: no cap), the bullets most similar to
  the task are kept (net helpful count breaks ties), in playbook order.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memento_lab.memory.methods.ace_playbook import SECTIONS, Bullet, Change, Playbook
from memento_lab.memory.methods.base import Feedback, MemoryEnv, MemoryItem, MemoryWrite, TaskLike
from memento_lab.memory.methods.blocks import Entry, Recall, Section, episode_text, render
from memento_lab.memory.methods.logged import Draft, LoggedMethod, unusable
from memento_lab.memory.methods.prompts import prompt_table
from memento_lab.memory.methods.registry import memory_method
from memento_lab.trace import LLMCall, Trace

_CITED = re.compile(r"\b([a-z]{2,5}-\d{5})\b")
TAGS = ("helpful", "harmful", "neutral")
REFLECTION_FIELDS = (
    "reasoning",
    "error_identification",
    "root_cause_analysis",
    "correct_approach",
    "key_insight",
)
REFLECTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{f: {"type": "string"} for f in REFLECTION_FIELDS},
        "bullet_tags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "tag": {"type": "string", "enum": list(TAGS)}},
                "required": ["id", "tag"],
            },
        },
    },
    "required": [*REFLECTION_FIELDS, "bullet_tags"],
}
CURATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["ADD", "UPDATE", "MERGE", "DELETE"]},
                    "section": {"type": "string"},
                    "content": {"type": "string"},
                    "bullet_id": {"type": "string"},
                    "bullet_ids": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["type"],
            },
        },
    },
    "required": ["reasoning", "operations"],
}


class ACEOptions(BaseModel):
    """ACE's settings (defaults: the paper's code, where it has one)."""

    model_config = ConfigDict(extra="forbid")

    curator_every: int = Field(1, ge=1, description="a curator call every this many episodes (code: 1)")
    dedupe: bool = Field(True, description="grow-and-refine: merge near-duplicate bullets after each delta")
    dedupe_threshold: float = Field(
        0.90, gt=0.0, le=1.0, description="cosine of near-duplicates (code: 0.90)"
    )
    merge_with_model: bool = Field(False, description="merge near-duplicates' texts with the memory model")
    playbook_tokens: int = Field(
        1000, ge=50, description="the budget the curator is told without memory_tokens"
    )
    reflect_tokens: int = Field(512, ge=32, description="token budget of one reflector reply")
    curate_tokens: int = Field(600, ge=32, description="token budget of one curator reply")
    temperature: float = Field(0.0, ge=0.0)


def _prompts() -> dict[str, str]:
    return prompt_table("ace.toml")


def playbook_of(bullets: list[MemoryItem], state: dict[str, Any]) -> Playbook:
    """The playbook held by a method's bullet items (in their order) and its id counter."""
    return Playbook(
        bullets=[
            Bullet(
                id=b.id,
                section=str(b.data["section"]),
                content=b.text,
                helpful=int(b.data.get("helpful", 0)),
                harmful=int(b.data.get("harmful", 0)),
            )
            for b in bullets
        ],
        next_id=int(state.get("next_id", 1)),
    )


def cited_ids(episode: Trace) -> list[str]:
    """Bullet ids the agent mentioned in its replies, step results and answer, in order of mention."""
    texts = [c.raw for c in episode.cycles] + [s.result for s in episode.steps] + [episode.final_answer or ""]
    return list(dict.fromkeys(m for t in texts for m in _CITED.findall(t or "")))


def json_reply(reply: Any) -> dict[str, Any] | None:
    """The JSON object of a reply: the client's parse of a schema-constrained reply, else the first
    object in its text (a reply from an endpoint that ignores the schema); None if it has none."""
    if getattr(reply, "error", None):
        return None
    parsed = getattr(reply, "parsed", None)
    if isinstance(parsed, dict):
        return parsed
    text = getattr(reply, "content", "") or ""
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def record(draft: Draft, change: Change, sources: list[str]) -> None:
    """One playbook change as the draft's memory op."""
    after = change.after[0] if change.after else None
    if change.op == "add":
        assert after is not None
        draft.add(
            "bullet",
            after.content,
            id=after.id,
            sources=sources,
            data={"section": after.section, "helpful": 0, "harmful": 0},
            note=change.reason,
        )
    elif change.op in ("update", "tag"):
        assert after is not None
        draft.change(
            after.id,
            change.op,
            text=after.content,
            helpful=after.helpful,
            harmful=after.harmful,
            note=change.reason,
        )
    elif change.op == "merge":
        assert after is not None
        draft.merge(
            after.id,
            change.ids[1:],
            text=after.content,
            helpful=after.helpful,
            harmful=after.harmful,
            note=change.reason,
        )
    else:
        draft.remove(change.ids[0], "delete", note=change.reason)


@memory_method(
    "ace",
    summary="ACE: a playbook of bullets with helpful/harmful counters; reflector tags, curator ADD/UPDATE/MERGE/DELETE",
    keeps="playbook",
)
class ACE(LoggedMethod):
    Options = ACEOptions
    transfer_safe = False  # a bullet distilled from a task may carry its answer

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self._budget = self.options.playbook_tokens  # the budget the curator is told (set by each write)

    def playbook(self) -> Playbook:
        return playbook_of(self.items("bullet"), self.state)

    # ------------------------------------------------------------------ reading
    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        book = self.playbook()
        if not book.bullets:
            return Recall([], hint=p["hint"])
        items = {i.id: i for i in self.items("bullet")}
        sims = dict(
            zip(
                [b.id for b in book.bullets],
                self.setup.similarity(task.question, [b.content for b in book.bullets]).tolist(),
                strict=True,
            )
        )
        whole = self.sections(book, book.bullets, items, sims)
        if (
            env.max_tokens is None
            or await env.count_tokens(render(whole, [s.entries for s in whole])) <= env.max_tokens
        ):
            return Recall(whole, hint=p["hint"])
        ranked = sorted(book.bullets, key=lambda b: (-sims[b.id], -(b.helpful - b.harmful)))
        chosen: list[Bullet] = []
        for b in ranked:  # the most similar bullets that fit, shown in playbook order
            trial = self.sections(book, [*chosen, b], items, sims)
            if await env.count_tokens(render(trial, [s.entries for s in trial])) <= env.max_tokens:
                chosen.append(b)
        return Recall(self.sections(book, chosen, items, sims), hint=p["hint"])

    @staticmethod
    def sections(
        book: Playbook, shown: list[Bullet], items: dict[str, MemoryItem], sims: dict[str, float]
    ) -> list[Section]:
        """The playbook's sections holding ``shown``, under the block's header and footer."""
        p = _prompts()
        out: list[Section] = []
        current = None
        for b in book.ordered(shown):
            if b.section != current:
                current = b.section
                out.append(Section(f"## {SECTIONS[b.section][0]}"))
            out[-1].entries.append(Entry(items[b.id], b.line(), score=sims.get(b.id)))
        if out:
            out[0].header = f"{p['header']}\n{out[0].header}"
            out[-1].footer = p["footer"]
        return out

    # ------------------------------------------------------------------ writing
    async def write(self, episode: Trace, feedback: Feedback, env: MemoryEnv) -> MemoryWrite:
        self._budget = env.max_tokens or self.options.playbook_tokens  # learn() sees the draft, not the env
        return await super().write(episode, feedback, env)

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        book = playbook_of(draft.items("bullet"), draft.state)
        shown = [s.id for s in episode.shown if book.get(s.id) is not None]
        cited = [i for i in cited_ids(episode) if i in shown]
        used = cited or shown
        reflection = await self.reflect(draft, episode, feedback, [b for b in book.bullets if b.id in used])
        sources = [episode.task_id]
        tags = {
            str(t.get("id")): str(t.get("tag"))
            for t in reflection.get("bullet_tags", [])
            if isinstance(t, dict)
        }
        for change in book.tag({i: tags[i] for i in used if i in tags}):
            record(draft, change, sources)
        step = draft.state.get("episodes", 0) + 1
        state: dict[str, Any] = {"episodes": step, "cited": draft.state.get("cited", 0) + len(cited)}
        if step % self.options.curator_every == 0:
            state.update(await self.curate(draft, book, episode, reflection, step, sources))
        draft.set_state(next_id=book.next_id, **state)

    async def reflect(
        self, draft: Draft, episode: Trace, feedback: Feedback, used: list[Bullet]
    ) -> dict[str, Any]:
        p = _prompts()
        body = episode_text(episode, style="full", answer=False).split("\n")[1:]
        wording = p["feedback_correct"] if feedback.success else p["feedback_wrong"]
        user = p["reflection_input"].format(
            question=episode.question,
            attempt="\n".join(body) or "(no reasoning shown)",
            answer=episode.final_answer or "(no answer)",
            gold=p["gold"].format(expected=feedback.expected) if feedback.expected is not None else "",
            feedback=wording.format(reward=feedback.reward),
            bullets="\n".join(b.line() for b in used) or p["no_bullets"],
        )
        reply = await draft.ask(
            [{"role": "system", "content": p["reflector"]}, {"role": "user", "content": user}],
            json_schema=REFLECTOR_SCHEMA,
            max_tokens=self.options.reflect_tokens,
            temperature=self.options.temperature,
        )
        reflection = json_reply(reply)
        if reflection is None:
            unusable(reply, "no JSON object in the reflector's reply")
        return reflection or {}

    async def curate(
        self,
        draft: Draft,
        book: Playbook,
        episode: Trace,
        reflection: dict[str, Any],
        step: int,
        sources: list[str],
    ) -> dict[str, Any]:
        """The curator's delta applied, then grow-and-refine; the state counters it changes."""
        p = _prompts()
        notes = "\n".join(f"{f}: {reflection[f]}" for f in REFLECTION_FIELDS if reflection.get(f)) or "(none)"
        user = p["curation_input"].format(
            step=step,
            stats=json.dumps(book.stats()),
            reflection=notes,
            playbook=book.render() or p["empty_playbook"],
            question=episode.question,
        )
        system = p["curator"].format(budget=self._budget, sections=", ".join(SECTIONS))
        reply = await draft.ask(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            json_schema=CURATOR_SCHEMA,
            max_tokens=self.options.curate_tokens,
            temperature=self.options.temperature,
        )
        found = (json_reply(reply) or {}).get("operations")
        operations = found if isinstance(found, list) else None
        if operations is None:
            unusable(reply, "no operations list in the curator's reply")
        changes, rejected = book.apply(operations or [])
        for change in changes:
            record(draft, change, sources)
        if self.options.dedupe and len(book.bullets) > 1:
            for change in await self.refine(draft, book):
                record(draft, change, sources)
        return {
            "curations": draft.state.get("curations", 0) + 1,
            "unusable_curations": draft.state.get("unusable_curations", 0) + (operations is None),
            "rejected_operations": draft.state.get("rejected_operations", 0) + len(rejected),
        }

    async def refine(self, draft: Draft, book: Playbook) -> list[Change]:
        """Grow-and-refine: each group of near-duplicate bullets merged into its first."""
        vectors = self.setup.embedder.encode([b.content for b in book.bullets])
        changes = []
        for group in book.duplicate_groups(vectors, self.options.dedupe_threshold):
            first = book.get(group[0])
            assert first is not None
            text = first.content
            if self.options.merge_with_model:
                text = await self.merged_text(draft, [b for b in book.bullets if b.id in group]) or text
            change = book.merge(group, text)
            change.reason = "dedupe"
            changes.append(change)
        return changes

    async def merged_text(self, draft: Draft, group: list[Bullet]) -> str:
        p = _prompts()
        reply = await draft.ask(
            [{"role": "user", "content": p["merge"].format(bullets="\n".join(b.line() for b in group))}],
            max_tokens=160,
            temperature=self.options.temperature,
        )
        return " ".join((reply.content or "").split()) if not reply.error else ""

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "bullets": len(self.items("bullet")), **self.playbook().stats()}

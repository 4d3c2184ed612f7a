"""Dynamic Cheatsheet (Suzgun et al. 2025, "Dynamic Cheatsheet: Test-Time Learning with Adaptive
Memory"): one evolving cheatsheet that a curator rewrites, and the two curator-free baselines.

Four methods, as the paper's code runs them (suzgunmirac/dynamic-cheatsheet,
``dynamic_cheatsheet/language_model.py::advanced_generate``, ``run_benchmark.py``):

- ``dc-cu`` (DC-Cumulative): the agent answers with the cheatsheet; **after** the answer one curator
  call reads the previous cheatsheet, the task and the model's whole solution, judges the solution
  itself (DC uses no label: the judge's reward is not shown to it) and writes the complete new
  cheatsheet inside ``<cheatsheet>`` tags. A reply without that block keeps the old cheatsheet
  (``extract_cheatsheet``). The cheatsheet starts as ``(empty)``.
- ``dc-rs`` (DC with Retrieval & Synthesis): **before** the answer, the ``k`` past (task, solution)
  pairs most similar to the task (cosine of the questions; paper: 3) and the previous cheatsheet go to
  the curator, which writes the cheatsheet for this task; the agent answers with it and it is carried
  forward (the synthesis is a maintenance call of the read). Every solution joins the pairs.
- ``dc-retrieval`` (the paper's ``Dynamic_Retrieval`` baseline): the ``k`` most similar past pairs
  shown as they are, no curator.
- ``dc-history`` (``FullHistoryAppending``): every past pair, no curator.

Departures, each for a reason:

- The agent answers with the workbench's own prompts (one protocol for every method); DC's generator
  prompt (its answer format, its "EXECUTE CODE!" loop) is not used: the cheatsheet goes in the memory
  slot where every method's block goes.
- The curator prompt is DC's, shortened, and names a word budget (``sheet_words``, or the run's
  ``memory_tokens``): the paper allows "circa 2000-2500 words", which a 1.5B model with an 8k context
  cannot hold beside the curator's instructions and a solution. The reply's ``max_tokens`` bounds it.
- Under ``memory_tokens`` the cheatsheet is cut to the budget (its head kept); the retrieved pairs show
  most similar **first** (the paper lists them most similar last) so the budget drops the least
  similar; full history shows the newest first so the budget drops the oldest (the paper appends
  everything: no cap).
- DC-RS when the curator's reply has no ``<cheatsheet>`` block: the previous cheatsheet is kept (the
  paper's code falls back to the raw retrieved pairs, which silently turns DC-RS into the retrieval
  baseline whenever a small model drops the tag).
- ``exclude_question`` hides the pairs of the task's own question (the paper's stream never repeats a
  question); the cumulative cheatsheet cannot be filtered, so DC-Cu and DC-RS are not transfer-safe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from memento_lab.memory.methods.base import Feedback, MemoryEnv, MemoryItem, MemoryWrite, TaskLike
from memento_lab.memory.methods.blocks import Entry, Recall, Section, episode_text
from memento_lab.memory.methods.logged import Draft, LoggedMethod, ask, unusable
from memento_lab.memory.methods.prompts import prompt_table
from memento_lab.memory.methods.registry import memory_method
from memento_lab.trace import LLMCall, Trace

EMPTY = "(empty)"  # the cheatsheet before the first curation (run_benchmark.py)
SHEET_ID = "cheatsheet"
_SHEET = re.compile(r"<cheatsheet>(.*?)(?:</cheatsheet>|$)", re.S | re.I)


class CheatsheetOptions(BaseModel):
    """Dynamic Cheatsheet's settings (defaults: the paper's, where it has one)."""

    model_config = ConfigDict(extra="forbid")

    retrieve_k: int = Field(3, ge=1, description="past pairs retrieved (DC-RS, retrieval baseline; paper: 3)")
    sheet_words: int = Field(300, ge=20, description="the cheatsheet's length the curator is asked for")
    curator_tokens: int = Field(900, ge=64, description="token budget of one curator reply")
    solution_chars: int = Field(1200, ge=100, description="how much of a past solution a pair keeps")
    temperature: float = Field(0.0, ge=0.0, description="curator temperature (paper: 0.0)")


def _prompts() -> dict[str, str]:
    return prompt_table("dynamic_cheatsheet.toml")


def extract_cheatsheet(reply: str, *, old: str) -> str:
    """The text of the reply's ``<cheatsheet>`` block (closing tag optional), else ``old``."""
    m = _SHEET.search(reply or "")
    text = m.group(1).strip() if m else ""
    return text or old


def solution_text(episode: Trace, chars: int) -> str:
    """The model's solution as DC keeps it: everything the episode produced after the task."""
    body = "\n".join(episode_text(episode, style="full").split("\n")[1:])
    return body if len(body) <= chars else body[: chars - 1] + "…"


class _Cheatsheet(LoggedMethod):
    """What the four variants share: the (task, solution) pairs, the cheatsheet item."""

    Options = CheatsheetOptions
    curated: ClassVar[bool] = True  # keeps a cheatsheet
    transfer_safe = False

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self._words = self.options.sheet_words  # the length asked of the curator (set by each write)

    def cheatsheet(self) -> str:
        item = self._items.get(SHEET_ID)
        return item.text if item is not None else EMPTY

    def pairs(self, task: TaskLike) -> list[MemoryItem]:
        pool = self.items("pair")
        if self.setup.exclude_question:
            pool = [p for p in pool if p.question != task.question]
        return pool

    def nearest(self, task: TaskLike) -> list[tuple[MemoryItem, float]]:
        """The ``retrieve_k`` pairs most similar to the task, most similar first."""
        pool = self.pairs(task)
        if not pool:
            return []
        sims = self.setup.similarity(task.question, [p.question or "" for p in pool])
        order = sorted(range(len(pool)), key=lambda j: -sims[j])[: self.options.retrieve_k]
        return [(pool[j], float(sims[j])) for j in order]

    def pair_entries(self, scored: Sequence[tuple[MemoryItem, float | None]]) -> list[Entry]:
        p = _prompts()
        out = []
        for n, (item, sim) in enumerate(scored, 1):
            similarity = p["similarity"].format(score=sim) if sim is not None else ""
            text = p["pair"].format(n=n, similarity=similarity, question=item.question, solution=item.text)
            out.append(Entry(item, text, score=sim))
        return out

    def add_pair(self, draft: Draft, episode: Trace, feedback: Feedback) -> None:
        draft.add(
            "pair",
            solution_text(episode, self.options.solution_chars),
            question=episode.question,
            sources=[episode.task_id],
            data={"task_id": episode.task_id, "reward": feedback.reward},
        )

    def words(self, env: MemoryEnv) -> int:
        """The length the curator is asked for: the option, or less when the block's budget is smaller
        (about 0.75 words a token)."""
        budget = self.options.sheet_words
        return min(budget, max(20, int(env.max_tokens * 0.75))) if env.max_tokens else budget

    async def write(self, episode: Trace, feedback: Feedback, env: MemoryEnv) -> MemoryWrite:
        self._words = self.words(env)  # learn() sees the draft, not the env: the budget goes this way
        return await super().write(episode, feedback, env)

    def sheet_recall(self, sheet: str) -> Recall:
        """The cheatsheet as the block shows it (cut to the budget); shown as the cheatsheet item, or as
        no item while none is kept yet (DC-RS's first synthesis, which its write then keeps)."""
        p = _prompts()
        item = self._items.get(SHEET_ID)
        if sheet == EMPTY:
            return Recall([], hint=p["hint"])
        return Recall([Section(p["cheatsheet_header"], [Entry(item, sheet, clip=True)])], hint=p["hint"])

    def set_sheet(self, draft: Draft, text: str, note: str) -> None:
        if SHEET_ID not in draft:
            draft.add(SHEET_ID, text, id=SHEET_ID, op="rewrite", note=note)
        elif draft.get(SHEET_ID).text != text:
            draft.change(SHEET_ID, "rewrite", text=text, note=note)

    async def curate(self, chat: Any, calls: list[LLMCall], prompt: str, old: str) -> tuple[str, bool]:
        """One curator call; (the new cheatsheet, whether the reply had one)."""
        reply = await ask(
            chat,
            calls,
            [{"role": "user", "content": prompt}],
            max_tokens=self.options.curator_tokens,
            temperature=self.options.temperature,
        )
        new = extract_cheatsheet(reply.content or "", old="") if not reply.error else ""
        if not new:
            unusable(reply, "no <cheatsheet> block in the curator's reply: the old cheatsheet is kept")
        return (new, True) if new else (old, False)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "pairs": len(self.items("pair")),
            "cheatsheet_chars": len(self.cheatsheet()),
        }


@memory_method(
    "dc-cu",
    summary="Dynamic Cheatsheet, cumulative: a curator rewrites one cheatsheet after each answer",
    keeps="cheatsheet",
)
class DCCumulative(_Cheatsheet):
    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        return self.sheet_recall(self.cheatsheet())

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        p = _prompts()
        old = draft.get(SHEET_ID).text if SHEET_ID in draft else EMPTY
        n = draft.state.get("curations", 0) + 1
        prompt = p["cumulative"].format(
            rules=p["rules"].format(words=self._words),
            cheatsheet=old,
            n=n,
            question=episode.question,
            solution=solution_text(episode, self.options.solution_chars),
        )
        new, ok = await self.curate(draft.chat, draft.calls, prompt, old)
        self.set_sheet(draft, new, note=f"Q{n}")
        draft.set_state(curations=n, kept_old=draft.state.get("kept_old", 0) + (not ok))


@memory_method(
    "dc-rs",
    summary="Dynamic Cheatsheet, retrieval & synthesis: a curator writes each task's cheatsheet from similar past solutions",
    keeps="cheatsheet",
)
class DCRetrievalSynthesis(_Cheatsheet):
    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self._synthesized: dict[str, tuple[str, bool]] = {}  # task id -> the sheet its read wrote

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        old = self.cheatsheet()
        nearest = self.nearest(task)[::-1]  # the curator reads them as the paper does: most similar last
        if old == EMPTY and not nearest:
            # Nothing remembered, nothing to synthesize: the paper's code still calls the curator,
            # whose sheet would be the model's own notes on this very task (test-time compute, not
            # memory); an empty memory shows nothing, as for every method.
            self._synthesized.pop(task.id, None)
            return Recall([], hint=p["hint"])
        pairs = (
            "\n".join([p["pairs_header"], *(e.text for e in self.pair_entries(nearest))])
            if nearest
            else EMPTY
        )
        prompt = p["synthesis"].format(
            rules=p["rules"].format(words=self.words(env)),
            cheatsheet=old,
            pairs=pairs,
            n=self.version + 1,
            question=task.question,
        )
        new, ok = await self.curate(env.chat, calls, prompt, old)
        self._synthesized[task.id] = (new, ok)
        return self.sheet_recall(new)

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        self.add_pair(draft, episode, feedback)
        synthesized = self._synthesized.pop(episode.task_id, None)
        if synthesized is None:  # nothing synthesized for it (an empty memory), or not read by this object
            draft.set_state(unsynthesized=draft.state.get("unsynthesized", 0) + 1)
            return
        sheet, ok = synthesized
        self.set_sheet(draft, sheet, note=f"Q{draft.version}")
        draft.set_state(
            curations=draft.state.get("curations", 0) + 1, kept_old=draft.state.get("kept_old", 0) + (not ok)
        )


@memory_method(
    "dc-retrieval",
    summary="Dynamic Cheatsheet's retrieval baseline: the most similar past solutions, no curator",
    keeps="solutions",
)
class DCRetrieval(_Cheatsheet):
    transfer_safe = True  # only pairs, each of one question: exclude_question hides the task's own

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        return Recall(
            [Section(p["pairs_header"], self.pair_entries(self.nearest(task)))], hint=p["pairs_hint"]
        )

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        self.add_pair(draft, episode, feedback)


@memory_method(
    "dc-history",
    summary="Dynamic Cheatsheet's full-history baseline: every past solution, no curator",
    keeps="solutions",
)
class DCFullHistory(_Cheatsheet):
    transfer_safe = True

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        newest_first = [(item, None) for item in reversed(self.pairs(task))]
        return Recall([Section(p["pairs_header"], self.pair_entries(newest_first))], hint=p["pairs_hint"])

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        self.add_pair(draft, episode, feedback)

"""ACE's playbook as data: bullets in sections with helpful / harmful counters, and the curator's
operations applied to it deterministically (Zhang et al. 2025, "Agentic Context Engineering", §3).

    book = Playbook()
    changes = book.apply([{"type": "ADD", "section": "common_mistakes_to_avoid", "content": "..."}])
    book.tag({"err-00001": "helpful"})            # the reflector's tags: the counter layer
    groups = book.duplicate_groups(vectors, 0.90) # grow-and-refine: near-duplicates by embedding

A bullet renders as the paper's line ``[err-00001] helpful=2 harmful=0 :: content``; ids are the
section's slug and one global counter (ace-agent/ace ``playbook_utils``), so an id names its bullet for
the whole run, whatever is deleted or merged later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

# The sections of the paper's empty playbook (ace-agent/ace ``ACE._initialize_empty_playbook``), with
# the slug each bullet id starts with.
SECTIONS: dict[str, tuple[str, str]] = {
    "strategies_and_insights": ("STRATEGIES & INSIGHTS", "strat"),
    "formulas_and_calculations": ("FORMULAS & CALCULATIONS", "calc"),
    "code_snippets_and_templates": ("CODE SNIPPETS & TEMPLATES", "code"),
    "common_mistakes_to_avoid": ("COMMON MISTAKES TO AVOID", "err"),
    "problem_solving_heuristics": ("PROBLEM-SOLVING HEURISTICS", "prob"),
    "context_clues_and_indicators": ("CONTEXT CLUES & INDICATORS", "ctx"),
    "others": ("OTHERS", "misc"),
}
OTHERS = "others"
Tag = Literal["helpful", "harmful", "neutral"]


def section_key(name: str) -> str:
    """A section name as the curator may write it ("Common Mistakes to Avoid") -> its key; an unknown
    section is OTHERS, as in the paper's code."""
    key = name.strip().lower().replace("&", "and").replace("-", "_").replace(" ", "_")
    while "__" in key:
        key = key.replace("__", "_")
    return key if key in SECTIONS else OTHERS


class Bullet(BaseModel):
    id: str
    section: str
    content: str
    helpful: int = 0
    harmful: int = 0

    def line(self) -> str:
        return f"[{self.id}] helpful={self.helpful} harmful={self.harmful} :: {self.content}"


class Change(BaseModel):
    """One applied operation: what the playbook held before and after (None: absent)."""

    op: Literal["add", "update", "merge", "delete", "tag"]
    ids: list[str]
    before: list[Bullet] = Field(default_factory=list)
    after: list[Bullet] = Field(default_factory=list)
    reason: str = ""


class Rejected(BaseModel):
    """An operation the curator asked for that cannot apply (unknown id, empty content)."""

    operation: dict[str, Any]
    why: str


class Playbook(BaseModel):
    bullets: list[Bullet] = Field(default_factory=list)
    next_id: int = 1

    # ------------------------------------------------------------------ reading
    def get(self, bullet_id: str) -> Bullet | None:
        return next((b for b in self.bullets if b.id == bullet_id), None)

    def ordered(self, shown: Sequence[Bullet] | None = None) -> list[Bullet]:
        """Bullets in section order (the order the playbook prints), optionally only ``shown``."""
        keep = {b.id for b in shown} if shown is not None else None
        order = list(SECTIONS)
        items = [b for b in self.bullets if keep is None or b.id in keep]
        return sorted(items, key=lambda b: order.index(b.section))  # stable: insertion order within a section

    def render(self, shown: Sequence[Bullet] | None = None) -> str:
        """The playbook as the generator sees it: section headers and bullet lines."""
        lines: list[str] = []
        section = None
        for b in self.ordered(shown):
            if b.section != section:
                section = b.section
                lines.append(f"## {SECTIONS[section][0]}")
            lines.append(b.line())
        return "\n".join(lines)

    def stats(self) -> dict[str, int]:
        """The curator's view of the playbook's health (ace-agent/ace ``get_playbook_stats``)."""
        high = sum(b.helpful > 5 and b.harmful < 2 for b in self.bullets)
        problematic = sum(b.harmful >= b.helpful and b.harmful > 0 for b in self.bullets)
        unused = sum(b.helpful + b.harmful == 0 for b in self.bullets)
        return {
            "total_bullets": len(self.bullets),
            "high_performing": high,
            "problematic": problematic,
            "unused": unused,
        }

    # ------------------------------------------------------------------ the counter layer
    def tag(self, tags: Mapping[str, str]) -> list[Change]:
        """The reflector's tags: helpful +1, harmful +1, neutral (or any other word) nothing."""
        changes: list[Change] = []
        for bullet_id, word in tags.items():
            b = self.get(bullet_id)
            if b is None or word not in ("helpful", "harmful"):
                continue
            before = b.model_copy()
            if word == "helpful":
                b.helpful += 1
            else:
                b.harmful += 1
            changes.append(Change(op="tag", ids=[b.id], before=[before], after=[b.model_copy()], reason=word))
        return changes

    # ------------------------------------------------------------------ the curator's delta
    def _new_id(self, section: str) -> str:
        bullet_id = f"{SECTIONS[section][1]}-{self.next_id:05d}"
        self.next_id += 1
        return bullet_id

    def add(self, section: str, content: str) -> Change:
        b = Bullet(id=self._new_id(section_key(section)), section=section_key(section), content=content)
        self.bullets.append(b)
        return Change(op="add", ids=[b.id], after=[b.model_copy()])

    def update(self, bullet_id: str, content: str) -> Change:
        """Rewrite a bullet's content in place; its id and counters stay (the paper's in-place update)."""
        b = self.get(bullet_id)
        assert b is not None
        before = b.model_copy()
        b.content = content
        return Change(op="update", ids=[b.id], before=[before], after=[b.model_copy()])

    def merge(self, bullet_ids: Sequence[str], content: str) -> Change:
        """Several bullets become one: the first id and section stay, the counters add up (ace-agent/ace
        ``BulletpointAnalyzer``: "keep the ID from the first entry, use combined counts")."""
        group = [b for b in (self.get(i) for i in bullet_ids) if b is not None]
        keep = group[0]
        before = [b.model_copy() for b in group]
        keep.helpful = sum(b.helpful for b in group)
        keep.harmful = sum(b.harmful for b in group)
        keep.content = content
        gone = {b.id for b in group[1:]}
        self.bullets = [b for b in self.bullets if b.id not in gone]
        return Change(op="merge", ids=[b.id for b in group], before=before, after=[keep.model_copy()])

    def delete(self, bullet_id: str) -> Change:
        b = self.get(bullet_id)
        assert b is not None
        self.bullets = [x for x in self.bullets if x.id != bullet_id]
        return Change(op="delete", ids=[bullet_id], before=[b.model_copy()])

    def apply(self, operations: Sequence[Any]) -> tuple[list[Change], list[Rejected]]:
        """Apply the curator's operations in order (ADD, UPDATE, MERGE, DELETE); an operation that
        cannot apply is rejected with its reason and the others still apply."""
        changes: list[Change] = []
        rejected: list[Rejected] = []
        for op in operations:
            why = self._check(op)
            if why:
                rejected.append(Rejected(operation=op if isinstance(op, dict) else {"op": op}, why=why))
                continue
            kind = str(op["type"]).upper()
            content = str(op.get("content") or "").strip()
            if kind == "ADD":
                change = self.add(str(op.get("section") or OTHERS), content)
            elif kind == "UPDATE":
                change = self.update(str(op["bullet_id"]), content)
            elif kind == "MERGE":
                change = self.merge([str(i) for i in op["bullet_ids"]], content)
            else:
                change = self.delete(str(op["bullet_id"]))
            change.reason = str(op.get("reason") or "")
            changes.append(change)
        return changes, rejected

    def _check(self, op: Any) -> str:
        """Why ``op`` cannot apply ('' when it can)."""
        if not isinstance(op, dict) or "type" not in op:
            return "not an operation object with a type"
        kind = str(op["type"]).upper()
        content = str(op.get("content") or "").strip()
        if kind not in ("ADD", "UPDATE", "MERGE", "DELETE"):
            return f"unknown operation type {op['type']!r}"
        if kind in ("ADD", "UPDATE", "MERGE") and not content:
            return f"{kind} without content"
        if kind in ("UPDATE", "DELETE") and self.get(str(op.get("bullet_id"))) is None:
            return f"{kind} of unknown bullet {op.get('bullet_id')!r}"
        if kind == "MERGE":
            ids = op.get("bullet_ids")
            if not isinstance(ids, list) or len({str(i) for i in ids}) < 2:
                return "MERGE needs at least two bullet_ids"
            missing = [i for i in ids if self.get(str(i)) is None]
            if missing:
                return f"MERGE of unknown bullets {missing}"
        return ""

    # ------------------------------------------------------------------ grow-and-refine
    def duplicate_groups(self, vectors: np.ndarray, threshold: float) -> list[list[str]]:
        """Groups of near-duplicate bullets (cosine >= threshold), greedy in playbook order: a bullet
        not yet grouped collects every later ungrouped bullet that close to it (ace-agent/ace
        ``BulletpointAnalyzer._find_similar_groups``). ``vectors``: one unit row per bullet, in order."""
        sims = vectors @ vectors.T
        grouped: set[int] = set()
        groups: list[list[str]] = []
        for i in range(len(self.bullets)):
            if i in grouped:
                continue
            near = [
                j for j in range(i + 1, len(self.bullets)) if j not in grouped and sims[i, j] >= threshold
            ]
            if near:
                groups.append([self.bullets[k].id for k in [i, *near]])
                grouped.update([i, *near])
        return groups

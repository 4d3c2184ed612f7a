"""Memory hygiene: duplicate cases, and cases that leak evaluation tasks into memory.

Both compare questions: exactly (after whitespace/case normalisation) and by cosine similarity
of their embeddings (near duplicates). ``leakage_report`` lets a run refuse or flag a bank that
already holds (near) copies of its evaluation tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from memento_lab.memory.cases import Case, CaseBank
from memento_lab.memory.encoders import Encoder


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


class DuplicateGroup(BaseModel):
    keep: str  # the earliest case id
    duplicates: list[str]
    kind: str  # exact | near
    similarity: float


def find_duplicates(
    cases: Sequence[Case], encoder: Encoder | None = None, *, threshold: float = 0.95, same_label: bool = True
) -> list[DuplicateGroup]:
    """Groups of duplicate cases (earliest kept). Near duplicates need an ``encoder``.

    ``same_label=True`` only groups cases with the same label: a solved and a failed attempt at
    the same task are different experiences, not duplicates.
    """
    groups: list[DuplicateGroup] = []
    seen: dict[tuple[str, str], str] = {}
    grouped: dict[str, DuplicateGroup] = {}
    taken: set[str] = set()
    for c in cases:
        key = (normalize(c.question), c.label if same_label else "")
        if key in seen:
            g = grouped.setdefault(
                seen[key], DuplicateGroup(keep=seen[key], duplicates=[], kind="exact", similarity=1.0)
            )
            g.duplicates.append(c.id)
            taken.add(c.id)
        else:
            seen[key] = c.id
    groups.extend(grouped.values())
    if encoder is None:
        return groups
    rest = [c for c in cases if c.id not in taken]
    if len(rest) < 2:
        return groups
    vecs = encoder.encode([c.question for c in rest])
    labels = np.array([c.label for c in rest])
    absorbed: set[int] = set()
    block = 2048  # rows of the similarity matrix held at once (N x N would not fit for large banks)
    for start in range(0, len(rest), block):
        sims = vecs[start : start + block] @ vecs.T
        for off, row in enumerate(sims):
            i = start + off
            if i in absorbed:
                continue
            hits = [
                int(j)
                for j in np.flatnonzero(row >= threshold)
                if j > i and j not in absorbed and (not same_label or labels[j] == labels[i])
            ]
            if hits:
                absorbed.update(hits)
                groups.append(
                    DuplicateGroup(
                        keep=rest[i].id,
                        duplicates=[rest[j].id for j in hits],
                        kind="near",
                        similarity=float(min(row[j] for j in hits)),
                    )
                )
    return groups


def dedupe(
    bank: CaseBank, encoder: Encoder | None = None, *, threshold: float = 0.95
) -> tuple[list[DuplicateGroup], int]:
    """Remove duplicates from a bank (tombstones: earlier versions keep them); returns groups and the new version."""
    groups = find_duplicates(bank.cases(), encoder, threshold=threshold)
    ids = [d for g in groups for d in g.duplicates]
    version = bank.remove(ids, reason=f"dedupe threshold={threshold}") if ids else bank.version
    return groups, version


class LeakHit(BaseModel):
    case_id: str
    case_question: str
    eval_index: int
    eval_question: str
    similarity: float
    exact: bool


class LeakageReport(BaseModel):
    threshold: float
    n_cases: int
    n_eval: int
    hits: list[LeakHit]

    @property
    def contaminated(self) -> bool:
        return bool(self.hits)

    @property
    def leaked_eval_tasks(self) -> set[int]:
        return {h.eval_index for h in self.hits}

    def raise_if_contaminated(self) -> None:
        if self.hits:
            worst = max(self.hits, key=lambda h: h.similarity)
            raise ValueError(
                f"memory is contaminated: {len(self.hits)} case(s) near-duplicate {len(self.leaked_eval_tasks)} "
                f"eval task(s) (threshold {self.threshold}); e.g. case {worst.case_id} ~ eval #{worst.eval_index} "
                f"(cos {worst.similarity:.3f}): {worst.eval_question[:80]!r}"
            )


def leakage_report(
    cases: Sequence[Case],
    eval_questions: Sequence[str],
    encoder: Encoder | None = None,
    *,
    threshold: float = 0.9,
) -> LeakageReport:
    """Which cases are (near) copies of evaluation tasks: exact matches always, cosine >= threshold with an encoder."""
    hits: list[LeakHit] = []
    index = {normalize(q): i for i, q in enumerate(eval_questions)}
    exact_ids = set()
    for c in cases:
        i = index.get(normalize(c.question))
        if i is not None:
            hits.append(
                LeakHit(
                    case_id=c.id,
                    case_question=c.question,
                    eval_index=i,
                    eval_question=eval_questions[i],
                    similarity=1.0,
                    exact=True,
                )
            )
            exact_ids.add(c.id)
    if encoder is not None and cases and eval_questions:
        rest = [c for c in cases if c.id not in exact_ids]
        if rest:
            cv = encoder.encode([c.question for c in rest])
            ev = encoder.encode(list(eval_questions))
            sims = cv @ ev.T
            for ci, ei in zip(*np.nonzero(sims >= threshold), strict=True):
                hits.append(
                    LeakHit(
                        case_id=rest[ci].id,
                        case_question=rest[ci].question,
                        eval_index=int(ei),
                        eval_question=eval_questions[ei],
                        similarity=float(sims[ci, ei]),
                        exact=False,
                    )
                )
    hits.sort(key=lambda h: -h.similarity)
    return LeakageReport(threshold=threshold, n_cases=len(cases), n_eval=len(eval_questions), hits=hits)

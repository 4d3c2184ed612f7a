"""Memory hygiene: duplicate cases, and cases that leak evaluation tasks into memory.

Both compare questions: exactly (after whitespace/case normalisation) and by cosine similarity
of their embeddings (near duplicates). ``leakage_report`` lets a run refuse or flag a bank that
already holds (near) copies of its evaluation tasks. From ``index.ANN_THRESHOLD`` cases on, near
neighbours come from a FAISS index (``index.neighbours_above``) instead of a similarity matrix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from memento_lab.memory.bank import index as ann
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.bank.encoders import Encoder


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
    for i, (idx, sims) in enumerate(_near(vecs, labels if same_label else None, threshold)):
        if i in absorbed:
            continue
        hits = {int(j): float(s) for j, s in zip(idx, sims, strict=True) if j > i and j not in absorbed}
        if hits:
            absorbed.update(hits)
            groups.append(
                DuplicateGroup(
                    keep=rest[i].id,
                    duplicates=[rest[j].id for j in sorted(hits)],
                    kind="near",
                    similarity=min(hits.values()),
                )
            )
    return groups


def _near(
    vecs: np.ndarray, labels: np.ndarray | None, threshold: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each row's neighbours at or above ``threshold`` (same label when given): an index at scale."""
    if len(vecs) >= ann.ANN_THRESHOLD:
        codes = None if labels is None else np.unique(labels, return_inverse=True)[1]
        return ann.neighbours_above(vecs, vecs, threshold, groups=codes, query_groups=codes)
    out = []
    block = 2048  # rows of the similarity matrix held at once
    for start in range(0, len(vecs), block):
        for off, row in enumerate(vecs[start : start + block] @ vecs.T):
            ok = row >= threshold
            if labels is not None:
                ok &= labels == labels[start + off]
            idx = np.flatnonzero(ok)
            out.append((idx, row[idx]))
    return out


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
            if len(rest) >= ann.ANN_THRESHOLD:
                found = ann.neighbours_above(cv, ev, threshold)
                pairs = [
                    (int(ci), ei, float(s))
                    for ei, (idx, sim) in enumerate(found)
                    for ci, s in zip(idx, sim, strict=True)
                ]
            else:
                sims = cv @ ev.T
                pairs = [
                    (int(ci), int(ei), float(sims[ci, ei]))
                    for ci, ei in zip(*np.nonzero(sims >= threshold), strict=True)
                ]
            for ci, ei, sim in pairs:
                hits.append(
                    LeakHit(
                        case_id=rest[ci].id,
                        case_question=rest[ci].question,
                        eval_index=ei,
                        eval_question=eval_questions[ei],
                        similarity=sim,
                        exact=False,
                    )
                )
    hits.sort(key=lambda h: -h.similarity)
    return LeakageReport(threshold=threshold, n_cases=len(cases), n_eval=len(eval_questions), hits=hits)

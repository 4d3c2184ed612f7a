"""Self-consistency: several sampled attempts at one task, and the vote that picks the episode's answer.

    vote(["42", " 42.0", "41", None], "short")     # Vote(chosen=0, counts={"42": 2, "41": 1}, ...)
    vote([prog_a, prog_b], "program", [0.5, 1.0])  # Vote(chosen=1, rule="examples")

Words (short, text, value): the majority of the normalised answers (``answer_key``: case, spacing,
quotes and a trailing full stop do not count, numbers compare as numbers: ``1,000`` = ``1000.0``);
unusable replies (no answer) do not vote; a tie goes to the answer whose first sample came first (so
the outcome never depends on anything but the samples' order). Programs rarely agree as text, so they
are voted by what they do on the task's visible examples: the first sample whose program passes every
one, else the one passing the most (earliest on ties); with no examples to run (or no code tool), the
majority of the normalised code, then the first sample.

The agent's attempts are ``AgentConfig.samples`` full episodes of its profile (direct, direct-instant
or planner-executor) at ``sample_temperature``, each with its own seed; every attempt's calls stay in
the trace (and the cassette), so an arm's tokens are what all its attempts cost.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from memento_lab.trace import Vote

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")


def answer_key(answer: str | None, kind: str = "short") -> str | None:
    """The form of an answer that votes: ``None`` for no answer; words case-folded, spacing collapsed,
    surrounding quotes and a trailing full stop dropped, a number in its canonical form; a program's
    code with its spacing collapsed."""
    if answer is None or not answer.strip():
        return None
    text = " ".join(answer.split())
    if kind == "program":
        return text
    text = text.casefold().strip("\"'`*").strip()
    text = re.sub(r"[.;,!]+$", "", text).strip()
    if text and _NUMBER.fullmatch(text):
        try:
            number = Decimal(text.replace(",", ""))
            return (
                format(number.normalize(), "f") if number == number.to_integral() else str(number.normalize())
            )
        except InvalidOperation:
            pass
    return text or None


def vote(answers: Sequence[str | None], kind: str = "short", scores: Sequence[float | None] = ()) -> Vote:
    """The vote between the attempts' ``answers`` (in sample order); ``scores``: for programs, the share
    of the task's visible examples each attempt's program passed (``None``: not run)."""
    if not answers:
        raise ValueError("a vote needs at least one answer")
    keys = [answer_key(a, kind) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    ran = [s for s in scores if s is not None]
    if kind == "program" and ran:
        passed = [-1.0 if s is None or answers[i] is None else s for i, s in enumerate(scores)]
        best = max(passed)  # 1.0 when one passes every example: the first such sample
        chosen = passed.index(best)
        return Vote(
            answers=list(answers),
            keys=keys,
            scores=list(scores),
            counts=dict(counts),
            chosen=chosen,
            rule="examples",
        )
    chosen = 0
    if counts:
        top = max(counts.values())
        chosen = next(i for i, k in enumerate(keys) if k is not None and counts[k] == top)
    return Vote(answers=list(answers), keys=keys, scores=list(scores), counts=dict(counts), chosen=chosen)

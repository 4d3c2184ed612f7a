"""ExpeL's insight list and its four operations, as the paper's code applies them (Zhao et al. 2023,
arXiv 2308.10144; ``agent/expel.py`` of LeapLabTHU/ExpeL: ``parse_rules`` and ``update_rules``).

The critique model answers with lines ``ADD n: rule``, ``EDIT n: rule``, ``AGREE n: rule`` and
``REMOVE n: rule``. Each insight has an importance count:

- **ADD** appends a new insight with count 2, unless an existing insight's text is contained in it
  (then the operation is dropped);
- **AGREE** adds 1; **REMOVE** subtracts 1, or 3 when the list is full (``max_num_rules + 5`` insights
  or more); both find their insight by its *text* (an existing insight contained in the line), not
  by its number, and are dropped when no insight matches;
- **EDIT n** replaces insight ``n``'s text and adds 1; an edit whose text contains an existing insight
  becomes an AGREE of that insight; an edit without a valid number is dropped;
- operations apply in the order REMOVE, AGREE, EDIT, ADD; then every insight whose count is 0 or less
  is deleted and the list is sorted by count, highest first (a stable sort: ties keep their order).

A line counts only if its text ends with a period and does not contain ``ADD``, ``AGREE`` or
``EDIT`` (cut-off or garbled lines). Where the code reads ``EDIT 0`` as "edit the last insight"
(Python's index -1), it is dropped here like any other number out of range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Verb = Literal["ADD", "EDIT", "AGREE", "REMOVE"]
ADD_COUNT = 2
FULL_MARGIN = 5  # REMOVE weighs 3 once the list holds max_num_rules + 5 insights
_LINE = re.compile(r"((?:REMOVE|EDIT|ADD|AGREE)(?: \d+|)): (?:[a-zA-Z\s\d]+: |)(.*)")
_BANNED = ("ADD", "AGREE", "EDIT")


@dataclass
class Operation:
    verb: Verb
    number: int | None
    text: str


@dataclass
class Rule:
    text: str
    count: int
    id: str | None = None  # None until the memory adds it


@dataclass
class Event:
    """One applied operation: the rule before (None for ADD) and after (None: deleted)."""

    verb: str  # ADD | EDIT | AGREE | REMOVE | DELETE (count reached 0)
    before: Rule | None
    after: Rule | None


@dataclass
class Update:
    rules: list[Rule]  # the new list, sorted
    events: list[Event] = field(default_factory=list)
    dropped: list[Operation] = field(default_factory=list)  # operations that did not apply


def parse_operations(reply: str) -> list[Operation]:
    """The operations of a critique reply (lines that fail the checks are left out)."""
    out = []
    for head, text in _LINE.findall(reply):
        text = text.strip()
        if not text or not text.endswith(".") or any(w in text for w in _BANNED):
            continue
        verb, _, number = head.partition(" ")
        out.append(Operation(verb, int(number) if number else None, text))
    return out


def _match(rules: list[Rule], text: str) -> int | None:
    """The first rule whose text is contained in ``text`` (how the code finds a rule)."""
    return next((i for i, r in enumerate(rules) if r.text in text), None)


def update_rules(rules: list[Rule], operations: list[Operation], *, list_full: bool) -> Update:
    """Apply ``operations`` to ``rules`` (not changed: copies are returned) exactly as ExpeL does."""
    rules = [Rule(r.text, r.count, r.id) for r in rules]
    valid: list[Operation] = []
    update = Update(rules=[])
    for op in operations:
        hit = _match(rules, op.text)
        if op.verb == "ADD":
            ok = hit is None
        elif op.verb == "EDIT" and hit is not None:  # the "edit" restates a rule: an agreement
            op = Operation("AGREE", hit + 1, rules[hit].text)
            ok = True
        elif op.verb == "EDIT":
            ok = op.number is not None and 1 <= op.number <= len(rules)
        else:  # REMOVE, AGREE
            ok = hit is not None
        (valid if ok else update.dropped).append(op)
    for verb in ("REMOVE", "AGREE", "EDIT", "ADD"):  # the order matters (edits by number come late)
        for op in (o for o in valid if o.verb == verb):
            if verb == "ADD":
                new = Rule(op.text, ADD_COUNT)
                rules.append(new)
                update.events.append(Event("ADD", None, new))
                continue
            i = (op.number or 0) - 1 if verb == "EDIT" else _match(rules, op.text)
            assert i is not None  # validated above
            rule = rules[i]
            before = Rule(rule.text, rule.count, rule.id)
            if verb == "REMOVE":
                rule.count -= 3 if list_full else 1
            elif verb == "AGREE":
                rule.count += 1
            else:
                rule.text, rule.count = op.text, rule.count + 1
            update.events.append(Event(verb, before, Rule(rule.text, rule.count, rule.id)))
    for rule in rules:
        if rule.count <= 0:
            update.events.append(Event("DELETE", Rule(rule.text, rule.count, rule.id), None))
    kept = [r for r in rules if r.count > 0]
    update.rules = sorted(kept, key=lambda r: r.count, reverse=True)
    return update

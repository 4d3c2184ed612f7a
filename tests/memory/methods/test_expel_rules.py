"""ExpeL's insight operations, applied exactly as its code does (counts, order, matching, deletion)."""

from __future__ import annotations

from memento_lab.memory.methods.expel_rules import Operation, Rule, parse_operations, update_rules

A, B, C = "Check every digit twice.", "Read the whole question first.", "Prefer short answers."


def rules(*pairs: tuple[str, int]) -> list[Rule]:
    return [Rule(t, c, f"insight-{i}") for i, (t, c) in enumerate(pairs)]


def test_parse_keeps_only_well_formed_lines() -> None:
    reply = "\n".join(
        [
            "ADD 1: Always restate the task.",
            "AGREE 2: Read the whole question first.",
            "EDIT 3: Rule: Prefer exact answers.",  # the optional "Rule: " prefix is skipped
            "REMOVE 1: Check every digit twice",  # no final period: cut off, left out
            "ADD 4: Then ADD more rules.",  # mentions an operation word: garbled, left out
            "REMOVE: Prefer short answers.",  # no number is allowed
            "Some chatter that is no operation.",
        ]
    )
    ops = parse_operations(reply)
    assert [(o.verb, o.number, o.text) for o in ops] == [
        ("ADD", 1, "Always restate the task."),
        ("AGREE", 2, "Read the whole question first."),
        ("EDIT", 3, "Prefer exact answers."),
        ("REMOVE", None, "Prefer short answers."),
    ]


def test_counts_add_two_agree_and_edit_plus_one_remove_minus_one() -> None:
    up = update_rules(
        rules((A, 2), (B, 2), (C, 2)),
        [
            Operation("AGREE", 1, A),
            Operation("EDIT", 2, "Read the whole question before answering."),
            Operation("REMOVE", 3, C),
            Operation("ADD", 4, "Write the unit."),
        ],
        list_full=False,
    )
    got = [(r.text, r.count) for r in up.rules]
    assert got == [(A, 3), ("Read the whole question before answering.", 3), ("Write the unit.", 2), (C, 1)]
    assert [e.verb for e in up.events] == ["REMOVE", "AGREE", "EDIT", "ADD"]  # the code's order
    assert up.rules[1].id == "insight-1"  # an edit keeps the insight


def test_remove_weighs_three_when_the_list_is_full_and_deletes_at_zero() -> None:
    up = update_rules(
        rules((A, 3), (B, 1)), [Operation("REMOVE", 1, A), Operation("REMOVE", 2, B)], list_full=True
    )
    assert up.rules == []
    assert [(e.verb, e.before.count if e.before else None) for e in up.events] == [
        ("REMOVE", 3),
        ("REMOVE", 1),
        ("DELETE", 0),
        ("DELETE", -2),
    ]
    up = update_rules(rules((A, 3)), [Operation("REMOVE", 1, A)], list_full=False)
    assert [(r.text, r.count) for r in up.rules] == [(A, 2)]


def test_matching_is_by_text_and_bad_operations_are_dropped() -> None:
    up = update_rules(
        rules((A, 2), (B, 2)),
        [
            Operation("AGREE", 9, B),  # the number is ignored: the text finds rule 2
            Operation("REMOVE", 1, "A rule nobody wrote."),  # no such rule: dropped
            Operation("ADD", 3, f"{A} Also the signs."),  # contains an existing rule: dropped
            Operation("EDIT", 5, "Out of range."),  # no rule 5: dropped
            Operation("EDIT", 0, "Zero."),  # the code would edit the last rule (index -1): dropped here
        ],
        list_full=False,
    )
    assert [(r.text, r.count) for r in up.rules] == [(B, 3), (A, 2)]
    assert len(up.dropped) == 4


def test_an_edit_restating_a_rule_is_an_agreement() -> None:
    up = update_rules(rules((A, 2), (B, 2)), [Operation("EDIT", 1, f"{B} Always.")], list_full=False)
    assert [(r.text, r.count) for r in up.rules] == [(B, 3), (A, 2)]
    assert [e.verb for e in up.events] == ["AGREE"]


def test_ties_keep_their_order_and_edit_after_remove_compounds() -> None:
    up = update_rules(
        rules((A, 2), (B, 2), (C, 2)),
        [Operation("REMOVE", 2, B), Operation("EDIT", 2, "Read twice.")],
        list_full=False,
    )  # B: 2 - 1 + 1 = 2, its text edited; ties keep A, B, C
    assert [(r.text, r.count) for r in up.rules] == [(A, 2), ("Read twice.", 2), (C, 2)]

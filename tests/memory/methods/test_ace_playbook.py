"""ACE's playbook operations, applied exactly as stated: ids, counters, ADD / UPDATE / MERGE / DELETE,
rejections, stats, and the greedy grouping of near-duplicates."""

from __future__ import annotations

import numpy as np

from memento_lab.memory.methods.ace_playbook import OTHERS, Bullet, Playbook, section_key


def book(*contents: str) -> Playbook:
    pb = Playbook()
    pb.apply([{"type": "ADD", "section": "common mistakes to avoid", "content": c} for c in contents])
    return pb


def test_add_gives_the_section_slug_and_one_global_counter() -> None:
    pb = Playbook()
    changes, rejected = pb.apply(
        [
            {"type": "ADD", "section": "Formulas & Calculations", "content": "a"},
            {"type": "ADD", "section": "common_mistakes_to_avoid", "content": "b"},
            {"type": "ADD", "section": "astrology", "content": "c"},  # unknown section: OTHERS
        ]
    )
    assert [b.id for b in pb.bullets] == ["calc-00001", "err-00002", "misc-00003"]
    assert pb.bullets[2].section == OTHERS and not rejected and pb.next_id == 4
    assert [c.op for c in changes] == ["add"] * 3 and all(b.helpful == b.harmful == 0 for b in pb.bullets)
    assert section_key("Problem-Solving Heuristics") == "problem_solving_heuristics"


def test_tags_count_helpful_and_harmful_neutral_changes_nothing() -> None:
    pb = book("a", "b", "c")
    changes = pb.tag(
        {"err-00001": "helpful", "err-00002": "harmful", "err-00003": "neutral", "zzz-00009": "helpful"}
    )
    assert [(b.helpful, b.harmful) for b in pb.bullets] == [(1, 0), (0, 1), (0, 0)]
    assert [(c.op, c.reason) for c in changes] == [("tag", "helpful"), ("tag", "harmful")]
    pb.tag({"err-00001": "helpful"})
    assert pb.bullets[0].line() == "[err-00001] helpful=2 harmful=0 :: a"


def test_update_merge_delete_and_their_rejections() -> None:
    pb = book("a", "b", "c", "d")
    pb.tag({"err-00001": "helpful", "err-00003": "harmful"})
    pb.tag({"err-00003": "helpful"})
    changes, rejected = pb.apply(
        [
            {"type": "UPDATE", "bullet_id": "err-00002", "content": "b, said better"},
            {"type": "MERGE", "bullet_ids": ["err-00003", "err-00001"], "content": "a and c"},
            {"type": "DELETE", "bullet_id": "err-00004"},
            {"type": "DELETE", "bullet_id": "err-00004"},  # gone already
            {"type": "UPDATE", "bullet_id": "err-00002", "content": "  "},
            {"type": "MERGE", "bullet_ids": ["err-00002"], "content": "x"},
            {"type": "RENAME", "bullet_id": "err-00002"},
            "ADD a bullet",
        ]
    )
    assert [c.op for c in changes] == ["update", "merge", "delete"]
    assert [b.id for b in pb.bullets] == ["err-00002", "err-00003"]  # the merge keeps its first id
    merged = pb.get("err-00003")
    assert merged is not None and merged.content == "a and c" and (merged.helpful, merged.harmful) == (2, 1)
    updated = pb.get("err-00002")
    assert updated is not None and updated.content == "b, said better" and updated.id == "err-00002"
    assert [r.why for r in rejected] == [
        "DELETE of unknown bullet 'err-00004'",
        "UPDATE without content",
        "MERGE needs at least two bullet_ids",
        "unknown operation type 'RENAME'",
        "not an operation object with a type",
    ]
    assert changes[1].before[0].id == "err-00003" and len(changes[1].before) == 2


def test_stats_and_render_in_section_order() -> None:
    pb = Playbook(
        bullets=[
            Bullet(id="err-00001", section="common_mistakes_to_avoid", content="x", helpful=6, harmful=1),
            Bullet(id="calc-00002", section="formulas_and_calculations", content="y", helpful=1, harmful=1),
            Bullet(id="err-00003", section="common_mistakes_to_avoid", content="z"),
        ]
    )
    assert pb.stats() == {"total_bullets": 3, "high_performing": 1, "problematic": 1, "unused": 1}
    assert pb.render().splitlines() == [
        "## FORMULAS & CALCULATIONS",
        "[calc-00002] helpful=1 harmful=1 :: y",
        "## COMMON MISTAKES TO AVOID",
        "[err-00001] helpful=6 harmful=1 :: x",
        "[err-00003] helpful=0 harmful=0 :: z",
    ]


def test_duplicate_groups_are_greedy_in_playbook_order() -> None:
    pb = book("a", "b", "c", "d")
    v = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0], [0.95, 0.312]])
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert pb.duplicate_groups(v, 0.90) == [["err-00001", "err-00002", "err-00004"]]
    assert pb.duplicate_groups(v, 0.999) == []

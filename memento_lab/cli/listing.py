"""``memento-lab list suites | memories``: what the registries offer, without loading any task."""

from __future__ import annotations

import argparse
import json


def add_list_commands(sub: argparse._SubParsersAction) -> None:
    what = sub.add_parser("list", help="list what can be named: suite kinds, memory methods").add_subparsers(
        dest="list_cmd", required=True
    )
    p = what.add_parser("suites", help="every suite kind: its spec forms, what it is, where it is declared")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list_suites)
    p = what.add_parser("memories", help="every memory method (--memory NAME): what it keeps, what it is")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list_memories)


def _list_memories(args: argparse.Namespace) -> int:
    from memento_lab.memory.methods.registry import describe_methods

    rows = describe_methods()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']} ({row['keeps']}): {row['summary']}")
    return 0


def _list_suites(args: argparse.Namespace) -> int:
    from memento_lab.tasks.registry import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['kind']}: BROKEN: {row['error']}")
            continue
        print(f"{row['kind']}: {row['summary']}")
        for form in row["forms"]:
            print(f"    {form}")
    return 0

"""``memento-lab list suites``: what the registries offer, without loading any task."""

from __future__ import annotations

import argparse
import json


def add_list_commands(sub: argparse._SubParsersAction) -> None:
    what = sub.add_parser("list", help="list what can be named: suite kinds").add_subparsers(
        dest="list_cmd", required=True
    )
    p = what.add_parser("suites", help="every suite kind: its spec forms, what it is, where it is declared")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list_suites)


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

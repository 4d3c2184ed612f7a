"""``memento-lab notebooks list | copy DIR``: the notebooks that ship with the package, to work in."""

from __future__ import annotations

import argparse


def add_notebook_commands(sub: argparse._SubParsersAction) -> None:
    what = sub.add_parser(
        "notebooks", help="the numbered notebooks: list them, copy them to work in"
    ).add_subparsers(dest="notebooks_cmd", required=True)
    p = what.add_parser("list", help="the notebooks and where they are read from")
    p.set_defaults(handler=_list)
    p = what.add_parser("copy", help="copy every notebook into DIR (NAME.py and an output-free NAME.ipynb)")
    p.add_argument("dir", help="the folder to copy into (created if missing)")
    p.add_argument("--force", action="store_true", help="replace files that exist")
    p.set_defaults(handler=_copy)


def _list(args: argparse.Namespace) -> int:
    from memento_lab.notebook_files import notebook_dir, notebook_names

    folder = notebook_dir()
    for name in notebook_names():
        print(folder / f"{name}.py")
    return 0


def _copy(args: argparse.Namespace) -> int:
    from memento_lab.notebook_files import copy_notebooks

    written = copy_notebooks(args.dir, force=args.force)
    for path in written:
        print(path)
    print(f"{len(written)} files in {args.dir}; open them with `jupyter lab {args.dir}`")
    return 0

"""The ``memento-lab`` command line: thin wrappers over the library, one subcommand group per layer.

Each group registers itself in its own ``add_*`` function below; the functions only parse
arguments and call the library.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from memento_lab.cli.flags import add_flags, build, given
from memento_lab.memory.learned.config import FitConfig

Handler = Callable[[argparse.Namespace], int]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# --------------------------------------------------------------------------- bank / retrieve (memory)
def add_bank_commands(sub: argparse._SubParsersAction) -> None:
    bank = sub.add_parser("bank", help="import, inspect and export case banks").add_subparsers(
        dest="bank_cmd", required=True
    )

    p = bank.add_parser("import", help="import a Memento file into a bank folder")
    p.add_argument("path")
    p.add_argument("--format", default="memento", choices=["memento", "dummy_memo", "memento_pairs"])
    p.add_argument("--out", required=True, help="bank folder (created if missing)")
    p.add_argument("--lenient", action="store_true", help="skip and report bad lines instead of stopping")
    p.add_argument("--no-embed", action="store_true", help="do not embed cases at write time")
    p.set_defaults(handler=_bank_import)

    p = bank.add_parser("stats", help="counts by label and source, and the version")
    p.add_argument("dir")
    p.set_defaults(handler=_bank_stats)

    p = bank.add_parser(
        "export", help="export a bank to the original memory.jsonl (memento) or dummy_memo.jsonl format"
    )
    p.add_argument("dir")
    p.add_argument("out")
    p.add_argument("--format", default="memento", choices=["memento", "dummy_memo"])
    p.add_argument("--version", type=int, default=None, help="export the bank as it was at this version")
    p.set_defaults(handler=_bank_export)

    pairs = sub.add_parser("pairs", help="retrieval pair logs").add_subparsers(
        dest="pairs_cmd", required=True
    )
    p = pairs.add_parser(
        "export", help="a pair log (a run's pairs.jsonl) as the original retriever training_data.jsonl"
    )
    p.add_argument("pairs", help="a workbench pair log, e.g. RUN/pairs.jsonl")
    p.add_argument("out")
    p.set_defaults(handler=_pairs_export)

    p = sub.add_parser("retrieve", help="retrieve cases for a question (similarity by default)")
    p.add_argument("dir")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=4)
    p.add_argument("--positive", type=int, default=None, help="quota of positive cases")
    p.add_argument("--negative", type=int, default=None, help="quota of negative cases")
    p.add_argument("--mode", default="similarity", choices=["random", "similarity", "parametric"])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_retrieve)


def _pairs_export(args: argparse.Namespace) -> int:
    from memento_lab.memory.retrieval.pairs import PairLog, write_memento_pairs

    log = PairLog(args.pairs)
    if not log.path.is_file():
        raise FileNotFoundError(f"{args.pairs}: no such pair log")
    n = write_memento_pairs(log.read(strict=True), args.out)
    _print_json({"exported": n, "out": args.out})
    return 0


def _open_bank(path: str, *, embed: bool = True, create: bool = False):
    """The bank at ``path``; a missing one is an error unless ``create`` (only ``bank import``)."""
    from memento_lab.memory.bank.bank import CaseBank
    from memento_lab.memory.bank.encoders import bank_encoder

    bank = CaseBank(path, create=create)  # checks before the encoder's cache file makes the folder
    bank.encoder = bank_encoder(path) if embed else None
    return bank


def _bank_import(args: argparse.Namespace) -> int:
    from memento_lab.memory.bank.formats import import_file

    result = import_file(args.path, args.format, strict=not args.lenient)
    bank = _open_bank(args.out, embed=not args.no_embed, create=True)
    new = [c for c in result.cases if c.id not in bank]
    version = bank.add(new) if new else bank.version
    bank.snapshot()
    for err in result.errors:
        print(f"skipped: {err}", file=sys.stderr)
    _print_json(
        {
            "imported": len(new),
            "already_present": len(result.cases) - len(new),
            "skipped": len(result.errors),
            "version": version,
            **bank.stats(),
        }
    )
    return 0


def _bank_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memento_lab.memory.bank.bank import is_bank
    from memento_lab.memory.bank.formats import export_cases

    bank = _open_bank(args.dir, embed=False)
    target = Path(args.out).resolve()
    inside = [d for d in (target.parent, *target.parent.parents) if is_bank(d)]
    if inside:
        raise ValueError(
            f"{args.out} is inside the bank folder {inside[0]}: export to a file outside any bank"
        )
    if args.version is not None:
        bank = bank.at(args.version)
    cases = bank.cases()
    if not cases:
        raise ValueError(
            f"bank {args.dir} has no cases at version {bank.version}: nothing to export ({args.out} left as it was)"
        )
    n = export_cases(cases, args.out, args.format)
    _print_json({"exported": n, "out": args.out, "version": bank.version})
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    from memento_lab.memory.read_write import make_retriever

    _at_least(1, k=args.k)
    _at_least(0, positive=args.positive, negative=args.negative)
    bank = _open_bank(args.dir)
    if len(bank) == 0:
        raise ValueError(f"bank {args.dir} has no cases: nothing to retrieve")
    retriever = make_retriever(args.mode, bank, encoder=bank.encoder, checkpoint=args.checkpoint)
    hits = retriever.retrieve(args.question, args.k, k_positive=args.positive, k_negative=args.negative)
    if args.json:
        _print_json([h.to_trace().model_dump() for h in hits])
    else:
        for h in hits:
            print(f"{h.rank + 1}. [{h.case.label:8}] {h.score:.3f}  {h.case.question}")
    return 0


def _at_least(low: int, **values: int | None) -> None:
    """Reject a count below ``low`` (``None`` = not given) with one line naming the option."""
    for name, value in values.items():
        if value is not None and value < low:
            raise ValueError(f"--{name} must be at least {low}, got {value}")


def _bank_stats(args: argparse.Namespace) -> int:
    _print_json(_open_bank(args.dir, embed=False).stats())
    return 0


# --------------------------------------------------------------------------- retriever
def add_retriever_commands(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("retriever", help="train and evaluate the parametric retriever Q(query, case)")
    rs = r.add_subparsers(dest="retriever_cmd", required=True)

    p = rs.add_parser(
        "train", help="train on a pair file (original training_data.jsonl or a workbench pair log)"
    )
    p.add_argument("--pairs", required=True)
    p.add_argument("--bank", default=None, help="bank folder: its embedding cache and case plans")
    p.add_argument("--out", default="checkpoints/retriever")
    p.add_argument("--config", default=None, help="a TOML file of FitConfig fields (flags override it)")
    add_flags(p, FitConfig)
    p.add_argument(
        "--fine-tune", dest="freeze_encoder", action="store_false", default=None, help="= --no-freeze-encoder"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_retriever_train)

    p = rs.add_parser("eval", help="learned vs similarity-only metrics of a checkpoint on a pair file")
    p.add_argument("--pairs", required=True)
    p.add_argument("--checkpoint", required=True, help="a .ckpt file or a folder with best.ckpt")
    p.add_argument("--split", default="auto", choices=["auto", "val", "all"])
    p.add_argument("--target", default=None, choices=["helped", "reward", "advantage", "delta"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_retriever_eval)

    p = rs.add_parser(
        "report", help="a run's pair log: within-query ranking, a checkpoint's Q and off-policy (IPS) value"
    )
    p.add_argument("run", help="a run folder (pairs.jsonl, traces.jsonl, bank/)")
    p.add_argument("--checkpoint", default=None, help="e.g. RUN/retriever/online.ckpt")
    p.add_argument("--target", default="delta", choices=["helped", "reward", "advantage", "delta"])
    p.add_argument("-k", type=int, default=4)
    p.add_argument("--temperature", type=float, default=None, help="evaluate the checkpoint's soft policy")
    p.set_defaults(handler=_retriever_report)


def fit_config_from_args(args: argparse.Namespace) -> FitConfig:
    """The FitConfig of ``retriever train``: a ``--config`` file's fields, overridden by the flags."""
    from memento_lab.cli.experiments import read_toml

    values = read_toml(args.config) if args.config else {}
    values.update(given(args, FitConfig))
    return build(FitConfig, values, source=args.config or "command line")


def _retriever_train(args: argparse.Namespace) -> int:
    from memento_lab.memory.learned.training import fit

    result = fit(args.pairs, fit_config_from_args(args), out=args.out, bank=args.bank)
    if result.rank:  # a DDP worker process: rank 0 reports
        return 0
    if args.json:
        _print_json(result.model_dump())
        return 0
    s, lr_, sim = result.split, result.learned, result.similarity
    print(
        f"split by query: train {s.train_pairs} pairs / {s.train_queries} queries ({s.train_positive} positive), "
        f"val {s.val_pairs} / {s.val_queries} ({s.val_positive} positive)"
    )
    for name, m in (("learned", lr_), ("similarity", sim)):
        print(
            f"  {name:>10}: pair AUC {_fmt(m.get('auc'))}  within-query AUC {_fmt(m.get('wq_auc'))}  "
            f"p@1 {_fmt(m.get('p_at_1'))}"
            + (f"  F1 {_fmt(m.get('f1'))}  acc {_fmt(m.get('acc'))}" if name == "learned" else "")
        )
    print(f"  mixed-label val queries: {lr_.get('n_mixed_queries')} of {lr_.get('n_queries')}")
    print(
        f"best: {result.best_checkpoint}\nlast: {result.last_checkpoint}\n"
        f"logs ({result.config.logger if result.config else 'csv'}): {result.metrics_csv or result.logs}  ({result.seconds} s)"
    )
    return 0


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _retriever_eval(args: argparse.Namespace) -> int:
    from memento_lab.memory.learned.training import evaluate

    rep = evaluate(args.checkpoint, args.pairs, split=args.split, target=args.target)
    if args.json:
        print(json.dumps(rep))
        return 0
    for key, val in rep.items():
        print(f"{key:>22}: {_fmt(val) if isinstance(val, float) else val}")
    return 0


def _retriever_report(args: argparse.Namespace) -> int:
    from memento_lab.experiments.retriever_report import retriever_report

    rep = retriever_report(
        args.run, checkpoint=args.checkpoint, target=args.target, k=args.k, temperature=args.temperature
    )
    print(json.dumps(rep, indent=2, default=str))
    return 0


class _PrintVersion(argparse.Action):
    """``--version``: the package version and the git commit of a checkout (asked only when used)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: Any) -> None:
        help_ = "print the version (and the git commit of a checkout) and exit"
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help_)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from memento_lab.provenance import version_line

        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memento-lab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_PrintVersion)
    sub = parser.add_subparsers(dest="command", required=True)
    from memento_lab.cli.agent import add_llm_commands, add_tools_commands
    from memento_lab.cli.experiments import add_run_commands
    from memento_lab.cli.judge import add_judge_commands
    from memento_lab.cli.listing import add_list_commands
    from memento_lab.cli.notebooks import add_notebook_commands

    for add in (
        add_bank_commands,
        add_llm_commands,
        add_tools_commands,
        add_retriever_commands,
        add_run_commands,
        add_judge_commands,
        add_list_commands,
        add_notebook_commands,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one clear line for the user; the traceback with MEMENTO_DEBUG=1
        import os

        if os.environ.get("MEMENTO_DEBUG"):
            raise
        print(f"memento-lab: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

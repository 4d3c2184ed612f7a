"""``memento-lab run | sweep | report | demo``: experiments from the command line.

``run`` has one flag per ``ExperimentConfig`` field (generated from the model, so none is missing;
its help is the field's description) and ``--config FILE`` (TOML: the same field names at the top
level); flags override the file.
Your own MCP servers: ``--tool-server NAME=COMMAND`` (repeatable) or ``[tool_servers.NAME]`` tables.
``sweep --config FILE`` reads the same fields plus a ``[sweep]`` table (``memories``, ``seeds``,
``orders``, ``ks``) and runs or resumes every run of the sweep (``--ray``: each run a Ray task).

Exit codes: 0 when every run scored at least one episode; 1 when a run scored none (every attempt
failed: the reason and the first error go to stderr), or on any error. (Episodes that failed while
others were scored are listed on stderr; the same command retries them.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from typing import Any

from memento_lab.cli.flags import add_flags, build, given
from memento_lab.experiments.config import ExperimentConfig, RunResult
from memento_lab.tasks.registry import spec_help

SHORT = {"k": ("-k",)}
# fields given as TOML tables ([tool_servers.NAME], [memory_options]) and by their own flag
TABLES = {"tool_servers": "--tool-server NAME=SPEC", "memory_options": "--memory-option KEY=VALUE"}
TABLE_OR_FLAG = {"suite"}  # fields that are a TOML table or a flag's string ([suite] or --suite)
TOOL_SERVER_HELP = (
    "One server per flag (repeatable): NAME='COMMAND ARGS' (stdio), NAME=http://HOST:PORT/mcp "
    "(streamable HTTP) or NAME='{JSON spec}'"
)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per ExperimentConfig field, default unset (so a --config file's value stands)."""
    add_tool_server_flag(p)
    add_memory_option_flag(p)
    # the registries know every suite kind and memory method; tables have their own flag
    add_flags(
        p, ExperimentConfig, help={"suite": spec_help(), "memory": memory_help()}, short=SHORT, skip=TABLES
    )


def _field_default(field: Any) -> Any:
    return field.default if field.default_factory is None else field.default_factory()


def _toml_value(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value)  # JSON scalars and lists are TOML too


def config_reference() -> str:
    """The Markdown table of every ``ExperimentConfig`` field (TOML key, default, description): the
    field reference in ``docs/configuration.md`` (a test keeps that page equal to this)."""
    rows = ["| field (TOML key) | flag | default | description |", "|---|---|---|---|"]
    for name, field in ExperimentConfig.model_fields.items():
        default = _toml_value(_field_default(field))
        description = str(field.description).replace("|", "\\|")
        flag = TABLES.get(name, f"--{name.replace('_', '-')}")
        rows.append(f"| `{name}` | `{flag}` | `{default}` | {description} |")
    return "\n".join(rows)


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None


def build_config(values: dict[str, Any], *, source: str) -> ExperimentConfig:
    """An ExperimentConfig from plain values; an unknown or bad field is named with its source."""
    return build(ExperimentConfig, values, source=source)


def add_tool_server_flag(p: argparse.ArgumentParser) -> None:
    """``--tool-server NAME=SPEC`` (repeatable) into ``args.tool_servers``."""
    description = ExperimentConfig.model_fields["tool_servers"].description
    p.add_argument(
        "--tool-server",
        "--tool-servers",
        dest="tool_servers",
        action="append",
        metavar="NAME=SPEC",
        help=f"{description}. {TOOL_SERVER_HELP}",
    )


def memory_help() -> str:
    from memento_lab.memory.methods.registry import method_names

    return f"registered: {', '.join(method_names())}"


def add_memory_option_flag(p: argparse.ArgumentParser) -> None:
    """``--memory-option KEY=VALUE`` (repeatable) into ``args.memory_options``."""
    p.add_argument(
        "--memory-option",
        "--memory-options",
        dest="memory_options",
        action="append",
        metavar="KEY=VALUE",
        help=f"{ExperimentConfig.model_fields['memory_options'].description} (repeatable)",
    )


def memory_option_flags(values: list[str] | None) -> dict[str, Any]:
    """``--memory-option KEY=VALUE`` values as a dict (numbers and true/false read as such)."""
    out: dict[str, Any] = {}
    for v in values or []:
        key, eq, raw = v.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--memory-option {v!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value if isinstance(value, (str, int, float, bool)) else raw
    return out


def tool_server_flags(values: list[str] | None) -> dict[str, Any]:
    """The ``--tool-server NAME=SPEC`` values as name -> spec."""
    from memento_lab.agent.tools.servers import parse_server_arg

    return dict(parse_server_arg(v) for v in values or [])


def config_file_values(path: str) -> dict[str, Any]:
    """A run's TOML as config values: its fields, without other tables (e.g. a sweep's [sweep])."""
    return {
        k: v
        for k, v in read_toml(path).items()
        if not isinstance(v, dict) or k in TABLES or k in TABLE_OR_FLAG
    }


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    values: dict[str, Any] = {}
    source = "command line"
    if args.config:
        values = config_file_values(args.config)
        source = args.config
    values.update(given(args, ExperimentConfig, skip=TABLES))
    flagged = tool_server_flags(getattr(args, "tool_servers", None))
    if flagged:  # a flag replaces the file's server of the same name
        values["tool_servers"] = {**values.get("tool_servers", {}), **flagged}
    options = memory_option_flags(getattr(args, "memory_options", None))
    if options:  # a flag replaces the file's option of the same name
        values["memory_options"] = {**values.get("memory_options", {}), **options}
    for name, low in (("iterations", 1), ("n", 1), ("concurrency", 1), ("k", 0)):
        if isinstance(values.get(name), int) and values[name] < low:
            raise ValueError(f"--{name} must be at least {low}, got {values[name]} ({source})")
    return build_config(values, source=source)


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run (or resume) the agent over a task stream: one experiment")
    p.add_argument(
        "--config", default=None, help="a TOML file of ExperimentConfig fields (flags override it)"
    )
    add_config_flags(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser("sweep", help="run or resume a sweep: memory modes x K x seeds x orders")
    p.add_argument("--config", required=True, help="TOML: ExperimentConfig fields + a [sweep] table")
    p.add_argument("--ray", action="store_true", help="each run a Ray task on an embedded local Ray")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (implies --ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs reserved per run")
    p.set_defaults(handler=_sweep)

    p = sub.add_parser(
        "report", help="arms, curves with bootstrap CIs, paired comparisons, errors, baselines"
    )
    p.add_argument("runs", nargs="+", help="run folders or folders of runs, in any mix")
    p.add_argument(
        "--json", action="store_true", help="the whole report as JSON (see Report in experiments.report)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap / permutation seed")
    p.add_argument(
        "--html", metavar="OUT.html", help="also write a self-contained dashboard page (opens offline)"
    )
    p.add_argument(
        "--mlflow",
        metavar="DIR|URI",
        help="also export to MLflow: a folder (a local file store) or a tracking URI; one MLflow run per "
        "run (config as params, accuracy and costs per iteration as metrics, report and dashboard as artifacts)",
    )
    p.add_argument(
        "--mlflow-experiment", default="memento-lab", help="the MLflow experiment (default: %(default)s)"
    )
    p.set_defaults(handler=_report)

    p = sub.add_parser("demo", help="the main job: execute the numbered notebooks into data/runs/")
    p.add_argument("--smoke", action="store_true", help="smoke-size parameters (CI)")
    p.add_argument(
        "--full",
        action="store_true",
        help="every notebook with full=True: the whole program instead of the ten-minute lesson",
    )
    p.add_argument(
        "--notebooks",
        default=None,
        help="comma-separated notebook names or number prefixes to run, in order (default: the lesson, "
        "01-04; with --full every notebook)",
    )
    p.add_argument("--out", default="data/runs")
    p.set_defaults(handler=_demo)


def _run(args: argparse.Namespace) -> int:
    from memento_lab.experiments.run import run_experiment

    result = asyncio.run(run_experiment(config_from_args(args)))
    print(json.dumps(result.model_dump(), indent=2))
    return exit_code(result)


def exit_code(result: RunResult) -> int:
    """1 (saying why on stderr) when the run scored no episode; 0 otherwise, listing failures left."""
    if result.unresolved:
        print(
            f"memento-lab: {result.out}: {result.unresolved} (task, iteration) pair(s) failed at their last "
            f"attempt and are not scored (first: {result.first_error}); the same command retries them",
            file=sys.stderr,
        )
    if result.scored:
        return 0
    attempts = ", ".join(f"{k} {v}" for k, v in sorted(result.status_counts.items())) or "none"
    print(
        f"memento-lab: error: {result.out}: no episode was scored: every attempt failed (attempts: {attempts}); "
        "a failure of the endpoint, a tool server or the judge is never scored",
        file=sys.stderr,
    )
    return 1


SWEEP_KEYS = ("memories", "seeds", "orders", "ks")


def _sweep(args: argparse.Namespace) -> int:
    from memento_lab.experiments.sweep import run_sweep

    data = read_toml(args.config)
    grid = data.pop("sweep", {})
    vary = {key: grid.pop(key) for key in list(grid) if key not in SWEEP_KEYS}  # any other config field
    bad = sorted(set(vary) - set(ExperimentConfig.model_fields))
    if bad:
        raise ValueError(
            f"{args.config}: [sweep] has unknown key(s) {bad}; keys: {', '.join(SWEEP_KEYS)} "
            "or lists of any run field (e.g. bank_policy = [...])"
        )
    if any(not isinstance(v, list) for v in vary.values()):
        raise ValueError(f"{args.config}: [sweep] values must be lists")
    if vary:
        grid["vary"] = vary
    base = build_config(data, source=args.config)
    if args.ray or args.ray_address:
        from memento_lab.experiments.ray_sweep import run_sweep_ray

        rep = run_sweep_ray(
            base, **grid, address=args.ray_address, num_cpus=args.num_cpus, cpus_per_run=args.cpus_per_run
        )
        print(rep.model_dump_json(indent=2))
        return 1 if rep.failed else 0
    paths = asyncio.run(run_sweep(base, **grid))
    print(json.dumps({"runs": [str(p) for p in paths]}, indent=2))
    from memento_lab.experiments.run import run_result

    codes = [exit_code(run_result(p, "")) for p in paths]
    return max(codes, default=0)


def _report(args: argparse.Namespace) -> int:
    from memento_lab.experiments.report import build_report

    rep = build_report(args.runs, seed=args.seed)
    if not rep.runs:
        raise ValueError(f"no results in {' '.join(args.runs)} (no results.jsonl there or one folder below)")
    if args.html:
        from memento_lab.views.dashboard import write_dashboard

        page = write_dashboard(args.runs, args.html)
        print(f"dashboard: {page} ({page.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    if getattr(args, "mlflow", None):
        _export_mlflow(args)
    print(rep.model_dump_json(indent=2) if args.json else format_report(rep))
    return 0


def _export_mlflow(args: argparse.Namespace) -> None:
    """``report --mlflow``: the runs, the report and the dashboard page into MLflow."""
    import tempfile
    from pathlib import Path

    from memento_lab.experiments.tracking import export_mlflow
    from memento_lab.views.dashboard import write_dashboard

    with tempfile.TemporaryDirectory() as tmp:
        page = Path(args.html) if args.html else write_dashboard(args.runs, Path(tmp) / "dashboard.html")
        ids = export_mlflow(
            args.runs, args.mlflow, experiment=args.mlflow_experiment, seed=args.seed, artifacts=[page]
        )
    print(
        f"mlflow: {len(ids)} run(s) in {args.mlflow} (experiment {args.mlflow_experiment})", file=sys.stderr
    )


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:+.3f}, {hi:+.3f}]"


def format_report(rep: Any) -> str:
    """The report as text tables (``--json`` has every number)."""
    if not rep.runs:
        return "no results"
    lines = [f"runs: {rep.runs}  scored (ok) episodes: {rep.episodes}", "arms:"]
    lines += [f"  {a.id}  {a.label}  ({len(a.runs)} run(s))" for a in rep.arms]
    lines.append("accuracy: mean reward, 95% bootstrap CI over tasks (and runs)")
    lines.append(
        f"  {'arm':<28} {'split':<7} {'measures':<9} {'iter':>4} {'acc':>6}  {'95% CI':<18} tasks runs"
    )
    for p in rep.curves:
        lines.append(
            f"  {p.label:<28} {p.split:<7} {p.measures:<9} {p.iteration:>4} {p.accuracy:6.3f}  "
            f"[{p.ci_low:.3f}, {p.ci_high:.3f}]   {p.tasks:>5} {p.runs:>4}"
        )
    if rep.comparisons:
        lines.append("paired comparisons on the same tasks: diff = A - B, bootstrap CI, permutation p")
        for c in rep.comparisons:
            lines.append(
                f"  {c.a_label} vs {c.b_label}  [{c.split}, {c.measures}] iter {c.iteration}: "
                f"diff {c.diff:+.3f} {_ci(c.ci_low, c.ci_high)} p={c.p_value:.4f} ({c.tasks} tasks)"
            )
    for g in rep.learning_gain:
        lines.append(
            f"learning gain {g.label} [{g.split}] iter {g.first_iteration}->{g.last_iteration}: "
            f"{g.diff:+.3f} {_ci(g.ci_low, g.ci_high)} p={g.p_value:.4f}"
        )
    for f in rep.forgetting:
        rate = "n/a" if f.rate is None else f"{f.rate:.3f}"
        lines.append(f"forgetting {f.label} [{f.split}]: {f.forgotten}/{f.solved_before_last} (rate {rate})")
    if rep.costs:
        lines.append("tokens per arm (every call of an episode, all its attempts when it votes):")
        for c in rep.costs:
            lines.append(
                f"  {c.label:<28} {c.split:<7} {c.episodes:>4} episodes: {c.tokens_per_episode:,.0f} per episode "
                f"({c.prompt_tokens:,.0f} prompt + {c.completion_tokens:,.0f} completion); total "
                f"{c.total_prompt_tokens:,} + {c.total_completion_tokens:,}; {c.seconds:.1f} s per episode"
            )
    lines.append("errors per run (attempts by status; failures are never scored and are retried on resume):")
    for e in rep.errors:
        statuses = ", ".join(f"{k} {v}" for k, v in e.by_status.items())
        lines.append(
            f"  {e.run_id} ({e.arm}): {statuses}; unresolved {e.unresolved}; "
            f"unusable model replies in scored episodes {e.model_output_errors}"
        )
    for fam, acc in sorted(rep.trivial_baseline.items()):
        lines.append(f"trivial baseline {fam} (most common answer of the other tasks): {acc:.3f}")
    lines += price_lines(rep.prices)
    from memento_lab.cli.judge import agreement_lines

    lines += agreement_lines(rep.judges)
    return "\n".join(lines)


def _paired(d: Any) -> str:
    return f"{d.diff:+.3f} {_ci(d.ci_low, d.ci_high)}" if d is not None else "n/a"


def price_lines(prices: list[Any]) -> list[str]:
    """What each memory cost (per episode, over the whole split), beside its base voting as much."""
    if not prices:
        return []
    lines = [
        "memory prices and the compute-matched baseline (per episode, all iterations; paired diff with 95% "
        "CI; none = the arm's base: memory none, one attempt, every other key equal; tokens: maintenance = "
        "the memory's own calls, read = its block, extra = beyond none; votes = attempts of none that "
        "would spend as much):"
    ]
    for p in prices:
        gain = "n/a" if p.gain_per_1m_extra is None else f"{p.gain_per_1m_extra:+.2f}"
        votes = "" if p.matched_samples is None else f" = {p.matched_samples:.1f} votes"
        thrown = "" if not p.maintenance_unusable else f" ({p.maintenance_unusable:.0%} of replies unusable)"
        lines.append(
            f"  {p.label} [{p.split}] acc {p.accuracy:.3f} {_ci(p.ci_low, p.ci_high)}; vs none "
            f"{_paired(p.vs_none)}; vs cases {_paired(p.vs_cases)}; maintenance {p.maintenance_calls:.2f} "
            f"calls {p.maintenance_tokens:.0f} tok{thrown}; read {p.read_tokens:.0f} tok; extra "
            f"{'n/a' if p.extra_tokens is None else f'{p.extra_tokens:.0f}'} tok{votes}; {p.seconds:.1f} s; "
            f"acc per 1M extra tok {gain}"
        )
        if p.verdict:
            voting = (
                f" (beside {p.voting}: {_paired(p.voting_vs_none)} vs none; memory - voting {_paired(p.vs_voting)})"
                if p.voting
                else ""
            )
            lines.append(f"    {p.verdict}{voting}")
    return lines


def _demo(args: argparse.Namespace) -> int:
    from memento_lab.notebook_runner import notebook_names, run_all

    names = notebook_names(args.notebooks) if args.notebooks else None
    folder = run_all(out_root=args.out, smoke=args.smoke, full=args.full, names=names)
    print(f"results: {folder} (executed notebooks and HTML)")
    return 0

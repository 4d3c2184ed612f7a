"""``memento-lab llm`` and ``memento-lab tools``: the models and the MCP tool servers of the agent layer."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from memento_lab.agent.models.llm import open_llms
from memento_lab.agent.tools.mcp_client import ToolBox, available_servers
from memento_lab.agent.tools.servers import ServerSpec, resolve_servers
from memento_lab.config import Settings
from memento_lab.trace import ToolCall


def add_llm_commands(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "llm", help="the language models: smoke-test the endpoint or embedded model, list packaged models"
    )
    rs = r.add_subparsers(dest="llm_command", required=True)
    p = rs.add_parser("smoke", help="start the model (or use the endpoint) and ask for a short JSON plan")
    p.add_argument(
        "--model", default=None, help="packaged model name or .gguf path (embedded) / model id (endpoint)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cli_llm_smoke)
    p = rs.add_parser("models", help="packaged models with pins, sha256 and licence")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cli_llm_models)


# --------------------------------------------------------------------------- tools
def add_tools_commands(sub: argparse._SubParsersAction) -> None:
    servers = available_servers()
    tools = sub.add_parser("tools", help="start MCP tool servers, list their tools, call one").add_subparsers(
        dest="tools_cmd", required=True
    )
    p = tools.add_parser("list", help="start the servers and print their tools")
    p.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated built-in servers ({','.join(servers)}); own ones (--tool-server, --config) "
        "are listed too (default: every built-in one, or none when own ones are given; with --config "
        "the run's tools)",
    )
    _server_options(p)
    p.add_argument("--workspace", default=None, help="folder the servers share (default: a temporary one)")
    p.add_argument("--json", action="store_true", help='print {"servers": {server: [tool names]}}')
    p.set_defaults(handler=cli_tools_list)
    p = tools.add_parser("call", help="call one tool and print its result (exit 1 on a tool error)")
    p.add_argument("server", help=f"a built-in server ({','.join(servers)}) or one defined by --tool-server")
    p.add_argument("tool")
    p.add_argument("arguments", nargs="?", default="{}", help="the arguments as a JSON object (default: {})")
    _server_options(p)
    p.add_argument("--workspace", default=None, help="folder the server works in (default: a temporary one)")
    p.set_defaults(handler=cli_tools_call)


def _server_options(p: argparse.ArgumentParser) -> None:
    from memento_lab.cli.experiments import add_tool_server_flag

    add_tool_server_flag(p)
    p.add_argument("--config", default=None, help="a run's TOML: its tools and [tool_servers.NAME] tables")


# --------------------------------------------------------------------------- handlers
def cli_llm_smoke(args: Any) -> int:
    """``memento-lab llm smoke``: start the model (or use the endpoint), ask for a short JSON plan."""
    import asyncio

    async def go() -> dict[str, Any]:
        settings = Settings()
        async with open_llms(settings, local_model=args.model) as llms:
            schema = {
                "type": "object",
                "properties": {
                    "plan": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3}
                },
                "required": ["plan"],
            }
            r = await llms.planner.chat(
                [{"role": "user", "content": "Make a 2-step plan to compute 17*23. Answer as JSON."}],
                json_schema=schema,
                max_tokens=96,
            )
            toks = r.call.usage.completion_tokens
            return {
                "model": llms.planner.model,
                "endpoint": llms.endpoint,
                "ok": r.error is None and bool((r.parsed or {}).get("plan")),
                "plan": (r.parsed or {}).get("plan"),
                "error": r.error,
                "latency_s": round(r.call.latency_s, 2),
                "completion_tokens": toks,
                "decode_tok_s": round(toks / r.call.latency_s, 1) if r.call.latency_s else None,
                "load_s": round(llms.local.load_s, 1) if llms.local else None,
            }

    out = asyncio.run(go())
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{out['endpoint']} ({out['model']}): {'ok' if out['ok'] else 'FAILED'}  {out['decode_tok_s']} tok/s  plan={out['plan']}"
        )
        if out["error"]:
            print(out["error"])
    return 0 if out["ok"] else 1


def cli_llm_models(args: Any) -> int:
    """``memento-lab llm models``: the packaged models with pins, checksums and licences."""
    from memento_lab.agent.models.local_model import provenance

    rows = provenance()
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = (
            "assembled"
            if r["assembled"]
            else ("installed" if r["installed"] else f"not installed (pip install -e '.[{r['extra']}]')")
        )
        print(f"{r['name']}  [{state}]")
        print(
            f"  from {r['package']}-part1..{r['parts']}=={r['version']}  sha256 {r['sha256']}  {r['size_mb']} MB"
        )
        print(f"  {r['origin']}; licence: {r['license']}")
        print(f"  {r['note']}")
    return 0


def _defined_servers(args: argparse.Namespace) -> tuple[list[str] | None, dict[str, ServerSpec]]:
    """(the --config run's tools or None, the servers defined by --config and --tool-server)."""
    from memento_lab.cli.experiments import build_config, config_file_values, tool_server_flags

    flagged = tool_server_flags(getattr(args, "tool_servers", None))
    if not getattr(args, "config", None):
        return None, flagged
    cfg = build_config(config_file_values(args.config), source=args.config)
    return list(cfg.tools), {**cfg.tool_servers, **flagged}


def _listed_servers(args: argparse.Namespace) -> dict[str, ServerSpec]:
    run_tools, defined = _defined_servers(args)
    if args.servers is not None:  # as in a run: the named servers, then every own one
        return resolve_servers([s.strip() for s in args.servers.split(",") if s.strip()], defined)
    if run_tools is not None:
        return resolve_servers(run_tools, defined)
    return resolve_servers([] if defined else available_servers(), defined)


def cli_tools_list(args: argparse.Namespace) -> int:
    """``memento-lab tools list [--servers code,math] [--tool-server NAME=CMD] [--config RUN.toml]
    [--json]``: start the servers, print their tools."""

    async def run() -> dict[str, Any]:
        async with ToolBox(_listed_servers(args), workspace=getattr(args, "workspace", None)) as tb:
            return {"servers": tb.tool_names(), "schemas": tb.openai_tools()}

    try:
        listing = anyio.run(run)
    except (ValueError, RuntimeError, FileNotFoundError) as e:  # unknown server, bad spec, cannot start
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"servers": listing["servers"]}, indent=2))
        return 0
    described = {t["function"]["name"]: t["function"]["description"] for t in listing["schemas"]}
    width = max((len(n) for n in described), default=0)
    for server, names in listing["servers"].items():
        print(f"{server}:")
        for n in names:
            print(f"  {n:{width}s} {(described[n].splitlines() or [''])[0][:100]}")
        if server == "code":
            from memento_lab.sandbox.isolation import describe_isolation

            print(f"  (sandbox: {describe_isolation()})")
    return 0


def cli_tools_call(args: argparse.Namespace) -> int:
    """``memento-lab tools call SERVER TOOL '{"arg": 1}'``: print the result; exit 1 on a tool error."""
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as e:
        print(
            f"error: ARGUMENTS is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): {args.arguments!r}",
            file=sys.stderr,
        )
        return 2
    if not isinstance(arguments, dict):
        print(f"error: ARGUMENTS must be a JSON object, got {type(arguments).__name__}", file=sys.stderr)
        return 2

    async def run() -> ToolCall | str:
        _, defined = _defined_servers(args)
        server = {args.server: resolve_servers([args.server], defined)[args.server]}
        async with ToolBox(server, workspace=getattr(args, "workspace", None)) as tb:
            names = tb.tool_names()[args.server]
            if args.tool not in names:
                return f"server {args.server!r} has no tool {args.tool!r}; its tools: {names}"
            return await tb.call(args.tool, arguments)

    try:
        outcome = anyio.run(run)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if isinstance(outcome, str):
        print(f"error: {outcome}", file=sys.stderr)
        return 2
    if outcome.error is not None:
        print(outcome.error, file=sys.stderr)
        return 1
    print(outcome.result)
    return 0

"""Which MCP tool servers a run may use: one typed ``ServerSpec`` per server, built-in or anyone's.

    ServerSpec(command="mcp-server-time", args=["--local-timezone", "UTC"])   # any stdio server
    ServerSpec(url="http://127.0.0.1:8000/mcp")                               # any streamable-HTTP server
    resolve_servers(["code", "math"], {"time": spec})   # -> {"code": ..., "math": ..., "time": spec}

The built-in servers (``servers/``) are specs too (``python -m servers.<module>`` with the workbench
environment), so every server is started, listed, called, recorded and replayed the same way.
``${VAR}`` in a spec's args, env, cwd, url and headers is replaced when the server starts, from our
environment, plus ``${MEMENTO_WORKSPACE}`` (the toolbox's workspace folder): secrets stay out of the
run's config.json, and a replay, which starts nothing, needs none of them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from memento_lab.config import PROJECT_ROOT as ROOT
from memento_lab.config import Settings

NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class SpecError(ValueError):
    """A server spec that cannot be used as it stands (the message names the server and the field)."""


class ServerSpec(BaseModel):
    """How to reach one MCP tool server: a command spoken to over stdio, or a streamable-HTTP URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = None  # an executable on PATH (or beside this Python) or a path
    args: list[str] = Field(default_factory=list)
    # added to the MCP SDK's safe defaults (PATH, HOME, ...)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None  # default: the toolbox's workspace folder
    url: str | None = None  # e.g. http://127.0.0.1:8000/mcp
    headers: dict[str, str] = Field(default_factory=dict)  # HTTP only, e.g. Authorization = "Bearer ${TOKEN}"
    workbench_env: bool = False  # gets MEMENTO_WORKSPACE, the sandbox and cache settings (the built-ins)
    endpoint_env: bool = False  # gets the model endpoint's URL and key (media, web)

    @model_validator(mode="after")
    def _one_transport(self) -> ServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give exactly one of `command` (a stdio server) or `url` (a streamable-HTTP server)"
            )
        if self.url is not None:
            if not re.match(r"^https?://", self.url):
                raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
            stray = [f for f in ("args", "env", "cwd") if getattr(self, f)]
            if stray:
                raise ValueError(f"{', '.join(stray)} belong to a stdio server (`command`), not to a `url`")
        elif self.headers:
            raise ValueError("headers belong to a streamable-HTTP server (`url`), not to a `command`")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """The command line or the URL, as a person would type it."""
        if self.command is None:
            return str(self.url)
        if self.workbench_env and self.args[:1] == ["-m"]:
            return shlex.join(["python", *self.args])
        return shlex.join([self.command, *self.args])


def builtin(module: str, *, endpoint_env: bool = False) -> ServerSpec:
    """The spec of one of the workbench's own servers (``python -m servers.<module>``)."""
    return ServerSpec(
        command=sys.executable,
        args=["-m", f"servers.{module}"],
        cwd=str(ROOT),
        workbench_env=True,
        endpoint_env=endpoint_env,
    )


BUILTIN_SERVERS: dict[str, ServerSpec] = {
    "code": builtin("code"),
    "search": builtin("search"),
    "documents": builtin("documents"),
    "math": builtin("math_server"),
    "web": builtin("web", endpoint_env=True),
    "media": builtin("media", endpoint_env=True),
}
# servers that serve one task's tools (started per episode by the task's suite, told the task by env)
TASK_SERVERS: dict[str, ServerSpec] = {"bfcl": builtin("bfcl")}

PASS_THROUGH_ENV = (
    "MEMENTO_SANDBOX",
    "MEMENTO_SEARCH_INDEX",
    "MEMENTO_CODE_TIMEOUT",
    "MEMENTO_DOC_MAX_BYTES",
    "MEMENTO_SERVER_LOG_LEVEL",
    "MEMENTO_WEB_ALLOW_HOSTS",
    "MEMENTO_MEDIA_MAX_BYTES",
    "MEMENTO_MEDIA_MAX_SECONDS",
    "MEMENTO_MEDIA_THREADS",
    "TRANSFORMERS_OFFLINE",
    "LANG",
    "TMPDIR",
)


def available_servers() -> list[str]:
    """The built-in server names: code, search, documents, math, web, media."""
    return list(BUILTIN_SERVERS)


def check_names(servers: dict[str, ServerSpec]) -> dict[str, ServerSpec]:
    """Custom server names: plain words, none of them a built-in server's."""
    for name in servers:
        if not NAME.match(name):
            raise ValueError(f"tool server name {name!r}: use letters, digits, '_', '.' or '-'")
    shadow = sorted(set(servers) & (set(BUILTIN_SERVERS) | set(TASK_SERVERS)))
    if shadow:
        raise ValueError(f"tool server name(s) {shadow} are built-in servers: give your server another name")
    return servers


# a run's own servers (ExperimentConfig.tool_servers, a [tool_servers.NAME] table each)
ToolServers = Annotated[dict[str, ServerSpec], AfterValidator(check_names)]


def resolve_servers(
    names: Sequence[str], custom: Mapping[str, ServerSpec | Mapping[str, Any]] | None = None
) -> dict[str, ServerSpec]:
    """Name -> spec of a run's servers: ``names`` (built-in or custom ones, in this order), then
    every custom server not named there. A custom name may not shadow a built-in one."""
    specs = check_names({name: as_spec(name, spec) for name, spec in (custom or {}).items()})
    known = BUILTIN_SERVERS | TASK_SERVERS | specs
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown tool server(s) {unknown}; built-in: {available_servers()}"
            + (f"; defined: {sorted(specs)}" if specs else "")
            + " (define your own with --tool-server NAME=COMMAND or a [tool_servers.NAME] table)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"tool servers listed twice: {list(names)}")
    order = [*names, *(n for n in specs if n not in names)]
    return {n: known[n] for n in order}


def as_spec(name: str, spec: ServerSpec | Mapping[str, Any]) -> ServerSpec:
    """A spec from a record or a plain table; a bad one is an error naming the server and the field."""
    if isinstance(spec, ServerSpec):
        return spec
    try:
        return ServerSpec.model_validate(spec)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        where = f"field {field!r}: " if field else ""
        raise ValueError(f"tool server {name!r}: {where}{first['msg']}") from None


def parse_server_arg(text: str) -> tuple[str, ServerSpec]:
    """``NAME=COMMAND ARGS...``, ``NAME=http(s)://URL`` or ``NAME={json spec}`` (a ``--tool-server`` value)."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise ValueError(
            f"--tool-server {text!r}: expected NAME=COMMAND [ARGS...], NAME=http://HOST:PORT/PATH "
            "or NAME={JSON spec}"
        )
    if value.startswith("{"):
        try:
            table = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"--tool-server {name}: not valid JSON ({e.msg} at column {e.colno})") from None
        return name, as_spec(name, table)
    if re.match(r"^https?://", value):
        return name, as_spec(name, {"url": value})
    try:
        command, *args = shlex.split(value)
    except ValueError as e:
        raise ValueError(f"--tool-server {name}: cannot split the command line {value!r}: {e}") from None
    return name, as_spec(name, {"command": command, "args": args})


# ------------------------------------------------------------------------------- starting a server
def server_env(workspace: Path, settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment a workbench server gets (nothing else leaks from ours)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workspace)),
        "PYTHONPATH": str(ROOT),
        "MEMENTO_WORKSPACE": str(workspace),
        "MEMENTO_ALLOW_NETWORK": "1" if settings.allow_network else "0",
        "MEMENTO_CACHE_DIR": str(settings.cache_dir),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "PYTHONUNBUFFERED": "1",
    }
    if settings.searxng_url:
        env["SEARXNG_URL"] = settings.searxng_url
    env |= {k: os.environ[k] for k in PASS_THROUGH_ENV if k in os.environ}
    return env | (extra or {})


def endpoint_env(settings: Settings) -> dict[str, str]:
    """The endpoint variables, for servers with ``endpoint_env`` (the others never see the key)."""
    pairs = {
        "OPENAI_BASE_URL": settings.openai_base_url,
        "OPENAI_API_KEY": settings.openai_api_key,
        "MEMENTO_VISION_MODEL": settings.vision_model,
        "MEMENTO_TRANSCRIBE_MODEL": settings.transcribe_model,
        "MEMENTO_SUMMARY_MODEL": settings.summary_model,
    }
    return {k: v for k, v in pairs.items() if v}


def expand(name: str, field: str, text: str, workspace: Path) -> str:
    """``${VAR}`` in ``text`` from our environment (and ``${MEMENTO_WORKSPACE}``); ``$$`` is a dollar."""
    try:
        return Template(text).substitute(os.environ, MEMENTO_WORKSPACE=str(workspace))
    except KeyError as e:
        raise SpecError(
            f"tool server {name!r}: {field} refers to ${{{e.args[0]}}}, which is not set in the environment"
        ) from None
    except ValueError as e:
        raise SpecError(f"tool server {name!r}: {field} {text!r}: {e} (write $$ for a dollar)") from None


def executable(command: str, path: str) -> str:
    """The command's path: as given if it has a slash, else found on ``path``, else beside this
    Python (a server installed into the workbench's venv works without activating it)."""
    if "/" in command:
        return command
    found = shutil.which(command, path=path) or shutil.which(command, path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"command {command!r} is not on PATH nor in {Path(sys.executable).parent}")
    return found


def stdio_launch(
    name: str,
    spec: ServerSpec,
    *,
    workspace: Path,
    settings: Settings,
    extra_env: dict[str, str] | None = None,
) -> tuple[str, list[str], dict[str, str], str]:
    """(executable, args, environment, cwd) to start a stdio server, every ``${VAR}`` expanded."""
    assert spec.command is not None
    env = server_env(workspace, settings) if spec.workbench_env else {}
    if spec.endpoint_env:
        env |= endpoint_env(settings)
    env |= {k: expand(name, f"env {k}", v, workspace) for k, v in spec.env.items()}
    env |= extra_env or {}
    args = [expand(name, f"argument {a!r}", a, workspace) for a in spec.args]
    cwd = expand(name, "cwd", spec.cwd, workspace) if spec.cwd else str(workspace)
    command = executable(
        expand(name, "command", spec.command, workspace), env.get("PATH") or os.environ.get("PATH", "")
    )
    return command, args, env, cwd

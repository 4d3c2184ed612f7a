"""The agent's prompts, as data: one ``.txt`` file per role prompt, the short messages of a turn in
``turns.toml``, the answer rules of each answer kind in ``answer_kinds.toml`` and the LLM judge's
rubric in ``judge.toml``.

    load_prompt("planner")              # a role prompt (str.format fields in braces)
    turn("step")                        # a turn's message template
    answer_rules("program")["final"]    # how the forced final turn asks for a program
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Any


def load_prompt(name: str) -> str:
    """The role prompt ``<name>.txt`` shipped with the package."""
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


@functools.cache
def table(name: str) -> dict[str, Any]:
    """The prompt table ``<name>.toml`` (read once)."""
    return tomllib.loads(resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8"))


def turn(name: str) -> str:
    """One message template of a planner or executor turn (``turns.toml``)."""
    return str(table("turns")[name])


def answer_rules(kind: str) -> dict[str, str]:
    """How each prompt asks for an answer of ``kind`` (``answer_kinds.toml``): ``answer`` (the planner's
    rule), ``final`` (the forced final turn), ``direct`` (the direct profile), ``planner_note``."""
    return dict(table("answer_kinds")[kind])

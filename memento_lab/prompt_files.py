"""Prompts are data: text and TOML files shipped inside a package's ``prompts`` folder, read here.

read_prompt("memento_lab.agent.prompts", "planner.txt")      # a prompt as it is in the file
read_table("memento_lab.tasks.prompts", "judge.toml")         # a table of prompts (read once)
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import Any


def read_prompt(package: str, name: str) -> str:
    """The file ``name`` of ``package``, as it is."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


@functools.cache
def read_table(package: str, name: str) -> dict[str, Any]:
    """The TOML file ``name`` of ``package`` (read once per process)."""
    return tomllib.loads(read_prompt(package, name))

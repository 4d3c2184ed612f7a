"""The agent's prompts, as data: one ``.txt`` file per role prompt, the short messages of a turn in
``turns.toml`` and the answer rules of each answer kind in ``answer_kinds.toml`` (the judges' and
suites' prompts are in ``memento_lab/tasks/prompts``).

    load_prompt("planner")              # a role prompt (str.format fields in braces)
    turn("step")                        # a turn's message template
    answer_rules("program")["final"]    # how the forced final turn asks for a program
"""

from __future__ import annotations

from typing import Any

from memento_lab.prompt_files import read_prompt, read_table


def load_prompt(name: str) -> str:
    """The role prompt ``<name>.txt`` shipped with the package."""
    return read_prompt(__name__, f"{name}.txt")


def table(name: str) -> dict[str, Any]:
    """The prompt table ``<name>.toml``."""
    return read_table(__name__, f"{name}.toml")


def turn(name: str) -> str:
    """One message template of a planner or executor turn (``turns.toml``)."""
    return str(table("turns")[name])


def answer_rules(kind: str) -> dict[str, str]:
    """How each prompt asks for an answer of ``kind`` (``answer_kinds.toml``): ``answer`` (the planner's
    rule), ``final`` (the forced final turn), ``direct`` (the direct profile's final line), ``instant``
    (the direct-instant profile), ``planner_note``."""
    return dict(table("answer_kinds")[kind])


def answer_rule(kind: str) -> str:
    """How the planner's ``final_answer`` must look for this kind of task."""
    return answer_rules(kind)["answer"]


def final_rule(kind: str) -> str:
    """How the forced final turn asks for the answer."""
    return answer_rules(kind)["final"]


def planner_note(kind: str) -> str:
    """What the planner's prompt adds for this kind (a program: one step usually suffices)."""
    return answer_rules(kind)["planner_note"]

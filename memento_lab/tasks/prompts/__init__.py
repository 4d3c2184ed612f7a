"""The tasks' prompts, as data: the LLM judge's rubric (``judge.toml``) and the instructions that turn
a dataset's entry into a question (``instructions.toml``)."""

from __future__ import annotations

from memento_lab.prompt_files import read_table


def judge_prompt() -> tuple[str, str]:
    """The LLM judge's rubric (``str.format`` fields question, gold, pred) and its retry note."""
    judge = read_table(__name__, "judge.toml")
    return judge["prompt"], judge["retry_note"]


def instruction(name: str) -> str:
    """The instruction a suite puts before its tasks' questions (``instructions.toml``)."""
    return str(read_table(__name__, "instructions.toml")[name])

"""The memory methods' prompts, as data: one TOML table per method (its maintenance prompts and how its
block reads), and ``cases.txt``, the block of Memento's cases."""

from __future__ import annotations

from memento_lab.prompt_files import read_prompt, read_table


def prompt_table(name: str) -> dict[str, str]:
    """The prompt table ``name`` (e.g. ``expel.toml``) of this package (read once)."""
    return {k: str(v) for k, v in read_table(__name__, name).items()}


def prompt_text(name: str) -> str:
    """The prompt file ``name`` as it is."""
    return read_prompt(__name__, name)

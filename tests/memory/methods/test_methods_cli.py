"""``memento-lab run --memory M`` for ReasoningBank, the Dynamic Cheatsheet family, ACE and the value
memory, against a loopback endpoint: the run writes the method's memory, ``--memory-option`` reaches
the method, and a wrong option is one clear line."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from loopback import FakeOpenAI, completion
from support import QUESTIONS, asked, tasks_file

from memento_lab.cli import main
from memento_lab.experiments.results import read_rows
from memento_lab.experiments.run_memory import load_run_memory

MEMORY_REPLIES = {  # what the memory role answers, by a phrase of its prompt
    "Write each item exactly in this Markdown form": "# Memory Item 1\n## Title Name first\n"
    "## Description Code words.\n## Content Find the name, then answer its code word.",
    "You keep a CHEATSHEET": "<cheatsheet>\n<memory_item>Find the name, then its code word.</memory_item>\n</cheatsheet>",
    "Diagnose an agent's attempt": json.dumps({"reasoning": "r", "key_insight": "names", "bullet_tags": []}),
    "You curate a PLAYBOOK": json.dumps(
        {
            "reasoning": "r",
            "operations": [{"type": "ADD", "section": "others", "content": "Find the name first."}],
        }
    ),
}
# method -> (an option of its own, what its memory holds after a run)
METHODS = {
    "reasoningbank": ("top_k=2", "item"),
    "dc-cu": ("sheet_words=120", "cheatsheet"),
    "dc-rs": ("retrieve_k=2", "cheatsheet"),
    "dc-retrieval": ("retrieve_k=1", "pair"),
    "dc-history": ("solution_chars=300", "pair"),
    "ace": ("curator_every=2", "bullet"),
    "memrl": ("alpha=0.5", "experience"),
}


def handle(body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    text = "\n".join(str(m.get("content", "")) for m in body["messages"])
    for marker, reply in MEMORY_REPLIES.items():
        if marker in text:
            return 200, completion(reply), {}
    return 200, completion(json.dumps({"final_answer": QUESTIONS[asked(body)]})), {}


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(METHODS))
async def test_run_memory_from_the_command_line(tmp_path, monkeypatch, capsys, name: str) -> None:
    option, kind = METHODS[name]
    out = tmp_path / "run"
    argv = ["run", "--suite", f"jsonl:{tasks_file(tmp_path)}", "--n", "2", "--iterations", "2"]
    argv += ["--agent", "direct", "--tools", "", "--memory", name, "--memory-option", option]
    argv += ["--memory-tokens", "300", "--out", str(out)]
    with FakeOpenAI(handle) as fake:
        for var, value in (("OPENAI_BASE_URL", fake.base_url), ("OPENAI_API_KEY", "k")):
            monkeypatch.setenv(var, value)
        assert await anyio.to_thread.run_sync(main, argv) == 0, capsys.readouterr().err
    rows = read_rows(out)
    assert len(rows) == 4 and {r.memory for r in rows} == {name} and {r.status for r in rows} == {"ok"}
    method = load_run_memory(out)
    key, value = option.split("=")
    assert str(method.describe()["options"][key]) == value  # the option reached the method
    assert method.items(kind) and method.version == 4
    assert all(r.memory_tokens <= 300 for r in rows) and any(r.memory_tokens > 0 for r in rows)


def test_a_wrong_option_is_one_clear_line(tmp_path, capsys) -> None:
    argv = ["run", "--suite", f"jsonl:{tasks_file(tmp_path)}", "--memory", "ace", "--memory-option"]
    assert main([*argv, "curator_evry=2", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "curator_evry" in err and "curator_every" in err and "Traceback" not in err

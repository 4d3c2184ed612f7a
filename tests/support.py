"""Shared test helpers (not tests): task files and fake endpoints for runs, MCP calls, pair sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loopback import FakeOpenAI, completion, endpoint_settings
from mcp import Client

from memento_lab.config import Settings
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.retrieval.pairs import RetrievalPair

QUESTIONS = {"What is the code word of Zeta?": "amber", "What is the code word of Omega?": "basalt"}


def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS.items()))
    return path


def asked(request: dict) -> str:
    """The task's question in a request to the model (without the direct profile's reminder after it)."""
    task = next(str(m["content"]) for m in request["messages"] if str(m["content"]).startswith("Task: "))
    return task.removeprefix("Task: ").split("\n\n")[0]


def answer_of(request: dict) -> str:
    """The fake model knows the code words: it answers the task named in the prompt."""
    return QUESTIONS[asked(request)]


def good(request: dict) -> tuple[int, dict, dict]:
    return 200, completion(json.dumps({"final_answer": answer_of(request)})), {}


def config(tmp_path: Path, **kw: object) -> ExperimentConfig:
    base = {
        "suite": f"jsonl:{tasks_file(tmp_path)}",
        "n": 1,
        "iterations": 1,
        "memory": "none",
        "agent": "direct",
        "tools": [],
        "cassette": "off",
        "out": str(tmp_path / "run"),
    }
    return ExperimentConfig(**{**base, **kw})  # type: ignore[arg-type]


def endpoint(fake: FakeOpenAI, **kw: object) -> Settings:
    return endpoint_settings(fake, **{"llm_max_retries": 0, **kw})


def bank_size(tmp_path: Path) -> int:
    return len(CaseBank(tmp_path / "run" / "bank"))


ROOT = Path(__file__).resolve().parent.parent


async def call(server: Any, tool: str, **arguments: Any) -> tuple[bool, str]:
    """(is_error, text) of one in-process call."""
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    return result.is_error, "\n".join(c.text for c in result.content)


DEMO = Path(__file__).resolve().parent.parent / "memento_lab" / "data" / "demo_memory.jsonl"


MATH_CASES = [0, 5, 7, 11, 13, 19]  # demo cases that are arithmetic


TEXT_CASES = [2, 3, 9, 10, 15, 18]  # demo cases that are about words and letters


WORDS = [
    "garden",
    "silver",
    "rocket",
    "pencil",
    "window",
    "forest",
    "candle",
    "bridge",
    "marble",
    "jacket",
    "tunnel",
    "violin",
    "meadow",
    "anchor",
    "basket",
    "falcon",
    "harbor",
    "lantern",
    "mirror",
    "orchid",
]


def _pair(query: str, case: Case, reward: float, **kw) -> RetrievalPair:
    return RetrievalPair(
        query=query,
        case_id=case.id,
        case_question=case.question,
        case_label=case.label,
        case_plan=case.plan_json,
        reward=reward,
        helped=reward >= 0.5,
        **kw,
    )


def family_pairs(cases: list[Case]) -> list[RetrievalPair]:
    """Queries of two families; each sees 3 same-family and 3 other-family cases. The reward is the
    query's (so ``helped`` is one label per query, as in the seed data) but the advantage is per case."""
    pairs = []
    for i, w in enumerate(WORDS):
        for query, same, other in (
            (f"What is {i + 12} * {i + 7}?", MATH_CASES, TEXT_CASES),
            (f"Spell the word '{w}' backwards.", TEXT_CASES, MATH_CASES),
        ):
            reward = float(i % 2)
            for j in range(3):
                for idx, adv in ((same[(i + j) % 6], 0.5), (other[(i + j) % 6], -0.5)):
                    pairs.append(_pair(query, cases[idx], reward, advantage=adv, delta=adv))
    return pairs

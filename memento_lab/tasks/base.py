"""What every suite shares: a task, the context judges get, their judgement, the suite interface.

Kept apart from ``suites`` (the concrete suites and ``load_suite``) so that suites living in their
own modules (``memento_lab.tasks.bfcl``) build on it without an import cycle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from memento_lab.tasks.answers import AnswerKind
from memento_lab.tasks.judges import SupportsChat
from memento_lab.trace import JudgeVerdict, LLMCall, ToolCall

ADHOC = "adhoc"  # the suite (and family) of a bare question


class Task(BaseModel):
    """One question with its gold answer (``None`` when only a checker can judge it) and what kind
    of answer it wants (a ``program`` names the function the judge calls: ``entry_point``)."""

    id: str
    question: str
    answer: str | None = None
    family: str
    suite: str
    answer_kind: AnswerKind = "short"
    entry_point: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)  # absolute paths, copied into the episode's workspace

    @classmethod
    def of_question(cls, question: str) -> Task:
        """A bare question as a task (``adhoc``): an id from its text, no gold answer, nothing judges it."""
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        return cls(id=f"{ADHOC}:{digest}", question=question, family=ADHOC, suite=ADHOC)

    @property
    def adhoc(self) -> bool:
        """A bare question, not a suite's task."""
        return self.suite == ADHOC

    @model_validator(mode="after")
    def _program_has_entry_point(self) -> Task:
        if self.answer_kind == "program" and not self.entry_point:
            raise ValueError(f"task {self.id}: a program answer needs an entry_point (the function to call)")
        return self


@dataclass
class JudgeContext:
    """What judges may use besides the answer: an LLM client, whether to run it, a sandbox folder."""

    judge: SupportsChat | None = None
    llm_judge: bool = False  # also run the LLM judge where cheaper judges decided (an audit, for agreement)
    workspace: Path | None = None
    unit_test_timeout_s: float = 10.0
    tool_calls: list[ToolCall] = dataclasses.field(
        default_factory=list
    )  # the episode's tool calls (suites judged by tool state read them: BFCL)


class Judgement(BaseModel):
    """What a suite's judges said about one answer: the verdicts (the first is the reward), which
    judge decided (the first verdict's) and the LLM calls the judges made."""

    verdicts: list[JudgeVerdict] = Field(default_factory=list)
    calls: list[LLMCall] = Field(default_factory=list)
    decided_by: str | None = None

    @property
    def reward(self) -> float:
        return self.verdicts[0].score if self.verdicts else 0.0


@dataclass(frozen=True)
class EpisodeServers:
    """MCP tool servers one episode needs of its own (fresh state), opened by the agent for that
    episode in place of the run's tools: server names, their environment, and the cassette scope
    that keys stateful calls by task and by the calls made before."""

    servers: tuple[str, ...]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    scope: str | None = None


class Suite:
    """A list of tasks and how to score an answer to one of them.

    Besides ``tasks`` and ``verdicts`` a suite may declare ``forces`` (run options it fixes) and
    ``episode_servers`` (tools an episode of a task needs of its own)."""

    name: str = "suite"

    def tasks(self) -> list[Task]:
        raise NotImplementedError

    @property
    def forces(self) -> dict[str, Any]:
        """Run options this suite fixes whatever the configuration says (``ExperimentConfig`` field ->
        value), e.g. the negative control's ``exclude_question``."""
        return {}

    def episode_servers(self, task: Task) -> EpisodeServers | None:
        """The tool servers an episode of ``task`` works with instead of the run's (None: the run's)."""
        return None

    async def score(self, task: Task, answer: str | None, *, ctx: JudgeContext | None = None) -> Judgement:
        """Every judge's verdict on ``answer`` (the first is the reward, 0..1) and the judges' LLM calls.

        Raises ``JudgeError`` when the deciding judge could not reach a verdict."""
        calls: list[LLMCall] = []
        verdicts = await self.verdicts(task, answer, ctx, calls)
        return Judgement(verdicts=verdicts, calls=calls, decided_by=verdicts[0].judge if verdicts else None)

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        """The suite's judges, the deciding one first; LLM judges append their call records to ``calls``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tasks={len(self.tasks())})"


def sample_indices(indices: list[int], n: int, seed: int) -> list[int]:
    """``n`` of ``indices`` chosen with ``seed``, kept in their original order (all when n <= 0)."""
    if n <= 0 or n >= len(indices):
        return list(indices)
    chosen = set(random.Random(seed).sample(range(len(indices)), n))
    return [x for i, x in enumerate(indices) if i in chosen]


def gold_answers(task: Task) -> list[str]:
    """The task's gold answers: its aliases when it has several, else its one answer."""
    aliases = task.metadata.get("aliases")
    return list(aliases) if aliases else [task.answer or ""]

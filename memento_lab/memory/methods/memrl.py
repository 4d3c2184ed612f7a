"""A MemRL-style value memory (MemTensor/MemRL, "MemRL: Self-Evolving Agents via Runtime Reinforcement
Learning on Episodic Memory", 2026): every experience carries a Q value learned from the rewards of the
episodes it was shown to; reading ranks by similarity, then by value.

The rule, as the paper's code runs it (``memrl/service/memory_service.py``: ``retrieve_query``,
``update_values``, ``add_memories``; ``value_driven.py``; settings of ``configs/rl_llb_config.yaml``):

- **write**, after every episode: (1) each experience that was shown gets
  ``Q <- Q + alpha (r - Q)`` (``alpha`` 0.3, ``r`` = 1 for a success, 0 for a failure; gamma 0: one
  step); (2) the episode becomes a new experience, keyed by its question, with ``Q = q_init`` (0.5 for a
  success and for a failure alike). No model call: the experience is its trajectory (MemRL's
  ``trajectory`` build strategy; its LLB runs let a model rewrite it as a script first).
- **read**, two phases: (A) the stored questions with cosine ``>= sim_threshold`` to the task, the
  ``recall_k`` (10) most similar, and every experience under them whose ``Q >= q_min`` (-0.8); (B) each
  scored ``w_sim z(sim) + w_q z(Q)`` (0.5 / 0.5), where ``z(sim)`` uses a fixed mean and deviation of
  the encoder's similarities and ``z(Q)`` the candidates' own (clipped to [-3, 3]); the ``k`` best are
  shown (with probability ``epsilon`` = 0.01, ``k`` candidates drawn at random instead), the
  successful and the failed ones apart.

Departures, each for a reason:

- ``sim_threshold``, ``sim_mean`` and ``sim_std`` are set for the packaged MiniLM encoder, not MemRL's
  ``text-embedding-3-large`` (0.5 / 0.39 / 0.14): over 96 reasoning-gym questions of 8 families, MiniLM's
  pairwise cosine has mean 0.19 and deviation 0.20 (same family 0.64, other families 0.13), so the
  threshold 0.35 sits as far above the mean (about +0.8 deviations) as MemRL's 0.5 does.
- The epsilon draw is seeded by the run's seed, the task and the memory's version, so a replayed run
  shows the same experiences.
- ``k``: the run's ``k`` (MemRL's ``topk``: 5).
- ``exclude_question`` hides the experiences of the task's own question.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memento_lab.memory.methods.base import Feedback, MemoryEnv, MemoryItem, TaskLike
from memento_lab.memory.methods.blocks import Entry, Recall, Section, episode_text
from memento_lab.memory.methods.logged import Draft, LoggedMethod
from memento_lab.memory.methods.prompts import prompt_table
from memento_lab.memory.methods.registry import memory_method
from memento_lab.trace import LLMCall, Trace

Z_CLIP = 3.0  # memory_service._normalize_q clips z(Q) to [-3, 3]


class MemRLOptions(BaseModel):
    """The value memory's settings (defaults: MemRL's LLB configuration, the encoder's statistics)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.3, gt=0.0, le=1.0, description="Q step size")
    q_init_success: float = Field(0.5, description="Q of a new experience from a success")
    q_init_failure: float = Field(0.5, description="Q of a new experience from a failure")
    success_reward: float = Field(1.0, description="r of an episode judged a success")
    failure_reward: float = Field(0.0, description="r of an episode judged a failure")
    sim_threshold: float = Field(0.35, description="phase A: the least cosine of a recalled question")
    recall_k: int = Field(10, ge=1, description="phase A: the most similar questions recalled")
    q_min: float = Field(-0.8, description="phase A: experiences with a lower Q are left out")
    w_sim: float = Field(0.5, ge=0.0, description="phase B: weight of z(similarity)")
    w_q: float = Field(0.5, ge=0.0, description="phase B: weight of z(Q)")
    sim_mean: float = Field(0.19, description="z(similarity): the encoder's mean cosine")
    sim_std: float = Field(0.20, gt=0.0, description="z(similarity): the encoder's cosine deviation")
    epsilon: float = Field(0.01, ge=0.0, le=1.0, description="chance of showing k random candidates")


def _prompts() -> dict[str, str]:
    return prompt_table("memrl.toml")


def q_update(q: float, reward: float, alpha: float) -> float:
    """One step of MemRL's value update (gamma 0): ``Q + alpha (r - Q)``."""
    return q + alpha * (reward - q)


def hybrid_scores(sims: list[float], qs: list[float], o: MemRLOptions) -> list[float]:
    """Phase B's scores: ``w_sim z(sim) + w_q z(Q)``; z(Q) over the candidates (deviation 1 for one)."""
    mean_q = statistics.fmean(qs) if qs else 0.0
    std_q = statistics.pstdev(qs) if len(qs) > 1 else 1.0
    std_q = std_q if std_q > 1e-9 else 1.0
    out = []
    for sim, q in zip(sims, qs, strict=True):
        z_q = max(-Z_CLIP, min(Z_CLIP, (q - mean_q) / std_q))
        out.append(o.w_sim * (sim - o.sim_mean) / o.sim_std + o.w_q * z_q)
    return out


@memory_method(
    "memrl",
    summary="MemRL-style value memory: experiences with Q values learned from reward, read by similarity then value",
    keeps="experiences",
)
class MemRL(LoggedMethod):
    Options = MemRLOptions

    def candidates(self, task: TaskLike) -> list[tuple[MemoryItem, float]]:
        """Phase A: (experience, similarity of its question) for the recalled questions."""
        pool = [
            i
            for i in self.items("experience")
            if not (self.setup.exclude_question and i.question == task.question)
        ]
        o = self.options
        questions = list(dict.fromkeys(i.question or "" for i in pool))
        if not questions:
            return []
        sims = self.setup.similarity(task.question, questions)
        kept = sorted(
            (j for j in range(len(questions)) if sims[j] >= o.sim_threshold), key=lambda j: -sims[j]
        )
        recalled = {questions[j]: float(sims[j]) for j in kept[: o.recall_k]}
        return [
            (i, recalled[i.question or ""])
            for i in pool
            if (i.question or "") in recalled and float(i.data["q"]) >= o.q_min
        ]

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p, o = _prompts(), self.options
        found = self.candidates(task)
        scores = hybrid_scores([s for _, s in found], [float(i.data["q"]) for i, _ in found], o)
        ranked = sorted(zip(found, scores, strict=True), key=lambda x: -x[1])
        k = min(self.setup.k, len(ranked))
        rng = random.Random(f"{self.setup.seed}:{task.id}:{self.version}")
        chosen = rng.sample(ranked, k) if ranked and rng.random() < o.epsilon else ranked[:k]
        good = [Entry(i, i.text, score=s) for (i, _), s in chosen if i.data.get("success")]
        bad = [Entry(i, i.text, score=s) for (i, _), s in chosen if not i.data.get("success")]
        return Recall([Section(p["success_header"], good), Section(p["failure_header"], bad)], hint=p["hint"])

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        o = self.options
        r = o.success_reward if feedback.success else o.failure_reward
        for shown in episode.shown:
            if shown.id not in draft:
                continue  # shown, then removed (cannot happen: nothing here removes)
            item = draft.get(shown.id)
            q = q_update(float(item.data["q"]), r, o.alpha)
            draft.change(
                item.id,
                "update",
                q=q,
                visits=int(item.data.get("visits", 0)) + 1,
                last_reward=r,
                note=f"r={r:g}",
            )
        draft.add(
            "experience",
            episode_text(episode, style=self.setup_style(episode)),
            question=episode.question,
            sources=[episode.task_id],
            data={
                "task_id": episode.task_id,
                "success": feedback.success,
                "reward": feedback.reward,
                "q": o.q_init_success if feedback.success else o.q_init_failure,
                "visits": 0,
            },
        )

    @staticmethod
    def setup_style(episode: Trace) -> str:
        return "full"

    def describe(self) -> dict[str, Any]:
        qs = [float(i.data["q"]) for i in self.items("experience")]
        return {**super().describe(), "mean_q": statistics.fmean(qs) if qs else None}

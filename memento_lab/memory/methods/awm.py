"""Agent Workflow Memory (Wang et al. 2024, "Agent Workflow Memory"): reusable workflows induced from
the tasks the agent solved, online.

Both variants keep every successful episode as an ``example`` (a failure changes nothing: AWM induces
only from trajectories its evaluator judged successful; here the judge's reward). Like the paper's
code (``webarena/pipeline.py``: run a task, evaluate it, induce again from every success so far),
each new success re-induces the whole memory:

- ``awm`` (the LLM variant, ``induce_prompt.py``): up to ``samples_per_template`` examples per
  template (seeded), shown to the memory model with the instruction and one worked example; the
  reply's workflows (``## name`` blocks) replace the memory: a workflow whose name is new is added,
  one whose text changed is edited, one no longer induced is removed. A reply with no workflow (an
  unusable reply) leaves the memory as it was; a workflow that copies the worked example is left out
  (the code's ``filter_workflows``).
- ``awm-rule`` (the rule variant, ``induce_rule.py``): no model call. One example per template, then
  one per *abstract trajectory* (the sequence of actions with their first argument; the final answer
  is an action whose argument is dropped, like ``send_msg_to_user``), both drawn at random (seeded);
  the chosen examples are the workflows. Episodes without tool calls all share one abstract
  trajectory, so this variant then keeps a single example: the rule was made for action traces.

A template is the task's family (reasoning-gym's generator, WebArena's ``intent_template_id``), else
the task itself. The workflows show whole, most similar to the task first (the original puts the
whole file in the prompt; under a ``memory_tokens`` budget the least similar go first).
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from memento_lab.memory.methods.base import Feedback, MemoryEnv, MemoryItem, TaskLike
from memento_lab.memory.methods.blocks import Entry, Recall, Section, episode_text
from memento_lab.memory.methods.logged import Draft, LoggedMethod, unusable
from memento_lab.memory.methods.prompts import prompt_table
from memento_lab.memory.methods.registry import memory_method
from memento_lab.trace import LLMCall, Trace


class AWMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples_per_template: int = Field(1, ge=1, description="examples per template shown to the induction")
    induce_tokens: int = Field(600, ge=32, description="token budget of one induction reply")
    temperature: float = Field(0.0, ge=0.0, description="induction temperature (the online code's default 0)")


def _prompts() -> dict[str, str]:
    return prompt_table("awm.toml")


def template_of(episode: Trace) -> str:
    return episode.family or episode.task_id


def abstract_trajectory(episode: Trace) -> str:
    """The actions of an episode with their first argument, then the answer (its argument dropped)."""
    actions = []
    for call in episode.tool_calls:
        first = next(iter(call.arguments.values()), "") if call.arguments else ""
        actions.append(f"{call.name}({first})")
    return "_".join([*actions, "answer"])


def example_text(episode: Trace, style: str = "full") -> str:
    """An example as AWM shows one: the query, its actions (plan steps, tool calls), the answer."""
    body = episode_text(episode, style=style).split("\n")
    return "\n".join([f"Query: {episode.question}", "Actions:", *body[1:]])


class _AWMBase(LoggedMethod):
    Options = AWMOptions
    shows = "workflow"

    async def recall(self, task: TaskLike, env: MemoryEnv, calls: list[LLMCall]) -> Recall:
        p = _prompts()
        shown = self.shown_items(task)
        sims = self.setup.similarity(task.question, [i.text for i in shown])
        ranked = sorted(zip(shown, sims, strict=True), key=lambda x: -x[1])
        header = p["workflows_header"] if self.shows == "workflow" else p["examples_header"]
        return Recall(
            [Section(header, [Entry(i, i.text, score=float(s)) for i, s in ranked])], hint=p["hint"]
        )

    def shown_items(self, task: TaskLike) -> list[MemoryItem]:
        return self.items("workflow")

    def add_example(self, draft: Draft, episode: Trace, feedback: Feedback) -> MemoryItem:
        return draft.add(
            "example",
            example_text(episode),
            question=episode.question,
            sources=[episode.task_id],
            data={
                "template": template_of(episode),
                "abstract": abstract_trajectory(episode),
                "reward": feedback.reward,
            },
        )

    def rng(self, draft: Draft) -> random.Random:
        return random.Random(f"{self.setup.seed}:{draft.version}")


@memory_method(
    "awm",
    summary="Agent Workflow Memory: workflows induced by the model from every success",
    keeps="workflows",
)
class AWM(_AWMBase):
    transfer_safe = False  # a workflow induced from a task may carry its answer

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        if not feedback.success:
            return
        self.add_example(draft, episode, feedback)
        chosen = sample_per_template(
            draft.items("example"), self.options.samples_per_template, self.rng(draft)
        )
        p = _prompts()
        prompt = "\n\n".join(
            [p["instruction"], p["one_shot"], p["concrete"], *(e.text for e in chosen), p["summary"]]
        )
        reply = await draft.ask(
            [{"role": "user", "content": prompt}],
            max_tokens=self.options.induce_tokens,
            temperature=self.options.temperature,
        )
        induced = parse_workflows(reply.content or "", marker=p["one_shot_marker"])
        if not induced:
            unusable(reply, "no workflow in the induction reply (a copy of the worked example is dropped)")
            return
        replace_workflows(draft, induced, sources=[s for e in chosen for s in e.sources])


@memory_method(
    "awm-rule",
    summary="Agent Workflow Memory, rule variant: one example per template and abstract trajectory",
    keeps="workflows",
)
class AWMRule(_AWMBase):
    shows = "example"

    def shown_items(self, task: TaskLike) -> list[MemoryItem]:
        chosen = [i for i in self.items("example") if i.data.get("selected")]
        if self.setup.exclude_question:
            chosen = [i for i in chosen if i.question != task.question]
        return chosen

    async def learn(self, episode: Trace, feedback: Feedback, draft: Draft) -> None:
        if not feedback.success:
            return
        self.add_example(draft, episode, feedback)
        rng = self.rng(draft)
        pool = sample_per_template(draft.items("example"), 1, rng)
        by_abstract: dict[str, list[MemoryItem]] = {}
        for e in pool:
            by_abstract.setdefault(e.data["abstract"], []).append(e)
        keep = {rng.choice(group).id for group in by_abstract.values()}
        for e in draft.items("example"):
            if e.data.get("selected", False) != (e.id in keep):
                draft.change(e.id, "select" if e.id in keep else "deselect", selected=e.id in keep)


def sample_per_template(examples: list[MemoryItem], n: int, rng: random.Random) -> list[MemoryItem]:
    """Up to ``n`` examples of each template, drawn with ``rng`` (templates in order of appearance)."""
    groups: dict[str, list[MemoryItem]] = {}
    for e in examples:
        groups.setdefault(e.data["template"], []).append(e)
    return [e for g in groups.values() for e in rng.sample(g, min(n, len(g)))]


def parse_workflows(reply: str, *, marker: str = "") -> list[tuple[str, str]]:
    """(name, text) of each ``## name`` block of an induction reply; a block that mentions ``marker``
    (the worked example's) or is one of the prompt's own headings is left out."""
    out: list[tuple[str, str]] = []
    name, lines = None, []  # type: ignore[var-annotated]
    for line in [*reply.splitlines(), "## "]:
        if line.startswith("## "):
            body = "\n".join(lines).strip("\n").rstrip()
            if name and body.strip() and not (marker and marker.lower() in (name + body).lower()):
                out.append((name, f"## {name}\n{body}"))
            name, lines = line[3:].strip(), []
            if name.lower() in ("concrete examples", "summary workflows"):
                name = None
        elif name is not None:
            lines.append(line)
    return out


def replace_workflows(draft: Draft, induced: list[tuple[str, str]], *, sources: list[str]) -> None:
    """The induced workflows become the memory: added by new name, edited when the text changed,
    removed when no longer induced (a name induced twice keeps its first text)."""
    old = {str(w.data.get("name")): w for w in draft.items("workflow")}
    new: dict[str, str] = {}
    for name, text in induced:
        new.setdefault(name, text)
    for name, text in new.items():
        if name not in old:
            draft.add("workflow", text, data={"name": name}, sources=sources)
        elif old[name].text != text:
            draft.change(old[name].id, "edit", text=text)
    for name, item in old.items():
        if name not in new:
            draft.remove(item.id, "remove", note="no longer induced")

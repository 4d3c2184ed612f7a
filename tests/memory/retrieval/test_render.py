"""The memory block: styles and the token budget (cases that do not fit are left out whole)."""

from __future__ import annotations

import pytest

from memento_lab.memory.bank.case import Case, Trajectory
from memento_lab.memory.methods.prompts import prompt_text
from memento_lab.memory.retrieval.render import estimate_tokens, render_memory
from memento_lab.memory.retrieval.retrievers import Retrieved
from memento_lab.trace import PlanStep


def hit(i: int, reward: float = 1.0) -> Retrieved:
    case = Case.from_episode(
        f"What is {i} + {i}? " + "Explain. " * i,
        reward,
        answer=str(2 * i),
        plan=[PlanStep(id=1, description=f"add {i} to itself")],
        trajectory=Trajectory(step_results=[f"{i}+{i}={2 * i}"]),
    )
    return Retrieved(case=case, score=1.0 - i / 10, rank=i)


@pytest.mark.anyio
async def test_styles_show_more_or_less_of_a_case() -> None:
    template = prompt_text("cases.txt")
    qa, _, _ = await render_memory([hit(1)], template, style="qa")
    plan, _, _ = await render_memory([hit(1)], template, style="qa+plan")
    full, _, _ = await render_memory([hit(1)], template, style="full")
    assert "Answer: 2" in qa and "Plan:" not in qa and "Step results" not in qa
    assert "Plan:" in plan and "Step results" not in plan
    assert "Plan:" in full and "Step results: 1+1=2" in full
    assert len(qa) < len(plan) < len(full)


@pytest.mark.anyio
async def test_budget_keeps_the_best_ranked_cases_that_fit_and_counts_tokens() -> None:
    template = prompt_text("cases.txt")
    hits = [hit(1), hit(2), hit(3, reward=0.0)]
    everything, all_tokens, shown = await render_memory(hits, template)
    assert shown == hits and all_tokens == estimate_tokens(everything)
    budget = all_tokens - 5  # one case must go
    block, tokens, shown = await render_memory(hits, template, max_tokens=budget)
    assert tokens <= budget and 0 < len(shown) < 3 and tokens == estimate_tokens(block)
    assert shown[0] is hits[0]  # the best-ranked case first
    none, zero, nothing = await render_memory(hits, template, max_tokens=5)
    assert (none, zero, nothing) == ("", 0, [])


@pytest.mark.anyio
async def test_budget_uses_the_given_token_counter() -> None:
    calls: list[str] = []

    async def count(text: str) -> int:
        calls.append(text)
        return 1000  # every block is over budget

    assert await render_memory([hit(1)], prompt_text("cases.txt"), max_tokens=10, count=count) == ("", 0, [])
    assert calls  # the model's tokenizer decided, not the estimate


@pytest.mark.anyio
async def test_count_tokens_asks_the_servers_tokenizer_then_falls_back_to_an_estimate(tmp_path) -> None:
    from loopback import FakeOpenAI, completion, endpoint_settings

    from memento_lab.agent.models.cassette import Cassette
    from memento_lab.agent.models.llm import open_llms

    tape = tmp_path / "c.sqlite"
    with FakeOpenAI(
        lambda body: (200, completion("x"), {}), tokenize=lambda text: list(range(len(text.split())))
    ) as fake:
        settings = endpoint_settings(fake, planner_model="m")
        async with open_llms(settings, cassette=Cassette(tape, "record")) as llms:
            assert await llms.planner.count_tokens("one two three four") == 4
        assert fake.tokenized == ["one two three four"]
        async with open_llms(settings, cassette=Cassette(tape, "replay")) as llms:
            assert await llms.planner.count_tokens("one two three four") == 4  # replayed, no request
        assert fake.tokenized == ["one two three four"]

    with FakeOpenAI(lambda body: (200, completion("x"), {})) as plain:  # no /tokenize route (OpenAI)
        async with open_llms(endpoint_settings(plain, planner_model="m")) as llms:
            assert await llms.planner.count_tokens("x" * 40) == estimate_tokens("x" * 40) == 10
            assert await llms.planner.count_tokens("y" * 8) == 2  # no second attempt at the route
        assert plain.tokenized == ["x" * 40]


@pytest.mark.anyio
async def test_the_direct_block_lists_past_cases_with_their_outcome_and_answer() -> None:
    """The direct profiles' block: past cases in retrieval order, each solved or failed (a partial
    score shown), with its answer (a failed one's as the wrong answer); within a budget like the planner's."""
    template = prompt_text("cases_outcomes.txt")
    hits = [hit(1, reward=0.0), hit(2), hit(3, reward=0.4)]
    block, tokens, shown = await render_memory(hits, template, style="qa", outcomes=True)
    assert block.startswith("Past cases:") and "do not repeat a wrong answer" in block
    assert (
        block.index("Case 1 (failed):")
        < block.index("Case 2 (solved):")
        < block.index("Case 3 (failed, score 0.40):")
    )
    assert "Wrong answer: 2\n" in block and "\nAnswer: 4\n" in block and block.endswith("Wrong answer: 6")
    assert "plan the current task" not in block and len(shown) == 3 and tokens == estimate_tokens(block)
    small, _, kept = await render_memory(hits, template, style="qa", outcomes=True, max_tokens=tokens - 1)
    assert len(kept) == 2 and "Case 3" not in small

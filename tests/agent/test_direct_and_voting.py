"""The model alone and self-consistency: the final answer taken out of a reasoned reply (many shapes; no
answer is the model's unusable output, never an infrastructure failure), the vote between sampled
attempts (ties, normalisation, programs by their visible examples), every attempt's tokens in the
trace, and the profile in every report's arm labels. The model is a scripted loopback endpoint."""

from __future__ import annotations

import json
import re

import pytest
from loopback import FakeOpenAI, completion
from support import config, endpoint

from memento_lab.agent.direct import final_answer_of
from memento_lab.agent.voting import answer_key, vote


@pytest.mark.parametrize(
    ("reply", "kind", "answer"),
    [
        ("Step 1: 2 + 3 = 5\nFinal answer: 5", "short", "5"),
        ("**Final Answer:** -14282.", "short", "-14282"),
        ("Adding up, the final answer is 7.", "short", "7"),
        ("Final answer:\n\n  mother-in-law\n", "short", "mother-in-law"),
        ("### Final answer\n`C`", "short", "C"),
        ("Final answer: $\\boxed{12}$", "short", "12"),
        ("so we get \\boxed{\\frac{1}{2}}", "short", "\\frac{1}{2}"),
        ('{"final_answer": "amber"}', "short", "amber"),  # a model that answered in JSON anyway
        ('I reason.\n{"final_answer": "x"}', "short", "x"),
        ("Step 3: Final answer: abc\nFinal answer: cba.", "short", "cba"),  # the last mark counts
        ("Final answer -> -3", "short", "-3"),
        ("Final answer: The sky is blue.\nIt scatters light.", "short", "The sky is blue"),
        (
            "Final answer: The sky is blue.\nIt scatters light.",
            "text",
            "The sky is blue.\nIt scatters light.",
        ),
        ("Final answer:\n```json\n[1, 2]\n```", "value", "[1, 2]"),
        # no usable answer
        ("I think it is 42", "short", None),
        ("", "short", None),
        (None, "short", None),
        ("Step 4: Final answer: <answer>", "short", None),  # the prompt's placeholder, copied
        ("Final answer:", "short", None),
        ("Final answer: ...", "short", None),
    ],
)
def test_final_answer_of_many_reply_shapes(reply, kind, answer) -> None:
    assert final_answer_of(reply, kind) == answer


def test_answer_keys_normalise_what_does_not_change_the_answer() -> None:
    assert answer_key(" The  Cat. ") == answer_key('"the cat"') == "the cat"
    assert answer_key("1,000") == answer_key("1000.0") == answer_key("1000") == "1000"
    assert answer_key("0.50") == "0.5" and answer_key("-3") == "-3"
    assert answer_key("") is None and answer_key(None) is None and answer_key("3.14") != answer_key("3.15")
    assert answer_key("def f():\n    return 1", "program") == "def f(): return 1"


def test_vote_majority_ties_and_unusable_replies() -> None:
    v = vote(["42", "41", " 42.0", None, "41"], "short")
    assert v.chosen == 0 and v.counts == {"42": 2, "41": 2} and v.keys[3] is None and v.rule == "majority"
    assert vote(["b", "a", "a"]).chosen == 1  # the majority's first sample
    assert vote(["a", "b", "b", "a"]).chosen == 0  # a tie: the answer whose first sample came first
    assert vote([None, None, "x"]).chosen == 2  # no answer never votes
    assert vote([None, None]).chosen == 0 and vote([None, None]).counts == {}
    with pytest.raises(ValueError):
        vote([])


def test_programs_are_voted_by_their_visible_examples() -> None:
    progs = [
        "```python\ndef f(): return 1\n```",
        "```python\ndef f(): return 2\n```",
        "```python\ndef f(): return 3\n```",
    ]
    assert vote(progs, "program", [0.5, 1.0, 1.0]).chosen == 1  # the first that passes every example
    assert vote(progs, "program", [0.5, 0.0, 0.5]).chosen == 0  # else the most passed, earliest on ties
    assert vote([None, *progs[:2]], "program", [None, 0.0, 0.0]).chosen == 1  # no program: never chosen
    v = vote(
        progs, "program", [None, None, None]
    )  # nothing was run: the majority of the code, then the first
    assert v.rule == "majority" and v.chosen == 0


def _words_task(tmp_path):
    from memento_lab.tasks.suites import load_suite

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "What is 6 x 7?", "answer": "42"}) + "\n")
    suite = load_suite(f"jsonl:{path}")
    return suite, suite.tasks()[0]


@pytest.mark.anyio
async def test_no_final_answer_is_a_counted_model_error_not_an_infrastructure_failure(tmp_path) -> None:
    from memento_lab.agent.loop import Agent, AgentConfig
    from memento_lab.agent.models.llm import open_llms

    suite, task = _words_task(tmp_path)
    with FakeOpenAI(lambda req: (200, completion("Six sevens make forty-two, I believe."), {})) as fake:
        async with open_llms(endpoint(fake)) as llms:
            trace = await Agent(llms, suite=suite, config=AgentConfig(profile="direct")).arun(
                task, learn=False
            )
    assert trace.status == "ok" and trace.error is None  # scored: the model's own outcome
    assert trace.final_answer is None and trace.reward == 0.0 and trace.model_output_errors == 1
    assert "final answer line" in (trace.cycles[0].error or "")


@pytest.mark.anyio
@pytest.mark.parametrize("profile", ["direct", "direct-instant", "planner-executor"])
async def test_samples_are_sampled_attempts_voted_with_every_token_in_the_trace(tmp_path, profile) -> None:
    """Five attempts, each its own seeded request at the sampling temperature: three say 42, two 41
    (the first attempt among them); the vote answers 42, every attempt's calls stay in the trace."""
    from memento_lab.agent.loop import Agent, AgentConfig
    from memento_lab.agent.models.llm import open_llms

    said = {0: "41", 1: "42", 2: "42", 3: "41", 4: "42"}

    def handler(req: dict) -> tuple:
        answer = said[req["seed"]]
        schema = (req.get("response_format") or {}).get("json_schema", {}).get("name")
        if schema == "reply":  # the planner keeps the model's own answer
            return 200, completion(json.dumps({"plan": [], "final_answer": answer})), {}
        if schema == "final_answer":
            return 200, completion(json.dumps({"final_answer": answer})), {}
        return 200, completion(f"6 x 7 ...\nFinal answer: {answer}"), {}

    suite, task = _words_task(tmp_path)
    cfg = AgentConfig(profile=profile, samples=5, sample_temperature=0.9)
    with FakeOpenAI(handler) as fake:
        async with open_llms(endpoint(fake)) as llms:
            trace = await Agent(llms, suite=suite, config=cfg).arun(task, learn=False)
        requests = list(fake.requests)
    calls_per_attempt = len(requests) // 5
    assert [r["seed"] for r in requests] == [i for i in range(5) for _ in range(calls_per_attempt)]
    assert all(r["temperature"] == 0.9 for r in requests)
    assert trace.final_answer == "42" and trace.reward == 1.0
    assert trace.vote is not None and trace.vote.chosen == 1 and trace.vote.counts == {"41": 2, "42": 3}
    assert trace.usage.prompt_tokens == 11 * len(requests) and trace.usage.completion_tokens == 7 * len(
        requests
    )
    attempts = [trace.attempt(i) for i in range(5)]
    assert all(len(cycles) + len(steps) >= 1 for cycles, steps in attempts)
    assert {c.sample for c in trace.cycles} | {s.sample for s in trace.steps} == set(range(5))


@pytest.mark.anyio
async def test_reports_label_every_arm_with_its_profile_and_state_its_tokens(tmp_path) -> None:
    from support import good

    from memento_lab.experiments.report import build_report
    from memento_lab.experiments.run import run_experiment

    runs = tmp_path / "runs"
    with FakeOpenAI(good) as fake:
        for name, kw in {
            "direct": {"agent": "direct"},
            "instant": {"agent": "direct-instant"},
            "vote": {"agent": "direct", "samples": 3},
            "memory": {"agent": "direct", "memory": "random", "k": 1, "iterations": 2},
        }.items():
            cfg = config(tmp_path, out=str(runs / name), **{"iterations": 2, **kw})
            await run_experiment(cfg, settings=endpoint(fake), progress=False)
        shown = [
            m["content"] for r in fake.requests for m in r["messages"] if m["content"].startswith("Past")
        ]
    # the direct prompt's memory: past cases with their outcome and the answer given
    assert len(shown) == 3 and all("Case 1 (solved):" in m and "\nAnswer: " in m for m in shown)
    rep = build_report([runs])
    labels = {a.label for a in rep.arms}
    assert labels == {
        "agent=direct memory=none k=4",
        "agent=direct-instant memory=none k=4",
        "agent=direct samples=3 memory=none k=4",
        "agent=direct memory=random k=1",
    }
    costs = {c.label: c for c in rep.costs}
    one, three = costs["agent=direct memory=none k=4"], costs["agent=direct samples=3 memory=none k=4"]
    assert three.tokens_per_episode == 3 * one.tokens_per_episode == 3 * (11 + 7)  # every attempt counted
    assert three.total_prompt_tokens == 3 * one.total_prompt_tokens == 3 * 11 * one.episodes
    prices = {p.label: p for p in rep.prices}
    instant = prices["agent=direct-instant memory=none k=4"]
    assert instant.base == instant.label and instant.vs_none is None  # its own base: no other profile
    assert prices[three.label].base == one.label and prices[three.label].samples == 3
    match = prices["agent=direct memory=random k=1"]  # the memory arm beside its base and voting
    assert match.base == one.label and match.matched_samples == pytest.approx(
        costs[match.label].tokens_per_episode / one.tokens_per_episode
    )
    assert match.voting == three.label and match.voting_samples == 3
    assert match.vs_voting is not None and match.vs_voting.diff == 0.0  # the fake answers alike


def test_samples_through_the_cli_on_a_suite(tmp_path, monkeypatch, capsys) -> None:
    """``memento-lab run --samples 5`` on a suite, against the loopback endpoint: five seeded attempts
    per episode, and the report shows the arm's tokens."""
    from support import answer_of, tasks_file

    from memento_lab.cli import main

    def handler(req: dict) -> tuple:
        right = answer_of(req)
        return 200, completion(f"Recalling it.\nFinal answer: {right if req['seed'] != 4 else 'slate'}"), {}

    out = tmp_path / "vote"
    with FakeOpenAI(handler) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        argv = ["run", "--suite", f"jsonl:{tasks_file(tmp_path)}", "--agent", "direct", "--samples", "5"]
        argv += [
            "--memory",
            "none",
            "--iterations",
            "1",
            "--tools",
            "",
            "--cassette",
            "record",
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        assert sorted(r["seed"] for r in fake.requests) == sorted([0, 1, 2, 3, 4] * 2)
    capsys.readouterr()
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in rows] == [1.0, 1.0] and all(r["prompt_tokens"] == 5 * 11 for r in rows)
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"agent=direct samples=5 .*90 per episode \(55 prompt \+ 35 completion\)", text), text

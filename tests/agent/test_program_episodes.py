"""Answers of the right kind: tasks declare them, the loop keeps the program it wrote and checked on
the task's visible examples (real code server and sandbox), and the direct profile answers at once.
The model is a scripted loopback OpenAI endpoint (the test double for a remote service)."""

from __future__ import annotations

import json

import pytest
from loopback import FakeOpenAI, completion

from memento_lab.agent.program import Candidate, choose_program, planner_pick
from memento_lab.config import Settings
from memento_lab.jsonl import FormatError
from memento_lab.memory.bank.bank import Case
from memento_lab.memory.retrieval.render import format_answer
from memento_lab.sandbox.isolation import run_python
from memento_lab.tasks.answers import (
    examples_script,
    extract_program,
    parse_examples_report,
    visible_examples,
)
from memento_lab.tasks.suites import Task, load_suite
from memento_lab.tasks.table_suite import load_jsonl_tasks

WRONG = "```python\ndef truncate_number(number: float) -> float:\n    return number\n```"
RIGHT = "Here it is:\n```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```"


def _task(index: int = 2) -> Task:
    return load_suite(f"humaneval:{index}-{index + 1}").tasks()[0]


def test_tasks_declare_their_answer_kind(tmp_path) -> None:
    he = _task(0)
    assert (he.answer_kind, he.entry_point) == ("program", "has_close_elements")
    rg = load_suite("reasoning-gym:spell_backward", n=1).tasks()[0]
    assert (rg.answer_kind, rg.entry_point) == ("short", None)
    with pytest.raises(ValueError, match="needs an entry_point"):
        Task(id="t", question="q", family="f", suite="s", answer_kind="program")
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"question": "q", "answer": "a", "answer_kind": "essay"}\n')
    with pytest.raises(FormatError, match=r"t\.jsonl:1: field .answer_kind."):
        load_jsonl_tasks(bad)
    good = tmp_path / "g.jsonl"
    good.write_text('{"question": "q", "answer": "[1, 2]", "answer_kind": "value"}\n')
    assert load_jsonl_tasks(good)[0].answer_kind == "value"


def test_visible_examples_of_humaneval_prompts_pass_the_canonical_solutions() -> None:
    """The docstring examples, read out of the fenced task text, run in the real sandbox: every
    canonical solution of HumanEval 0-19 passes them, and a wrong program is caught with counts."""
    for task in load_suite("humaneval:0-20").tasks():
        examples = visible_examples(task.question)
        assert examples, task.id
        assert all('"""' not in e.want for e in examples)  # the closing quote is not an expected output
        script = examples_script(task.answer or "", task.question)
        out = run_python(script or "", timeout_s=20)
        assert parse_examples_report(out.stdout) == (len(examples), len(examples)), (task.id, out.stdout)
    task = _task(0)
    wrong = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n"
    out = run_python(examples_script(wrong, task.question) or "", timeout_s=20)
    assert parse_examples_report(out.stdout) == (1, 2)  # List is the stub's import: in scope
    assert "Failed example" in out.stdout and "Expected:\n    True" in out.stdout
    # values, not reprs: a numpy float equal to the expected 1.0 passes (the unit tests agree)
    mad = _task(4)
    numpy_mad = (
        "import numpy as np\n"
        "def mean_absolute_deviation(numbers):\n"
        "    return np.mean(np.abs(np.array(numbers) - np.mean(numbers)))\n"
    )
    out = run_python(examples_script(numpy_mad, mad.question) or "", timeout_s=20)
    assert parse_examples_report(out.stdout) == (1, 1), out.stdout
    off = "def mean_absolute_deviation(numbers):\n    return 1.5\n"
    out = run_python(examples_script(off, mad.question) or "", timeout_s=20)
    assert parse_examples_report(out.stdout) == (0, 1)


def test_program_extraction_and_choice() -> None:
    assert extract_program(RIGHT, "truncate_number") == (
        "def truncate_number(number: float) -> float:\n    return number % 1.0"
    )
    assert extract_program("The function truncates the number.", "truncate_number") is None
    assert extract_program("```python\ndef other():\n    pass\n```", "truncate_number") is None
    a = Candidate(cycle=0, step_id=1, code="a", passed=1, total=2)
    b = Candidate(cycle=0, step_id=2, code="b", passed=2, total=2)
    assert planner_pick("step 1", [a, b]) is a and planner_pick(" Step 2.", [a, b]) is b
    assert planner_pick("0.5", [a, b]) is None
    assert choose_program([a, b], a) is b  # the planner's pick loses to a program passing more examples
    assert choose_program([a, b], b) is b and choose_program([a, b], None) is b
    assert choose_program([], None) is None


def test_memory_shows_a_program_as_its_code_clipped() -> None:
    code = "```python\ndef f(x):\n    return x + 1\n```"
    case = Case.from_episode("q", 1.0, answer=code, metadata={"answer_kind": "program"})
    shown = format_answer(case)
    assert "def f(x):\n    return x + 1" in shown  # lines kept, not flattened
    long = Case.from_episode("q", 1.0, answer="```python\n" + "x = 1\n" * 1000 + "```", metadata={})
    assert len(format_answer(long, program_chars=200)) <= 210  # an older case without the kind: still code
    short = Case.from_episode("q", 1.0, answer="a\nb " * 200, metadata={"answer_kind": "short"})
    assert "\n" not in format_answer(short) and len(format_answer(short)) <= 300


def _settings(fake: FakeOpenAI) -> Settings:
    return Settings(openai_base_url=fake.base_url, openai_api_key="sk-test", llm_timeout_s=20.0)  # type: ignore[call-arg]


def _schema_name(req: dict) -> str | None:
    return (req.get("response_format") or {}).get("json_schema", {}).get("name")


@pytest.mark.anyio
@pytest.mark.parametrize("accept_passing", [True, False])
async def test_the_loop_fixes_a_failing_program_and_answers_with_it(tmp_path, accept_passing) -> None:
    """Planner plans one step; the executor's first program fails the visible example (run through
    the real code server), the failure goes back, the fixed program passes and is the final answer
    (directly, or named by the planner as "step 1"); the unit tests pass in the sandbox."""
    from memento_lab.agent.loop import Agent, AgentConfig
    from memento_lab.agent.models.llm import open_llms
    from memento_lab.agent.tools.mcp_client import ToolBox
    from memento_lab.tasks.suites import JudgeContext

    suite = load_suite("humaneval:2-3")
    task = suite.tasks()[0]
    executor_replies = [WRONG, RIGHT]

    def handler(req: dict) -> tuple:
        if _schema_name(req) == "reply":  # the planner
            has_results = any("Result of step" in m["content"] for m in req["messages"])
            reply = (
                {"plan": [], "final_answer": "step 1"}
                if has_results
                else {
                    "plan": [{"id": 1, "description": "Write truncate_number"}],
                    "final_answer": "",
                }
            )
            return 200, completion(json.dumps(reply)), {}
        return 200, completion(executor_replies.pop(0)), {}

    settings = _settings(FakeOpenAI(handler))
    with FakeOpenAI(handler) as fake:
        settings = _settings(fake)
        async with (
            open_llms(settings) as llms,
            ToolBox(["code"], workspace=tmp_path, settings=settings) as tools,
        ):
            agent = Agent(
                llms,
                tools=tools,
                suite=suite,
                judge_ctx=JudgeContext(workspace=tmp_path),
                config=AgentConfig(accept_passing_program=accept_passing, start_from_direct=False),
            )
            trace = await agent.arun(task, learn=False)
        requests = list(fake.requests)
    assert trace.error is None, trace.error
    assert (
        trace.final_answer
        == "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```"
    )
    assert trace.reward == 1.0 and trace.verdicts[0].judge == "unit_tests"
    (step,) = trace.steps
    checks = [parse_examples_report(t.result) for t in step.tool_calls]
    assert [t.name for t in step.tool_calls] == ["run_python", "run_python"] and checks == [(0, 1), (1, 1)]
    assert "passes all 1 visible examples" in (step.result or "")
    fix_request = requests[2]["messages"][-1]["content"]  # the executor's second turn sees the failure
    assert "Expected:\n    0.5" in fix_request and "Got:\n    3.5" in fix_request
    planner_turns = [r for r in requests if _schema_name(r) == "reply"]
    assert len(planner_turns) == (1 if accept_passing else 2)
    if not accept_passing:  # the planner saw the code itself, not only the step's prose
        assert "return number % 1.0" in planner_turns[1]["messages"][-1]["content"]
    assert trace.usage.prompt_tokens == 11 * len(requests) and trace.latency_s > 0


@pytest.mark.anyio
@pytest.mark.parametrize("start", ["direct-instant", "direct"])
async def test_the_loop_starts_from_the_direct_answer_and_samples_its_fixes(tmp_path, start: str) -> None:
    """The loop's first attempt is the model's direct answer: the very request of the direct profile
    named by ``program_start`` (the program at once by default; checked on the visible example: it
    fails), then the planner, then the executor starts from that program with its failure and fixes it
    in a sampled turn; a direct answer that passes ends the episode before the planner."""
    from memento_lab.agent.direct import direct_messages
    from memento_lab.agent.loop import Agent, AgentConfig
    from memento_lab.agent.models.llm import open_llms
    from memento_lab.agent.program import DIRECT_CYCLE
    from memento_lab.agent.tools.mcp_client import ToolBox
    from memento_lab.tasks.suites import JudgeContext

    suite = load_suite("humaneval:2-3")
    task = suite.tasks()[0]
    programs = [WRONG, RIGHT, RIGHT]

    def handler(req: dict) -> tuple:
        if _schema_name(req) == "reply":  # the planner
            plan = {"plan": [{"id": 1, "description": "Fix truncate_number"}], "final_answer": ""}
            return 200, completion(json.dumps(plan)), {}
        return 200, completion(programs.pop(0)), {}

    with FakeOpenAI(handler) as fake:
        settings = _settings(fake)
        async with (
            open_llms(settings) as llms,
            ToolBox(["code"], workspace=tmp_path, settings=settings) as tools,
        ):
            config = AgentConfig(program_start=start)  # type: ignore[arg-type]
            agent = Agent(
                llms, tools=tools, suite=suite, judge_ctx=JudgeContext(workspace=tmp_path), config=config
            )
            trace = await agent.arun(task, learn=False)
            first = len(fake.requests)
            passing = await agent.arun(task, learn=False)  # the direct answer (RIGHT) passes: no planner
        requests = list(fake.requests)
    direct_request = direct_messages(start, "program", "", task.question)  # type: ignore[arg-type]
    assert requests[0]["messages"] == direct_request and "temperature" in requests[0]
    assert requests[0]["temperature"] == 0.0 and "seed" not in requests[0]
    assert [_schema_name(r) for r in requests[:first]] == [None, "reply", None]
    fix = requests[2]
    assert fix["messages"][-2] == {"role": "assistant", "content": WRONG}  # the direct answer, as attempt 1
    assert "Expected:\n    0.5" in fix["messages"][-1]["content"]
    assert (fix["temperature"], fix["seed"]) == (0.7, 0)  # the fix turn samples
    direct_step, step = trace.steps
    assert direct_step.cycle == DIRECT_CYCLE and "FAILS" in direct_step.result
    assert [parse_examples_report(t.result) for t in direct_step.tool_calls] == [(0, 1)]
    assert [parse_examples_report(t.result) for t in step.tool_calls] == [(1, 1)]
    assert trace.reward == 1.0 and "number % 1.0" in (trace.final_answer or "")
    assert len(requests) == first + 1 and passing.reward == 1.0  # one request: the direct answer
    assert [s.cycle for s in passing.steps] == [DIRECT_CYCLE] and not passing.cycles


def test_a_loop_program_replaces_the_direct_answer_only_when_it_passes_more() -> None:
    direct = Candidate(cycle=-1, step_id=0, code="direct", passed=1, total=2)
    same = Candidate(cycle=0, step_id=1, code="same", passed=1, total=2)
    better = Candidate(cycle=0, step_id=1, code="better", passed=2, total=2)
    assert choose_program([direct, same], same) is direct and choose_program([direct, same], None) is direct
    assert choose_program([direct, same, better], same) is better


@pytest.mark.anyio
@pytest.mark.parametrize("profile", ["direct", "direct-instant"])
async def test_direct_profiles_answer_in_the_answer_kind(tmp_path, profile) -> None:
    """direct-instant: a JSON final_answer at once; direct: free reasoning, the answer from its final
    line; both: a program as one fenced block, no JSON."""
    from memento_lab.agent.loop import Agent, AgentConfig
    from memento_lab.agent.models.llm import open_llms

    def handler(req: dict) -> tuple:
        if _schema_name(req) == "final_answer":
            return 200, completion('{"final_answer": "olleh"}'), {}
        if "```python" in req["messages"][-1]["content"]:
            return 200, completion("I take the fraction.\n" + RIGHT), {}
        return 200, completion("h-e-l-l-o reversed is o-l-l-e-h.\n**Final answer:** olleh"), {}

    with FakeOpenAI(handler) as fake:
        async with open_llms(_settings(fake)) as llms:
            agent = Agent(llms, config=AgentConfig(profile=profile))
            program = await agent.arun(_task(2), learn=False)
            short = await agent.arun("Spell 'hello' backward.", learn=False)
        requests = list(fake.requests)
    assert len(requests) == 2 and not program.steps and not short.steps
    assert (
        _schema_name(requests[0]) is None and "```python code block" in requests[0]["messages"][0]["content"]
    )
    assert (
        program.final_answer
        == "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```"
    )
    assert short.final_answer == "olleh" and short.model_output_errors == 0
    system = requests[1]["messages"][0]["content"]
    assert "few words" in system
    if profile == "direct-instant":
        assert _schema_name(requests[1]) == "final_answer" and requests[1]["max_tokens"] == 384
    else:
        assert _schema_name(requests[1]) is None and "Final answer: <answer>" in system
        assert requests[1]["max_tokens"] == 512 and "step by step" in system

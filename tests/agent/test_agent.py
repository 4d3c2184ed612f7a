"""The agent end to end: the real embedded model, real MCP tool servers, a real suite and judge;
memory that grows and is read back; replay that re-executes identically; a resumable runner."""

from __future__ import annotations

import json

import polars as pl
import pytest

from memento_lab.agent.loop import AgentConfig, parse_planner_reply
from memento_lab.agent.models.llm import ChatResult
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.report import build_report
from memento_lab.experiments.results import load_results, summarize
from memento_lab.experiments.run import run_experiment
from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.read_write import Memory
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever
from memento_lab.trace import LLMCall

SMALL = "qwen2.5-coder-0.5b"


def _reply(content: str, parsed: dict | None = None) -> ChatResult:
    return ChatResult(content=content, parsed=parsed, call=LLMCall(role="planner", model="m"))


def test_parse_planner_reply_forms() -> None:
    steps, final = parse_planner_reply(
        _reply("", {"plan": [{"id": 1, "description": "add"}, {"description": "check"}], "final_answer": ""})
    )
    assert [s.id for s in steps] == [1, 2] and final is None
    steps, final = parse_planner_reply(_reply("FINAL ANSWER: 42"))
    assert steps == [] and final == "42"
    steps, final = parse_planner_reply(_reply('Here: {"plan": [], "final_answer": "x"}'))
    assert steps == [] and final == "x"
    with pytest.raises(ValueError, match="neither a JSON plan"):
        parse_planner_reply(_reply("I think so"))


@pytest.mark.slow
@pytest.mark.anyio
async def test_episode_with_real_model_and_tools_then_memory_is_retrieved(tmp_path, encoder) -> None:
    from memento_lab.agent.session import open_session
    from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore
    from memento_lab.tasks.suites import load_suite

    suite = load_suite("reasoning-gym:spell_backward", n=2, seed=0)
    tasks = suite.tasks()
    bank = CaseBank(
        tmp_path / "bank", encoder=CachedEncoder(encoder, EmbeddingStore(tmp_path / "emb.sqlite"))
    )
    memory = Memory(bank, SimilarityRetriever(bank), k=2)
    tape = tmp_path / "cassette.sqlite"
    config = AgentConfig(max_cycles=1, max_steps=2, max_tool_calls=2)

    async with open_session(
        tmp_path, tools=["code", "math"], cassette="record", model=SMALL, workspace=tmp_path / "ws"
    ) as session:
        agent = session.agent(memory=memory, suite=suite, config=config, run_id="t")
        first = await agent.arun(tasks[0])
        second = await agent.arun(tasks[1])

    for trace in (first, second):
        assert trace.error is None, trace.error
        assert (
            trace.cycles
            and trace.cycles[0].llm is not None
            and trace.cycles[0].llm.usage.completion_tokens > 0
        )
        assert trace.verdicts and 0.0 <= trace.reward <= 1.0
        assert trace.verdicts[0].score == trace.reward
    # the executor acted through the real MCP servers (or answered directly); every call is recorded
    for call in first.tool_calls + second.tool_calls:
        assert call.server in {"code", "math"} and call.duration_s > 0
    # memory: the first episode became a case, and the second episode retrieved it
    assert len(bank) == 2 and first.case_id in bank
    assert [r.case_id for r in second.retrieved] == [first.case_id]
    assert bank.get(first.case_id).reward == first.reward
    # ... and the planner's prompt for the second task showed the first task as a past case
    import sqlite3

    with sqlite3.connect(tape) as db:
        prompts = [json.loads(r[0]) for r in db.execute("SELECT request FROM calls WHERE kind = 'chat'")]

    def has(p: dict, text: str) -> bool:
        return json.dumps(text)[1:-1] in json.dumps(p)

    shown = [p for p in prompts if has(p, f"Task: {tasks[1].question}") and has(p, "past cases")]
    assert shown and has(shown[0], tasks[0].question)

    # replay: the same two episodes from the cassette, no model server, identical answers and rewards
    bank2 = CaseBank(tmp_path / "bank2", encoder=bank.encoder)
    memory2 = Memory(bank2, SimilarityRetriever(bank2), k=2)
    async with open_session(
        tmp_path, tools=["code", "math"], cassette="replay", model=SMALL, workspace=tmp_path / "ws"
    ) as session:
        assert session.llms.local is None
        agent = session.agent(memory=memory2, suite=suite, config=config, run_id="t")
        again = [await agent.arun(t) for t in tasks]
    assert [t.final_answer for t in again] == [first.final_answer, second.final_answer]
    assert [t.reward for t in again] == [first.reward, second.reward]
    assert all(c.replayed for t in again for c in t.llm_calls)
    assert [[c.result for c in t.tool_calls] for t in again] == [
        [c.result for c in t.tool_calls] for t in (first, second)
    ]


@pytest.mark.slow
@pytest.mark.anyio
async def test_runner_resumes_and_reports(tmp_path) -> None:
    cfg = ExperimentConfig(
        suite="reasoning-gym:spell_backward",
        n=2,
        iterations=2,
        memory="similarity",
        k=2,
        tools=[],
        model=SMALL,
        cassette="record",
        max_cycles=1,
        max_steps=1,
        out=str(tmp_path / "run"),
    )
    first = await run_experiment(cfg.model_copy(update={"iterations": 1}), progress=False)
    assert first.rows == 2 and set(first.accuracy_by_iteration) == {0}
    # resume with more iterations: the finished episodes are not run again, the run id is kept
    second = await run_experiment(cfg, progress=False)
    assert second.run_id == first.run_id and second.rows == 4
    df = load_results([tmp_path / "run"])
    assert df.height == 4 and df.select(pl.struct("task_id", "iteration").n_unique()).item() == 4
    # iteration 1 saw the iteration-0 cases of the same family
    it1 = df.filter(pl.col("iteration") == 1)
    assert (it1["n_retrieved"] > 0).all()
    table = summarize(df)
    assert table.height == 2 and set(table["iteration"].to_list()) == {0, 1}
    rep = build_report([tmp_path / "run"])
    assert rep.episodes == 4 and "spell_backward" in rep.trivial_baseline
    assert (tmp_path / "run" / "results.parquet").exists() and (tmp_path / "run" / "pairs.jsonl").exists()

    # replay the whole recorded run from its cassette into a fresh folder: identical rows, offline
    import shutil

    (tmp_path / "replay").mkdir()
    shutil.copy(tmp_path / "run" / "cassette.sqlite", tmp_path / "replay" / "cassette.sqlite")
    replayed = await run_experiment(
        cfg.model_copy(update={"out": str(tmp_path / "replay"), "cassette": "replay"}), progress=False
    )
    assert replayed.accuracy_by_iteration == second.accuracy_by_iteration
    key = ["task_id", "iteration", "answer", "reward", "n_retrieved"]
    again = load_results([tmp_path / "replay"]).select(key).sort(key[:2])
    assert again.equals(df.select(key).sort(key[:2]))


def test_attached_files_are_named_to_the_model() -> None:
    from memento_lab.agent.episode import with_attachments

    assert with_attachments("What does the chart show?", []) == "What does the chart show?"
    shown = with_attachments("What does the chart show?", ["/data/t/chart.png", "/data/t/notes.txt"])
    assert shown.startswith("What does the chart show?") and shown.endswith("chart.png, notes.txt")
    assert "/data/t" not in shown  # the model sees workspace names, not host paths


@pytest.mark.anyio
async def test_an_abstaining_retriever_reaches_the_pair_log_through_the_trace(tmp_path, encoder) -> None:
    """The retriever's stop (it showed fewer than K) travels with the episode's trace to Memory.write,
    which logs the "no memory" pair; a bare question is a task too, but nothing judges or writes it."""
    from loopback import FakeOpenAI, completion, endpoint_settings

    from memento_lab.agent.loop import Agent
    from memento_lab.agent.models.llm import open_llms
    from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore
    from memento_lab.memory.retrieval.pairs import NO_CASE, PairLog
    from memento_lab.tasks import load_suite

    suite = load_suite("control:positive", n=2, seed=0)
    task = suite.tasks()[0]
    bank = CaseBank(tmp_path / "bank", encoder=CachedEncoder(encoder, EmbeddingStore(tmp_path / "e.sqlite")))
    bank.add(Case.from_episode("How many legs has a spider?", 1.0, answer="8"))
    pairs = PairLog(tmp_path / "pairs.jsonl")
    memory = Memory(bank, SimilarityRetriever(bank, min_score=0.99), k=2, pairs=pairs)
    answer = task.answer
    with FakeOpenAI(lambda req: (200, completion(json.dumps({"final_answer": answer})), {})) as fake:
        async with open_llms(endpoint_settings(fake)) as llms:
            agent = Agent(llms, memory=memory, suite=suite, config=AgentConfig(profile="direct"))
            trace = await agent.arun(task)
            bare = await agent.arun("How many legs has a spider?")
    assert trace.retrieved == [] and trace.stop_propensity == 1.0 and trace.reward == 1.0
    assert [(p.case_id, p.propensity, p.task_id) for p in pairs.read()] == [(NO_CASE, 1.0, task.id)]
    assert bare.task_id.startswith("adhoc:") and bare.family is None and bare.suite is None
    assert (
        bare.verdicts == [] and bare.case_id is None and len(bank) == 2
    )  # judged and written: only the task


def test_the_planner_conversation_is_rendered_from_the_records() -> None:
    """Each planner turn shows its plan, each step its report (a program step also its code); a turn
    whose reply could not be read shows nothing; the executor sees every report so far."""
    from memento_lab.agent.episode import Episode
    from memento_lab.agent.loop import Agent
    from memento_lab.agent.program import Candidate, ProgramEpisode
    from memento_lab.tasks.base import Task
    from memento_lab.trace import ExecStep, PlanCycle, PlanStep, ToolCall, Trace

    trace = Trace(task_id="t", question="Add 2 and 3.")
    trace.cycles = [
        PlanCycle(index=0, error="not JSON"),
        PlanCycle(index=1, plan=[PlanStep(id=1, description="add")]),
    ]
    trace.steps = [ExecStep(cycle=1, step_id=1, description="add", result="5" * 700)]
    agent = Agent(None)  # type: ignore[arg-type]  # rendering needs no model
    episode = Episode(agent, Task.of_question("Add 2 and 3."), trace)
    messages = episode.conversation("MEMORY")
    report = "Result of step 1: " + "5" * 400 + "\n…[130 characters elided]…\n" + "5" * 170  # 600 chars kept
    assert messages == [
        {"role": "user", "content": "MEMORY"},
        {"role": "user", "content": "Task: Add 2 and 3."},
        {"role": "assistant", "content": '{"plan": [{"id": 1, "description": "add"}]}'},
        {"role": "user", "content": report},
    ]
    assert episode.context() == f"Overall task: Add 2 and 3.\nResults so far:\n{report}\n"
    program = Task(id="p", question="q", family="f", suite="s", answer_kind="program", entry_point="add")
    coded = ProgramEpisode(agent, program, trace)
    coded.candidates.append(
        Candidate(cycle=1, step_id=1, code="def add(a, b):\n    return a + b", passed=1, total=1)
    )
    assert coded.conversation("")[-1]["content"].endswith(
        "\nCode of step 1 (passes all 1 visible examples):\n```python\ndef add(a, b):\n    return a + b\n```"
    )
    call = ToolCall(server="math", name="calculate", arguments={"expression": "2+3"}, error="boom")
    assert call.to_messages() == [
        {"role": "assistant", "content": '{"name": "calculate", "arguments": {"expression": "2+3"}}'},
        {"role": "user", "content": "Result of calculate: ERROR: boom"},
    ]

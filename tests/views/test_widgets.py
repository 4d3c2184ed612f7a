"""Widget trees built from real records: content, escaping, filtering and interaction (no browser)."""

from __future__ import annotations

import ipywidgets as w
import numpy as np
import pytest

from memento_lab.memory.bank.bank import Case, CaseBank, Source, Trajectory
from memento_lab.memory.retrieval.retrievers import Retriever, SimilarityRetriever
from memento_lab.trace import (
    ExecStep,
    JudgeVerdict,
    LLMCall,
    PlanCycle,
    PlanStep,
    RetrievedCase,
    ToolCall,
    Trace,
    Usage,
)
from memento_lab.views import html_parts, widgets


def make_trace(
    task_id: str = "t1", iteration: int = 0, correct: bool = True, error: str | None = None
) -> Trace:
    planner = LLMCall(
        role="planner", model="qwen", latency_s=1.25, usage=Usage(prompt_tokens=100, completion_tokens=20)
    )
    executor = LLMCall(
        role="executor",
        model="qwen",
        latency_s=0.5,
        usage=Usage(prompt_tokens=50, completion_tokens=5),
        replayed=True,
    )
    return Trace(
        task_id=task_id,
        question="Reverse <b>abc</b> & tell me",
        iteration=iteration,
        memory_mode="similarity",
        retrieved=[
            RetrievedCase(
                case_id="c" * 24, question="Reverse 'xyz'", label="positive", score=0.91, reward=1.0, rank=0
            ),
            RetrievedCase(
                case_id="d" * 24, question="Count letters", label="negative", score=0.42, reward=0.0, rank=1
            ),
        ],
        cycles=[
            PlanCycle(
                index=0, plan=[PlanStep(id=1, description="Run python to reverse <the> string")], llm=planner
            ),
            PlanCycle(index=1, raw="not json {", error="plan is not valid JSON"),
            PlanCycle(index=2, final_answer="cba"),
        ],
        steps=[
            ExecStep(
                cycle=0,
                step_id=1,
                description="Run python",
                result="cba",
                duration_s=0.7,
                llm_calls=[executor],
                tool_calls=[
                    ToolCall(
                        server="code",
                        name="run_python",
                        arguments={"code": "print('abc'[::-1])"},
                        result="cba\n",
                        duration_s=0.3,
                    ),
                    ToolCall(
                        server="code",
                        name="run_python",
                        arguments={"code": "1/0"},
                        error="ZeroDivisionError",
                        duration_s=0.1,
                    ),
                ],
            )
        ],
        final_answer="cba",
        expected="cba",
        verdicts=[
            JudgeVerdict(judge="exact", score=1.0 if correct else 0.0, correct=correct, detail="gold <cba>")
        ],
        reward=1.0 if correct else 0.0,
        error=error,
        latency_s=3.5,
    )


def test_trace_sections_show_every_part_escaped() -> None:
    t = make_trace()
    sections = dict(widgets.trace_sections(t))
    titles = list(sections)
    assert titles[0] == "Retrieved cases (2)" and titles[1] == "Plan cycles (3)"
    assert (
        titles[2] == "Executor steps (1, 2 tool calls)"
        and titles[3] == "Judges (1)"
        and titles[4] == "LLM calls (2)"
    )
    retrieved = sections[titles[0]]
    assert "0.910" in retrieved and "Reverse &#x27;xyz&#x27;" in retrieved and "negative" in retrieved
    plans = sections[titles[1]]
    assert "Run python to reverse &lt;the&gt; string" in plans and "<the>" not in plans
    assert "plan is not valid JSON" in plans and "not json {" in plans and "cba" in plans
    assert "1.25 s" in plans and "100+20 tokens" in plans
    steps = sections[titles[2]]
    assert (
        "code.run_python" in steps
        and "print(&#x27;abc&#x27;[::-1])" in steps
        and "ZeroDivisionError" in steps
    )
    assert html_parts.ERROR_STYLE in steps  # the failed tool call is shown in red
    judges = sections[titles[3]]
    assert "exact" in judges and "gold &lt;cba&gt;" in judges
    calls = sections[titles[4]]
    assert calls.count("<tr>") == 3 and "replayed" in calls and "yes" in calls


def test_trace_header_has_answer_reward_cost_and_red_error() -> None:
    head = widgets.trace_header_html(make_trace(error="tool server crashed <oops>"))
    assert "Reverse &lt;b&gt;abc&lt;/b&gt; &amp; tell me" in head and "<b>abc</b>" not in head
    assert "1.000" in head and "exact=1.00 ✓" in head
    assert "150 prompt + 25 completion tokens" in head and "2 LLM calls" in head and "2 tool calls" in head
    assert "tool server crashed &lt;oops&gt;" in head and html_parts.ERROR_STYLE in head
    assert html_parts.ERROR_STYLE not in widgets.trace_header_html(make_trace())


def test_trace_viewer_tree() -> None:
    t = make_trace()
    v = widgets.trace_viewer(t)
    header, acc = v.children
    assert isinstance(header, w.HTML) and "cba" in header.value
    assert isinstance(acc, w.Accordion)
    assert acc.titles == tuple(title for title, _ in widgets.trace_sections(t))
    assert [c.value for c in acc.children] == [body for _, body in widgets.trace_sections(t)]
    assert acc.selected_index == 0


def test_trace_html_is_static_and_complete() -> None:
    t = make_trace()
    page = widgets.trace_html(t)
    assert page.count("<details") == 5 and page.count("<details open>") == 1
    for title, body in widgets.trace_sections(t):
        assert f"<summary><b>{html_parts.esc(title)}</b></summary>{body}" in page
    assert widgets.trace_header_html(t) in page and "<script" not in page


def test_empty_trace_sections_say_so() -> None:
    t = Trace(task_id="x", question="q")
    bodies = [b for _, b in widgets.trace_sections(t)]
    assert (
        "No cases retrieved" in bodies[0] and "No planner cycles" in bodies[1] and "Not judged" in bodies[3]
    )


def test_esc_clips_long_text() -> None:
    assert html_parts.esc("a" * 10, limit=4) == "aaaa… [6 more characters]"
    assert html_parts.esc(None) == ""


def test_traces_browser_filters_and_switches() -> None:
    traces = [
        make_trace("a", 0, True),
        make_trace("b", 0, False),
        make_trace("c", 1, True),
        make_trace("d", 1, False),
    ]
    b = widgets.traces_browser(traces)
    filters, picker, pane = b.children
    it_box, ok_box = filters.children
    assert len(picker.options) == 4 and picker.value == 0
    assert "a · iteration 0" in pane.children[0].children[0].value  # the first trace is shown
    it_box.value = 1
    assert [v for _, v in picker.options] == [2, 3] and picker.value == 2
    ok_box.value = False
    assert [v for _, v in picker.options] == [3]
    viewer = pane.children[0]
    assert "d · iteration 1" in viewer.children[0].value and "(not correct)" in viewer.children[0].value
    it_box.value = None
    ok_box.value = True
    assert [v for _, v in picker.options] == [0, 2]
    picker.value = 2
    assert "c · iteration 1" in pane.children[0].children[0].value
    assert widgets.filter_traces(traces, 5, None) == []


def test_traces_browser_no_match_message() -> None:
    b = widgets.traces_browser([make_trace("a", 0, True)])
    _, picker, pane = b.children
    b.children[0].children[1].value = False
    assert picker.value is None and "No trace matches" in pane.children[0].value


def case(q: str, label: str = "positive", bench: str = "seed", **kw) -> Case:
    return Case(
        question=q,
        reward=1.0 if label == "positive" else 0.0,
        label=label,
        source=Source(benchmark=bench),
        **kw,
    )


@pytest.fixture
def bank() -> CaseBank:
    return CaseBank.in_memory(
        [
            case(
                "What is the capital of France?",
                plan=[PlanStep(id=1, description="Look up <France>")],
                answer="Paris",
            ),
            case(
                "Reverse the word 'memory'",
                "negative",
                "demo",
                answer="yromem?",
                trajectory=Trajectory(tools_used=["code.run_python"], step_results=["yromem"]),
            ),
            case("What is the capital of Italy?", "negative"),
            case("Multiply 17 by 23", bench="demo"),
        ]
    )


class LengthRetriever(Retriever):
    """Scores by question length: a deterministic stand-in to check ranking order and plumbing."""

    name = "length"

    def score(self, query: str, cases: list[Case]) -> np.ndarray:
        return np.array([len(c.question) for c in cases], dtype=float)


def test_filter_cases(bank: CaseBank) -> None:
    qs = lambda rows: [c.question for c, _ in rows]  # noqa: E731
    assert len(widgets.filter_cases(bank)) == 4
    assert qs(widgets.filter_cases(bank, label="negative")) == [
        "Reverse the word 'memory'",
        "What is the capital of Italy?",
    ]
    assert qs(widgets.filter_cases(bank, source="demo")) == ["Reverse the word 'memory'", "Multiply 17 by 23"]
    assert qs(widgets.filter_cases(bank, query="CAPITAL")) == [
        "What is the capital of France?",
        "What is the capital of Italy?",
    ]
    ranked = widgets.filter_cases(bank, query="anything", retriever=LengthRetriever(bank), label="positive")
    assert qs(ranked) == ["What is the capital of France?", "Multiply 17 by 23"] and ranked[0][1] == 30.0
    assert widgets.filter_cases(bank, limit=1, label="all")[0][0].question.startswith(
        "What is the capital of France"
    )


def test_case_bank_browser_interaction(bank: CaseBank) -> None:
    b = widgets.case_bank_browser(bank)
    controls, summary, table, picker, detail = b.children
    label_box, source_box, search = controls.children
    assert source_box.options == ("all", "demo", "seed")
    assert "4 live cases" in summary.value and table.value.count("<tr>") == 5
    assert "Look up &lt;France&gt;" in detail.value and "Paris" in detail.value
    label_box.value = "negative"
    assert table.value.count("<tr>") == 3 and len(picker.options) == 2
    picker.value = 0
    assert "code.run_python" in detail.value and "yromem" in detail.value
    source_box.value = "seed"
    assert table.value.count("<tr>") == 2 and "Italy" in detail.value
    search.value = "nothing like this"
    assert "No case matches" in table.value and picker.value is None and detail.value == ""


def test_case_bank_browser_similarity_search(bank: CaseBank, encoder) -> None:
    b = widgets.case_bank_browser(bank, retriever=SimilarityRetriever(bank, encoder))
    controls, summary, table, picker, detail = b.children
    controls.children[2].value = "spell a word backwards"
    assert "ranked by similarity" in summary.value and "score" in table.value
    assert "Reverse the word" in detail.value  # the semantically closest case is first and shown


def test_compare_retrievers(bank: CaseBank) -> None:
    v = widgets.compare_retrievers("q", {"length": LengthRetriever(bank)}, k=2)
    query, row = v.children
    name, table = row.children[0].children
    assert name.value == "<b>length</b>" and table.value.count("<tr>") == 3
    assert table.value.index("capital of France") < table.value.index("capital of Italy")

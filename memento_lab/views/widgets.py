"""Views for notebooks: a trace viewer, a trace browser and a case-bank browser (ipywidgets).

Every widget is built by a function from plain records (``Trace``, ``CaseBank``); the HTML inside
comes from pure helpers (``trace_header_html``, ``trace_sections``, ``cases_table_html``,
``case_detail_html`` ...) that tests read without a browser. All text from records is escaped.

    display(trace_viewer(trace))
    display(traces_browser(list(read_traces("data/runs/x/traces.jsonl"))))
    display(case_bank_browser(bank, retriever=SimilarityRetriever(bank)))

Executed notebooks keep the widget state, so exported HTML shows the last view of each widget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import ipywidgets as widgets

from memento_lab.memory.bank.bank import Case, CaseBank
from memento_lab.memory.retrieval.retrievers import Retrieved, Retriever
from memento_lab.trace import LLMCall, Trace
from memento_lab.views.html_parts import error_html, esc, html_table, num, pre, short


# ============================================================================ traces
def trace_correct(trace: Trace) -> bool:
    """Whether the primary verdict (the suite's own checker) counts the answer as correct."""
    return bool(trace.verdicts[0].correct) if trace.verdicts else False


def _llm_summary(call: LLMCall | None) -> str:
    if call is None:
        return ""
    u = call.usage
    text = f"{esc(call.role)} · {esc(call.model)} · {call.latency_s:.2f} s · {u.prompt_tokens}+{u.completion_tokens} tokens"
    if call.replayed:
        text += " · replayed"
    return text + (" " + error_html(call.error) if call.error else "")


def trace_header_html(trace: Trace) -> str:
    """The top of the viewer: question, expected and final answer, reward, verdicts, cost, error."""
    usage = trace.usage
    verdicts = (
        ", ".join(f"{esc(v.judge)}={v.score:.2f}{' ✓' if v.correct else ' ✗'}" for v in trace.verdicts)
        or "none"
    )
    rows = [
        (
            "task",
            f"{esc(trace.task_id)} · iteration {trace.iteration} · memory {esc(trace.memory_mode)}"
            + (f" · bank v{trace.bank_version}" if trace.bank_version is not None else ""),
        ),
        ("question", pre(trace.question)),
        ("expected", pre(trace.expected) if trace.expected is not None else "<i>(none)</i>"),
        ("final answer", pre(trace.final_answer) if trace.final_answer is not None else "<i>(no answer)</i>"),
        ("reward", f"<b>{trace.reward:.3f}</b> ({'correct' if trace_correct(trace) else 'not correct'})"),
        ("verdicts", verdicts),
        (
            "latency / tokens",
            f"{trace.latency_s:.2f} s · {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
            f" · {len(trace.llm_calls)} LLM calls · {len(trace.tool_calls)} tool calls",
        ),
    ]
    if trace.error:
        rows.append(("error", error_html(trace.error)))
    return html_table(["", ""], rows, raw=True).replace("<thead><tr>", '<thead style="display:none"><tr>', 1)


def retrieved_html(trace: Trace) -> str:
    """The cases retrieved; for another memory method, the items its block showed and what its
    maintenance (the memory's own model calls, not the agent's) cost and changed."""
    if not trace.retrieved and (trace.shown or trace.memory_calls):
        shown = [(s.rank, s.kind, s.id, num(s.score)) for s in trace.shown]
        upkeep = trace.maintenance
        ops = ", ".join(f"{k} {v}" for k, v in trace.memory_ops.items()) or "none"
        return (
            (
                html_table(["rank", "kind", "item", "score"], shown)
                if shown
                else "<i>the block showed nothing</i>"
            )
            + f"<br>maintenance: {len(trace.memory_calls)} call(s), {upkeep.prompt_tokens}+"
            f"{upkeep.completion_tokens} tokens; the write's ops: {esc(ops)}"
            + "".join(
                f"<br>unusable reply, thrown away: {esc(c.error or '')}"
                for c in trace.memory_calls
                if c.error_kind == "model_output"
            )
        )
    if not trace.retrieved:
        return "<i>No cases retrieved (memory mode: " + esc(trace.memory_mode) + ").</i>"
    rows = [
        (r.rank, r.label, num(r.score), num(r.reward, 2), r.case_id[:12], r.question) for r in trace.retrieved
    ]
    return html_table(["rank", "label", "score", "reward", "case", "question"], rows)


def cycles_html(trace: Trace) -> str:
    if not trace.cycles:
        return "<i>No planner cycles.</i>"
    parts = []
    for c in trace.cycles:
        body = [f"<b>cycle {c.index}</b> · {_llm_summary(c.llm)}"]
        if c.plan:
            body.append("<ol>" + "".join(f"<li>[{s.id}] {esc(s.description)}</li>" for s in c.plan) + "</ol>")
        if c.final_answer is not None:
            body.append(f"final answer: {pre(c.final_answer)}")
        if c.error:
            body.append(error_html(c.error) + (pre(c.raw) if c.raw else ""))
        parts.append("<div style='margin-bottom:8px'>" + "<br>".join(body) + "</div>")
    return "".join(parts)


def steps_html(trace: Trace) -> str:
    if not trace.steps:
        return "<i>No executor steps.</i>"
    parts = []
    for s in trace.steps:
        head = f"<b>cycle {s.cycle} · step {s.step_id}</b> ({s.duration_s:.2f} s): {esc(s.description)}"
        rows = [
            (
                esc(f"{t.server}.{t.name}"),
                pre(json.dumps(t.arguments, ensure_ascii=False, indent=1, default=str)),
                pre(t.result) if t.result is not None else "",
                error_html(t.error),
                f"{t.duration_s:.2f} s",
            )
            for t in s.tool_calls
        ]
        calls = (
            html_table(["tool", "arguments", "result", "error", "duration"], rows, raw=True)
            if rows
            else "<i>no tool calls</i>"
        )
        llm = "<br>".join(_llm_summary(c) for c in s.llm_calls)
        tail = f"step result: {pre(s.result)}" + (error_html(s.error) if s.error else "")
        parts.append(
            f"<div style='margin-bottom:10px'>{head}<br>{calls}{'<br>' + llm if llm else ''}<br>{tail}</div>"
        )
    return "".join(parts)


def verdicts_html(trace: Trace) -> str:
    if not trace.verdicts:
        return "<i>Not judged.</i>"
    rows = [(v.judge, num(v.score), "yes" if v.correct else "no", v.detail) for v in trace.verdicts]
    return html_table(["judge", "score", "correct", "detail"], rows)


def llm_calls_html(trace: Trace) -> str:
    calls = trace.llm_calls
    if not calls:
        return "<i>No LLM calls.</i>"
    rows = [
        (
            esc(c.role),
            esc(c.model),
            f"{c.latency_s:.2f}",
            c.usage.prompt_tokens,
            c.usage.completion_tokens,
            "yes" if c.replayed else "",
            error_html(c.error),
        )
        for c in calls
    ]
    return html_table(
        ["role", "model", "latency s", "prompt tok", "completion tok", "replayed", "error"], rows, raw=True
    )


def trace_sections(trace: Trace) -> list[tuple[str, str]]:
    """The viewer's sections as (title, HTML): retrieved cases, plan cycles, executor steps, judges, LLM calls."""
    return [
        (
            f"Retrieved cases ({len(trace.retrieved)})"
            if trace.retrieved or not trace.shown
            else f"Memory shown ({len(trace.shown)} items)",
            retrieved_html(trace),
        ),
        (f"Plan cycles ({len(trace.cycles)})", cycles_html(trace)),
        (f"Executor steps ({len(trace.steps)}, {len(trace.tool_calls)} tool calls)", steps_html(trace)),
        (f"Judges ({len(trace.verdicts)})", verdicts_html(trace)),
        (f"LLM calls ({len(trace.llm_calls)})", llm_calls_html(trace)),
    ]


def trace_viewer(trace: Trace) -> widgets.VBox:
    """One episode: a header, then an accordion of sections (the first one open)."""
    sections = trace_sections(trace)
    accordion = widgets.Accordion(
        children=[widgets.HTML(body) for _, body in sections],
        titles=tuple(t for t, _ in sections),
        selected_index=0,
    )
    return widgets.VBox([widgets.HTML(trace_header_html(trace)), accordion])


def trace_html(trace: Trace, *, open_first: bool = True) -> str:
    """The same view as plain HTML with ``<details>`` sections: no JavaScript, so it shows in any exported page."""
    parts = [trace_header_html(trace)]
    for i, (title, body) in enumerate(trace_sections(trace)):
        parts.append(
            f"<details{' open' if open_first and i == 0 else ''}><summary><b>{esc(title)}</b></summary>{body}</details>"
        )
    return "<div>" + "".join(parts) + "</div>"


def trace_label(trace: Trace) -> str:
    """A one-line name for a trace in a list."""
    mark = "✓" if trace_correct(trace) else "✗"
    return f"it{trace.iteration} {mark} {trace.reward:.2f} · {trace.task_id} · {short(trace.question, 60)}"


def filter_traces(
    traces: Sequence[Trace], iteration: int | None = None, correct: bool | None = None
) -> list[int]:
    """Indices of the traces of ``iteration`` (None: all) whose correctness is ``correct`` (None: both)."""
    return [
        i
        for i, t in enumerate(traces)
        if (iteration is None or t.iteration == iteration)
        and (correct is None or trace_correct(t) == correct)
    ]


def traces_browser(traces: Sequence[Trace]) -> widgets.VBox:
    """Pick a trace (filtered by iteration and correctness) and view it.

    Children: ``[HBox([iteration Dropdown, correctness ToggleButtons]), trace Dropdown, VBox([viewer])]``.
    """
    traces = list(traces)
    iterations = sorted({t.iteration for t in traces})
    it_box = widgets.Dropdown(
        options=[("all iterations", None)] + [(f"iteration {i}", i) for i in iterations],
        value=None,
        description="iteration",
    )
    ok_box = widgets.ToggleButtons(options=[("all", None), ("correct", True), ("wrong", False)], value=None)
    picker = widgets.Dropdown(description="trace", layout=widgets.Layout(width="95%"))
    pane = widgets.VBox()

    def show(_: Any = None) -> None:
        i = picker.value
        pane.children = (
            (trace_viewer(traces[i]),) if i is not None else (widgets.HTML("<i>No trace matches.</i>"),)
        )

    def refilter(_: Any = None) -> None:
        idx = filter_traces(traces, it_box.value, ok_box.value)
        picker.options = [(f"{n + 1}. {trace_label(traces[i])}", i) for n, i in enumerate(idx)]
        picker.value = idx[0] if idx else None
        show()

    picker.observe(show, names="value")
    it_box.observe(refilter, names="value")
    ok_box.observe(refilter, names="value")
    refilter()
    return widgets.VBox([widgets.HBox([it_box, ok_box]), picker, pane])


# ============================================================================ case bank
def source_of(case: Case) -> str:
    return case.source.benchmark or "unknown"


def filter_cases(
    bank: CaseBank | Sequence[Case],
    *,
    label: str = "all",
    source: str = "all",
    query: str = "",
    retriever: Retriever | None = None,
    limit: int = 50,
) -> list[tuple[Case, float | None]]:
    """Cases matching the label and source filters, best first for a ``query``.

    With a ``retriever`` the query ranks the filtered cases by the retriever's score; without one
    it keeps cases whose question contains the query (case-insensitive). Returns (case, score).
    """
    cases = bank.cases() if isinstance(bank, CaseBank) else list(bank)
    cases = [
        c
        for c in cases
        if (label == "all" or c.label == label) and (source == "all" or source_of(c) == source)
    ]
    query, no_score = query.strip(), cast(float | None, None)
    if not query:
        return [(c, no_score) for c in cases[:limit]]
    if retriever is None:
        q = query.lower()
        return [(c, no_score) for c in cases if q in c.question.lower()][:limit]
    if not cases:
        return []
    scores = retriever.score(query, cases)
    order = sorted(range(len(cases)), key=lambda i: -float(scores[i]))[:limit]
    return [(cases[i], float(scores[i])) for i in order]


def cases_table_html(rows: Sequence[tuple[Case, float | None]]) -> str:
    """A table of cases (with a score column when the rows were ranked)."""
    if not rows:
        return "<i>No case matches.</i>"
    scored = any(s is not None for _, s in rows)
    headers = ["#", *(["score"] if scored else []), "label", "reward", "source", "steps", "question"]
    body = [
        (
            i + 1,
            *([num(s)] if scored else []),
            c.label,
            num(c.reward, 2),
            source_of(c),
            len(c.plan),
            short(c.question, 140),
        )
        for i, (c, s) in enumerate(rows)
    ]
    return html_table(headers, body)


def case_detail_html(case: Case) -> str:
    """Everything about one case: question, plan steps, answer, trajectory, provenance."""
    src = case.source
    provenance = ", ".join(f"{k}={v}" for k, v in src.model_dump().items() if v is not None) or "unknown"
    parts = [
        f"<b>{esc(case.label)}</b> · reward {case.reward:.2f} · id <code>{esc(case.id)}</code> · {esc(provenance)}",
        f"<b>question</b>{pre(case.question)}",
        "<b>plan</b>"
        + (
            "<ol>" + "".join(f"<li>[{s.id}] {esc(s.description)}</li>" for s in case.plan) + "</ol>"
            if case.plan
            else " <i>(none)</i>"
        ),
        f"<b>answer</b>{pre(case.answer)}" if case.answer is not None else "<b>answer</b> <i>(none)</i>",
    ]
    traj = case.trajectory
    if traj.tools_used or traj.step_results:
        parts.append("<b>tools used</b> " + esc(", ".join(traj.tools_used) or "none"))
        parts.append(
            "<b>step results</b><ol>"
            + "".join(f"<li>{pre(r, 500)}</li>" for r in traj.step_results)
            + "</ol>"
        )
    return "<br>".join(parts)


def case_bank_browser(bank: CaseBank, *, retriever: Retriever | None = None, limit: int = 50) -> widgets.VBox:
    """Filter a bank by label and source, search it (by similarity when a retriever is given), inspect a case.

    Children: ``[HBox([label ToggleButtons, source Dropdown, search Text]), summary HTML, table HTML,
    case Dropdown, detail HTML]``.
    """
    sources = sorted({source_of(c) for c in bank.cases()})
    label_box = widgets.ToggleButtons(options=["all", "positive", "negative"], value="all")
    source_box = widgets.Dropdown(options=["all", *sources], value="all", description="source")
    search = widgets.Text(
        placeholder="similarity search" if retriever is not None else "substring search",
        description="search",
        continuous_update=False,
    )
    summary, table, detail = widgets.HTML(), widgets.HTML(), widgets.HTML()
    picker = widgets.Dropdown(description="case", layout=widgets.Layout(width="95%"))
    state: dict[str, list[Case]] = {"cases": []}

    def show_case(_: Any = None) -> None:
        i = picker.value
        detail.value = case_detail_html(state["cases"][i]) if i is not None else ""

    def refresh(_: Any = None) -> None:
        rows = filter_cases(
            bank,
            label=label_box.value,
            source=source_box.value,
            query=search.value,
            retriever=retriever,
            limit=limit,
        )
        state["cases"] = [c for c, _ in rows]
        how = (
            f"ranked by {retriever.name}"
            if retriever is not None and search.value.strip()
            else "in bank order"
        )
        summary.value = (
            f"bank version {bank.version} · {len(bank)} live cases · showing {len(rows)} ({esc(how)})"
        )
        table.value = cases_table_html(rows)
        picker.options = [(f"{n + 1}. {short(c.question, 90)}", n) for n, c in enumerate(state["cases"])]
        picker.value = 0 if rows else None
        show_case()

    picker.observe(show_case, names="value")
    for box in (label_box, source_box, search):
        box.observe(refresh, names="value")
    refresh()
    return widgets.VBox([widgets.HBox([label_box, source_box, search]), summary, table, picker, detail])


# ============================================================================ retrievers side by side
def retrieved_table_html(retrieved: Sequence[Retrieved]) -> str:
    """The cases one retriever chose for a query, best first."""
    if not retrieved:
        return "<i>nothing retrieved</i>"
    rows = [(r.rank, num(r.score), r.case.label, short(r.case.question, 110)) for r in retrieved]
    return html_table(["rank", "score", "label", "question"], rows)


def compare_retrievers(query: str, retrievers: Mapping[str, Retriever], *, k: int = 4) -> widgets.VBox:
    """The top ``k`` cases of several retrievers for one query, side by side."""
    columns = []
    for name, r in retrievers.items():
        got = r.retrieve(query, k)
        columns.append(
            widgets.VBox([widgets.HTML(f"<b>{esc(name)}</b>"), widgets.HTML(retrieved_table_html(got))])
        )
    return widgets.VBox([widgets.HTML(f"<b>query</b> {esc(query)}"), widgets.HBox(columns)])

"""The run dashboard: one offline page from run folders (made here from real records: ``Trace``s,
``ResultRow`` rows, retrieval pairs), its tables and episodes, and headless Chromium rendering it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import count_elements, rendered_dom, screenshot

from memento_lab.cli import main
from memento_lab.experiments.config import ExperimentConfig, ResultRow
from memento_lab.jsonl import atomic_write_bytes
from memento_lab.memory.retrieval.pairs import PairLog, RetrievalPair
from memento_lab.trace import JudgeVerdict, PlanCycle, RetrievedCase, Trace, write_traces
from memento_lab.views.dashboard import dashboard_html, error_counts, load_dashboard, value_html

SUITE = "reasoning-gym:spell_backward"


def make_run(root: Path, memory: str, order: int, rewards: list[list[float]]) -> Path:
    """A run folder as ``run_experiment`` leaves it: config.json, results.jsonl, traces.jsonl, pairs.jsonl."""
    cfg = ExperimentConfig(
        suite=SUITE, n=len(rewards[0]), memory=memory, order=order, iterations=len(rewards)
    )
    out = root / f"{memory}-k4-s0-o{order}"
    cfg = cfg.model_copy(update={"out": str(out), "run_id": out.name})
    out.mkdir(parents=True)
    atomic_write_bytes(out / "config.json", cfg.model_dump_json().encode())
    traces, pairs = [], []
    for it, row in enumerate(rewards):
        for i, r in enumerate(row):
            t = Trace(
                task_id=f"spell_backward/{i}",
                question=f"Spell <word{i}> backward",  # markup in a question must come out escaped
                run_id=out.name,
                iteration=it,
                memory_mode=memory,
                cycles=[PlanCycle(index=0, final_answer=f"answer {i}")],
                final_answer=f"answer {i}",
                expected=f"expected {i}",
                verdicts=[JudgeVerdict(judge="suite", score=r, correct=r == 1.0)],
                reward=r,
                error="TimeoutError: model took too long" if (memory, it, i) == ("none", 1, 0) else None,
                family="spell_backward",
            )
            if memory != "none" and it > 0:
                t.retrieved = [
                    RetrievedCase(case_id=f"c{i}", question=f"past {i}", label="positive", score=0.9)
                ]
                pairs.append(
                    RetrievalPair(
                        query=t.question,
                        case_id=f"c{i}",
                        case_question=f"past {i}",
                        case_label="positive",
                        reward=r,
                        helped=r >= 1.0,
                        advantage=r - 0.5,
                        run_id=out.name,
                        iteration=it,
                    )
                )
            traces.append(t)
    write_traces(out / "traces.jsonl", traces)
    rows = "".join(ResultRow.of(t, cfg).model_dump_json() + "\n" for t in traces)
    (out / "results.jsonl").write_text(rows)
    if pairs:
        PairLog(out / "pairs.jsonl").append(pairs)
    return out


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    for order in (0, 1):
        make_run(root, "none", order, [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
        make_run(root, "similarity", order, [[0.0, 1.0, 0.0], [1.0, 1.0, float(order)]])
    return root


def test_value_html_renders_records_mappings_and_scalars() -> None:
    table = value_html([{"memory": "none", "accuracy": 0.25}, {"memory": "sim", "delta": 0.1}])
    assert "<th" in table and "0.250" in table and "delta" in table  # headers are the union of keys
    nested = value_html({"similarity vs none": {"delta": 0.2, "p": 0.04}})
    assert "similarity vs none" in nested and "0.040" in nested
    assert value_html([]) == '<p class="muted">(none)</p>'
    assert "&lt;b&gt;" in value_html("<b>")


def test_error_counts_group_by_memory_and_kind(sweep: Path) -> None:
    data = load_dashboard([sweep])
    assert error_counts(data.rows) == [{"memory": "none", "k": 4, "kind": "TimeoutError", "episodes": 2}]


def test_dashboard_page_has_every_section_and_episode(sweep: Path) -> None:
    data = load_dashboard([sweep])
    data.report["paired_comparisons"] = [
        {"a": "similarity", "b": "none", "delta": 0.33}
    ]  # a key from elsewhere
    page = dashboard_html(data)
    for anchor in ("overall", "baselines", "by-family", "paired_comparisons", "errors", "episodes"):
        assert f'id="{anchor}"' in page, anchor
    assert page.index('id="paired_comparisons"') < page.index('id="by-family"')  # comparisons come first
    assert page.count('class="episode ') == 4 * 6 and page.count('<details class="run"') == 4
    assert "Spell &lt;word0&gt; backward" in page and "<word0>" not in page
    assert page.count("Plotly.newPlot") >= 2  # learning curves and retrieval diagnostics
    assert not re.search(r"<script[^>]+src=", page), "the page loads nothing"
    # similarity, iteration 1: per run 2/3 and 3/3 -> mean 0.833 over 2 runs, with a CI
    overall = page[page.index('id="overall"') : page.index("</section>", page.index('id="overall"'))]
    assert re.search(
        r"memory=similarity</td>(<td[^>]*>[^<]*</td>){2}<td[^>]*>1</td><td[^>]*>None</td><td[^>]*>0\.833</td>",
        overall,
    )


def test_single_run_ci_is_not_shown_as_zero(tmp_path: Path) -> None:
    run = make_run(tmp_path, "none", 0, [[0.0, 1.0]])
    (point,) = load_dashboard([run]).report["curves"]
    assert (point["ci_low"], point["accuracy"], point["ci_high"]) == (0.0, 0.5, 1.0)  # over the two tasks


def test_cli_report_html_and_bad_folder(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "page.html"
    assert main(["report", str(sweep), "--html", str(out)]) == 0
    assert out.exists() and "Learning curves" in out.read_text(encoding="utf-8")
    assert main(["report", str(tmp_path / "missing"), "--html", str(tmp_path / "x.html")]) == 1
    assert "missing: no such run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_dashboard_renders_offline_in_chromium(sweep: Path, tmp_path: Path) -> None:
    page = tmp_path / "dashboard.html"
    main(["report", str(sweep), "--html", str(page)])
    dom = rendered_dom(page)
    assert count_elements(dom, "main-svg") >= 2 * 2, "plotly drew no figure"
    assert count_elements(dom, "episode") == 24
    assert "trivial baseline" in dom  # the legend entry of the baseline line
    png = screenshot(page, tmp_path / "dashboard.png", size="1280,2400")
    print(f"screenshot: {png}")

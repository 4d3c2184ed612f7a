"""The house rules that hold across packages: importing the library changes nothing in the process."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from support import ROOT


def test_importing_every_module_changes_no_global_state() -> None:
    """No environment variable, warning filter or logging filter is set by importing a module; the
    suite registry stays empty until it is read."""
    code = textwrap.dedent(
        """
        import ast, importlib, logging, os, pathlib, pkgutil, warnings
        import memento_lab
        # what other packages do on import is theirs: import every one the library names first
        for path in pathlib.Path(memento_lab.__path__[0]).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                for name in names:
                    if not name.startswith(("memento_lab", "servers")):
                        try:
                            importlib.import_module(name)
                        except Exception:
                            pass
        env, filters = dict(os.environ), list(warnings.filters)
        loggers = {n: list(l.filters) for n, l in logging.root.manager.loggerDict.items() if isinstance(l, logging.Logger)}
        skip = ("memento_lab.cli.__main__", "memento_lab.notebook_runner")
        names = [m.name for m in pkgutil.walk_packages(memento_lab.__path__, "memento_lab.") if m.name not in skip]
        for name in names:
            importlib.import_module(name)
        from memento_lab.tasks import registry
        assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
        assert list(warnings.filters) == filters, [f for f in warnings.filters if f not in filters]
        for n, l in logging.root.manager.loggerDict.items():
            if isinstance(l, logging.Logger):
                assert list(l.filters) == loggers.get(n, []), n
        print(len(names))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no OMP_WAIT_POLICY, HF_HUB_OFFLINE, ... to begin with
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 60  # every module was imported


def test_every_public_name_of_the_package_resolves() -> None:
    import memento_lab

    missing = [name for name in memento_lab.__all__ if getattr(memento_lab, name, None) is None]
    assert not missing
    assert memento_lab.FitConfig().epochs == 20 and memento_lab.load_suite("control:positive", n=1).tasks()


# The layers of the README's architecture table, lowest first: a module imports only from its own
# layer or below (function-local and TYPE_CHECKING imports included). Within memory and agent the
# rooms are layered too. The tool servers import only the plain records.
LAYERS = [
    ("plain records", ["memento_lab", "memento_lab.trace", "memento_lab.config", "memento_lab.jsonl",
                       "memento_lab.workspace", "memento_lab.asyncio_compat", "memento_lab.bfcl_data",
                       "memento_lab.exports", "memento_lab.prompt_files", "memento_lab.provenance",
                       "memento_lab.sandbox", "memento_lab.data", "memento_lab.registry"]),
    ("memory: the bank", ["memento_lab.memory.bank"]),
    ("memory: retrieval", ["memento_lab.memory.retrieval"]),
    ("memory: the learned retriever", ["memento_lab.memory.learned"]),
    ("memory", ["memento_lab.memory"]),
    ("tasks", ["memento_lab.tasks"]),
    ("agent: prompts (data)", ["memento_lab.agent.prompts"]),
    ("agent: models", ["memento_lab.agent.models"]),
    ("agent: tools", ["memento_lab.agent.tools"]),
    ("agent", ["memento_lab.agent"]),
    ("experiments and views", ["memento_lab.experiments", "memento_lab.views"]),
    ("commands", ["memento_lab.cli", "memento_lab.notebook_runner"]),
]  # fmt: skip


def _layer(module: str) -> int:
    """The layer of a module: the one whose prefix matches it longest."""
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    assert level >= 0, f"{module} is in no layer of the architecture table"
    return level


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every memento_lab import in a file, wherever it is written."""
    out = []
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = (
                ".".join(base[: len(base) - node.level + 1] + [node.module or ""])
                if node.level
                else node.module
            )
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(line, name) for line, name in out if name and name.split(".")[0] == "memento_lab"]


def _resolve(name: str, modules: set[str]) -> str:
    """``memento_lab.x.y.Name`` -> the module it names (``memento_lab.x.y``)."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def test_layers_import_only_downward() -> None:
    files = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "memento_lab").rglob("*.py")
    }
    upward = []
    for module, path in sorted(files.items()):
        for line, name in _imports(path, module, path.name == "__init__.py"):
            target = _resolve(name, set(files))
            if _layer(target) > _layer(module):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {module} ({LAYERS[_layer(module)][0]}) imports "
                              f"{target} ({LAYERS[_layer(target)][0]})")  # fmt: skip
    for path in (ROOT / "servers").rglob("*.py"):
        for line, name in _imports(path, "servers." + path.stem, False):
            if _layer(_resolve(name, set(files))) > 0:
                upward.append(f"{path.relative_to(ROOT)}:{line}: a tool server imports {name}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_layer_test_sees_a_function_local_upward_import(tmp_path) -> None:
    """The check itself can fail: an import inside a function, from a lower layer to a higher one."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from memento_lab.agent.loop import Agent\n    return Agent\n")
    ((line, name),) = _imports(bad, "memento_lab.memory.bank.bad", False)
    modules = {"memento_lab.agent.loop"}
    assert line == 2 and _layer(_resolve(name, modules)) > _layer("memento_lab.memory.bank.bad")


def test_every_moved_module_still_imports_from_its_old_path() -> None:
    """The modules that moved keep their old paths for one release: every name, with a warning."""
    import importlib
    import re
    import warnings

    aliases = {}
    for path in (ROOT / "memento_lab").rglob("*.py"):
        m = re.search(r'^__getattr__ = moved\(__name__, "([\w.]+)"\)', path.read_text(encoding="utf-8"), re.M)
        if m:
            aliases[".".join(path.relative_to(ROOT).with_suffix("").parts)] = m.group(1)
    assert {"memento_lab.agent.suites", "memento_lab.memory.cases", "memento_lab.memory.training"} <= set(
        aliases
    )
    for old, new in aliases.items():
        target = importlib.import_module(new)
        name = next(
            n
            for n, v in vars(target).items()
            if not n.startswith("_") and getattr(v, "__module__", "") == new
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(importlib.import_module(old), name)
        assert value is getattr(target, name), old
        assert [w.category for w in caught] == [DeprecationWarning] and new in str(caught[0].message), old
    from memento_lab.memory.cases import CaseBank  # the form notebooks and scripts use
    from memento_lab.memory.retrieval import SimilarityRetriever  # a package now, re-exporting
    from memento_lab.sandbox import run_python

    assert CaseBank.__module__ == "memento_lab.memory.bank.bank" and callable(run_python)
    assert SimilarityRetriever.__module__ == "memento_lab.memory.retrieval.retrievers"

"""The house rules that hold across packages: importing the library changes nothing in the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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

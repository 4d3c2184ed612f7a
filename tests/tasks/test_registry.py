"""The suite registry: one place for every kind (built in, declared with ``@suite``, or from another
package's entry points), lazy (no suite module is imported until asked for), read by ``load_suite``,
the CLI's help and ``memento-lab list suites``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memento_lab.tasks import registry
from memento_lab.tasks.base import Suite, Task
from memento_lab.tasks.registry import BUILTIN, SuiteSpec, load_suite, spec_forms, suite, suite_kinds


class ListSuite(Suite):
    def __init__(self, name: str, questions: list[str]):
        self.name, self.questions = name, questions

    def tasks(self) -> list[Task]:
        return [
            Task(id=f"{self.name}:{i}", question=q, family="f", suite=self.name)
            for i, q in enumerate(self.questions)
        ]


@pytest.fixture
def fresh(monkeypatch) -> registry._Registry:
    """An empty registry for one test (the process-wide one keeps the built-in kinds)."""
    reg = registry._Registry()
    monkeypatch.setattr(registry, "_REGISTRY", reg)
    return reg


def _dist(root: Path, entry_points: str, module: str) -> Path:
    """A minimal installed distribution on ``root``: one module and its ``memento_lab.suites`` entry points."""
    (root / "extra_suites.py").write_text(textwrap.dedent(module))
    info = root / "extra_suites-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-suites\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[memento_lab.suites]\n" + textwrap.dedent(entry_points))
    return root


EXTRA = """
    from memento_lab.tasks.registry import suite

    @suite("decorated", forms=("decorated:WORDS",), summary="declared with the decorator")
    def decorated(spec, *, n, seed):
        from memento_lab.tasks.registry import SuiteSpec
        return ("decorated", spec.arg, n, seed)

    def plain(spec, *, n, seed):
        '''A plain factory named only by its entry point.'''
        return ("plain", spec.arg, n, seed)
"""


def test_a_decorated_factory_is_a_kind_with_its_forms_and_variants(fresh) -> None:
    @suite("words", forms=("words:W1,W2",), summary="one task per word", variants=("upper",))
    def words(spec: SuiteSpec, *, n: int, seed: int) -> ListSuite:
        items = spec.arg.split(",")
        return ListSuite(spec.text, [w.upper() if spec.variant == "upper" else w for w in items][:n])

    assert [t.question for t in load_suite("words:a,b,c", n=2).tasks()] == ["a", "b"]
    assert [t.question for t in load_suite("WORDS+upper:a", n=5).tasks()] == ["A"]  # kind names ignore case
    with pytest.raises(ValueError, match="unknown words variant 'lower'; choose one of upper"):
        load_suite("words+lower:a")
    assert "words:W1,W2" in spec_forms()
    suite("words", forms=("words:W1,W2",))(words)  # the same factory again (a re-run notebook cell): fine

    def other(spec: SuiteSpec, *, n: int, seed: int) -> ListSuite:
        return ListSuite("other", [])

    with pytest.raises(ValueError, match="already registered by .*test_registry"):
        suite("words")(other)
    with pytest.raises(ValueError, match=r"unknown suite kind 'nope'; valid forms: .*words:W1,W2"):
        load_suite("nope:x")


def test_every_builtin_kind_is_declared_in_the_module_the_registry_names() -> None:
    kinds = {k.name: k for k in suite_kinds()}
    assert list(kinds)[: len(BUILTIN)] == list(BUILTIN)
    for name, module in BUILTIN.items():
        assert kinds[name].origin.split(":")[0] == module, name
        assert kinds[name].summary and kinds[name].forms


def test_other_packages_add_kinds_through_entry_points(fresh, tmp_path, monkeypatch) -> None:
    root = _dist(
        tmp_path,
        "decorated = extra_suites:decorated\nplain = extra_suites:plain\nbroken = extra_suites:missing\n",
        EXTRA,
    )
    monkeypatch.syspath_prepend(str(root))
    assert load_suite("plain:x", n=3, seed=1) == ("plain", "x", 3, 1)  # type: ignore[comparison-overlap]
    assert load_suite("decorated:y") == ("decorated", "y", 10, 0)  # type: ignore[comparison-overlap]
    described = {row["kind"]: row for row in registry.describe()}
    assert described["plain"]["summary"] == "from extra_suites:plain"
    assert described["decorated"]["forms"] == ["decorated:WORDS"]
    assert "AttributeError" in described["broken"]["error"]  # one broken package hides nothing else
    with pytest.raises(ImportError, match="extra_suites:missing"):
        load_suite("broken:z")


def _python(code: str, **env: str) -> str:
    import os

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    return out.stdout


def test_nothing_is_imported_until_a_kind_is_asked_for() -> None:
    code = textwrap.dedent(
        """
        import sys, memento_lab, memento_lab.agent, memento_lab.tasks
        from memento_lab.cli import build_parser
        build_parser()
        kinds = ("suites", "qa", "controls", "bfcl")
        def loaded():
            return [k for k in kinds if f"memento_lab.tasks.{k}" in sys.modules]
        before = loaded()
        memento_lab.load_suite("control:positive", n=2)
        print(before, loaded())
        """
    )
    assert _python(code).strip() == "[] ['controls']"


def test_list_suites_shows_builtin_and_entry_point_kinds(tmp_path) -> None:
    root = _dist(tmp_path, "plain = extra_suites:plain\n", EXTRA)
    code = "from memento_lab.cli import main; main(['list', 'suites', '--json'])"
    rows = json.loads(_python(code, PYTHONPATH=str(root)))
    assert [r["kind"] for r in rows] == [*BUILTIN, "decorated", "plain"]  # its module declares both
    assert rows[-1]["summary"] == "from extra_suites:plain"
    text = _python("from memento_lab.cli import main; main(['list', 'suites'])")
    assert "control:positive or control:negative" in text and text.startswith("reasoning-gym: ")
    help_text = _python("from memento_lab.cli import main; main(['run', '--help'])")
    assert "plain" not in help_text and "bfcl" in help_text
    assert "plain" in _python(
        "from memento_lab.cli import main; main(['run', '--help'])", PYTHONPATH=str(root)
    )

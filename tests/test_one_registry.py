"""The one registry pattern (``memento_lab.registry``) that suite kinds and memory methods share: built-ins
imported only when asked for and once, entry points loaded once under a lock, a broken entry point kept
with its reason while the others load, a name declared twice refused, an unknown name answered with
the known ones."""

from __future__ import annotations

import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memento_lab.memory.methods import registry as methods
from memento_lab.registry import Registry


@dataclass(frozen=True)
class Thing:
    name: str
    origin: str
    value: Any = None


class Things(Registry[Thing]):
    """A registry of one built-in module (``lab_builtin_things``) and the group ``lab.things``."""

    def __init__(self) -> None:
        super().__init__("thing", spec_type=Thing, group="lab.things", mark="__things__")
        self.asked: list[str | None] = []
        self.made: list[str] = []

    def modules(self, name: str | None) -> list[str]:
        self.asked.append(name)
        return ["lab_builtin_things"]

    def entry_point_spec(self, name: str, obj: Any, value: str) -> Thing:
        self.made.append(name)
        return Thing(name=name, origin=value, value=obj)


BUILTIN = """
    from lab_thing_spec import Thing  # the spec type of this test (this test module)

    def alpha():
        return "alpha"

    alpha.__things__ = (Thing(name="alpha", origin="lab_builtin_things:alpha", value=alpha),)
"""

PLUGINS = """
    def plain():
        return "plain"
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built-in module and an installed distribution naming two entry points, one of them broken."""
    (tmp_path / "lab_builtin_things.py").write_text(textwrap.dedent(BUILTIN))
    (tmp_path / "lab_plugins.py").write_text(textwrap.dedent(PLUGINS))
    info = tmp_path / "lab_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lab.things]\nPlain = lab_plugins:plain\nbroken = lab_plugins:missing\nnoimport = no_such_module:x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "lab_thing_spec", sys.modules[__name__])
    yield tmp_path
    sys.modules.pop("lab_builtin_things", None)
    sys.modules.pop("lab_plugins", None)


def test_builtins_load_only_when_asked_and_once(installed) -> None:
    things = Things()
    assert (
        "lab_builtin_things" not in sys.modules and not things.asked
    )  # declaring the registry loads nothing
    assert things.get(" Alpha ").value() == "alpha"  # names ignore case and spaces
    assert "lab_builtin_things" in sys.modules and things.asked == ["alpha"]
    assert not things.entry_points_loaded  # a built-in name never reads the entry points
    things.forget("alpha")
    assert things.get("alpha").name == "alpha"  # a forgotten built-in comes back from its mark
    assert [t.name for t in things.all()] == ["alpha", "plain"]
    assert things.modules_loaded == {"lab_builtin_things"}


def test_a_broken_entry_point_is_kept_with_its_reason_and_hides_nothing(installed) -> None:
    things = Things()
    assert things.get("plain").value() == "plain"  # entry point names ignore case too
    assert set(things.broken) == {"broken", "noimport"}
    assert things.broken["broken"].startswith(
        "thing entry point broken = 'lab_plugins:missing' failed to load: "
    )
    assert "AttributeError" in things.broken["broken"]
    assert "ModuleNotFoundError" in things.broken["noimport"]
    with pytest.raises(
        ValueError, match="^thing entry point broken = 'lab_plugins:missing' failed to load: AttributeError"
    ):
        things.get("broken")
    with pytest.raises(ValueError, match=r"^unknown thing 'nope'; choose one of alpha, plain$"):
        things.get("nope")


def test_entry_points_load_once_under_concurrent_lookups(installed, monkeypatch) -> None:
    import memento_lab.registry

    reads: list[str] = []
    real = memento_lab.registry.entry_points

    def counted(*, group: str) -> Any:
        reads.append(group)
        return real(group=group)

    monkeypatch.setattr(memento_lab.registry, "entry_points", counted)
    things = Things()
    barrier = threading.Barrier(6)
    found: list[str] = []

    def look() -> None:
        barrier.wait()
        found.append(things.get("plain").name)
        with pytest.raises(ValueError):
            things.get("nope")  # a miss asks the entry points again: they are not reloaded

    threads = [threading.Thread(target=look) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == ["plain"] * 6 and things.made == ["plain"] and reads == ["lab.things"]


def test_a_name_declared_twice_from_two_places_is_refused() -> None:
    things = Things()

    def one() -> None: ...

    def two() -> None: ...

    things.declare(one, Thing(name="x", origin="pkg.a:one"))
    things.declare(one, Thing(name="x", origin="pkg.a:one", value=1))  # the same place again: replaced
    assert things.specs["x"].value == 1 and [s.value for s in one.__things__] == [1]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"thing 'x' is already registered by pkg.a:one"):
        things.declare(two, Thing(name="x", origin="pkg.b:two"))
    things.declare(two, Thing(name="x", origin="__main__:two"))  # a notebook cell run again replaces it
    assert things.specs["x"].origin == "__main__:two"


def test_memory_methods_use_the_pattern(tmp_path, monkeypatch) -> None:
    """The memory method registry's own words: its unknown name, a broken entry point as a ValueError
    (a config validator's error), a fresh registry finding the built-ins on their marks."""
    with pytest.raises(ValueError, match=r"unknown memory method 'nope'; choose one of none, .*expel"):
        methods.check_method("nope")
    info = tmp_path / "lab_methods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-methods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[memento_lab.memory_methods]\nbad = no_such_module:Method\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(methods, "_REGISTRY", methods._Registry())
    with pytest.raises(ValueError, match="memory method entry point bad = 'no_such_module:Method' failed"):
        methods.method_spec("bad")
    assert methods.method_names()[0] == "none" and "expel" in methods.method_names()

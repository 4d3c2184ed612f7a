"""The registry of memory methods: every method by name, for ``run --memory NAME``, sweeps and help.

    @memory_method("last-success", summary="the last successful episode, shown as an example")
    class LastSuccess(LoggedMethod):
        ...

    method = make_method("expel", MethodSetup(folder=run / "memory"))
    method_names()            # none, random, similarity, parametric, expel, awm, awm-rule, ...

A method is a ``MemoryMethod`` class (or a factory ``(setup) -> MemoryMethod``) declared with
``@memory_method``. Built-in methods are the modules of this package: a name not registered yet
imports them (so a new built-in method is one new module here, and nothing else changes); other
packages add methods through the entry points of the group ``memento_lab.memory_methods``
(``my-method = "my_pkg.memory:MyMethod"``); a notebook declares one with the decorator (re-running
the cell replaces it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from memento_lab.memory.methods.base import MemoryMethod
    from memento_lab.memory.methods.setup import MethodSetup

ENTRY_POINTS = "memento_lab.memory_methods"
PACKAGE = "memento_lab.memory.methods"
NOT_METHODS = frozenset({"base", "blocks", "logged", "registry", "setup"})  # modules that declare none
Factory = Callable[["MethodSetup"], "MemoryMethod"]
F = TypeVar("F")


@dataclass(frozen=True)
class MethodSpec:
    """One registered method: its factory, a one-line summary, what its memory holds, where it is from."""

    name: str
    factory: Factory
    summary: str
    keeps: str = ""  # cases | insights | workflows | items | cheatsheet | playbook | ...
    origin: str = ""

    def make(self, setup: MethodSetup) -> MemoryMethod:
        return self.factory(setup)


class _Registry:
    def __init__(self) -> None:
        self.specs: dict[str, MethodSpec] = {}
        self.broken: dict[str, str] = {}
        self.builtins_loaded = False
        self.entry_points_loaded = False
        self.lock = threading.RLock()

    def add(self, spec: MethodSpec) -> None:
        with self.lock:
            old = self.specs.get(spec.name)
            if old is not None and old.origin != spec.origin and not _from_main(spec.origin):
                raise ValueError(f"memory method {spec.name!r} is already registered by {old.origin}")
            self.specs[spec.name] = spec

    def load_builtins(self) -> None:
        with self.lock:
            if self.builtins_loaded:
                return
            self.builtins_loaded = True
            package = importlib.import_module(PACKAGE)
            for info in pkgutil.iter_modules(package.__path__):
                if info.name in NOT_METHODS or info.name.startswith("_"):
                    continue
                module = importlib.import_module(f"{PACKAGE}.{info.name}")
                for obj in list(vars(module).values()):  # found on their mark, whatever was imported first
                    for spec in getattr(obj, "__memory_methods__", ()):
                        if spec.name not in self.specs:
                            self.add(spec)

    def load_entry_points(self) -> None:
        with self.lock:
            if self.entry_points_loaded:
                return
            self.entry_points_loaded = True
            for ep in entry_points(group=ENTRY_POINTS):
                name = ep.name.strip().lower()
                try:
                    factory = ep.load()
                except Exception as e:  # one broken package must not hide every other method
                    self.broken[name] = f"memory method entry point {ep.name} = {ep.value!r} failed: {e}"
                    continue
                if name not in self.specs:
                    memory_method(name, summary=f"from {ep.value}")(factory)

    def get(self, name: str) -> MethodSpec:
        key = name.strip().lower()
        if key not in self.specs:
            self.load_builtins()
        if key not in self.specs:
            self.load_entry_points()
        if key in self.specs:
            return self.specs[key]
        if key in self.broken:
            raise ValueError(self.broken[key])
        raise ValueError(f"unknown memory method {name!r}; choose one of {', '.join(self.names())}")

    def names(self) -> list[str]:
        self.load_builtins()
        self.load_entry_points()
        return sorted(self.specs, key=lambda n: self.specs[n].keeps != "cases")  # stable: declared order


_REGISTRY = _Registry()


def _from_main(origin: str) -> bool:
    return origin.startswith(("__main__:", "__mp_main__:"))  # a notebook cell re-run


def memory_method(name: str, *, summary: str = "", keeps: str = "") -> Callable[[F], F]:
    """Declare a memory method under ``name``: a ``MemoryMethod`` class (its ``name`` is set) or a
    factory ``(setup) -> MemoryMethod``. ``summary``: one line (default: the docstring's first)."""

    def register(target: F) -> F:
        key = name.strip().lower()
        if inspect.isclass(target):
            target.name = key  # type: ignore[attr-defined]
        spec = MethodSpec(
            name=key,
            factory=target,  # type: ignore[arg-type]
            summary=summary or (inspect.getdoc(target) or "").split("\n")[0],
            keeps=keeps,
            origin=f"{target.__module__}:{getattr(target, '__qualname__', key)}",
        )
        _REGISTRY.add(spec)
        marks = [s for s in getattr(target, "__memory_methods__", ()) if s.name != key]
        target.__memory_methods__ = (*marks, spec)  # type: ignore[attr-defined]
        return target

    return register


def forget_method(name: str) -> None:
    """Unregister ``name`` (a notebook's or a test's own method); a built-in comes back when asked for."""
    with _REGISTRY.lock:
        _REGISTRY.specs.pop(name.strip().lower(), None)
        _REGISTRY.builtins_loaded = False


def method_spec(name: str) -> MethodSpec:
    return _REGISTRY.get(name)


def method_names() -> list[str]:
    """Every registered method: the case memories first, then the others in the order declared."""
    return _REGISTRY.names()


def make_method(name: str, setup: MethodSetup | None = None) -> MemoryMethod:
    """The method ``name`` built from ``setup`` (default: in memory, default settings)."""
    from memento_lab.memory.methods.setup import MethodSetup

    return method_spec(name).make(setup or MethodSetup())


def check_method(name: str) -> str:
    """``name`` if it is a registered method (a config validator), else a ValueError naming the choices."""
    method_spec(name)
    return name.strip().lower()


def describe_methods() -> list[dict[str, Any]]:
    """Name, what it keeps, summary and origin of every method (``memento-lab list memories``)."""
    return [
        {"name": s.name, "keeps": s.keeps, "summary": s.summary, "origin": s.origin}
        for s in (method_spec(n) for n in method_names())
    ]

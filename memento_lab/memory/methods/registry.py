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
the cell replaces it). The machinery is the one registry pattern of ``memento_lab.registry``, shared
with the suite kinds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from memento_lab.registry import Registry, normal, package_modules

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


class _Registry(Registry[MethodSpec]):
    """The methods known in this process (one instance: ``_REGISTRY``)."""

    def __init__(self) -> None:
        super().__init__("memory method", spec_type=MethodSpec, group=ENTRY_POINTS, mark="__memory_methods__")

    def modules(self, name: str | None) -> list[str]:
        return package_modules(PACKAGE, skip=NOT_METHODS)  # which one declares a name is not known

    def entry_point_spec(self, name: str, obj: Any, value: str) -> MethodSpec:
        return _spec(name, obj, summary=f"from {value}")

    def all(self) -> list[MethodSpec]:
        """The case memories first, then the others in the order declared."""
        return sorted(super().all(), key=lambda s: s.keeps != "cases")


_REGISTRY = _Registry()


def _spec(name: str, target: Any, *, summary: str = "", keeps: str = "") -> MethodSpec:
    key = normal(name)
    if inspect.isclass(target):
        target.name = key  # type: ignore[attr-defined]  # the class knows the name it is registered under
    return MethodSpec(
        name=key,
        factory=target,
        summary=summary or (inspect.getdoc(target) or "").split("\n")[0],
        keeps=keeps,
        origin=f"{target.__module__}:{getattr(target, '__qualname__', key)}",
    )


def memory_method(name: str, *, summary: str = "", keeps: str = "") -> Callable[[F], F]:
    """Declare a memory method under ``name``: a ``MemoryMethod`` class (its ``name`` is set) or a
    factory ``(setup) -> MemoryMethod``. ``summary``: one line (default: the docstring's first)."""

    def register(target: F) -> F:
        return _REGISTRY.declare(target, _spec(name, target, summary=summary, keeps=keeps))

    return register


def forget_method(name: str) -> None:
    """Unregister ``name`` (a notebook's or a test's own method); a built-in comes back when asked for."""
    _REGISTRY.forget(name)


def method_spec(name: str) -> MethodSpec:
    return _REGISTRY.get(name)


def method_names() -> list[str]:
    """Every registered method: the case memories first, then the others in the order declared."""
    return [spec.name for spec in _REGISTRY.all()]


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

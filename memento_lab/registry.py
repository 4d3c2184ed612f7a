"""One registry pattern: named specs of one sort (suite kinds, memory methods), declared by a decorator,
built-ins found on their mark, other packages' entry points loaded once.

    class _Methods(Registry[MethodSpec]):
        def modules(self, name): ...                    # the built-in modules that may declare `name`
        def entry_point_spec(self, name, obj, value): ...  # a plain object named by an entry point

    REGISTRY = _Methods("memory method", spec_type=MethodSpec, group="memento_lab.memory_methods",
                        mark="__memory_methods__")
    REGISTRY.declare(MyMethod, MethodSpec(name="mine", ...))  # what a decorator does: register and mark
    REGISTRY.get("mine")

A spec has a ``name`` and an ``origin`` (``module:qualname``). Declaring a name twice from two origins
is an error, unless the new one comes from a notebook or script (``__main__``: a cell run again). A
declared object carries its specs (the mark) so a module imported before the registry existed is
still read. Nothing is imported before a name is asked for: a built-in module once, the entry points
of the group once, under a lock; an entry point that fails to load is kept in ``broken`` with why, and
every other one still loads.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar


class Spec(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def origin(self) -> str: ...


S = TypeVar("S", bound=Spec)
T = TypeVar("T")


def normal(name: str) -> str:
    """How names are compared: case and surrounding spaces ignored."""
    return name.strip().lower()


def package_modules(package: str, skip: Iterable[str] = ()) -> list[str]:
    """The modules of ``package`` (imported), except ``skip`` and private ones, as dotted names."""
    path = importlib.import_module(package).__path__
    return [
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(path)
        if info.name not in set(skip) and not info.name.startswith("_")
    ]


def from_main(origin: str) -> bool:
    """Declared by a notebook cell or a script (a re-run replaces the spec instead of clashing)."""
    return origin.startswith(("__main__:", "__mp_main__:"))


class Registry(Generic[S]):
    """The specs of one sort known in this process. Subclasses say which built-in modules may declare
    a name (``modules``) and what a plain object named by an entry point becomes (``entry_point_spec``)."""

    def __init__(
        self,
        noun: str,
        *,
        spec_type: type[S],
        group: str,
        mark: str,
        broken_error: type[Exception] = ValueError,
    ) -> None:
        self.noun, self.spec_type, self.group, self.mark = noun, spec_type, group, mark
        self.broken_error = broken_error  # what asking for a broken entry point raises
        self.specs: dict[str, S] = {}
        self.broken: dict[str, str] = {}  # entry point name -> why it failed to load
        self.modules_loaded: set[str] = set()
        self.entry_points_loaded = False
        self.lock = threading.RLock()

    def modules(self, name: str | None) -> Iterable[str]:
        """The built-in modules that may declare ``name`` (``None``: every one)."""
        return ()

    def entry_point_spec(self, name: str, obj: Any, value: str) -> S:
        """The spec of an object an entry point names that declared nothing under ``name``."""
        raise NotImplementedError

    def add(self, spec: S) -> None:
        with self.lock:
            old = self.specs.get(spec.name)
            if old is not None and old.origin != spec.origin and not from_main(spec.origin):
                raise ValueError(f"{self.noun} {spec.name!r} is already registered by {old.origin}")
            self.specs[spec.name] = spec

    def declare(self, target: T, spec: S) -> T:
        """Register ``spec`` and mark ``target`` with it (how the registry finds it again)."""
        self.add(spec)
        marks = [s for s in getattr(target, self.mark, ()) if s.name != spec.name]
        setattr(target, self.mark, (*marks, spec))
        return target

    def forget(self, name: str) -> None:
        """Unregister ``name``; a built-in comes back when it is asked for again."""
        with self.lock:
            self.specs.pop(normal(name), None)
            self.modules_loaded.clear()

    def load_builtins(self, name: str | None = None) -> None:
        """Import the built-in modules that may declare ``name`` (``None``: all), each once, and take
        the specs marked on what they hold, whatever imported them first."""
        with self.lock:
            for module in self.modules(name):
                if module in self.modules_loaded:
                    continue
                self.modules_loaded.add(module)
                for obj in list(vars(importlib.import_module(module)).values()):
                    marks = getattr(obj, self.mark, ())
                    for spec in marks if isinstance(marks, tuple) else ():
                        if isinstance(spec, self.spec_type) and spec.name not in self.specs:
                            self.add(spec)

    def load_entry_points(self) -> None:
        """Register what other packages declare in the entry point group, once."""
        with self.lock:
            if self.entry_points_loaded:
                return
            self.entry_points_loaded = True
            for ep in entry_points(group=self.group):
                name = normal(ep.name)
                try:
                    obj = ep.load()  # a decorated object registers itself here
                except Exception as e:  # one broken package must not hide every other one
                    self.broken[name] = (
                        f"{self.noun} entry point {ep.name} = {ep.value!r} failed to load: {type(e).__name__}: {e}"
                    )
                    continue
                if name not in self.specs:
                    self.declare(obj, self.entry_point_spec(name, obj, ep.value))

    def get(self, name: str) -> S:
        """The spec called ``name``: built in, declared, or from an entry point (loaded on a miss)."""
        key = normal(name)
        if key not in self.specs:
            self.load_builtins(key)
        if key not in self.specs:
            self.load_entry_points()
        if key in self.specs:
            return self.specs[key]
        if key in self.broken:
            raise self.broken_error(self.broken[key])
        raise ValueError(self.unknown(name))

    def unknown(self, name: str) -> str:
        """The message for an unknown name: the name, and the known ones."""
        return f"unknown {self.noun} {name!r}; choose one of {', '.join(s.name for s in self.all())}"

    def all(self) -> list[S]:
        """Every spec, in the order declared (every built-in module and entry point loaded first)."""
        self.load_builtins()
        self.load_entry_points()
        return list(self.specs.values())

    def entry_point_names(self) -> list[str]:
        """The names the group's entry points give, importing none of them."""
        return [normal(ep.name) for ep in entry_points(group=self.group)]

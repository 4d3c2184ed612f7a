"""How a package offers names without importing them yet, and how a moved module keeps its old path.

    __getattr__ = lazy(__name__, {"CaseBank": "memento_lab.memory.bank.bank"})   # in a package's __init__
    __getattr__ = moved(__name__, "memento_lab.tasks.suites")                     # at a module's old path

Both are module-level ``__getattr__`` functions (PEP 562): the module named is imported on the first
use of one of its names, so ``import memento_lab`` stays fast and loads torch only when asked.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy(package: str, exports: Mapping[str, str], *, rest: str | None = None) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` that imports each exported name from its module on first use;
    any other public name from ``rest`` (the module that had the package's path before it was one)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        if rest is not None and not name.startswith("__"):
            value = getattr(importlib.import_module(rest), name, None)
            if value is not None:
                return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def moved(old: str, new: str) -> Callable[[str], Any]:
    """A ``__getattr__`` for the module ``old`` that moved to ``new``: every name is taken from ``new``,
    with a DeprecationWarning naming the new path (the old one goes in the next release)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # module protocol lookups (e.g. __path__) are not forwarded
            raise AttributeError(name)
        warnings.warn(
            f"{old} moved to {new}: import {name} from there ({old} goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return __getattr__

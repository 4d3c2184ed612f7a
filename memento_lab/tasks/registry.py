"""The suite registry: every kind of suite by name, read by ``load_suite``, the CLI's help and
``memento-lab list suites``.

A kind is a factory declared with ``@suite``; a spec string ``KIND[+VARIANT]:ARG[?NAME=VALUE&...]``
names one (the options after ``?`` are URL-encoded; a kind declares the ones it takes)::

    @suite("my-kind", forms=("my-kind:PATH",), summary="my own tasks")
    def my_kind(spec: SuiteSpec, *, n: int, seed: int) -> Suite:
        return MySuite(spec.arg, n=n, seed=seed)

    load_suite("my-kind:tasks.csv", n=5)

Lazy, with no import side effects: importing ``memento_lab`` registers and imports no suite. The
registry imports the module of a built-in kind (``BUILTIN``) when that kind is asked for, every
built-in module when the whole list is read, and the entry points of the group
``memento_lab.suites`` (how another package adds kinds: ``my-kind = "my_pkg.suites:my_kind"``, a
decorated factory or a plain one) when a name is not built in or the list is read. A notebook
registers its own kinds with the same decorator; re-running the cell replaces the kind. The machinery
is the one registry pattern of ``memento_lab.registry``, shared with the memory methods.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from memento_lab.registry import Registry, normal

if TYPE_CHECKING:
    from memento_lab.tasks.base import Suite

ENTRY_POINTS = "memento_lab.suites"

# kind -> the module that declares it (imported only when the kind is asked for)
BUILTIN: dict[str, str] = {
    "reasoning-gym": "memento_lab.tasks.suites",
    "humaneval": "memento_lab.tasks.suites",
    "deepresearcher": "memento_lab.tasks.suites",
    "table": "memento_lab.tasks.table_suite",
    "jsonl": "memento_lab.tasks.table_suite",
    "control": "memento_lab.tasks.controls",
    "bfcl": "memento_lab.tasks.bfcl",
}


@dataclass(frozen=True)
class SuiteSpec:
    """A parsed spec string: ``jsonl+llm:tasks.jsonl`` -> kind ``jsonl``, variant ``llm``, arg
    ``tasks.jsonl``; ``table:qa.csv?question=prompt`` -> arg ``qa.csv``, options ``{"question": "prompt"}``."""

    text: str
    kind: str
    variant: str = ""
    arg: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SuiteSpec:
        head, _, rest = text.partition(":")
        kind, _, variant = head.strip().lower().partition("+")
        arg, query_mark, query = rest.partition("?")
        options: dict[str, str] = {}
        if query_mark:
            try:
                pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
            except ValueError:
                raise ValueError(
                    f"suite {text!r}: options after '?' must be NAME=VALUE joined by '&'"
                ) from None
            for name, value in pairs:
                if name in options:
                    raise ValueError(f"suite {text!r}: option {name!r} is given twice")
                options[name] = value
        return cls(text=text, kind=kind, variant=variant, arg=arg.strip(), options=tuple(options.items()))

    @property
    def option(self) -> dict[str, str]:
        """The options as a dict (name -> value)."""
        return dict(self.options)


def spec_text(table: Mapping[str, Any]) -> str:
    """The spec string of a suite given as a TOML table: ``kind`` (default ``table``), optional
    ``variant``, ``path`` (or ``arg``), every other key an option (sorted, URL-encoded)::

        {"path": "qa.csv", "question": "prompt", "judge": "f1"} -> "table:qa.csv?judge=f1&question=prompt"
    """
    rest = {str(k): v for k, v in table.items()}
    kind = str(rest.pop("kind", "table"))
    variant = rest.pop("variant", "")
    if "path" in rest and "arg" in rest:
        raise ValueError("suite table: give `path` or `arg`, not both")
    arg = str(rest.pop("path", rest.pop("arg", "")))
    bad = sorted(k for k, v in rest.items() if not isinstance(v, str | int | float | bool))
    if bad:
        raise ValueError(f"suite table: options {bad} must be strings or numbers")
    values = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in sorted(rest.items())}
    query = urlencode(values, safe=":/,.") if values else ""
    return f"{kind}{'+' + variant if variant else ''}:{arg}" + (f"?{query}" if query else "")


SuiteFactory = Callable[..., "Suite"]  # (spec: SuiteSpec, *, n: int, seed: int) -> Suite


@dataclass(frozen=True)
class SuiteKind:
    """One registered kind: its factory, the spec forms it accepts and a one-line summary."""

    name: str
    factory: SuiteFactory
    forms: tuple[str, ...]
    summary: str
    variants: tuple[str, ...] = ()  # accepted ``+VARIANT`` suffixes (none: the kind takes no variant)
    origin: str = ""  # where it is declared: module:function, or the entry point
    options: tuple[str, ...] = ()  # accepted ``?NAME=VALUE`` options (none: the kind takes no options)

    def load(self, spec: SuiteSpec, *, n: int, seed: int) -> Suite:
        if spec.variant and spec.variant not in self.variants:
            accepted = f"choose one of {', '.join(self.variants)}" if self.variants else "it takes none"
            raise ValueError(f"suite {spec.text!r}: unknown {self.name} variant {spec.variant!r}; {accepted}")
        unknown = [name for name, _ in spec.options if name not in self.options]
        if unknown:
            accepted = f"options: {', '.join(self.options)}" if self.options else "it takes no options"
            raise ValueError(f"suite {spec.text!r}: unknown {self.name} option(s) {unknown}; {accepted}")
        return self.factory(spec, n=n, seed=seed)


class _Registry(Registry[SuiteKind]):
    """The kinds known in this process (one instance: ``_REGISTRY``)."""

    def __init__(self) -> None:
        super().__init__(
            "suite kind",
            spec_type=SuiteKind,
            group=ENTRY_POINTS,
            mark="__suite_kinds__",
            broken_error=ImportError,
        )

    def modules(self, name: str | None) -> list[str]:
        if name is None:
            return list(dict.fromkeys(BUILTIN.values()))
        return [BUILTIN[name]] if name in BUILTIN else []

    def entry_point_spec(self, name: str, obj: Any, value: str) -> SuiteKind:
        return _kind(name, obj, summary=f"from {value}")

    def unknown(self, name: str) -> str:
        return f"unknown suite kind {name!r}; valid forms: " + "; ".join(spec_forms())

    def all(self) -> list[SuiteKind]:
        """Every kind, built-in ones first (in ``BUILTIN`` order), then the rest by name."""
        order = {name: i for i, name in enumerate(BUILTIN)}
        return sorted(super().all(), key=lambda k: (order.get(k.name, len(order)), k.name))


_REGISTRY = _Registry()


def _kind(
    name: str,
    factory: SuiteFactory,
    *,
    forms: tuple[str, ...] = (),
    summary: str = "",
    variants: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
) -> SuiteKind:
    return SuiteKind(
        name=normal(name),
        factory=factory,
        forms=tuple(forms) or (f"{name}:ARG",),
        summary=summary or (inspect.getdoc(factory) or "").split("\n")[0],
        variants=tuple(variants),
        origin=f"{factory.__module__}:{factory.__qualname__}",
        options=tuple(options),
    )


def suite(
    name: str,
    *,
    forms: tuple[str, ...] = (),
    summary: str = "",
    variants: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
) -> Callable[[SuiteFactory], SuiteFactory]:
    """Declare a suite kind: ``factory(spec: SuiteSpec, *, n, seed) -> Suite`` under ``name``.

    ``forms`` are the spec forms shown in help and errors (default ``NAME:ARG``), ``summary`` one line
    (default: the factory's docstring), ``variants`` the ``+VARIANT`` suffixes the kind accepts,
    ``options`` the ``?NAME=VALUE`` options (``spec.option``)."""

    def register(factory: SuiteFactory) -> SuiteFactory:
        kind = _kind(name, factory, forms=forms, summary=summary, variants=variants, options=options)
        return _REGISTRY.declare(factory, kind)

    return register


def suite_kind(name: str) -> SuiteKind:
    """The kind called ``name`` (built in, registered, or from an entry point); an unknown name
    raises a ValueError listing the valid forms."""
    return _REGISTRY.get(normal(name))


def suite_kinds() -> list[SuiteKind]:
    """Every kind, built-in ones first (in ``BUILTIN`` order), then the rest by name."""
    return _REGISTRY.all()


def kind_names() -> list[str]:
    """Every kind's name, importing no suite: built-in, registered here, and named by entry points."""
    return list(dict.fromkeys([*BUILTIN, *_REGISTRY.specs, *_REGISTRY.entry_point_names()]))


def spec_help() -> str:
    """The one-line help of a ``--suite`` option (no suite is imported to write it)."""
    return f"a spec KIND[:ARG], KIND one of {' | '.join(kind_names())} (`memento-lab list suites` shows every form)"


def spec_forms() -> list[str]:
    """Every spec form of every kind (what help and errors show)."""
    return [form for kind in suite_kinds() for form in kind.forms]


def load_suite(spec: str, *, n: int = 10, seed: int = 0) -> Suite:
    """A suite from a spec string ``KIND[+VARIANT]:ARG`` (``memento-lab list suites`` shows the
    forms); ``n`` tasks per family (or per subset) where the kind samples, ``seed`` which ones."""
    parsed = SuiteSpec.parse(spec)
    return suite_kind(parsed.kind).load(parsed, n=n, seed=seed)


def describe() -> list[dict[str, Any]]:
    """The kinds as plain rows (name, forms, summary, where declared), then entry points that failed."""
    rows = [
        {"kind": k.name, "forms": list(k.forms), "summary": k.summary, "origin": k.origin}
        for k in suite_kinds()
    ]
    broken = [
        {"kind": n, "forms": [], "summary": "", "origin": "", "error": e} for n, e in _REGISTRY.broken.items()
    ]
    return rows + broken

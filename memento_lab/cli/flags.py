"""Command-line flags generated from a pydantic config's fields, so no field is missing from the CLI.

    add_flags(parser, FitConfig)                      # --epochs, --lr, --freeze-encoder/--no-freeze-encoder, ...
    config = build(FitConfig, given(args, FitConfig), source="command line")

``ExperimentConfig`` (``memento-lab run``) and ``FitConfig`` (``memento-lab retriever train``) both
get their flags here. A flag's help is the field's description (then ``help[name]``) and its default.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

M = typing.TypeVar("M", bound=BaseModel)


def flag_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """(parser, choices) for a field annotation (Optional and Literal unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return flag_type(args[0])
    if origin is typing.Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    if origin is list:
        return (lambda s: [x for x in s.split(",") if x]), None
    return (annotation if annotation in (int, float, str) else str), None


def add_flags(
    p: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    help: Mapping[str, str] | None = None,
    short: Mapping[str, tuple[str, ...]] | None = None,
    skip: Collection[str] = (),
) -> None:
    """One flag per field of ``model`` (but those in ``skip``), default unset (``None``: the model's
    default, or a config file's value, stands); booleans get ``--name`` / ``--no-name``."""
    help, short = help or {}, short or {}
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flags = (f"--{name.replace('_', '-')}", *short.get(name, ()))
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        described = "; ".join(t for t in (field.description, help.get(name)) if t)
        help_ = f"{described} (default: {default!r})".strip().replace("%", "%%")
        if field.annotation is bool:
            p.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_)
            continue
        parse, choices = flag_type(field.annotation)
        p.add_argument(*flags, dest=name, type=parse, choices=choices, default=None, help=help_)


def given(args: argparse.Namespace, model: type[BaseModel], *, skip: Collection[str] = ()) -> dict[str, Any]:
    """The fields of ``model`` set on the command line (but those in ``skip``)."""
    return {
        k: getattr(args, k)
        for k in model.model_fields
        if k not in skip and getattr(args, k, None) is not None
    }


def build(model: type[M], values: dict[str, Any], *, source: str) -> M:
    """``model`` from plain values; an unknown or bad field is one error naming it and its source."""
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}; fields: {', '.join(model.model_fields)}")
    try:
        return model(**values)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"{source}: field {field!r}: {first['msg']} (got {first.get('input')!r})") from None

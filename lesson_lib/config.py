"""Frozen dataclass configs built from plain dicts, with errors that name the bad key.

Every config in the package (model, training, run) is a frozen dataclass. They are built from
JSON or notebook parameters through `from_dict`, which refuses unknown keys and wrong types
with a message naming the key, instead of failing later deep inside torch.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin is typing.Union or str(origin) == "types.UnionType":
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def from_dict(cls: type[T], values: dict[str, Any] | None = None, **overrides: Any) -> T:
    """Build the dataclass `cls` from `values` and keyword overrides, checking names and types."""
    merged = {**(values or {}), **overrides}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} key(s) {unknown}; valid keys are: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    clean: dict[str, Any] = {}
    for key, value in merged.items():
        if not _type_ok(value, hints[key]):
            raise TypeError(
                f"{cls.__name__}.{key} must be {_type_name(hints[key])}, got {value!r} "
                f"({type(value).__name__})"
            )
        if hints[key] is float and isinstance(value, int):
            value = float(value)
        if typing.get_origin(hints[key]) is tuple and isinstance(value, list):
            value = tuple(value)
        clean[key] = value
    return cls(**clean)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-ready dict (tuples become lists)."""
    return dataclasses.asdict(config)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")

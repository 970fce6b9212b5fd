"""Declared options: each setting states its type, default, allowed values or range and one line
of help, in one place that validation, ``--help`` and the presets all read.

A dataclass field made with :func:`option` carries that declaration in its metadata;
:func:`check_options` coerces and checks every field of an instance (one ``ValueError`` naming the
field), :func:`describe_option` renders the declaration for a help text.

>>> from dataclasses import dataclass
>>> @dataclass
... class Example:
...     q: float = option(0.7, "exponent of the loss", low=0.0, high=1.0, low_open=True)
...     def __post_init__(self):
...         check_options(self)
>>> Example(q=1).q
1.0
>>> Example(q=0.0)
Traceback (most recent call last):
...
ValueError: q must be a finite number in (0.0, 1.0], got 0.0
>>> describe_option(fields(Example)[0])
'float in (0.0, 1.0]; default 0.7: exponent of the loss'
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, field, fields
from typing import Any, Callable, Sequence

__all__ = ["option", "check_options", "check_value", "describe_option"]


def option(default: Any = MISSING, doc: str = "", *, default_factory: Callable[[], Any] | None = None,
           choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
           low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> Any:
    """A dataclass field with its declaration: help ``doc``, ``choices`` (a sequence, or a callable
    returning one, for registries filled later) or a range ``[low, high]`` (``low_open`` /
    ``high_open`` exclude the end; numbers must be finite)."""
    meta = {"doc": doc, "choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _choices(f: Field) -> tuple[Any, ...] | None:
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def _range_text(f: Field) -> str:
    low, high = f.metadata.get("low"), f.metadata.get("high")
    if low is not None and high is not None:
        return (f"{'(' if f.metadata['low_open'] else '['}{low}, {high}{')' if f.metadata['high_open'] else ']'}")
    if low is not None:
        return f"{'>' if f.metadata['low_open'] else '>='} {low}"
    if high is not None:
        return f"{'<' if f.metadata['high_open'] else '<='} {high}"
    return ""


def check_value(f: Field, value: Any) -> Any:
    """``value`` coerced to field ``f``'s type (int -> float) and checked against its choices and
    range; ``ValueError`` naming the field otherwise."""
    value = _coerce(f.name, f.type, value)
    if value is None:
        return value
    choices = _choices(f)
    if choices is not None and value not in choices:
        raise ValueError(f"{f.name} must be one of {choices}, got {value!r}")
    low, high = f.metadata.get("low"), f.metadata.get("high")
    if low is None and high is None:
        return value
    numbers = value if isinstance(value, list) else [value]
    for x in numbers:
        ok = math.isfinite(x) if isinstance(x, float) else True
        if low is not None:
            ok = ok and (x > low if f.metadata["low_open"] else x >= low)
        if high is not None:
            ok = ok and (x < high if f.metadata["high_open"] else x <= high)
        if not ok:
            kind = "a finite number" if isinstance(x, float) else "an integer"
            where = f"in {_range_text(f)}" if low is not None and high is not None else _range_text(f)
            raise ValueError(f"{f.name} must be {kind} {where}, got {value!r}")
    return value


def check_options(obj: Any) -> None:
    """Coerce and check every declared field of the dataclass instance ``obj`` in place."""
    for f in fields(obj):
        if "doc" in f.metadata:
            object.__setattr__(obj, f.name, check_value(f, getattr(obj, f.name)))


def describe_option(f: Field) -> str:
    """``"TYPE[ in RANGE|, one of {CHOICES}]; default D: doc"`` for a help text."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = t
    choices = _choices(f)
    if choices is not None:
        text += ", one of {" + ", ".join(str(c) for c in choices) + "}"
    elif _range_text(f):
        rng = _range_text(f)
        text += f" in {rng}" if rng[0] in "[(" else f" {rng}"
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    text += f"; default {default!r}" if isinstance(default, str) else f"; default {default}"
    doc = f.metadata.get("doc", "")
    return f"{text}: {doc}" if doc else text


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    """Check ``value`` against the field's annotation (a string under ``from __future__``)."""
    t = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    bad = ValueError(f"{name} must be of type {t}, got {value!r} ({type(value).__name__})")
    if t.endswith(" | None"):
        return None if value is None else _coerce(name, t[: -len(" | None")], value)
    if t == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if t == "list[int]":
        if not isinstance(value, (list, tuple)) or any(
                isinstance(x, bool) or not isinstance(x, int) for x in value):
            raise bad
        return list(value)
    raise TypeError(f"no coercion rule for field {name} of type {t}")  # pragma: no cover

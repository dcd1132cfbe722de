"""Configuration values checked against the dataclass field types before a section is built.

Values come from ``--set`` (parsed as YAML), configuration files and flags; a value of the wrong type
is refused in one line naming the key, the expected type and the value (``optim.lr: expected a number,
got 'abc'``) instead of failing later inside a comparison. Lenient where the meaning is plain: a whole
float for an integer (``4.0``), a number written as text (``'1e-3'``, which YAML reads as text), a
number for text (a file name ``18``) and one value for a list (``tile_shape: 256``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from biounet.errors import BiounetError


class FieldTypeError(BiounetError, ValueError):
    """A value whose type does not suit its field; the message is ``expected ..., got ...``."""


def checked_values(cls: type, values: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``values`` converted to ``cls``'s field types, and the problems ``(key, message)`` of those that cannot be."""
    hints = typing.get_type_hints(cls)
    out, problems = dict(values), []
    for field in dataclasses.fields(cls):
        if field.name in values and field.name in hints:
            try:
                out[field.name] = convert(values[field.name], hints[field.name])
            except FieldTypeError as error:
                problems.append((field.name, str(error)))
    return out, problems


def convert(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` (see the module docstring), or FieldTypeError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option)
            except FieldTypeError:
                continue
        raise FieldTypeError(f"expected {describe(hint)}, got {value!r}")
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise FieldTypeError(f"expected {describe(hint)}, got {value!r}")
    if origin in (list, tuple):
        return _sequence(value, hint, origin, args)
    if hint in (int, float, bool, str):
        return _scalar(value, hint)
    return value  # a type this check does not know: the dataclass decides


def _scalar(value: Any, hint: type) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, bool):
        pass  # true/false is no number and no text
    elif hint is int:
        number = _number(value)
        if number is not None and float(number).is_integer():
            return int(number)
    elif hint is float:
        number = _number(value)
        if number is not None:
            return float(number)
    elif isinstance(value, (str, int, float)):
        return str(value)
    raise FieldTypeError(f"expected {describe(hint)}, got {value!r}")


def _number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _sequence(value: Any, hint: Any, origin: type, args: tuple[Any, ...]) -> Any:
    given = value
    if not isinstance(value, (list, tuple)):
        if origin is list and args and args[0] in (int, float, str):
            value = [value]  # one value for a list of one
        else:
            raise FieldTypeError(f"expected {describe(hint)}, got {value!r}")
    if not args:
        return origin(value)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise FieldTypeError(f"expected {describe(hint)}, got {value!r}")
        return tuple(convert(item, arg) for item, arg in zip(value, args))
    element = args[0]
    if typing.get_origin(element) in (list, tuple):  # nested (per-level sizes): a number may stand for a level
        return origin(item if isinstance(item, (list, tuple)) else _scalar(item, int) for item in value)
    try:
        return origin(convert(item, element) for item in value)
    except FieldTypeError:
        raise FieldTypeError(f"expected {describe(hint)}, got {given!r}") from None


def describe(hint: Any) -> str:
    """``hint`` in words: ``a number``, ``a whole number or null``, ``one of 'sgd', 'adamw'`` ..."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        words = [describe(a) for a in args if a is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(words: str) -> str:
    plurals = {"a whole number": "whole numbers", "a number": "numbers", "text": "texts"}
    return plurals.get(words, words)


__all__ = ["FieldTypeError", "checked_values", "convert", "describe"]

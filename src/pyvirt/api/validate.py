"""Strict request checks, daemon side: bodies and query strings against the table's declared types.

A field the type does not declare, a missing required field or a value of the wrong JSON type is
refused with :class:`~pyvirt.errors.InvalidArgument` naming the field, before any handler runs; the
handler then reads only validated values. Type hints are read once per type and cached.
"""

from __future__ import annotations

import types as pytypes
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

from pyvirt.api import types
from pyvirt.api.table import FALSE_WORDS, TRUE_WORDS, Action
from pyvirt.errors import InvalidArgument

_HINTS: dict[type, dict[str, Any]] = {}
_JSON_NAMES = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}


def resolve(name: str) -> Any:
    """The type ``name`` of :mod:`pyvirt.api.types` (as the table names it)."""
    try:
        return getattr(types, name)
    except AttributeError:
        raise LookupError(f"pyvirt.api.types has no type '{name}'") from None


def hints(td: type) -> dict[str, Any]:
    """A TypedDict's fields and their types (``NotRequired`` stripped; see ``__required_keys__``)."""
    found = _HINTS.get(td)
    if found is None:
        found = _HINTS[td] = get_type_hints(td)
    return found


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expected(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if tp in _JSON_NAMES:
        return _JSON_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, pytypes.UnionType):
        return " or ".join(_expected(a) for a in get_args(tp))
    if origin is list:
        return "an array"
    return "an object"  # a TypedDict or a dict[str, ...]


def check_value(tp: Any, value: object, where: str) -> Any:
    """``value`` checked against ``tp``; ``where`` names it in errors (``'input.pool'``)."""
    origin = get_origin(tp)
    if is_typeddict(tp):
        return check_object(tp, value, where)
    if origin in (Union, pytypes.UnionType):
        for option in get_args(tp):
            try:
                return check_value(option, value, where)
            except InvalidArgument:
                continue
    elif origin is Literal:
        if value in get_args(tp) and not isinstance(value, bool):
            return value
    elif origin is list:
        if isinstance(value, list):
            (item,) = get_args(tp)
            return [check_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            key_tp, item = get_args(tp)
            assert key_tp is str, "the API types' objects have string keys"
            return {k: check_value(item, v, f"{where}.{k}") for k, v in value.items()}
    elif tp is type(None):
        if value is None:
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"the API types use {tp!r}, which requests cannot be checked against")
    found = repr(value) if origin is Literal and isinstance(value, str) else _describe(value)
    raise InvalidArgument(f"field '{where}' must be {_expected(tp)}, not {found}")


def check_object(td: Any, value: object, where: str = "") -> dict[str, Any]:
    """A JSON object checked against the TypedDict ``td``: no unknown field, every required one."""
    prefix = f"{where}." if where else ""
    if not isinstance(value, dict):
        what = f"field '{where}'" if where else "the request body"
        raise InvalidArgument(f"{what} must be a JSON object, not {_describe(value)}")
    fields = hints(td)
    for key in value:
        if key not in fields:
            raise InvalidArgument(f"unknown field '{prefix}{key}' in the request body")
    for key in sorted(td.__required_keys__):
        if key not in value:
            raise InvalidArgument(f"missing field '{prefix}{key}' in the request body")
    return {key: check_value(fields[key], item, prefix + key) for key, item in value.items()}


def check_body(action: Action, body: object) -> dict[str, Any]:
    """A request body (``None`` when empty) checked against ``action``'s request type."""
    if action.request is None:
        if body is None or body == {}:
            return {}
        if isinstance(body, dict):
            raise InvalidArgument(
                f"unknown field '{next(iter(body))}' in the request body ({action.name} takes none)"
            )
        raise InvalidArgument(f"{action.name} takes no request body")
    return check_object(resolve(action.request), {} if body is None else body)


def check_query(action: Action, query: typing.Mapping[str, str]) -> dict[str, Any]:
    """Query parameters parsed by their declared types; absent ones are False, 0 or None."""
    for key in query:
        if key not in action.query:
            raise InvalidArgument(f"unknown query parameter '{key}'")
    args: dict[str, Any] = {}
    for key, kind in action.query.items():
        text = query.get(key)
        if kind == "bool":
            if text is not None and text not in TRUE_WORDS and text not in FALSE_WORDS:
                raise InvalidArgument(f"query parameter '{key}' must be a boolean (1 or 0), not '{text}'")
            args[key] = text in TRUE_WORDS
        elif kind == "int":
            if text and not (text.isascii() and text.isdigit()):
                raise InvalidArgument(f"query parameter '{key}' must be a non-negative integer, not '{text}'")
            args[key] = int(text) if text else 0
        elif kind == "str!" and not text:
            raise InvalidArgument(f"missing query parameter '{key}'")
        else:
            args[key] = text
    return args

"""The OpenAPI 3.1 document of pyvirtd's API, generated from the table and the types.

``python -m pyvirt.api.openapi > docs/openapi.json`` regenerates the committed copy (a test fails
while the two differ); the daemon serves the same document at ``GET /v1/openapi.json``. JSON Schemas
come from the TypedDicts' hints: every object is closed (``additionalProperties: false``), a field
without ``NotRequired`` is required, ``X | None`` may be null. Each operation carries the table's
extra facts as ``x-pyvirt-*`` fields (mutating, secret, stream, error codes).
"""

from __future__ import annotations

import json
import sys
import types as pytypes
from typing import Any, Literal, Union, get_args, get_origin, is_typeddict

from pyvirt.api.table import ACTIONS, API_VERSION, TEXT_RESPONSES, Action, error_codes
from pyvirt.api.validate import hints, resolve
from pyvirt.errors import ERRORS_BY_CODE

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}
_QUERY: dict[str, dict[str, Any]] = {
    "bool": {"type": "boolean"},
    "int": {"type": "integer", "minimum": 0},
    "str": {"type": "string"},
    "str!": {"type": "string"},
}


class SchemaBuilder:
    """JSON Schemas of API types; each TypedDict once, under ``components/schemas``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, td: Any) -> dict[str, Any]:
        name = td.__name__
        if name not in self.components:
            self.components[name] = {}  # reserved first: a type may refer to itself
            fields = hints(td)
            schema: dict[str, Any] = {"type": "object"}
            if td.__doc__ and not td.__doc__.startswith(f"{name}("):
                schema["description"] = " ".join(td.__doc__.split())
            schema["properties"] = {key: self.schema(tp) for key, tp in fields.items()}
            required = sorted(td.__required_keys__)
            if required:
                schema["required"] = required
            schema["additionalProperties"] = False
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def schema(self, tp: Any) -> dict[str, Any]:
        origin = get_origin(tp)
        if is_typeddict(tp):
            return self.ref(tp)
        if tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp]}
        if tp is type(None):
            return {"type": "null"}
        if tp is Any:
            return {}
        if origin is Literal:
            values = list(get_args(tp))
            return {"type": _PRIMITIVES[type(values[0])], "enum": values}
        if origin is list:
            (item,) = get_args(tp)
            return {"type": "array", "items": self.schema(item)}
        if origin is dict:
            _key, value = get_args(tp)
            return {"type": "object", "additionalProperties": self.schema(value)}
        if origin in (Union, pytypes.UnionType):
            options = get_args(tp)
            simple = [_PRIMITIVES.get(o) or ("null" if o is type(None) else None) for o in options]
            if all(simple):
                return {"type": simple}
            return {"anyOf": [self.schema(o) for o in options]}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def named(self, name: str) -> dict[str, Any]:
        """The schema of a type the table names (a TypedDict, or an alias such as ``DomainList``)."""
        return self.schema(resolve(name))


def _status_codes(action: Action) -> dict[int, list[str]]:
    by_status: dict[int, list[str]] = {}
    for code in error_codes(action):
        by_status.setdefault(ERRORS_BY_CODE[code].http_status, []).append(code)
    return dict(sorted(by_status.items()))


def _operation(action: Action, builder: SchemaBuilder) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": action.name,
        "summary": action.summary,
        "tags": [action.name.split(".")[0]],
    }
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in action.path_params
    ]
    for name, kind in action.query.items():
        param = {"name": name, "in": "query", "required": kind == "str!", "schema": _QUERY[kind]}
        params.append(param)
    if params:
        op["parameters"] = params
    if action.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": builder.named(action.request)}},
        }
    responses: dict[str, Any] = {}
    if action.stream is not None:
        responses["101"] = {"description": f"switched to the {action.stream} stream"}
    else:
        assert action.response is not None
        media = TEXT_RESPONSES.get(action.response, "application/json")
        responses["200"] = {
            "description": "success",
            "content": {media: {"schema": builder.named(action.response)}},
        }
    for status, codes in _status_codes(action).items():
        responses[str(status)] = {
            "description": "error: " + ", ".join(codes),
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/Error"},
                            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
                        ]
                    }
                }
            },
        }
    op["responses"] = responses
    op["x-pyvirt-mutating"] = action.mutating
    op["x-pyvirt-secret"] = action.secret
    if action.stream is not None:
        op["x-pyvirt-stream"] = action.stream
    op["x-pyvirt-errors"] = error_codes(action)
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every action of the table."""
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for action in ACTIONS:
        paths.setdefault(action.path, {})[action.method.lower()] = _operation(action, builder)
    error = {
        "type": "object",
        "description": "Every error reply: a code of pyvirt.errors and a message for people.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "enum": sorted(ERRORS_BY_CODE)},
                    "message": {"type": "string"},
                },
                "required": ["code", "message"],
                "additionalProperties": False,
            }
        },
        "required": ["error"],
        "additionalProperties": False,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pyvirtd API",
            "version": str(API_VERSION),
            "description": (
                "The REST API of pyvirtd, over its Unix sockets (read-write and read-only) and mutual "
                "TLS. Generated from pyvirt.api.table; streams switch protocols (x-pyvirt-stream)."
            ),
        },
        "paths": paths,
        "components": {"schemas": {"Error": error, **dict(sorted(builder.components.items()))}},
    }


def render() -> str:
    """The document as committed in ``docs/openapi.json``."""
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())

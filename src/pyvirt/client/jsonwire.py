"""JSON for the client's requests and replies, without the ``json`` package's start-up cost.

``import json`` pulls in ``re`` and ``enum`` (about 4 ms, a fifth of a CLI call). The scanner and
encoder ``json`` itself uses are C functions in ``_json``; this module drives them directly, with
the same strictness as ``json.loads``/``json.dumps``. Where ``_json`` is absent (other Pythons),
it falls back to ``json``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"


def _no_default(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity, as json.loads accepts them
    memo: dict[str, str] = {}  # the scanner's key cache, as in JSONDecoder


_scan: Callable[[str, int], tuple[Any, int]] | None = None
_encode: Callable[[Any, int], list[str]] | None = None
try:
    import _json

    _scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # duck-typed JSONDecoder
    _encode = _json.make_encoder(
        None, _no_default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
except (ImportError, AttributeError, TypeError):  # pragma: no cover - CPython always has _json
    pass


def loads(data: bytes | str) -> Any:
    """Decode one JSON document; ValueError if it is malformed or followed by anything but blanks."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = 0
    while start < len(text) and text[start] in _WHITESPACE:
        start += 1
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise ValueError(f"malformed JSON at character {err.value}") from None
    finally:
        _ScanContext.memo.clear()
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if end != len(text):
        raise ValueError(f"extra data after JSON at character {end}")
    return value


def dumps(value: Any) -> str:
    """Encode ``value`` compactly-but-readably, ASCII only (as ``json.dumps(value)``)."""
    if _encode is None:  # pragma: no cover
        import json

        return json.dumps(value)
    return "".join(_encode(value, 0))

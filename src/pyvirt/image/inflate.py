"""Inflating deflate streams (vmdk grains, qcow2 clusters) with ISA-L when it is installed.

``isal`` (Intel's ISA-L through python-isal) inflates what zlib inflates, to the same bytes, and
checks the same checksums, much faster: a 64 KiB grain of random data (stored blocks, as zlib's
``compress()`` writes it) 8x, most of zlib's time there being the Adler-32 check, which ISA-L
does with SIMD. Deflating stays with zlib, whose output qemu-img's is compared with byte for byte.
Where ``isal`` is missing (a platform without its wheels), zlib does the same work. Both let go of
the GIL while they inflate. Loaded on first use (``pyvirt img`` start-up imports neither).
"""

from __future__ import annotations

import zlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from types import ModuleType

Data = bytes | bytearray | memoryview

_lib: list[ModuleType] = []
_errors: list[type[Exception]] = [zlib.error]


class InflateError(ValueError):
    """The stream does not inflate (in the library's own words)."""


def _module() -> ModuleType:
    if not _lib:
        try:
            from isal import isal_zlib
        except ImportError:
            _lib.append(zlib)
        else:
            isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # (its stub)
            if isal_error not in _errors:
                _errors.append(isal_error)
            _lib.append(isal_zlib)
    return _lib[0]


def decompress(data: Data, bufsize: int) -> bytes:
    """A whole zlib stream (header, deflate data, Adler-32) inflated, into a buffer of ``bufsize``
    bytes to start with (the size expected: a bigger result grows it)."""
    lib = _module()
    try:
        out: bytes = lib.decompress(data, bufsize=bufsize)
    except tuple(_errors) as err:
        raise InflateError(str(err)) from err
    return out


def decompress_raw(data: Data, max_length: int) -> bytes:
    """Raw deflate data (no header, no checksum) inflated to at most ``max_length`` bytes; what
    follows the stream, or lies past that length, is ignored.

    Inflated in one call, a stream may refer back to any byte it has produced (up to deflate's
    32 KiB), whatever window it was written with: zlib inflates qcow2's 4 KiB-window clusters so
    for QEMU, and ISA-L, told of a 4 KiB window, would refuse a longer reference, so both are told
    of 32 KiB."""
    lib = _module()
    try:
        out: bytes = lib.decompressobj(-15).decompress(data, max_length)
    except tuple(_errors) as err:
        raise InflateError(str(err)) from err
    return out

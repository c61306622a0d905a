"""Size units, the one parser: libvirt XML (``<memory unit='MiB'>``, to KiB, the unit libvirt stores)
and virsh's scaled integers on the command line (``10G``, ``512MiB``, ``1000KB``, to bytes).

Units follow libvirt's rules: ``b``/``bytes`` are bytes; a bare letter or ``<letter>iB`` is a power of
1024 and ``<letter>B`` a power of 1000; the letter's case does not matter. Values round up to whole KiB.
"""

from __future__ import annotations

from pyvirt.errors import InvalidArgument

KIB = 1024
MAX_KIB = 16 * 1024**3  # 16 TiB, the largest size pyvirt accepts anywhere
_EXPONENTS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def unit_factor(unit: str) -> int:
    """Bytes in one ``unit``; InvalidArgument for a unit libvirt does not know."""
    name = unit.strip()
    lowered = name.lower()
    if lowered in ("b", "byte", "bytes"):
        return 1
    if name and lowered[0] in _EXPONENTS:
        suffix = lowered[1:]
        exponent = _EXPONENTS[lowered[0]]
        if suffix in ("", "ib"):
            return int(1024**exponent)
        if suffix == "b":
            return int(1000**exponent)
    raise InvalidArgument(f"unknown size unit '{unit}' (use b, KB, KiB, MB, MiB, GB, GiB, TB or TiB)")


def parse_scaled(text: str, *, what: str | None = None) -> int:
    """virsh's scaled integer in bytes: digits and an optional unit (``10G``, ``512 MiB``, ``1000KB``).

    No fractions, no sign, below 2**63; anything else is InvalidArgument, virsh's ``Malformed size``.
    """
    body = text.strip()
    digits = len(body) - len(body.lstrip("0123456789"))
    number, unit = body[:digits], body[digits:].strip()
    value = -1
    if number:
        try:
            value = int(number) * (unit_factor(unit) if unit else 1)
        except InvalidArgument:
            value = -1
    if not 0 <= value < 1 << 63:
        if what is None:
            raise InvalidArgument(f"Malformed size {text}")
        raise InvalidArgument(
            f"{what}: malformed size '{text}' (a whole number and a unit: 512M, 10G, 1000KB)"
        )
    return value


def parse_size_kib(value: str, unit: str | None, *, element: str, allow_zero: bool = False) -> int:
    """``value`` in ``unit`` (KiB when None) as a whole number of KiB, rounded up.

    Refuses non-numeric values, zero (unless ``allow_zero``) and anything above 16 TiB, naming ``element``.
    """
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(
            f"invalid size '{value}' in element '{element}': expected a non-negative integer"
        )
    try:
        factor = unit_factor(unit if unit is not None else "KiB")
    except InvalidArgument as err:
        raise InvalidArgument(f"{err.message} in element '{element}'") from err
    number = int(text)
    if number > MAX_KIB * KIB:  # cheap guard before multiplying huge numbers
        raise InvalidArgument(f"size {value} {unit or 'KiB'} in element '{element}' is larger than 16 TiB")
    kib = -(-number * factor // KIB)
    if kib == 0 and not allow_zero:
        raise InvalidArgument(f"size in element '{element}' must be greater than zero")
    if kib > MAX_KIB:
        raise InvalidArgument(f"size {value} {unit or 'KiB'} in element '{element}' is larger than 16 TiB")
    return kib


def format_kib(kib: int) -> str:
    """A human-readable size (``1.5 GiB``) for messages."""
    size = float(kib)
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or name == "TiB":
            return f"{size:g} {name}"
        size /= 1024
    raise AssertionError("unreachable")

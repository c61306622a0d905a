"""Sizes written and printed the way qemu-img does: ``10G``, ``512M``, ``+1G``; ``1 GiB``.

qemu-img's dialect of the one size parser's units (:func:`pyvirt.conf.units.unit_factor`): a letter
is always binary (``KB`` and ``KiB`` are both ``K``), a fraction is allowed (``1.5G``), a bare number
is bytes.
"""

from __future__ import annotations

import math

from pyvirt.image.errors import ImageError

_LETTERS = "bkmgtpe"
MAX_IMAGE_SIZE = (1 << 63) - 512


def parse_size(text: str, *, what: str = "size") -> int:
    """Parse ``1024``, ``64k``, ``10G``, ``1.5T`` (binary units; a bare number is bytes)."""
    s = text.strip()
    low = s.lower()
    if low.endswith("ib"):
        low = low[:-2]
    elif len(low) > 1 and low.endswith("b") and low[-2] in "kmgtpe":
        low = low[:-1]
    mult = 1
    if low and low[-1] in _LETTERS:
        from pyvirt.conf.units import unit_factor

        mult = unit_factor(low[-1])  # "k" is binary there too
        low = low[:-1]
    try:
        if low.isdigit():
            value = int(low) * mult
        else:
            f = float(low)
            if not math.isfinite(f) or f < 0:
                raise ValueError(low)
            value = int(f * mult)
    except ValueError:
        raise ImageError(
            f"Invalid {what} specified: {text!r}. You may use k, M, G, T, P or E suffixes for "
            "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."
        ) from None
    if value > MAX_IMAGE_SIZE:
        raise ImageError(f"Invalid {what} specified: {text!r} is too large (max {MAX_IMAGE_SIZE})")
    return value


def parse_relative_size(text: str, current: int) -> int:
    """Parse ``+1G``, ``-512M`` relative to ``current``, or an absolute size."""
    s = text.strip()
    if s[:1] in "+-":
        delta = parse_size(s[1:])
        new = current + delta if s[0] == "+" else current - delta
        if new < 0:
            raise ImageError("New image size must be positive")
        return new
    return parse_size(s)


def size_to_str(value: int) -> str:
    """qemu's ``size_to_str``: three significant digits and a binary unit, e.g. ``196 KiB``."""
    suffixes = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
    _, exp = math.frexp(value / (1000.0 / 1024.0))
    i = max(0, (exp - 1) // 10)
    i = min(i, len(suffixes) - 1)
    div = 1 << (i * 10)
    return f"{value / div:0.3g} {suffixes[i]}B"

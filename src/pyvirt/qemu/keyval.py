"""QEMU's ``key=value,key=value`` option strings, where ``,,`` stands for a literal comma."""

from __future__ import annotations


def escape(value: str) -> str:
    """``value`` as one item of an option string (its commas doubled)."""
    return value.replace(",", ",,")


def split(text: str) -> list[str]:
    """The items of an option string, ``,,`` read back as a comma."""
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1 : i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(current)
    return parts

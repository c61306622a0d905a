"""Output in virsh's layouts: tables, ``Label:   value`` blocks, and one-line messages."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any


def table(header: list[str], rows: list[list[str]]) -> str:
    """virsh's table: each cell led by a space, columns padded to width + 2, a dashed rule."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        out = ""
        for i, cell in enumerate(cells):
            out += " " + cell
            if i < len(cells) - 1:
                out += " " * (widths[i] - len(cell) + 2)
        return out + "\n"

    text = line(header) + "-" * sum(w + 3 for w in widths) + "\n"
    for row in rows:
        text += line(row)
    return text


def fields(pairs: list[tuple[str, Any]], width: int = 15) -> str:
    """``Label:`` padded to ``width``, a space, then the value (virsh's dominfo/nodeinfo layout)."""
    return "".join(f"{label:<{width}} {value}\n" for label, value in pairs)


def emit(text: str) -> None:
    sys.stdout.write(text)


def message(text: str) -> None:
    """A virsh one-line result message, followed by virsh's blank line."""
    sys.stdout.write(text + "\n\n")


def emit_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2) + "\n")

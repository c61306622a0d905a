"""QEMU command lines read in tests: the JSON values of chosen options (``-blockdev``, ``-object``)."""

from __future__ import annotations

import json
from typing import Any


def json_values(argv: list[str], *options: str) -> list[dict[str, Any]]:
    """The values given in JSON to each of ``options`` in ``argv``, in order (key=value ones skipped)."""
    return [
        json.loads(argv[i + 1])
        for i, arg in enumerate(argv[:-1])
        if arg in options and argv[i + 1][:1] == "{"
    ]

"""QEMU command lines read in tests: the JSON values of chosen options (``-blockdev``, ``-object``), and
the devices without their PCI placement (for tests of what a device does, not where it sits)."""

from __future__ import annotations

import json
import re
from typing import Any

_PLACEMENT = re.compile(r",bus=pcie?\.\d+,addr=0x[0-9a-f]+(?:\.0x[0-9a-f]+)?(?:,multifunction=on)?")


def unplaced(argv: list[str]) -> list[str]:
    """``argv`` with the ``bus``/``addr`` of each key=value PCI device taken out."""
    return [_PLACEMENT.sub("", arg, count=1) for arg in argv]


def json_values(argv: list[str], *options: str) -> list[dict[str, Any]]:
    """The values given in JSON to each of ``options`` in ``argv``, in order (key=value ones skipped)."""
    return [
        json.loads(argv[i + 1])
        for i, arg in enumerate(argv[:-1])
        if arg in options and argv[i + 1][:1] == "{"
    ]

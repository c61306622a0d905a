"""Fault and load tests: short forms in ``make test``, long forms with ``PYVIRT_STRESS=long`` (``make
stress``). Each test reports its figures on stdout and, with ``PYVIRT_STRESS_REPORT=DIR``, as
``DIR/NAME.json`` (the source of the figures in docs/RELIABILITY.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

LONG = os.environ.get("PYVIRT_STRESS") == "long"


def scale(short: int, long: int) -> int:
    return long if LONG else short


def report(name: str, figures: dict[str, object]) -> None:
    figures = {"form": "long" if LONG else "short", **figures}
    print(f"\n{name}: {json.dumps(figures, indent=1)}")
    out = os.environ.get("PYVIRT_STRESS_REPORT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(figures, indent=1) + "\n")

"""Test-suite wide settings: the repository root on sys.path so tests can import tests.support, and
Hypothesis without its per-example deadline (a loaded 2-core CI machine makes timing a false failure;
the properties are what the tests check)."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile("pyvirt", deadline=None)
settings.load_profile("pyvirt")

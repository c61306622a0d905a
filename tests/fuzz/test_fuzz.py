"""The short form of the fuzz run (``make fuzz`` runs 1,000,000 inputs): each target gets a few thousand
mutants, none may crash or hang. ``PYVIRT_FUZZ_INPUTS`` changes the count per target."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from pyvirt.errors import XMLError
from tests.fuzz.harness import Mutator, Target, run_target
from tests.fuzz.targets import TARGETS

INPUTS = int(os.environ.get("PYVIRT_FUZZ_INPUTS", "2000"))


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_no_crash_no_hang(target: Target, tmp_path: Path) -> None:
    outcome = run_target(target, INPUTS, seed=1, work=tmp_path / "work", out=tmp_path / "out", limit=10)
    found = (
        sorted(p.read_text() for p in (tmp_path / "out").glob("*.txt"))
        if outcome.crashes + outcome.hangs
        else []
    )
    assert (outcome.crashes, outcome.hangs) == (0, 0), "\n\n".join(found[:3])
    assert outcome.inputs == INPUTS


class Fixed(Mutator):
    """These inputs, in order."""

    def __init__(self, inputs: list[bytes]) -> None:
        self.inputs = iter(inputs)

    def __call__(self) -> bytes:
        return next(self.inputs)


def test_the_harness_tells_refusals_crashes_and_hangs_apart(tmp_path: Path) -> None:
    def feed(data: bytes) -> None:
        if data == b"refuse":
            raise XMLError("refused")
        if data == b"crash":
            raise ValueError("a crash")
        while True:  # a hang
            pass

    def setup(work: Path, rng: random.Random) -> tuple[Mutator, Callable[[bytes], None]]:
        return Fixed([b"refuse", b"crash", b"hang", b"refuse"]), feed

    outcome = run_target(Target("self", setup), 4, 0, tmp_path / "w", tmp_path / "out", 0.2)
    assert (outcome.inputs, outcome.refused, outcome.crashes, outcome.hangs) == (4, 2, 1, 1)
    assert outcome.kinds == {"ValueError": 1}
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "out").glob("*.bin")) == ["crash", "hang"]

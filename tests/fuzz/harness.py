"""A mutational fuzzer for pyvirt's parsers of untrusted input: domain, network and pool XML; qcow2,
VMDK and VDI images (headers and the tables behind them); HTTP requests to the daemon's server.

Each target starts from a seed corpus (the XML documents of tests/data, images made by pyvirt's own
creation code, well-formed requests for every route of the API table) and feeds mutants of it to the
code under test. Mutations: bit flips, bytes set to boundary values (0, 0x7f, 0xff, 2^31, 2^32-1,
2^63 in both byte orders), random bytes inserted, ranges deleted or duplicated, splices of two seeds,
and for text, tokens of the format inserted (XML markup and entities, libvirt's numbers in octal and
hex, HTTP header names, methods and framing).

A **crash** is any exception other than pyvirt's own (:class:`~pyvirt.errors.PyvirtError` and its
subclasses) -- for HTTP, a 500 reply or an exception escaping the server; a **hang** is an input that
takes longer than the time limit (an interval timer interrupts it). Each crash or hang is written to
the output directory with its traceback. ``python -m tests.fuzz --help`` runs it by hand; ``make fuzz``
runs the long form (1,000,000 inputs), tests/fuzz/test_fuzz.py a short one in ``make test``.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import signal
import struct
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pyvirt.errors import PyvirtError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests/data"

INTERESTING = [
    *(struct.pack("<I", v) for v in (0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)),
    *(struct.pack(">I", v) for v in (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)),
    *(struct.pack("<Q", v) for v in (1 << 63, (1 << 64) - 1, 1 << 40)),
    *(struct.pack(">Q", v) for v in (1 << 63, (1 << 64) - 1, 1 << 40)),
]


class Hang(Exception):
    """The input ran past the time limit."""


@dataclass
class Outcome:
    target: str
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    refused: int = 0  # inputs refused with pyvirt's own error: the expected outcome for most mutants
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "inputs": self.inputs,
            "crashes": self.crashes,
            "hangs": self.hangs,
            "refused_with_pyvirt_error": self.refused,
            "seconds": round(self.seconds, 1),
            "inputs_per_second": round(self.inputs / self.seconds) if self.seconds else 0,
        }


class Mutator:
    """Mutants of a corpus of byte strings."""

    def __init__(self, seeds: list[bytes], tokens: list[bytes], rng: random.Random, hot: int = 0) -> None:
        """``hot``: most mutations land in the first ``hot`` bytes (an image's metadata), if given."""
        assert seeds
        self.seeds = seeds
        self.tokens = tokens or [b"\0"]
        self.rng = rng
        self.hot = hot

    def __call__(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(self.seeds))
        for _ in range(1 + min(int(rng.expovariate(0.5)), 12)):
            self._one(data)
        return bytes(data)

    def _pos(self, data: bytearray) -> int:
        return self.rng.randrange(len(data) + 1)

    def _one(self, data: bytearray) -> None:
        rng = self.rng
        op = rng.randrange(8)
        if not data:
            data += rng.choice(self.tokens)
            return
        hot = self.hot and rng.random() < 0.8
        pos = rng.randrange(min(len(data), self.hot) if hot else len(data))
        if op == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            value = rng.choice(INTERESTING)
            data[pos : pos + len(value)] = value
        elif op == 3:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            del data[pos : pos + rng.randint(1, 64)]
        elif op == 5:
            end = min(len(data), pos + rng.randint(1, 256))
            data[self._pos(data) : self._pos(data)] = data[pos:end]
        elif op == 6:
            data[self._pos(data) : self._pos(data)] = rng.choice(self.tokens)
        else:
            other = rng.choice(self.seeds)
            cut = rng.randrange(len(other) + 1)
            data[pos:] = other[cut:]


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Target:
    """One fuzz target: how to make its mutator and how to feed it one input."""

    name: str
    setup: Callable[[Path, random.Random], tuple[Mutator, Callable[[bytes], None]]]


def run_target(target: Target, inputs: int, seed: int, work: Path, out: Path, limit: float) -> Outcome:
    """Feed ``inputs`` mutants to ``target``; crashes and hangs are saved under ``out``."""
    rng = random.Random(f"{target.name}:{seed}")
    work.mkdir(parents=True, exist_ok=True)
    mutate, feed = target.setup(work, rng)
    outcome = Outcome(target.name)
    started = time.monotonic()
    for _ in range(inputs):
        data = mutate()
        outcome.inputs += 1
        try:
            with time_limit(limit):
                feed(data)
        except PyvirtError:
            outcome.refused += 1
        except Hang:
            outcome.hangs += 1
            save(out, target.name, "hang", data, traceback.format_exc())
        except Exception as err:
            outcome.crashes += 1
            kind = f"{type(err).__name__}"
            outcome.kinds[kind] = outcome.kinds.get(kind, 0) + 1
            save(out, target.name, "crash", data, traceback.format_exc())
    outcome.seconds = time.monotonic() - started
    return outcome


def save(out: Path, target: str, what: str, data: bytes, trace: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:16]
    (out / f"{target}-{what}-{digest}.bin").write_bytes(data)
    (out / f"{target}-{what}-{digest}.txt").write_text(trace)

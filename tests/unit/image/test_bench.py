"""The request and flush order of :func:`pyvirt.image.bench.run_bench`, as qemu-img's bench_cb issues
them, on an image that records what it is asked to do."""

from __future__ import annotations

import threading

import pytest

from pyvirt.image.base import Image
from pyvirt.image.bench import BenchSpec, FailedRequest, run_bench


class Recorder(Image):
    format = "raw"

    def __init__(self, size: int, *, hold_first: bool = False) -> None:
        self.size = size
        self.readonly = False
        self.ops: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.busy = 0
        self.max_busy = 0
        self.busy_at_flush: list[int] = []
        self.gate = threading.Event()
        # hold_first: the first request waits (up to 10 s) for a second one to be issued beside it, so that
        # overlap is shown however late the scheduler runs the other threads
        self.overlapped = threading.Event()
        self.hold_first = hold_first

    def _op(self, kind: str, offset: int) -> None:
        with self.lock:
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
            self.ops.append((kind, offset))
            if self.busy > 1:
                self.overlapped.set()
        if self.hold_first:
            self.overlapped.wait(10)
        self.gate.wait(0.001)  # lets other requests overlap this one
        with self.lock:
            self.busy -= 1

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._op("r", offset)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        assert bytes(data) == bytes([0x5A]) * len(data)
        self._op("w", offset)

    def flush(self) -> None:
        with self.lock:
            self.busy_at_flush.append(self.busy)
            self.ops.append(("f", 0))


def _run(img: Recorder, **kw: object) -> None:
    args: dict[str, object] = {"count": 20, "depth": 4, "pattern": 0x5A, **kw}
    run_bench(img, BenchSpec(**args))  # type: ignore[arg-type]


def test_requests_go_from_the_offset_by_step_and_wrap_at_the_end() -> None:
    img = Recorder(10 * 4096, hold_first=True)
    _run(img, count=25, offset=8192, step=8192, depth=3)
    offsets = sorted(o for _, o in img.ops)
    want = sorted((8192 + i * 8192) % (10 * 4096) for i in range(25))
    assert offsets == want
    assert 1 < img.max_busy <= 3


def test_depth_bounds_the_requests_in_flight() -> None:
    img = Recorder(1 << 20)
    _run(img, count=200, depth=1)
    assert img.max_busy == 1
    assert [o for _, o in img.ops] == [i * 4096 % (1 << 20) for i in range(200)]


def test_drained_flushes_run_alone_every_interval_and_at_the_end() -> None:
    img = Recorder(1 << 20)
    _run(img, count=20, depth=4, write=True, flush_interval=4)
    kinds = "".join(k for k, _ in img.ops)
    assert kinds == ("wwww" + "f") * 5
    assert img.busy_at_flush == [0] * 5


def test_undrained_flushes_overlap_requests() -> None:
    img = Recorder(1 << 20)
    _run(img, count=20, depth=2, write=True, flush_interval=4, drain=False)
    # As bench_cb counts: when 16, 12, 8, 4 and 0 requests are left to issue, and 0 again for the
    # last request in flight (nothing is issued after it).
    assert [k for k, _ in img.ops].count("f") == 6
    assert [k for k, _ in img.ops].count("w") == 20


def test_writethrough_flushes_every_write_and_unsafe_does_not_sync() -> None:
    img = Recorder(1 << 20)
    _run(img, count=6, depth=2, write=True, cache="writethrough")
    assert "".join(k for k, _ in img.ops) == "wf" * 6
    img = Recorder(1 << 20)
    _run(img, count=6, write=True, cache="unsafe")
    assert img.durable is False


def test_a_request_past_the_end_fails_the_run() -> None:
    img = Recorder(8192)
    with pytest.raises(FailedRequest, match="Failed request: Input/output error"):
        _run(img, count=3, offset=4096, size=8192)
    with pytest.raises(FailedRequest):
        _run(Recorder(0), count=1)
    _run(Recorder(0), count=0)


def test_the_lines_qemu_img_prints() -> None:
    assert BenchSpec(count=5, write=True, size=512, depth=2, offset=7, step=9).header() == (
        "Sending 5 write requests, 512 bytes each, 2 in parallel (starting at offset 7, step size 9)\n"
    )
    assert (
        BenchSpec(count=5, size=1, depth=2, step=1, flush_interval=3)
        .header()
        .endswith(
            "Sending 5 read requests, 1 bytes each, 2 in parallel (starting at offset 0, step size 1)\n"
            "Sending flush every 3 requests\n"
        )
    )

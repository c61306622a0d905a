"""``qemu-img bench``: COUNT requests of SIZE bytes, DEPTH of them in flight, through the image library.

The requests go out as qemu-img's ``bench_cb`` issues them: from OFFSET, each STEP bytes further on,
wrapping at the image's end (``offset %= size``); while DEPTH requests are in flight no other is
issued. DEPTH worker threads each take the next request in that order (the file I/O releases the GIL,
so reads really overlap); writes go into the image one at a time, as the library writes.

With a flush interval, every INTERVAL completed requests a flush is issued: draining first (no request
in flight during it) unless ``drain`` is off, when it runs beside the requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyvirt.image.errors import ImageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.base import Image
    from pyvirt.image.pagecache import DropBehind


class FailedRequest(ImageError):
    """A request failed: qemu-img prints ``Failed request: <strerror>`` and exits 1."""


@dataclass(frozen=True)
class BenchSpec:
    """One ``qemu-img bench`` run as its options give it."""

    count: int = 75000
    depth: int = 64
    size: int = 4096
    offset: int = 0
    step: int = 4096
    write: bool = False
    pattern: int = 0
    flush_interval: int = 0
    drain: bool = True
    cache: str = "writeback"

    def header(self) -> str:
        """The lines qemu-img prints before the run."""
        out = (
            f"Sending {self.count} {'write' if self.write else 'read'} requests, {self.size} bytes each, "
            f"{self.depth} in parallel (starting at offset {self.offset}, step size {self.step})\n"
        )
        if self.flush_interval:
            out += f"Sending flush every {self.flush_interval} requests\n"
        return out


FLUSH = -1


class _Run:
    """One run's state, changed under ``cond`` exactly as qemu-img's ``bench_cb`` changes its
    ``BenchData``: ``n`` requests not yet completed, ``in_flight`` of them issued, ``in_flush`` while
    a drained flush runs. A completion issues the next requests (or a flush) into ``ready``, which
    the worker threads take from."""

    def __init__(self, img: Image, spec: BenchSpec, dropper: DropBehind | None) -> None:
        import threading
        from collections import deque

        self.img = img
        self.n = spec.count
        self.in_flight = 0
        self.depth = spec.depth
        self.size = spec.size
        self.offset = spec.offset
        self.step = spec.step
        self.write = spec.write
        self.flush_interval = spec.flush_interval
        self.drain = spec.drain
        self.writethrough = spec.cache in ("writethrough", "directsync")
        self.dropper = dropper
        self.in_flush = False
        self.ready: deque[int] = deque()
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.io_lock = threading.Lock()  # the image is written and flushed by one thread at a time
        self.data = bytes([spec.pattern]) * spec.size

    def start(self) -> None:
        with self.cond:
            self._issue()

    def worker(self) -> None:
        buf = memoryview(bytearray(self.size))
        try:
            while True:
                with self.cond:
                    while not self.ready and self.error is None and self.n > 0:
                        self.cond.wait()
                    if self.error is not None or not self.ready:
                        self.cond.notify_all()
                        return
                    off = self.ready.popleft()
                if off == FLUSH:
                    with self.io_lock:
                        self.img.flush()
                    with self.cond:
                        if self.in_flush:  # a drained flush is over: the next requests go out
                            self.in_flush = False
                            self._issue()
                    continue
                self._request(off, buf)
                with self.cond:
                    self._completed()
        except BaseException as err:  # the main thread raises it
            with self.cond:
                if self.error is None:
                    self.error = err
                self.cond.notify_all()

    def _completed(self) -> None:
        remaining = self.n - self.in_flight  # requests not yet issued
        self.n -= 1
        self.in_flight -= 1
        if self.flush_interval and remaining % self.flush_interval == 0:
            if not self.in_flight or not self.drain:
                self.in_flush = self.drain
                self.ready.append(FLUSH)
                self.cond.notify()
            if self.drain:
                if self.n == 0:
                    self.cond.notify_all()
                return
        self._issue()
        if self.n == 0:
            self.cond.notify_all()

    def _issue(self) -> None:
        while self.n > self.in_flight and self.in_flight < self.depth:
            self.in_flight += 1
            self.ready.append(self.offset)
            self.offset = (self.offset + self.step) % self.img.size
            self.cond.notify()

    def _request(self, off: int, buf: memoryview) -> None:
        n = self.size
        if off + n > self.img.size:
            raise FailedRequest("Failed request: Input/output error")
        if self.write:
            with self.io_lock:
                self.img.write(off, self.data)
                if self.writethrough:
                    self.img.flush()
                if self.dropper is not None:
                    self.dropper.advance(n)
        elif n:
            self.img.readinto(off, buf)
            if self.dropper is not None:
                with self.io_lock:
                    self.dropper.advance(n)


def run_bench(img: Image, spec: BenchSpec) -> float:
    """Run the requests on the open ``img``; returns the seconds they took (qemu-img's figure).

    ``spec.cache``: writethrough/directsync flush after every write, none/directsync keep the image
    out of the page cache as the run goes (:mod:`pyvirt.image.pagecache`), unsafe never syncs.
    """
    from pyvirt.image.pagecache import DropBehind, bypasses, image_fds

    img.durable = spec.cache != "unsafe"
    dropper = None
    if bypasses(spec.cache):
        fds = image_fds(img)
        dropper = DropBehind([] if spec.write else fds, fds if spec.write else [])
    run = _Run(img, spec, dropper)
    if spec.count and img.size == 0:
        raise FailedRequest("Failed request: Input/output error")
    import threading

    threads = [threading.Thread(target=run.worker, daemon=True) for _ in range(min(spec.depth, spec.count))]
    t0 = time.monotonic()
    run.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if run.error is not None:
        raise run.error
    if dropper is not None:
        dropper.drop()
    return elapsed

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

from pyvirt.image.errors import ImageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from pyvirt.image.base import Image
    from pyvirt.image.pagecache import DropBehind


class FailedRequest(ImageError):
    """A request failed: qemu-img prints ``Failed request: <strerror>`` and exits 1."""


def header_lines(
    *, count: int, write: bool, size: int, depth: int, offset: int, step: int, flush_interval: int
) -> str:
    out = (
        f"Sending {count} {'write' if write else 'read'} requests, {size} bytes each, {depth} in parallel "
        f"(starting at offset {offset}, step size {step})\n"
    )
    if flush_interval:
        out += f"Sending flush every {flush_interval} requests\n"
    return out


FLUSH = -1


class _Run:
    """One run's state, changed under ``cond`` exactly as qemu-img's ``bench_cb`` changes its
    ``BenchData``: ``n`` requests not yet completed, ``in_flight`` of them issued, ``in_flush`` while
    a drained flush runs. A completion issues the next requests (or a flush) into ``ready``, which
    the worker threads take from."""

    def __init__(
        self,
        img: Image,
        *,
        count: int,
        depth: int,
        size: int,
        offset: int,
        step: int,
        write: bool,
        pattern: int,
        flush_interval: int,
        drain: bool,
        writethrough: bool,
        dropper: DropBehind | None,
    ) -> None:
        import threading
        from collections import deque

        self.img = img
        self.n = count
        self.in_flight = 0
        self.depth = depth
        self.size = size
        self.offset = offset
        self.step = step
        self.write = write
        self.flush_interval = flush_interval
        self.drain = drain
        self.writethrough = writethrough
        self.dropper = dropper
        self.in_flush = False
        self.ready: deque[int] = deque()
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.io_lock = threading.Lock()  # the image is written and flushed by one thread at a time
        self.data = bytes([pattern]) * size

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


def run_bench(
    img: Image,
    *,
    count: int,
    depth: int,
    size: int,
    offset: int,
    step: int,
    write: bool,
    pattern: int,
    flush_interval: int,
    drain: bool,
    cache: str,
) -> float:
    """Run the requests on the open ``img``; returns the seconds they took (qemu-img's figure).

    ``cache``: writethrough/directsync flush after every write, none/directsync keep the image out
    of the page cache as the run goes (:mod:`pyvirt.image.pagecache`), unsafe never syncs.
    """
    from pyvirt.image.pagecache import DropBehind, bypasses, image_fds

    img.durable = cache != "unsafe"
    dropper = None
    if bypasses(cache):
        fds = image_fds(img)
        dropper = DropBehind([] if write else fds, fds if write else [])
    run = _Run(
        img,
        count=count,
        depth=depth,
        size=size,
        offset=offset,
        step=step,
        write=write,
        pattern=pattern,
        flush_interval=flush_interval,
        drain=drain,
        writethrough=cache in ("writethrough", "directsync"),
        dropper=dropper,
    )
    if count and img.size == 0:
        raise FailedRequest("Failed request: Input/output error")
    import threading

    threads = [threading.Thread(target=run.worker, daemon=True) for _ in range(min(depth, count))]
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

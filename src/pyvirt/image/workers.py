"""Worker threads for ``convert``: a small pool on ``_thread`` and ``_queue``.

``concurrent.futures`` would do, but importing it loads ``logging``, ``threading``, ``re`` and more
(about 8 ms, a quarter of converting an empty image); convert needs only submit, result and
shutdown.
"""

from __future__ import annotations

import _thread
from _queue import Empty, SimpleQueue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Generic, TypeVar

    T = TypeVar("T")
else:
    T = None

    class Generic:
        """Lets ``Job[T]`` be written at run time without the typing module."""

        def __class_getitem__(cls, item: object) -> type:
            return cls


class Cancelled(Exception):
    """The pool was shut down before the job ran."""


class Job(Generic[T]):
    """A submitted call; :meth:`result` waits for it and returns its value or raises its error."""

    __slots__ = ("_args", "_done", "_error", "_fn", "_value")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()

    def run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as e:  # handed to whoever waits for the result
            self._error = e
        finally:
            self._args = ()
            self._done.release()

    def cancel(self) -> None:
        self._error = Cancelled()
        self._done.release()

    def result(self) -> T:
        with self._done:
            pass
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Pool:
    """``workers`` threads, started on first use, running jobs in submission order."""

    def __init__(self, workers: int) -> None:
        self._queue: SimpleQueue[Job[Any] | None] = SimpleQueue()
        self._workers = max(1, workers)
        self._exits: list[_thread.LockType] = []

    def submit(self, fn: Callable[..., T], *args: Any) -> Job[T]:
        job: Job[T] = Job(fn, args)
        if len(self._exits) < self._workers:
            gone = _thread.allocate_lock()
            gone.acquire()
            self._exits.append(gone)
            _thread.start_new_thread(self._work, (gone,))
        self._queue.put(job)
        return job

    def _work(self, gone: _thread.LockType) -> None:
        try:
            while (job := self._queue.get()) is not None:
                job.run()
        finally:
            gone.release()

    def shutdown(self) -> None:
        """Cancel the jobs not yet started, then wait for the running ones and the threads."""
        while True:
            try:
                job = self._queue.get_nowait()
            except Empty:
                break
            if job is not None:
                job.cancel()
        for _ in self._exits:
            self._queue.put(None)
        for gone in self._exits:
            with gone:
                pass
        self._exits.clear()

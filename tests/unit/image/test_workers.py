"""The convert worker pool: results, errors and cancellation come back to the submitter."""

from __future__ import annotations

import _thread
import time

import pytest

from pyvirt.image.workers import Cancelled, Pool


def test_results_come_back_in_each_job() -> None:
    pool = Pool(2)
    try:
        jobs = [pool.submit(pow, i, 2) for i in range(50)]
        assert [j.result() for j in jobs] == [i * i for i in range(50)]
    finally:
        pool.shutdown()


def test_a_jobs_error_is_raised_by_result_and_the_pool_goes_on() -> None:
    pool = Pool(1)
    try:
        bad = pool.submit(int, "not a number")
        good = pool.submit(len, "abc")
        with pytest.raises(ValueError, match="not a number"):
            bad.result()
        assert good.result() == 3
    finally:
        pool.shutdown()


def test_shutdown_cancels_what_has_not_started_and_waits_for_what_has() -> None:
    pool = Pool(1)
    gate = _thread.allocate_lock()
    gate.acquire()
    finished: list[str] = []

    def first() -> None:
        with gate:
            time.sleep(0.05)
            finished.append("first")

    running = pool.submit(first)
    queued = pool.submit(finished.append, "second")
    time.sleep(0.05)
    _thread.start_new_thread(gate.release, ())
    pool.shutdown()
    assert finished == ["first"]  # shutdown returned only after the running job ended
    running.result()
    with pytest.raises(Cancelled):
        queued.result()


def test_threads_start_only_as_jobs_come() -> None:
    pool = Pool(4)
    before = _thread._count()
    pool.submit(len, "x").result()
    assert _thread._count() == before + 1
    pool.shutdown()
    deadline = time.monotonic() + 5
    while _thread._count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _thread._count() == before

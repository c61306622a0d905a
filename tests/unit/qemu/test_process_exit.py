"""A process's exit seen through a pidfd (pyvirt.qemu.process): kill_and_wait, as the daemon ends a stray
QEMU (SIGKILL) and a domain's swtpm (SIGTERM, then SIGKILL), returns only once the process has exited;
watch_exit, as it watches swtpm and virtiofsd, calls back on the event loop once it has."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pyvirt.errors import OperationFailed
from pyvirt.qemu import process

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(60)"
)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def sleeper(
    children: list[subprocess.Popen[bytes]],
    code: str = "import time; print('ready', flush=True); time.sleep(60)",
) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    children.append(child)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    return child


def test_sigkill_at_once_and_the_process_has_exited_on_return(
    children: list[subprocess.Popen[bytes]],
) -> None:
    child = sleeper(children)
    process.kill_and_wait(child.pid)
    assert child.poll() == -signal.SIGKILL  # exited already: poll() does not wait


def test_term_first_ends_a_process_that_obeys_it(children: list[subprocess.Popen[bytes]]) -> None:
    child = sleeper(children)
    process.kill_and_wait(child.pid, 30.0, term=True)
    assert child.poll() == -signal.SIGTERM


def test_term_first_then_sigkill_for_a_process_that_ignores_sigterm(
    children: list[subprocess.Popen[bytes]],
) -> None:
    child = sleeper(children, IGNORES_TERM)
    process.kill_and_wait(child.pid, 0.2, term=True)
    assert child.poll() == -signal.SIGKILL


def test_a_process_already_gone_is_no_error(children: list[subprocess.Popen[bytes]]) -> None:
    child = sleeper(children)
    child.kill()
    child.wait()
    process.kill_and_wait(child.pid)


def test_a_process_that_outlives_sigkill_is_an_error(
    children: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    class NeverReady:
        def register(self, fd: int, mask: int) -> None:
            pass

        def poll(self, timeout: int) -> list[tuple[int, int]]:
            return []

    child = sleeper(children, IGNORES_TERM)
    monkeypatch.setattr(process.select, "poll", NeverReady)
    with pytest.raises(OperationFailed, match=rf"process {child.pid} did not exit after SIGKILL"):
        process.kill_and_wait(child.pid, 0.01, term=True)


def test_watch_exit_calls_back_once_the_process_has_exited(children: list[subprocess.Popen[bytes]]) -> None:
    child = sleeper(children)

    async def main() -> int | None:
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        assert process.watch_exit(child.pid, lambda: done.set_result(child.poll()))
        await asyncio.sleep(0)
        assert not done.done()  # still running
        child.terminate()
        return await asyncio.wait_for(done, 60)  # a bound on the wait, not a measure of it

    assert asyncio.run(main()) == -signal.SIGTERM


def test_watch_exit_of_a_process_already_gone(children: list[subprocess.Popen[bytes]]) -> None:
    child = sleeper(children)
    child.kill()
    child.wait()

    async def main() -> bool:
        return process.watch_exit(child.pid, lambda: pytest.fail("called back for no process"))

    assert asyncio.run(main()) is False

"""``pyvirt``'s entry point: it exits without the interpreter's teardown only when that loses nothing
(output flushed, status kept, atexit handlers and other threads still honoured)."""

from __future__ import annotations

import subprocess
import sys

ENV = {"PYVIRT_DEFAULT_URI": "qemu+unix:///system?socket=/nonexistent", "PATH": "/usr/bin:/bin"}


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**ENV, "PYTHONPATH": ":".join(sys.path)},
    )


def test_output_is_complete_through_a_pipe() -> None:
    # The help (~7 KB) stays in stdout's 8 KiB buffer until the exit flushes it.
    code = "import sys; sys.argv = ['pyvirt', *sys.argv[1:]]; from pyvirt.cli.main import {}"
    fast = python(code.format("run; run()"), "help")
    plain = python(code.format("main; sys.exit(main())"), "help")
    assert fast.returncode == plain.returncode == 0
    assert len(fast.stdout) > 4096 and fast.stdout == plain.stdout


def test_the_exit_status_and_error_are_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyvirt.cli.main", "no-such-verb"], capture_output=True, text=True, env=ENV
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: unknown command: 'no-such-verb'")


def test_atexit_handlers_still_run() -> None:
    result = python(
        "import atexit, sys; atexit.register(lambda: print('atexit ran'));"
        "sys.argv = ['pyvirt', '--version']; from pyvirt.cli.main import run; run()"
    )
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "atexit ran"


def test_other_threads_are_waited_for() -> None:
    # The thread waits for a line on stdin, sent only once the command has failed: an exit that did
    # not wait for the thread would end the process before it prints.
    code = (
        "import sys, threading;"
        "threading.Thread(target=lambda: (sys.stdin.readline(), print('thread done'))).start();"
        "sys.argv = ['pyvirt', 'no-such-verb']; from pyvirt.cli.main import run; run()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "PYTHONPATH": ":".join(sys.path)},
    )
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("error: unknown command")
    out, _ = proc.communicate("go\n")
    assert proc.returncode == 1
    assert out == "thread done\n"

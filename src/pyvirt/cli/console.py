"""``pyvirt console``: a raw terminal on the domain's serial port; Ctrl+] (byte 0x1d) detaches.

The console is a WebSocket stream of the daemon's (binary messages both ways), so this verb, like
``event`` and the volume transfers, is the only kind that loads the WebSocket code.

On a terminal, stdin is put in raw mode and restored on exit. With stdin a pipe, its bytes are sent
as typed; the byte 0x1d detaches, and end of input leaves the session open until the guest side
closes or the timeout given with ``--timeout`` passes.
"""

from __future__ import annotations

import os
import select
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection
    from pyvirt.client.websocket import WebSocket

ESCAPE = b"\x1d"


def cmd_console(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.domain import _domain

    conn = opts.connect()
    dom = _domain(conn, str(a["domain"]))
    timeout = a.opt("timeout")
    # --safe: "only connect if safe console handling is supported". It always is: the daemon never
    # shares a console, a second session is refused unless --force takes the console over.
    return attach(
        conn,
        dom.name,
        force=a.flag("force"),
        history=a.flag("history"),
        timeout=float(timeout) if timeout else None,
        devname=a.opt("devname"),
    )


def attach(
    conn: Connection,
    name: str,
    *,
    force: bool = False,
    history: bool = False,
    timeout: float | None = None,
    devname: str | None = None,
) -> int:
    import time

    from pyvirt.cli.domain import CommandFailed
    from pyvirt.client.api import Domain
    from pyvirt.errors import PyvirtError

    try:  # ``name`` is already resolved: a handle without a lookup
        ws = Domain(conn, name).console(force=force, history=history, devname=devname)
    except PyvirtError as err:
        raise CommandFailed(f"Failed to open console for domain '{name}'", err) from err
    out = sys.stdout.buffer
    sys.stdout.write(f"Connected to domain '{name}'\nEscape character is ^] (Ctrl + ])\n")
    sys.stdout.flush()
    stdin_fd = sys.stdin.fileno()
    tty_state = None
    if os.isatty(stdin_fd):
        import termios
        import tty

        tty_state = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)
    watch: list[WebSocket | int] = [ws, stdin_fd]
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if deadline is not None and wait == 0:
                break
            alive = ws.alive_for()  # the daemon pings an idle stream: silence means it is gone
            if alive is not None and (wait is None or alive < wait):
                wait = alive
            readable = [ws] if ws.buffered() else select.select(watch, [], [], wait)[0]
            if not readable:
                ws.check_alive()
            if ws in readable:
                try:
                    message = ws.receive(timeout=0)
                except TimeoutError:  # only part of a message so far
                    message = b""
                if message is None:
                    break
                out.write(message.encode() if isinstance(message, str) else message)
                out.flush()
            if stdin_fd in readable:
                data = os.read(stdin_fd, 4096)
                if not data:
                    watch = [ws]  # input ended: keep showing output until the guest side ends
                    continue
                if ESCAPE in data:
                    before = data.split(ESCAPE, 1)[0]
                    if before:
                        ws.send(before)
                    break
                ws.send(data)
    finally:
        if tty_state is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, tty_state)
        ws.close()
    sys.stdout.write("\n")
    return 0

"""The run-time side of a SPICE display: the port an autoport display gets, its password over QMP.

QEMU picks a VNC port itself (``to=99``) but needs a SPICE port given, so start chooses one as libvirt
does: the first from 5900 that nothing listens on at the display's address. The password is set over
QMP while the guest is paused (it never appears on the command line).
"""

from __future__ import annotations

import socket

from pyvirt.conf.domain import GraphicsConfig
from pyvirt.errors import OperationFailed
from pyvirt.qemu.monitor import Monitor

FIRST_PORT, LAST_PORT = 5900, 65535


def free_port(address: str, first: int = FIRST_PORT) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for port in range(first, LAST_PORT + 1):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return port
    raise OperationFailed(f"no free port for the SPICE display on {address} ({first}-{LAST_PORT})")


def needs_port(gfx: GraphicsConfig) -> bool:
    listens = not (gfx.listen_socket or gfx.listen_none)
    return gfx.type == "spice" and listens and (gfx.autoport or gfx.port in (None, -1))


async def configure_spice(monitor: Monitor, gfx: GraphicsConfig) -> None:
    if gfx.passwd:
        args = {"protocol": "spice", "password": gfx.passwd}
        if gfx.connected is not None:
            args["connected"] = gfx.connected
        await monitor.execute("set_password", args)


async def expire_password(monitor: Monitor, gfx: GraphicsConfig) -> None:
    """``passwdValidTo``: the display's password expires then (conf.graphics_local), else never, as
    libvirt sets it with each password."""
    if gfx.passwd and gfx.type in ("vnc", "spice"):
        from pyvirt.conf.graphics_local import expires_at

        when = "never" if gfx.passwd_valid_to is None else str(expires_at(gfx.passwd_valid_to, "graphics"))
        await monitor.execute("expire_password", {"protocol": gfx.type, "time": when})

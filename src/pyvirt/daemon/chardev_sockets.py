"""Chardev UNIX sockets outside the domain's channel directory: ``<serial|console|parallel|channel
type='unix'><source mode='bind|connect' path=.../>`` where Landlock keeps QEMU from making files.

``bind`` (pyvirt's reading of a source without a mode): the daemon binds and listens on the path
itself, replacing a stale socket there as libvirt does (any other kind of file is refused, naming it),
and QEMU inherits the listening socket (``-chardev socket,fd=N,server=on``, libvirt's way too): QEMU
is given that one socket, never the directory. The socket file is the daemon's user's, mode 0660,
and is removed when the domain stops.

``connect``: QEMU connects by path itself, as it must to ``<reconnect>`` (Landlock does not govern
connecting to a socket): the directories on the way must be searchable by QEMU's user, and an
existing socket is handed to that user while the domain runs (:mod:`pyvirt.qemu.ownership`), as
libvirt's DAC labelling does. Sockets in the channel directory QEMU creates there itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from pyvirt.conf.domain import CharDevConfig, Domain
from pyvirt.errors import OperationFailed

MODE = 0o660


def outside(dom: Domain, channel_dir: Path) -> Iterator[CharDevConfig]:
    """The domain's UNIX chardevs with a path outside ``channel_dir``."""
    devices = dom.devices
    consoles = [c for c in devices.consoles if c.target_type not in (None, "serial")]  # else: the serial's
    others = [rng.egd for rng in devices.rngs if rng.egd] + [r.source for r in devices.redirdevs if r.source]
    others += [card.source for card in devices.smartcards if card.source]
    for dev in (*devices.serials, *consoles, *devices.parallels, *devices.channels, *others):
        if dev.type == "unix" and dev.source_path and Path(dev.source_path).parent != channel_dir:
            yield dev


def listens(dev: CharDevConfig) -> bool:
    return dev.source_mode != "connect"


def bind(dom: Domain, channel_dir: Path) -> dict[str, socket.socket]:
    """A listening socket bound at each path the domain's QEMU must listen on outside ``channel_dir``
    (one per path: a console on its serial shares it). The caller closes them once QEMU has them; on
    failure none is left bound."""
    bound: dict[str, socket.socket] = {}
    try:
        for dev in outside(dom, channel_dir):
            path = dev.source_path
            assert path is not None
            if listens(dev) and path not in bound:
                bound[path] = _listen(path, dev.kind)
    except BaseException:
        for path, sock in bound.items():
            sock.close()
            remove([path])
        raise
    return bound


def _listen(path: str, kind: str) -> socket.socket:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OperationFailed(f"cannot listen on {kind} socket '{path}': it exists and is not a socket")
        os.unlink(path)  # a socket no one serves any more (its QEMU is gone), as libvirt replaces it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, MODE)
        sock.listen(1)
    except OSError as err:
        sock.close()
        raise OperationFailed(f"cannot listen on {kind} socket '{path}': {err.strerror}") from err
    return sock


def remove(paths: list[str]) -> None:
    """Remove the sockets the daemon bound for a domain that stopped (those still sockets)."""
    for path in paths:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)


def close(bound: dict[str, socket.socket]) -> None:
    """Close the daemon's copies of the sockets (QEMU inherited its own)."""
    for sock in bound.values():
        sock.close()

"""A vhost-user NIC plugged into a running domain (attach-interface TYPE vhostuser, or attach-device of
its ``<interface type='vhostuser'>``), as libvirt 9.0 plugs one: the socket's chardev
(``chardev-add``), then its ``vhost-user`` netdev, then the device (:mod:`pyvirt.daemon.nics`).

The checks are those of a start (:func:`pyvirt.conf.net_sockets.require_nic`): mode ``client`` only
(in mode ``server`` QEMU's ``netdev_add`` would wait for a backend to connect, holding its monitor),
a backend listening, and a warning when the guest's memory is not shared. QEMU connects to the
socket by its path (QEMU 7.2's vhost-user netdev takes no chardev of a passed descriptor: it could not
pass the backend descriptors on it), so the socket is handed to QEMU's user first, as at start, and
given back when the domain stops.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pyvirt.conf import net_sockets
from pyvirt.errors import OperationFailed

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain, InterfaceConfig
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.qemu.process import QemuProcess


def chardev_of(netdev: str) -> str:
    """The chardev of a vhost-user netdev ``hostnetN``: ``charnetN``, as at start."""
    return "char" + netdev.removeprefix("host")


async def plug(
    reg: DomainRegistry, proc: QemuProcess, live: Domain, iface: InterfaceConfig, netdev: str
) -> dict[str, Any]:
    """The chardev of ``iface`` added to ``proc``'s QEMU; returns the arguments of its ``netdev_add``
    (:func:`unplug` removes the chardev again if what follows fails)."""
    net_sockets.check(iface)
    net_sockets.require_nic(live, iface)
    path = iface.socket["path"]
    held = path in proc.record.owners
    reg.confinement.hand_over_more(proc.record, path, writable=True, what="vhost-user socket")
    data: dict[str, Any] = {"addr": {"type": "unix", "data": {"path": path}}, "server": False}
    if "reconnect" in iface.socket:  # libvirt: enabled='no' is reconnect=0
        data["reconnect"] = int(iface.socket.get("timeout", "1")) if iface.socket["reconnect"] == "yes" else 0
    try:
        await proc.monitor.execute(
            "chardev-add", {"id": chardev_of(netdev), "backend": {"type": "socket", "data": data}}
        )
    except OperationFailed:
        if not held:
            reg.confinement.give_back(proc.record, [path])
        raise
    return {**net_sockets.netdev(iface, 0, netdev), "chardev": chardev_of(netdev)}


async def unplug(proc: QemuProcess, netdev: str) -> None:
    """Remove the chardev of vhost-user netdev ``netdev`` (once the netdev is gone)."""
    with contextlib.suppress(OperationFailed):
        await proc.monitor.execute("chardev-remove", {"id": chardev_of(netdev)})

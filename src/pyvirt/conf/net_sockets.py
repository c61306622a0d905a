"""Interfaces without a tap, on a socket, as libvirt 9.0 gives them to QEMU:

- ``<interface type='vhostuser'>``: a vhost-user net backend (DPDK, OVS-DPDK, VPP) on a UNIX socket,
  ``<source type='unix' path mode>`` (``<reconnect enabled timeout/>`` in client mode): ``-chardev
  socket,id=charnetN,path=[,server=on]`` + ``-netdev vhost-user,chardev=`` (``queues`` from ``<driver
  queues>``) under a ``virtio-net-pci``. ``mode='client'``: QEMU connects to the backend's socket;
  ``mode='server'``: QEMU listens and waits at start until the backend connects.
- ``<interface type='server'|'client'|'mcast'|'udp'>``: QEMU's ``socket`` netdev, guests' Ethernet
  frames over TCP (``listen=``/``connect=``), multicast or UDP (``udp=``, ``localaddr=``) between QEMUs.

The backend maps the guest's memory, so a vhost-user NIC carries traffic only when it is shared
(``<memoryBacking><access mode='shared'/>``, or ``memAccess='shared'`` on every NUMA cell); libvirt 9.0
leaves that to the user and starts the domain all the same (its guest RAM a plain
``memory-backend-ram``): QEMU connects to the backend and fails only when the guest's driver starts the
NIC (``Failed initializing vhost-user memory map`` in the domain's log). pyvirt starts it as libvirt
does, with a warning in its log; it refuses the start, by name, in server mode (QEMU would block the
start waiting for a backend) and, in client mode, when no backend listens on the socket.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain, InterfaceConfig

log = logging.getLogger(__name__)
SOCKET_TYPES = ("server", "client", "mcast", "udp")
TYPES = ("vhostuser", *SOCKET_TYPES)


def parse_source(node: Elem, nic: InterfaceConfig) -> None:
    """``<source>`` of a vhostuser or socket interface into ``nic.socket``."""
    if nic.type == "vhostuser":
        node.choice("type", ("unix",), required=True)
        path = node.require("path")
        if not path.startswith("/"):
            raise XMLError(f"path '{path}' of '{node.path}' must be absolute")
        nic.socket = {"path": path, "mode": node.choice("mode", ("server", "client"), required=True) or ""}
        if (reconnect := node.child("reconnect")) is not None:
            if nic.socket["mode"] != "client":
                raise XMLError(f"'{reconnect.path}' is for mode='client' only")
            enabled = reconnect.choice("enabled", ("yes", "no"), required=True) or "no"
            nic.socket["reconnect"] = enabled
            if (timeout := reconnect.integer("timeout", minimum=1)) is not None:
                nic.socket["timeout"] = str(timeout)
            elif enabled == "yes":
                raise XMLError(f"missing attribute 'timeout' of '{reconnect.path}' (enabled='yes')")
            reconnect.done()
        return
    port = node.integer("port", minimum=1, maximum=65535)
    address = node.attr("address")
    if port is None:
        raise XMLError(f"missing attribute 'port' of '{node.path}'")
    if nic.type in ("mcast", "udp", "client") and not address:
        raise XMLError(f"missing attribute 'address' of '{node.path}' (interface type '{nic.type}')")
    nic.socket = {"port": str(port)}
    if address:
        nic.socket["address"] = address
    if nic.type == "udp":
        if (local := node.child("local")) is None:
            raise XMLError(f"missing element 'local' in '{node.path}' (interface type 'udp')")
        nic.socket["local_address"] = local.require("address")
        nic.socket["local_port"] = str(local.integer("port", minimum=1, maximum=65535))
        local.done()


def write_source(nic: InterfaceConfig) -> XNode:
    s = nic.socket
    if nic.type == "vhostuser":
        node = x("source", {"type": "unix", "path": s.get("path"), "mode": s.get("mode")})
        if "reconnect" in s:
            node.add(x("reconnect", {"enabled": s["reconnect"], "timeout": s.get("timeout")}))
        return node
    node = x("source", {"address": s.get("address"), "port": s.get("port")})
    if nic.type == "udp":
        node.add(x("local", {"address": s.get("local_address"), "port": s.get("local_port")}))
    return node


def check(nic: InterfaceConfig) -> None:
    if nic.type in TYPES and not nic.socket:
        raise XMLError(f"an interface of type '{nic.type}' needs <source>")
    if nic.type == "vhostuser" and nic.model != "virtio":
        raise UnsupportedConfig(  # libvirt 9.0's words
            "unsupported configuration: Wrong or no <model> 'type' attribute specified with "
            "<interface type='vhostuser'/>. vhostuser requires the virtio-net* frontend"
        )


def chardev_id(index: int) -> str:
    return f"charnet{index}"


def chardev_spec(nic: InterfaceConfig, index: int) -> str:
    s = nic.socket
    spec = f"socket,id={chardev_id(index)},path={s['path'].replace(',', ',,')}"
    if s["mode"] == "server":
        spec += ",server=on"
    elif "reconnect" in s:  # libvirt: enabled='no' is reconnect=0
        spec += f",reconnect={s.get('timeout', '1') if s['reconnect'] == 'yes' else 0}"
    return spec


def netdev(nic: InterfaceConfig, index: int, netdev_id: str) -> dict[str, object]:
    """``-netdev`` (JSON) of a vhostuser or socket interface."""
    s = nic.socket
    if nic.type == "vhostuser":
        spec: dict[str, object] = {"type": "vhost-user", "chardev": chardev_id(index)}
        if (queues := nic.driver.get("queues")) is not None and int(queues) > 1:
            spec["queues"] = int(queues)
        return {**spec, "id": netdev_id}
    where = f"{s.get('address', '')}:{s['port']}"
    if nic.type == "server":
        return {"type": "socket", "listen": where, "id": netdev_id}
    if nic.type == "client":
        return {"type": "socket", "connect": where, "id": netdev_id}
    if nic.type == "mcast":
        return {"type": "socket", "mcast": where, "id": netdev_id}
    local = f"{s['local_address']}:{s['local_port']}"
    return {"type": "socket", "udp": where, "localaddr": local, "id": netdev_id}


def require_host(dom: Domain) -> None:
    """Refuse, by name, a vhost-user NIC QEMU cannot start or use here (see the module's text)."""
    for nic in dom.devices.interfaces:
        if nic.type == "vhostuser":
            require_nic(dom, nic)


def require_nic(dom: Domain, nic: InterfaceConfig) -> None:
    """:func:`require_host` for one vhost-user NIC of ``dom`` (at start, or plugged into it)."""
    cells = dom.cpu.numa if dom.cpu is not None else []
    shared = dom.memory_access == "shared" or (cells and all(c.mem_access == "shared" for c in cells))
    path, what = nic.socket["path"], f"interface type 'vhostuser' on {nic.socket['path']}"
    if not shared:  # libvirt 9.0 starts it
        log.warning(
            "domain %s: %s: the guest's memory is not shared (<memoryBacking><access mode='shared'/>): "
            "the backend cannot map it, and the NIC will carry no traffic",
            dom.name,
            what,
        )
    if nic.socket["mode"] == "server":
        raise UnsupportedConfig(
            f"unsupported configuration: {what} in mode 'server': QEMU would wait for a backend to "
            "connect; pyvirt plugs vhost-user NICs in mode 'client' only"
        )
    if not _listening(path):
        raise UnsupportedConfig(
            f"unsupported configuration: {what}: no vhost-user backend listens there "
            "(start the backend, e.g. OVS-DPDK or testpmd, first)"
        )


def _listening(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(5)
    try:
        probe.connect(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK, errno.EACCES):
            return False
        raise
    finally:
        probe.close()
    return True

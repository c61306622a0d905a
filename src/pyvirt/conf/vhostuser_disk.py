"""``<disk type='vhostuser'>``: a disk served by a vhost-user block backend (qemu-storage-daemon, SPDK)
on a UNIX socket, as libvirt 9.0 gives it: ``-chardev socket,id=chr-vu-ID,path=`` (``reconnect=`` from
``<source><reconnect enabled='yes' timeout/>``) and ``-device vhost-user-blk-pci,chardev=``; QEMU opens
no image. libvirt's rules: a virtio disk of format raw, and the guest's memory shared (the backend maps
it): ``<memoryBacking><access mode='shared'/>`` or every NUMA cell's ``memAccess='shared'``.
The socket is the backend's: QEMU connects to it (an existing one is handed to QEMU's user while the
domain runs, as a chardev's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf import chardev_options
from pyvirt.conf.domain import CharDevConfig
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import DiskConfig, Domain


def parse_source(node: Elem, disk: DiskConfig) -> None:
    node.choice("type", ("unix",), required=True)
    path = node.require("path")
    if not path.startswith("/"):
        raise XMLError(f"path '{path}' of '{node.path}' must be absolute")
    disk.source = path
    disk.vhostuser = CharDevConfig(kind="vhostuser", type="unix", source_mode="connect", source_path=path)
    chardev_options.parse_reconnect(node, disk.vhostuser, "connect")


def write_source(disk: DiskConfig) -> XNode:
    source = x("source", {"type": "unix", "path": disk.source})
    return source.add(chardev_options.write_reconnect(disk.vhostuser) if disk.vhostuser else None)


def check(dom: Domain, disk: DiskConfig) -> None:
    if disk.target_bus != "virtio" or disk.device != "disk" or disk.driver_type != "raw":
        raise UnsupportedConfig(
            f"unsupported configuration: disk '{disk.target_dev}' of type 'vhostuser' must be a virtio "
            "disk of format raw"
        )
    cells = dom.cpu.numa if dom.cpu else []
    shared = dom.memory_access == "shared" or (cells and all(c.mem_access == "shared" for c in cells))
    if not shared:
        raise UnsupportedConfig(
            f"unsupported configuration: disk '{disk.target_dev}' of type 'vhostuser' needs the guest's "
            "memory shared (<memoryBacking><access mode='shared'/>, or memAccess='shared' on every NUMA cell)"
        )


def chardev_id(dev_id: str) -> str:
    return f"chr-vu-{dev_id}"


def chardev_spec(disk: DiskConfig, dev_id: str) -> str:
    assert disk.vhostuser is not None
    path = str(disk.source).replace(",", ",,")
    return f"socket,id={chardev_id(dev_id)},path={path}" + chardev_options.spec_tail(disk.vhostuser)

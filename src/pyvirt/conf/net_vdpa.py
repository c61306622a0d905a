"""``<interface type='vdpa'>``: a vDPA device of the host (``/dev/vhost-vdpa-N``, a NIC's virtqueues
mapped into the guest) as QEMU's ``vhost-vdpa`` netdev under a ``virtio-net-pci``, as libvirt 9.0 gives it.

``<source dev='/dev/vhost-vdpa-0'/>`` names the device; ``<driver queues='N'>`` asks for N queue pairs
(``queues=N`` on the netdev, ``mq=on`` and ``vectors=2N+2`` on the device, libvirt's numbers). Only the
``virtio`` model drives it. libvirt opens the device and passes the descriptor; pyvirt hands the device
node to QEMU's user (as a passthrough input device) and QEMU opens it. A host without the device has the
start refused by name before QEMU runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain, InterfaceConfig


def parse_source(node: Elem, nic: InterfaceConfig) -> None:
    dev = node.require("dev")
    if not dev.startswith("/dev/"):
        raise XMLError(f"dev '{dev}' of '{node.path}' must be a device node under /dev")
    nic.source_dev = dev


def queues(nic: InterfaceConfig) -> int | None:
    value = nic.driver.get("queues")
    return int(value) if value is not None else None


def check(nic: InterfaceConfig) -> None:
    if nic.type == "vdpa":
        if nic.model != "virtio":
            raise UnsupportedConfig(
                f"unsupported configuration: a vdpa interface of model '{nic.model}' (only virtio)"
            )
        if not nic.source_dev:
            raise XMLError("an interface of type 'vdpa' needs <source dev>")
    elif "queues" in nic.driver and nic.type != "vhostuser":
        raise UnsupportedConfig(
            f"unsupported configuration: <driver queues> of interface type '{nic.type}': pyvirt's taps and "
            "user networking have one queue pair (multiqueue only on vdpa and vhostuser)"
        )


def netdev(nic: InterfaceConfig, netdev_id: str) -> dict[str, object]:
    spec: dict[str, object] = {"type": "vhost-vdpa", "vhostdev": nic.source_dev}
    if (count := queues(nic)) is not None:
        spec["queues"] = count
    spec["id"] = netdev_id
    return spec


def device_props(nic: InterfaceConfig) -> dict[str, str | int]:
    count = queues(nic)
    return {"mq": "on", "vectors": 2 * count + 2} if count is not None and count > 1 else {}


def require_host(dom: Domain) -> None:
    for nic in dom.devices.interfaces:
        if nic.type == "vdpa" and not os.path.exists(nic.source_dev or ""):
            raise UnsupportedConfig(
                f"unsupported configuration: interface type 'vdpa': this host has no {nic.source_dev} "
                "(a vDPA device, bound to the vhost_vdpa driver)"
            )

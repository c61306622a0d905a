"""VM sockets: ``<vsock model='virtio'><cid auto='yes|no' address='N'/></vsock>`` as ``vhost-vsock-pci``
with ``guest-cid``, as libvirt 9.0 writes it.

The device is the host kernel's vhost-vsock (``/dev/vhost-vsock``): a host without it (this one, and any
without the ``vhost_vsock`` module) has the domain's start refused by name. A CID is 3 or more (0-2 are
the hypervisor's, the host's and reserved); with ``auto='yes'`` and no address the CID is chosen at start
(:func:`free_cid`: the lowest no running domain holds) and written into the live XML, as libvirt does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyvirt.conf.domain import Domain, PCIAddress
from pyvirt.conf.xmlutil import Elem, XNode, x, yes_no
from pyvirt.errors import UnsupportedConfig, XMLError

DEVICE = "/dev/vhost-vsock"


@dataclass
class VsockConfig:
    model: str = "virtio"
    auto: bool | None = None  # <cid auto>
    cid: int | None = None  # <cid address>
    alias: str | None = None
    address: PCIAddress | None = None


def parse(e: Elem) -> VsockConfig:
    vsock = VsockConfig(model=e.choice("model", ("virtio",)) or "virtio")
    if (cid := e.child("cid")) is not None:
        vsock.auto = cid.flag("auto")
        vsock.cid = cid.integer("address", minimum=3, maximum=0xFFFFFFFE)
        cid.done()
    if vsock.auto is False and vsock.cid is None:
        raise XMLError("'devices/vsock/cid' with auto='no' needs an address")
    return vsock


def write(vsock: VsockConfig, extra: tuple[XNode | None, ...]) -> XNode:
    node = x("vsock", {"model": vsock.model})
    if vsock.auto is not None or vsock.cid is not None:
        node.add(x("cid", {"auto": yes_no(vsock.auto), "address": vsock.cid}))
    return node.add(*extra)


def device_props(vsock: VsockConfig, chosen: int | None = None) -> dict[str, str | int | None]:
    """``vhost-vsock-pci``'s properties (besides its PCI placement); ``chosen``: the CID start chose
    for ``<cid auto='yes'/>`` without an address."""
    cid = vsock.cid if vsock.cid is not None else chosen
    if cid is None:
        raise UnsupportedConfig(
            "unsupported configuration: a vsock's CID is chosen at start (<cid auto='yes'>)"
        )
    return {"id": vsock.alias or "vsock0", "guest-cid": cid}


def free_cid(taken: set[int]) -> int:
    """The lowest guest CID (3 and up) not in ``taken``."""
    cid = 3
    while cid in taken:
        cid += 1
    return cid


def cids_in_use(doms: list[Domain]) -> set[int]:
    """The CIDs the vsocks of ``doms`` (running domains' live definitions) hold."""
    return {
        d.devices.vsock.cid for d in doms if d.devices.vsock is not None and d.devices.vsock.cid is not None
    }


def require_host(dom: Domain) -> None:
    """A vsock needs the host's vhost-vsock device; refused by name before QEMU starts without it."""
    if dom.devices.vsock is not None and not os.path.exists(DEVICE):
        raise UnsupportedConfig(
            f"unsupported configuration: <vsock>: this host has no {DEVICE} (load the vhost_vsock module)"
        )
    if dom.devices.vsock is not None:
        raise UnsupportedConfig(
            "unsupported configuration: <vsock>: pyvirt does not yet hand the vhost-vsock device to QEMU"
        )

"""virsh's nodedev-detach, nodedev-reattach and nodedev-reset of a host PCI device, named as libvirt
names node devices (``pci_0000_06_12_5``), on the host access of :mod:`pyvirt.qemu.host_devices`.

A device a running domain holds is refused by name (libvirt's "in use by driver QEMU, domain ...").
A device detached here (left on ``vfio-pci``) is what a ``<hostdev managed='no'>`` needs; reattaching
clears its driver override and lets its own driver probe it again.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.actions import DomainActions
from pyvirt.errors import InvalidArgument, InvalidState, NotFound
from pyvirt.qemu.host_devices import ANY_DRIVER, HostDevices

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.hostdevs import HostdevState
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers

_PCI_NAME = re.compile(r"pci_([0-9a-f]{4})_([0-9a-f]{2})_([0-9a-f]{2})_([0-7])")


def pci_device(host: HostDevices, device: str) -> str:
    """The sysfs name (``0000:06:12.5``) of node device ``device`` (``pci_0000_06_12_5``)."""
    match = _PCI_NAME.fullmatch(device)
    name = "{}:{}:{}.{}".format(*match.groups()) if match else None
    if name is None or not host.pci_exists(name):
        raise NotFound(f"Node device not found: no node device with matching name '{device}'")
    return name


def _not_held(state: HostdevState, name: str) -> None:
    holder = state.holders.get(f"pci:{name}")
    if holder is not None:
        raise InvalidState(
            f"Requested operation is not valid: PCI device {name} is in use by driver QEMU, domain {holder}"
        )


def detach(state: HostdevState, device: str, driver: str | None = None) -> None:
    """nodedev-detach: ``device`` onto vfio-pci (``driver``: virsh's --driver, ``vfio`` only)."""
    if driver not in (None, "", "vfio"):
        raise InvalidArgument(f"invalid argument: unknown driver name '{driver}'")
    name = pci_device(state.host, device)
    _not_held(state, name)
    state.host.bind_vfio(name)


def reattach(state: HostdevState, device: str) -> None:
    """nodedev-reattach: ``device`` off vfio-pci, to whichever driver of the host probes it."""
    name = pci_device(state.host, device)
    _not_held(state, name)
    state.host.reattach(name, ANY_DRIVER)


def reset(state: HostdevState, device: str) -> None:
    """nodedev-reset: the kernel's reset of ``device`` (refused while a domain holds it)."""
    name = pci_device(state.host, device)
    _not_held(state, name)
    state.host.reset(name)


class NodedevAPI(DomainActions):
    """Binds the node device actions to the daemon's host devices."""

    def handlers(self) -> Handlers:
        return {"nodedev.detach": self.detach, "nodedev.reattach": self.reattach, "nodedev.reset": self.reset}

    async def detach(self, req: Request) -> dict[str, Any]:
        body: types.NodedevDetachRequest = req.data
        await asyncio.to_thread(detach, self.domains.hostdevs, req.params["device"], body.get("driver"))
        return {}

    async def reattach(self, req: Request) -> dict[str, Any]:
        await asyncio.to_thread(reattach, self.domains.hostdevs, req.params["device"])
        return {}

    async def reset(self, req: Request) -> dict[str, Any]:
        await asyncio.to_thread(reset, self.domains.hostdevs, req.params["device"])
        return {}

"""The host's PCI, USB and mediated devices as sysfs and devfs show them, and the kernel's driver
binding of PCI devices (libvirt's virpci.c/virusb.c, the parts a VFIO start needs).

A PCI device goes to ``vfio-pci`` as libvirt moves it: its ``driver_override`` set to ``vfio-pci``,
unbound from the driver it has, then ``drivers_probe``; back the same way with the override cleared,
so that its own driver probes it again. VFIO hands QEMU a whole IOMMU group (``/dev/vfio/GROUP``,
beside the container ``/dev/vfio/vfio``): the kernel lets QEMU open it only when every endpoint of the
group is on ``vfio-pci`` (or ``pci-stub``) or on no driver; bridges (class 0x06) are not endpoints.

:class:`HostDevices` reads and writes below its ``sys`` and ``dev`` roots (``/sys``, ``/dev``); unit
tests give it a tree of their own and stand in for the kernel by overriding :meth:`HostDevices.write`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import OperationFailed, UnsupportedConfig

log = logging.getLogger(__name__)

VFIO_DRIVER = "vfio-pci"
#: Drivers the kernel accepts on the other endpoints of a VFIO group QEMU opens (none is fine too).
GROUP_DRIVERS = (VFIO_DRIVER, "pci-stub")
#: :meth:`HostDevices.reattach` to whichever driver probes the device.
ANY_DRIVER = ""


@dataclass(frozen=True)
class UsbDevice:
    """A USB device as ``/sys/bus/usb/devices/N-P`` describes it."""

    bus: int
    device: int
    vendor: int
    product: int


def link_name(path: Path) -> str | None:
    """The last component of the symbolic link ``path`` points to (a sysfs driver, group, subsystem);
    None when it is no link."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


class HostDevices:
    """The host's devices below ``sys`` and ``dev``; ``modprobe``: load ``vfio-pci`` when missing."""

    def __init__(self, sys: Path = Path("/sys"), dev: Path = Path("/dev"), *, modprobe: bool = True) -> None:
        self.sys = sys
        self.dev = dev
        self.modprobe = modprobe

    # The kernel's interface: one write per attribute, as sysfs wants it.

    def write(self, path: Path, text: str) -> None:
        """Write ``text`` to the sysfs attribute ``path`` (the kernel acts on it)."""
        with open(path, "w") as fh:
            fh.write(text)

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None

    # PCI

    def pci_dir(self, name: str) -> Path:
        return self.sys / "bus/pci/devices" / name

    def pci_exists(self, name: str) -> bool:
        return self.pci_dir(name).is_dir()

    def pci_driver(self, name: str) -> str | None:
        """The driver ``name`` is bound to; None when it has none."""
        return link_name(self.pci_dir(name) / "driver")

    def pci_group(self, name: str) -> str | None:
        """The IOMMU group of PCI device ``name``; None without an IOMMU."""
        return link_name(self.pci_dir(name) / "iommu_group")

    def group_devices(self, group: str) -> list[str]:
        """The PCI devices of IOMMU group ``group``."""
        try:
            return sorted(os.listdir(self.sys / "kernel/iommu_groups" / group / "devices"))
        except OSError:
            return []

    def pci_is_bridge(self, name: str) -> bool:
        """A bridge (PCI class 0x06): not an endpoint VFIO asks about."""
        text = self._read(self.pci_dir(name) / "class") or ""
        try:
            return int(text, 16) >> 16 == 0x06
        except ValueError:
            return False

    def vfio_container(self) -> Path:
        return self.dev / "vfio/vfio"

    def group_node(self, group: str) -> Path:
        return self.dev / "vfio" / group

    def vfio_driver_loaded(self) -> bool:
        return (self.sys / "bus/pci/drivers" / VFIO_DRIVER).is_dir()

    def load_vfio_driver(self) -> None:
        """Make sure ``vfio-pci`` is there (``modprobe`` it, as libvirt does); refused by name if not."""
        if self.vfio_driver_loaded():
            return
        modprobe = shutil.which("modprobe", path="/usr/sbin:/sbin:/usr/bin:/bin") if self.modprobe else None
        if modprobe is not None:
            done = subprocess.run([modprobe, VFIO_DRIVER], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                log.warning("modprobe %s: %s", VFIO_DRIVER, done.stderr.strip())
        if not self.vfio_driver_loaded():
            raise UnsupportedConfig(
                f"unsupported configuration: the {VFIO_DRIVER} driver is not loaded on this host and "
                f"cannot be (modprobe {VFIO_DRIVER})"
            )

    def _kernel(self, path: Path, text: str, what: str) -> None:
        try:
            self.write(path, text)
        except OSError as err:
            raise OperationFailed(f"operation failed: {what}: {err.strerror or err} ({path})") from err

    def bind_vfio(self, name: str) -> str | None:
        """Move PCI device ``name`` to ``vfio-pci``; returns the driver it had (None: none). On failure
        it is given back to that driver."""
        self.load_vfio_driver()
        before = self.pci_driver(name)
        if before == VFIO_DRIVER:
            return before
        override = self.pci_dir(name) / "driver_override"
        self._kernel(override, VFIO_DRIVER, f"cannot set the driver override of PCI device {name}")
        try:
            if before is not None:
                unbind = self.sys / "bus/pci/drivers" / before / "unbind"
                self._kernel(unbind, name, f"cannot unbind PCI device {name} from its driver '{before}'")
            probe = self.sys / "bus/pci/drivers_probe"
            self._kernel(probe, name, f"cannot bind PCI device {name} to {VFIO_DRIVER}")
            now = self.pci_driver(name)
            if now != VFIO_DRIVER:
                raise OperationFailed(
                    f"operation failed: PCI device {name} is on {repr(now) if now else 'no driver'} after "
                    f"probing, not on {VFIO_DRIVER}"
                )
        except BaseException:
            self.reattach(name, before)
            raise
        log.info("PCI device %s: detached from %s to %s", name, before or "no driver", VFIO_DRIVER)
        return before

    def reattach(self, name: str, driver: str | None) -> str | None:
        """Give PCI device ``name`` back to the host: off ``vfio-pci``, its driver override cleared, and
        probed again so that ``driver`` (the one it had) takes it; None: it had none, and stays unbound;
        :data:`ANY_DRIVER`: whichever driver the probe finds (virsh nodedev-reattach). Returns the driver
        it is on now. Best effort: each step is tried and a failure logged."""
        current = self.pci_driver(name)
        steps: list[tuple[Path, str]] = []
        if current in GROUP_DRIVERS and current != driver:
            steps.append((self.sys / "bus/pci/drivers" / current / "unbind", name))
        steps.append((self.pci_dir(name) / "driver_override", "\n"))
        if driver is not None and current != driver:
            steps.append((self.sys / "bus/pci/drivers_probe", name))
        for path, text in steps:
            try:
                self.write(path, text)
            except OSError as err:
                log.warning("PCI device %s: writing %s: %s", name, path, err.strerror or err)
        now = self.pci_driver(name)
        if driver and now != driver:
            log.warning(
                "PCI device %s: on %s after its reattach, not on %s", name, now or "no driver", driver
            )
        else:
            log.info("PCI device %s: reattached to %s", name, now or "no driver")
        return now

    def reset(self, name: str) -> None:
        """Reset PCI device ``name`` the kernel's way (its ``reset`` attribute: FLR, PM or bus reset)."""
        path = self.pci_dir(name) / "reset"
        if not path.exists():
            raise OperationFailed(f"operation failed: PCI device {name} has no reset method")
        self._kernel(path, "1", f"cannot reset PCI device {name}")

    # Mediated devices

    def mdev_dir(self, uuid: str) -> Path:
        return self.sys / "bus/mdev/devices" / uuid

    def mdev_group(self, uuid: str) -> str | None:
        return link_name(self.mdev_dir(uuid) / "iommu_group")

    # USB

    def usb_devices(self) -> list[UsbDevice]:
        """The USB devices (not their interfaces, nor hubs' ports) the host has."""
        base = self.sys / "bus/usb/devices"
        try:
            names = sorted(os.listdir(base))
        except OSError:
            return []
        found = []
        for name in names:
            if ":" in name:  # an interface
                continue
            values = [
                self._read(base / name / attr) for attr in ("busnum", "devnum", "idVendor", "idProduct")
            ]
            if None in values:
                continue
            try:
                bus, device = int(values[0] or ""), int(values[1] or "")
                vendor, product = int(values[2] or "", 16), int(values[3] or "", 16)
            except ValueError:
                continue
            found.append(UsbDevice(bus, device, vendor, product))
        return found

    def usb_node(self, bus: int, device: int) -> Path:
        return self.dev / f"bus/usb/{bus:03d}/{device:03d}"

    def find_usb(
        self, vendor: int | None, product: int | None, bus: int | None, device: int | None
    ) -> UsbDevice:
        """The one USB device matching what a ``<hostdev type='usb'>`` names (libvirt's lookup and
        messages): by vendor and product, and by bus and device when given."""
        matches = [
            usb
            for usb in self.usb_devices()
            if (vendor is None or usb.vendor == vendor)
            and (product is None or usb.product == product)
            and (bus is None or (usb.bus, usb.device) == (bus, device))
        ]
        what = f"{vendor or 0:04x}:{product or 0:04x}" if vendor is not None else ""
        where = f"bus:{bus} device:{device}" if bus is not None else ""
        if not matches:
            raise OperationFailed(
                f"operation failed: Did not find USB device {' '.join(p for p in (what, where) if p)}"
            )
        if len(matches) > 1:
            raise OperationFailed(
                f"operation failed: Multiple USB devices for {what}, use <address> to specify one"
            )
        return matches[0]

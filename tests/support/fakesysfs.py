"""A fake sysfs and devfs tree (``ROOT/sys``, ``ROOT/dev``) with a stand-in for the kernel's driver
binding, for unit tests of pyvirt.qemu.host_devices and pyvirt.daemon.hostdevs.

:class:`FakeKernel` is a :class:`~pyvirt.qemu.host_devices.HostDevices` whose writes act as the kernel
acts on them: ``driver_override`` is kept, ``drivers/D/unbind`` removes the device's ``driver`` link,
``drivers_probe`` binds it to its override (when that driver exists) or else to its own driver. Every
write is logged (path below the root, text) and can be made to fail.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pyvirt.qemu.host_devices import HostDevices


class FakeKernel(HostDevices):
    def __init__(self, root: Path) -> None:
        super().__init__(root / "sys", root / "dev", modprobe=False)
        self.root = root
        self.writes: list[tuple[str, str]] = []
        self.fail: dict[str, OSError] = {}  # path below the root → the error its next write raises
        self.native: dict[str, str] = {}  # PCI device → the driver its probe finds without an override
        self.override_wins = True  # False: a probe binds the device's own driver whatever its override
        for path in ("sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/kernel/iommu_groups", "dev"):
            (root / path).mkdir(parents=True, exist_ok=True)
        (root / "sys/bus/pci/drivers_probe").write_text("")

    # The tree

    def add_driver(self, name: str) -> None:
        (self.sys / "bus/pci/drivers" / name).mkdir(exist_ok=True)
        for attr in ("bind", "unbind"):
            (self.sys / "bus/pci/drivers" / name / attr).touch()

    def with_vfio(self) -> FakeKernel:
        """VFIO on this host: the vfio-pci driver and the container node (crw-rw-rw- on a real host)."""
        self.add_driver("vfio-pci")
        (self.dev / "vfio").mkdir(exist_ok=True)
        (self.dev / "vfio/vfio").touch()
        os.chmod(self.dev / "vfio/vfio", 0o666)
        return self

    def add_group(self, group: str) -> None:
        (self.sys / "kernel/iommu_groups" / group / "devices").mkdir(parents=True, exist_ok=True)
        (self.dev / "vfio").mkdir(exist_ok=True)
        node = self.dev / "vfio" / group
        if not node.exists():
            node.touch()
            os.chmod(node, 0o600)

    def add_pci(
        self, name: str, *, driver: str | None = None, group: str | None = None, klass: int = 0x020000
    ) -> None:
        """PCI device ``name`` on ``driver`` (also the one its probe finds), in IOMMU ``group``."""
        path = self.pci_dir(name)
        path.mkdir(parents=True)
        (path / "class").write_text(f"{klass:#08x}\n")
        (path / "driver_override").write_text("(null)\n")
        (path / "reset").touch()
        if driver is not None:
            self.add_driver(driver)
            self.native[name] = driver
            self._bind(name, driver)
        if group is not None:
            self.add_group(group)
            (path / "iommu_group").symlink_to(f"../../../../kernel/iommu_groups/{group}")
            (self.sys / "kernel/iommu_groups" / group / "devices" / name).symlink_to(
                f"../../../../bus/pci/devices/{name}"
            )

    def add_mdev(self, uuid: str, group: str) -> None:
        path = self.sys / "bus/mdev/devices" / uuid
        path.mkdir(parents=True)
        self.add_group(group)
        (path / "iommu_group").symlink_to(f"../../../../kernel/iommu_groups/{group}")

    def add_usb(self, name: str, bus: int, device: int, vendor: int, product: int) -> None:
        """USB device ``name`` (``1-2``) with an interface beside it, and its node."""
        for entry in (name, f"{name}:1.0"):
            path = self.sys / "bus/usb/devices" / entry
            path.mkdir(parents=True)
            if ":" not in entry:
                values = {
                    "busnum": bus,
                    "devnum": device,
                    "idVendor": f"{vendor:04x}",
                    "idProduct": f"{product:04x}",
                }
                for attr, value in values.items():
                    (path / attr).write_text(f"{value}\n")
        node = self.usb_node(bus, device)
        node.parent.mkdir(parents=True, exist_ok=True)
        node.touch()
        os.chmod(node, 0o664)

    def override(self, name: str) -> str:
        return (self.pci_dir(name) / "driver_override").read_text().strip()

    # The kernel

    def _bind(self, name: str, driver: str) -> None:
        link = self.pci_dir(name) / "driver"
        link.unlink(missing_ok=True)
        link.symlink_to(f"../../../../bus/pci/drivers/{driver}")

    def write(self, path: Path, text: str) -> None:
        rel = str(path.relative_to(self.root))
        self.writes.append((rel, text))
        if rel in self.fail:  # once: the next write there works
            raise self.fail.pop(rel)
        parts = rel.split("/")
        if parts[-1] == "driver_override":
            path.write_text((text.strip() or "(null)") + "\n")
        elif parts[-1] == "unbind":
            name, driver = text.strip(), parts[-2]
            if self.pci_driver(name) != driver:
                raise OSError(errno.ENODEV, "No such device")
            (self.pci_dir(name) / "driver").unlink()
        elif parts[-1] == "drivers_probe":
            name = text.strip()
            if self.pci_driver(name) is not None:
                return
            wanted = self.override(name)
            driver = wanted if wanted != "(null)" and self.override_wins else self.native.get(name)
            if driver is not None and (self.sys / "bus/pci/drivers" / driver).is_dir():
                self._bind(name, driver)
        elif parts[-1] == "reset":
            pass
        else:
            raise OSError(errno.EACCES, f"the fake kernel does not take writes to {rel}")

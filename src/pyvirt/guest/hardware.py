"""What a template's disks expect of the machine they boot in: firmware, disk buses, NIC models, sizes.

A template built by pyvirt or imported from a bare image needs nothing special (the defaults: BIOS, a
``pc`` machine, virtio disks and NIC). An appliance (OVA/OVF, :mod:`pyvirt.guest.ovf`) says what its
virtual hardware was; the mapping onto what pyvirt's QEMU machines offer is kept with the template
(its sidecar) and applied to every domain launched or cloned from it. Options given at launch
(``--vcpus``, ``--memory``) win over the template's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyvirt.errors import InvalidArgument

FIRMWARES = ("bios", "efi")
DISK_BUSES = ("virtio", "sata", "scsi", "ide")
NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
#: The device name prefix of each disk bus (the seed CD-ROM takes the next free ``sdX``).
BUS_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}


@dataclass(frozen=True)
class Hardware:
    """A template's machine: None for vcpus/memory means pyvirt's default (1 vCPU, 1 GiB)."""

    vcpus: int | None = None
    memory: int | None = None  # bytes
    firmware: str = "bios"
    disk_buses: tuple[str, ...] = ()  # one per disk of the template, in order (missing: virtio)
    nic_models: tuple[str, ...] = ()  # one per NIC of the appliance (the first is used; missing: virtio)

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARES:
            raise InvalidArgument(f"firmware {self.firmware!r}: pyvirt knows {', '.join(FIRMWARES)}")
        for bus in self.disk_buses:
            if bus not in DISK_BUSES:
                raise InvalidArgument(f"disk bus {bus!r}: pyvirt knows {', '.join(DISK_BUSES)}")
        for model in self.nic_models:
            if model not in NIC_MODELS:
                raise InvalidArgument(f"NIC model {model!r}: pyvirt knows {', '.join(NIC_MODELS)}")

    @property
    def machine(self) -> str:
        """UEFI guests get a q35 machine (its firmware descriptors all support it), BIOS ones ``pc``."""
        return "q35" if self.firmware == "efi" else "pc"

    def disk_bus(self, index: int) -> str:
        return self.disk_buses[index] if index < len(self.disk_buses) else "virtio"

    @property
    def nic_model(self) -> str:
        return self.nic_models[0] if self.nic_models else "virtio"

    def is_default(self) -> bool:
        return self == Hardware()

    def to_json(self) -> dict[str, Any]:
        return {
            "vcpus": self.vcpus,
            "memory": self.memory,
            "firmware": self.firmware,
            "disk_buses": list(self.disk_buses),
            "nic_models": list(self.nic_models),
        }

    @classmethod
    def from_json(cls, data: object) -> Hardware:
        """From a sidecar's ``hardware`` (None or missing: the defaults)."""
        if not isinstance(data, dict):
            return cls()
        vcpus, memory = data.get("vcpus"), data.get("memory")
        return cls(
            vcpus=int(vcpus) if vcpus else None,
            memory=int(memory) if memory else None,
            firmware=str(data.get("firmware") or "bios"),
            disk_buses=tuple(str(b) for b in data.get("disk_buses") or ()),
            nic_models=tuple(str(m) for m in data.get("nic_models") or ()),
        )

    def describe(self) -> str:
        """One line for ``template list`` and the import's report."""
        parts = []
        if self.vcpus:
            parts.append(f"{self.vcpus} vCPU")
        if self.memory:
            parts.append(f"{self.memory >> 20} MiB")
        parts.append(self.firmware.upper() if self.firmware == "efi" else "BIOS")
        parts.append("disks " + ",".join(self.disk_buses or ("virtio",)))
        parts.append("NIC " + self.nic_model)
        return ", ".join(parts)

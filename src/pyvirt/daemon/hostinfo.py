"""The host's statistics and what it offers domains: nodecpustats, nodememstats, freecell, maxvcpus,
cpu-models, sysinfo and domcapabilities, read from /proc, sysfs and the QEMU binary
(:mod:`pyvirt.qemu.probe`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pyvirt.conf.xmlutil import XNode, serialize, x
from pyvirt.daemon.http import Request
from pyvirt.daemon.routes import Handlers
from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.qemu.command import DEFAULT_EMULATOR
from pyvirt.qemu.kvmprobe import kvm_usable
from pyvirt.qemu.probe import probe

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
NODES = Path("/sys/devices/system/node")
DMI = Path("/sys/class/dmi/id")


def cpu_stats(cpu: int | None) -> dict[str, int]:
    """nodecpustats: nanoseconds of user (with nice), system (with interrupts), idle and iowait time,
    of every CPU together or of CPU ``cpu``."""
    label = "cpu" if cpu is None else f"cpu{cpu}"
    with open("/proc/stat") as fh:
        for line in fh:
            fields = line.split()
            if fields and fields[0] == label:
                user, nice, system, idle, iowait, irq, softirq = ([int(v) for v in fields[1:8]] + [0] * 7)[:7]
                return {
                    "user": (user + nice) * _TICK_NS,
                    "system": (system + irq + softirq) * _TICK_NS,
                    "idle": idle * _TICK_NS,
                    "iowait": iowait * _TICK_NS,
                }
    raise InvalidArgument(f"invalid argument: Invalid cpuNum in {cpu}")


def memory_stats(cell: int | None) -> dict[str, int]:
    """nodememstats (KiB): total, free, buffers and cached, or a NUMA cell's total and free."""
    if cell is None:
        wanted = {"MemTotal": "total", "MemFree": "free", "Buffers": "buffers", "Cached": "cached"}
        values: dict[str, int] = {}
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in wanted:
                    values[wanted[key]] = int(rest.split()[0])
        return {name: values[name] for name in ("total", "free", "buffers", "cached")}
    try:
        text = (NODES / f"node{cell}" / "meminfo").read_text()
    except OSError as err:
        raise InvalidArgument(f"invalid argument: Invalid cell number {cell}") from err
    values = {}
    for line in text.splitlines():
        parts = line.split()  # Node 0 MemTotal: 123 kB
        if len(parts) >= 4 and parts[2] in ("MemTotal:", "MemFree:"):
            values["total" if parts[2] == "MemTotal:" else "free"] = int(parts[3])
    return values


def free_cells() -> list[dict[str, int]]:
    """Each NUMA cell's free memory (KiB); one cell, the whole host, where the kernel shows none."""
    cells = sorted(int(p.name[4:]) for p in NODES.glob("node[0-9]*")) if NODES.is_dir() else []
    if not cells:
        return [{"cell": 0, "free_kib": memory_stats(None)["free"]}]
    return [{"cell": cell, "free_kib": memory_stats(cell).get("free", 0)} for cell in cells]


def max_vcpus(virt_type: str | None) -> int:
    """maxvcpus: the default machine's vCPU limit, and KVM's under --type kvm."""
    machine = probe().machine(None)
    kind = (virt_type or ("kvm" if kvm_usable()[0] else "qemu")).lower()
    if kind not in ("qemu", "kvm"):
        raise InvalidArgument(f"invalid argument: unknown type '{virt_type}'")
    if kind == "kvm":
        usable, reason = kvm_usable()
        if not usable:
            raise OperationFailed(f"operation failed: KVM is not usable on this host ({reason})")
    return machine.cpu_max


def cpu_models(arch: str) -> list[str]:
    if arch not in ("x86_64", "i686"):
        raise InvalidArgument(f"invalid argument: cannot find architecture {arch}")
    return list(probe().cpu_models)


def sysinfo_xml() -> str:
    """The host's SMBIOS data as libvirt's ``<sysinfo type='smbios'>`` (from sysfs' DMI tables)."""
    sections = (
        ("bios", (("vendor", "bios_vendor"), ("version", "bios_version"), ("date", "bios_date"),
                  ("release", "bios_release"))),
        ("system", (("manufacturer", "sys_vendor"), ("product", "product_name"),
                    ("version", "product_version"), ("serial", "product_serial"), ("uuid", "product_uuid"),
                    ("sku", "product_sku"), ("family", "product_family"))),
        ("baseBoard", (("manufacturer", "board_vendor"), ("product", "board_name"),
                       ("version", "board_version"), ("serial", "board_serial"),
                       ("asset", "board_asset_tag"))),
        ("chassis", (("manufacturer", "chassis_vendor"), ("version", "chassis_version"),
                     ("serial", "chassis_serial"), ("asset", "chassis_asset_tag"))),
    )  # fmt: skip
    root = x("sysinfo", {"type": "smbios"})
    for section, entries in sections:
        element = x(section)
        for name, source in entries:
            try:
                value = (DMI / source).read_text().strip()
            except OSError:
                continue
            if value:
                element.add(x("entry", {"name": name}, text=value))
        if element.children:
            root.add(element)
    return serialize(root)


def domcapabilities_xml(
    virt_type: str | None, emulator: str | None, arch: str | None, machine_name: str | None
) -> str:
    """What a domain may ask of this host, in libvirt's ``<domainCapabilities>`` layout: the emulator,
    machine and vCPU limit, firmware, CPU modes and models, and the devices pyvirt can give a guest."""
    if arch not in (None, "x86_64"):
        raise InvalidArgument(f"invalid argument: pyvirt runs x86_64 guests only, not '{arch}'")
    path = emulator or DEFAULT_EMULATOR
    info = probe(path)
    machine = info.machine(machine_name)
    kvm, _reason = kvm_usable()
    kind = (virt_type or ("kvm" if kvm else "qemu")).lower()
    if kind not in ("qemu", "kvm"):
        raise InvalidArgument(f"invalid argument: unknown virttype '{virt_type}'")
    if kind == "kvm" and not kvm:
        raise OperationFailed("operation failed: KVM is not usable on this host")
    root = x("domainCapabilities").add(
        x("path", text=path),
        x("domain", text=kind),
        x("machine", text=machine.name),
        x("arch", text="x86_64"),
        x("vcpu", {"max": machine.cpu_max}),
        x("iothreads", {"supported": "yes"}),
        x("os", {"supported": "yes"}).add(
            _enum("firmware", ["bios", "efi"]),
            x("loader", {"supported": "yes"}).add(
                _enum("type", ["rom", "pflash"]), _enum("readonly", ["yes", "no"])
            ),
        ),
        x("cpu").add(
            x("mode", {"name": "host-passthrough", "supported": "yes" if kind == "kvm" else "no"}),
            x("mode", {"name": "maximum", "supported": "yes"}),
            x("mode", {"name": "host-model", "supported": "yes" if kind == "kvm" else "no"}),
            x("mode", {"name": "custom", "supported": "yes"}).add(
                *(x("model", {"usable": "unknown"}, text=model) for model in info.cpu_models)
            ),
        ),
        x("memoryBacking", {"supported": "yes"}).add(_enum("sourceType", ["anonymous", "memfd"])),
        x("devices").add(
            x("disk", {"supported": "yes"}).add(
                _enum("diskDevice", ["disk", "cdrom", "floppy"]),
                _enum("bus", ["ide", "fdc", "scsi", "virtio", "usb", "sata"]),
            ),
            x("graphics", {"supported": "yes"}).add(_enum("type", ["vnc", "spice"])),
            x("video", {"supported": "yes"}).add(
                _enum("modelType", ["vga", "cirrus", "virtio", "none", "bochs", "ramfb"])
            ),
            x("hostdev", {"supported": "yes"}).add(  # daemon/hostdevs.py; vfio: where the host has VFIO
                _enum("mode", ["subsystem"]),
                _enum("subsysType", ["usb", "pci", "scsi"]),
                _enum("pciBackend", ["vfio"] if os.path.exists("/dev/vfio/vfio") else []),
            ),
            x("memballoon", {"supported": "yes"}),
        ),
        x("features").add(
            x("gic", {"supported": "no"}), x("vmcoreinfo", {"supported": "no"}), x("sev", {"supported": "no"})
        ),
    )
    return serialize(root)


def _enum(name: str, values: list[str]) -> XNode:
    return x("enum", {"name": name}).add(*(x("value", text=value) for value in values))


def _int(text: str | None, what: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise InvalidArgument(f"invalid argument: {what} must be a number, not '{text}'")
    return int(text)


class HostInfoAPI:
    """The handlers of the host statistics and capabilities actions."""

    def handlers(self) -> Handlers:
        return {
            "host.cpustats": self.cpustats,
            "host.memstats": self.memstats,
            "host.freecells": self.freecells,
            "host.maxvcpus": self.maxvcpus,
            "host.cpu_models": self.cpu_models,
            "host.sysinfo": self.sysinfo,
            "host.domcapabilities": self.domcapabilities,
        }

    async def cpustats(self, req: Request) -> dict[str, Any]:
        return cpu_stats(_int(req.args["cpu"], "cpu"))

    async def memstats(self, req: Request) -> dict[str, Any]:
        return memory_stats(_int(req.args["cell"], "cell"))

    async def freecells(self, req: Request) -> list[dict[str, Any]]:
        return free_cells()

    async def maxvcpus(self, req: Request) -> dict[str, Any]:
        return {"max": await asyncio.to_thread(max_vcpus, req.args["type"] or None)}

    async def cpu_models(self, req: Request) -> list[str]:
        return await asyncio.to_thread(cpu_models, req.args["arch"])

    async def sysinfo(self, req: Request) -> dict[str, Any]:
        return {"xml": sysinfo_xml()}

    async def domcapabilities(self, req: Request) -> dict[str, Any]:
        a = req.args
        xml = await asyncio.to_thread(
            domcapabilities_xml,
            a["virttype"] or None,
            a["emulator"] or None,
            a["arch"] or None,
            a["machine"] or None,
        )
        return {"xml": xml}

"""Validation of a parsed, defaulted :class:`~pyvirt.conf.domain.Domain`: a separate pass, as in libvirt.

Checks what a single element cannot: names that become file names, sizes against each other, duplicate
targets and MACs, boot order given twice. Works on domains built in code as well as parsed ones, so it
re-checks enumerations the parser already limits.
"""

from __future__ import annotations

import re
from collections import Counter

from pyvirt.conf import (
    acpi_index,
    feature_sizes,
    memory_backing,
    memory_devices,
    net_ethernet,
    net_sockets,
    net_vdpa,
    numa_hmat,
    vnc_options,
)
from pyvirt.conf.addresses import check_addresses, parse_number
from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.domain import DiskConfig, Domain
from pyvirt.conf.names import validate_name
from pyvirt.conf.units import MAX_KIB
from pyvirt.conf.xmlutil import parse_document
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

MAX_VCPUS = 255
MAX_VCPUS_EIM = 288
MIN_MEMORY_KIB = 1024
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_DISK_TARGET = re.compile(r"(?:vd|sd|hd|fd)[a-z]{1,3}")
# Linux's dev_valid_name: 1-15 bytes, no '/', ':' or white space, not '.' or '..'.
_IFNAME = re.compile(r"[^/:\s]{1,15}")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_LIFECYCLE = ("destroy", "restart", "preserve")
_MACHINE = re.compile(r"pc|q35|pc-(?:i440fx|q35)-[0-9]+\.[0-9]+")
_BUSES = ("virtio", "sata", "scsi", "ide", "usb", "fdc")


def validate_uuid(value: str) -> None:
    if not _UUID.fullmatch(value):
        raise InvalidArgument(f"invalid UUID '{value}': expected lower-case 8-4-4-4-12 hex digits")


def _check_tap_name(kind: str, tap: str | None) -> None:
    if tap is None:
        return
    if kind not in ("network", "bridge", "ethernet"):
        raise UnsupportedConfig(
            f"unsupported configuration: interface/target dev '{tap}': "
            f"an interface of type '{kind}' has no tap"
        )
    if not _IFNAME.fullmatch(tap) or tap in (".", "..") or len(tap.encode()) > 15:
        raise InvalidArgument(
            f"invalid interface/target dev '{tap}': "
            "a network device name is 1 to 15 bytes without '/', ':' or spaces"
        )


def _check_vcpu_count(dom: Domain) -> None:
    """1-255 vCPUs; up to 288 (QEMU 7.2's q35 limit) with the x2APIC IDs an Intel IOMMU's EIM gives, as
    libvirt rules."""
    top = MAX_VCPUS
    iommu = dom.devices.iommu
    if "q35" in (dom.os.machine or "") and iommu is not None and iommu.driver.get("eim") == "on":
        top = MAX_VCPUS_EIM
    if not 1 <= dom.vcpus <= top:
        more = ""
        if MAX_VCPUS < dom.vcpus <= MAX_VCPUS_EIM:
            more = f"; up to {MAX_VCPUS_EIM} on q35 with an Intel IOMMU's eim='on'"
        raise InvalidArgument(f"vcpu count {dom.vcpus} is out of range (1-{top}{more})")


def _check_vcpus(dom: Domain) -> None:
    current = dom.vcpu_current
    if current is not None and not 1 <= current <= dom.vcpus:
        raise InvalidArgument(f"vcpu current='{current}' must be between 1 and the maximum ({dom.vcpus})")
    for cpuset in (dom.vcpu_cpuset, *(dom.cputune.vcpupin.values() if dom.cputune else ())):
        if cpuset is not None:
            parse_cpuset(cpuset, "a CPU set")
    if dom.cputune is not None:
        if dom.cputune.emulatorpin is not None:
            parse_cpuset(dom.cputune.emulatorpin, "cputune/emulatorpin")
        for vcpu in dom.cputune.vcpupin:
            if not 0 <= vcpu < dom.vcpus:
                raise InvalidArgument(
                    f"cputune/vcpupin vcpu='{vcpu}' names no vCPU (the domain has vCPUs 0-{dom.vcpus - 1})"
                )


def iothread_ids(dom: Domain) -> list[int]:
    """The domain's I/O thread ids: those <iothreadids> names, then 1, 2... up to <iothreads>."""
    ids = list(dom.iothread_ids)
    next_id = 1
    while len(ids) < (dom.iothreads or 0):
        if next_id not in ids:
            ids.append(next_id)
        next_id += 1
    return ids


def _check_iothreads(dom: Domain) -> None:
    for ident, count in Counter(dom.iothread_ids).items():
        if count > 1:
            raise InvalidArgument(f"iothread id '{ident}' is given more than once in <iothreadids>")
    if dom.iothreads is not None and len(dom.iothread_ids) > dom.iothreads:
        raise InvalidArgument(
            f"<iothreadids> names {len(dom.iothread_ids)} threads but <iothreads> is {dom.iothreads}"
        )
    ids = iothread_ids(dom)
    for disk in dom.devices.disks:
        if disk.iothread is None:
            continue
        if disk.target_bus != "virtio":
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}': driver iothread needs bus 'virtio' "
                f"(not '{disk.target_bus}')"
            )
        if disk.iothread not in ids:
            raise InvalidArgument(
                f"disk '{disk.target_dev}' names iothread {disk.iothread}, which the domain does not have"
            )


def _check_numa(dom: Domain) -> None:
    cells = dom.cpu.numa if dom.cpu is not None else []
    if not cells:
        return
    if sorted(cell.id for cell in cells) != list(range(len(cells))):
        raise InvalidArgument("NUMA cell ids must be 0, 1, ... in any order, each once")
    seen: set[int] = set()
    for cell in cells:
        cpus = parse_cpuset(cell.cpus, f"cpu/numa/cell id='{cell.id}'") if cell.cpus else set()
        if cpus and max(cpus) >= dom.vcpus:
            raise InvalidArgument(
                f"NUMA cell {cell.id} has vCPU {max(cpus)}, beyond the domain's {dom.vcpus}"
            )
        if cpus & seen:
            raise InvalidArgument(f"NUMA cell {cell.id} shares vCPUs {sorted(cpus & seen)} with another cell")
        seen |= cpus
    total = sum(cell.memory_kib for cell in cells)
    if total != dom.memory_kib and not dom.devices.memory:  # (defaults make them agree)
        raise InvalidArgument(
            f"NUMA cells have {total} KiB of memory in all, but <memory> is {dom.memory_kib} KiB"
        )


def _check_memory(dom: Domain) -> None:
    if not MIN_MEMORY_KIB <= dom.memory_kib <= MAX_KIB:
        raise InvalidArgument(f"memory of {dom.memory_kib} KiB is out of range (1 MiB to 16 TiB)")
    current = dom.current_memory_kib
    if current is not None:
        if current < 1:
            raise InvalidArgument("currentMemory must be greater than zero")
        if current > dom.memory_kib:
            raise InvalidArgument(
                f"currentMemory ({current} KiB) must not exceed memory ({dom.memory_kib} KiB)"
            )


def _check_lun(disk: DiskConfig) -> None:
    """A ``device='lun'``: a host SCSI device or an iSCSI LUN (SCSI commands passed through), as libvirt runs
    it on a SCSI bus (``scsi-block``). On virtio libvirt 9.0 gives ``virtio-blk-pci,scsi=on``, which
    QEMU 7.2 refuses on a virtio 1.0 device ("Please set scsi=off"): refused here before QEMU is run."""
    if disk.type != "block" and not (disk.net is not None and disk.net.protocol == "iscsi"):
        raise UnsupportedConfig(
            f"unsupported configuration: disk '{disk.target_dev}' of device 'lun' must be of type 'block' "
            "(a host SCSI device) or an iSCSI network disk"
        )
    if disk.target_bus == "virtio":
        raise UnsupportedConfig(
            f"unsupported configuration: disk '{disk.target_dev}' of device 'lun' on bus 'virtio': QEMU 7.2 "
            "takes virtio-blk's SCSI passthrough (scsi=on) only on a legacy virtio 0.9 device"
        )
    if disk.target_bus != "scsi":
        raise UnsupportedConfig(
            f"unsupported configuration: disk '{disk.target_dev}' of device 'lun' needs bus 'scsi'"
        )
    identity = [k for k in disk.tuning if not k.startswith("driver.")] + (["serial"] if disk.serial else [])
    if identity:
        raise UnsupportedConfig(
            f"unsupported configuration: {identity[0]} of disk '{disk.target_dev}' of device 'lun': the "
            "guest sees the host device's own (QEMU's scsi-block has no such property)"
        )


def _check_devices(dom: Domain) -> None:
    devs = dom.devices
    if devs.emulator is not None and not devs.emulator.startswith("/"):
        raise InvalidArgument(f"emulator '{devs.emulator}' must be an absolute path")
    for share in devs.filesystems:
        if share.virtiofs is not None:
            from pyvirt.conf import virtiofs

            virtiofs.check_memory(dom, share)
    for disk in devs.disks:
        if not _DISK_TARGET.fullmatch(disk.target_dev):
            raise InvalidArgument(f"invalid disk target '{disk.target_dev}' (expected vdX, sdX, hdX or fdX)")
        if (disk.device == "floppy") != (disk.target_bus == "fdc"):
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}': a floppy goes on bus 'fdc', "
                "and bus 'fdc' takes only floppies"
            )
        if disk.target_bus not in _BUSES:
            raise InvalidArgument(f"disk '{disk.target_dev}' has no usable bus (give <target bus=...>)")
        has_source = disk.source or (disk.source_pool and disk.source_volume) or disk.source_host or disk.net
        if disk.device in ("disk", "lun") and not has_source:
            raise InvalidArgument(f"disk '{disk.target_dev}' has no source")
        if disk.device == "lun":
            _check_lun(disk)
        if disk.type == "vhostuser":
            from pyvirt.conf import vhostuser_disk

            vhostuser_disk.check(dom, disk)
        if (disk.type == "dir") != (disk.driver_type == "fat") or (disk.type == "dir" and not disk.readonly):
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}': a disk of type 'dir' is the FAT image "
                "QEMU makes of the directory (<driver type='fat'/>, <readonly/>: QEMU's writes to it are "
                "experimental), and format 'fat' is for it only"
            )
        if disk.startup_policy is not None and disk.type not in ("file", "block", "volume"):
            raise UnsupportedConfig(
                f"unsupported configuration: startupPolicy of disk '{disk.target_dev}' of type '{disk.type}'"
            )
        if disk.startup_policy == "requisite" and disk.device not in ("cdrom", "floppy"):
            raise InvalidArgument(
                f"startupPolicy 'requisite' of disk '{disk.target_dev}' is for a cdrom or floppy only"
            )
    for dev, count in Counter(disk.target_dev for disk in devs.disks).items():
        if count > 1:
            raise InvalidArgument(f"target '{dev}' is used by more than one disk")
    for nic in devs.interfaces:
        if nic.mac is None:
            continue
        if not _MAC.fullmatch(nic.mac):
            raise InvalidArgument(f"invalid MAC address '{nic.mac}'")
        if int(nic.mac[:2], 16) & 1:
            raise InvalidArgument(f"MAC address '{nic.mac}' is multicast; a unicast address is needed")
        net_vdpa.check(nic)
        net_sockets.check(nic)
        net_ethernet.check(nic)
        if nic.type == "network" and not nic.source_network:
            raise InvalidArgument(f"interface '{nic.mac}' of type 'network' names no network")
        if nic.type == "bridge" and not nic.source_bridge:
            raise InvalidArgument(f"interface '{nic.mac}' of type 'bridge' names no bridge")
    for nic in devs.interfaces:
        _check_tap_name(nic.type, nic.target_dev)
    for tap, count in Counter(nic.target_dev for nic in devs.interfaces if nic.target_dev).items():
        if count > 1:
            raise InvalidArgument(f"interface target dev '{tap}' is used by more than one interface")
    # USB companion controllers (<master startport>) share the index of their EHCI master.
    indexed = (c for c in devs.controllers if "master.startport" not in c.extra)
    for key, count in Counter((c.type, c.index) for c in indexed).items():
        if count > 1:
            raise InvalidArgument(f"more than one '{key[0]}' controller with index {key[1]}")
    for chardev in dom.all_chardevs():
        if chardev.type == "file" and not chardev.source_path:
            raise InvalidArgument(f"{chardev.kind} of type 'file' needs <source path=...>")
        if chardev.type == "unix" and chardev.kind != "channel" and not chardev.source_path:
            raise InvalidArgument(f"{chardev.kind} of type 'unix' needs <source path=...>")
        model = chardev.target_model or chardev.target_type
        if chardev.kind == "serial" and model not in (None, "isa-serial", "pci-serial", "isa-debugcon"):
            raise UnsupportedConfig(
                f"unsupported configuration: serial target '{model}' (isa-serial, pci-serial, isa-debugcon)"
            )
        kinds = {"isa-serial": ("isa",), "isa-debugcon": ("isa",), "pci-serial": ("pci",)}
        address = chardev.address
        allowed = kinds.get(model or "isa-serial", ())
        if chardev.kind == "serial" and address is not None and address.type not in allowed:
            raise InvalidArgument(f"serial '{model}' cannot have an address of type '{address.type}'")
        if chardev.kind == "channel" and chardev.target_type not in ("virtio", "guestfwd"):
            raise InvalidArgument("a channel needs <target type='virtio' name=...>")
        if chardev.target_name is not None and not _CHANNEL_NAME.fullmatch(chardev.target_name):
            raise InvalidArgument(f"invalid channel target name '{chardev.target_name}'")
    ports = [
        s.target_port for s in devs.serials if s.target_port is not None and s.target_model == "isa-serial"
    ]
    for port in ports:
        if port > 3:
            raise UnsupportedConfig(f"unsupported configuration: serial port {port} (QEMU has ISA ports 0-3)")
    for port, count in Counter(ports).items():
        if count > 1:
            raise InvalidArgument(f"serial port {port} is used by more than one serial device")
    names = [ch.target_name for ch in devs.channels if ch.target_name]
    for name, count in Counter(names).items():
        if count > 1:
            raise InvalidArgument(f"channel name '{name}' is used by more than one channel")
    if len(devs.graphics) > 1:
        raise UnsupportedConfig("unsupported configuration: more than one graphics device")
    usb = any(c.type == "usb" and c.model != "none" for c in devs.controllers)
    usb_users = [f"{i.type} input" for i in devs.inputs if i.bus == "usb"]
    usb_users += [f"disk '{d.target_dev}'" for d in devs.disks if d.target_bus == "usb"]
    if usb_users and not usb:
        raise InvalidArgument(f"USB {usb_users[0]} needs a USB controller (<controller type='usb'>)")
    for inp in devs.inputs:
        wanted = {"usb": "usb", "virtio": "pci"}.get(inp.bus)
        if inp.address is not None and inp.address.type != wanted:
            raise InvalidArgument(
                f"{inp.bus} {inp.type} input cannot have an address of type '{inp.address.type}'"
            )
    for panic in devs.panics:
        if panic.model == "hyperv" and panic.address is not None:
            raise InvalidArgument("panic model 'hyperv' is a CPU feature (hv-crash): it takes no address")
        if panic.model == "isa" and panic.address is not None and panic.address.type != "isa":
            raise InvalidArgument(f"panic model 'isa' cannot have an address of type '{panic.address.type}'")
        if panic.model == "pvpanic" and panic.address is not None and panic.address.type != "pci":
            raise InvalidArgument(
                f"panic model 'pvpanic' cannot have an address of type '{panic.address.type}'"
            )
    for gfx in devs.graphics:
        if gfx.type not in ("vnc", "spice", "sdl", "egl-headless"):
            raise UnsupportedConfig(f"unsupported configuration: graphics type '{gfx.type}' is not supported")
        if gfx.spice and gfx.type != "spice":
            raise UnsupportedConfig(
                f"unsupported configuration: SPICE settings on graphics type '{gfx.type}'"
            )
        vnc_options.check(gfx.type, gfx.vnc)
        if gfx.listen_socket or gfx.listen_none or gfx.type in ("sdl", "egl-headless"):
            continue
        if gfx.type == "spice" and not gfx.autoport and gfx.port is None:
            continue  # no port at all: SPICE listens nowhere (port=0), as libvirt starts it
        if not gfx.autoport and (gfx.port is None or not 5900 <= gfx.port <= 65535):
            raise InvalidArgument(
                f"{gfx.type.upper()} port {gfx.port} is out of range (5900-65535, or autoport='yes')"
            )


# Tick policies QEMU can honour, per timer (rtc: -rtc driftfix; pit: kvm-pit.lost_tick_policy).
_TICK_POLICIES = {"rtc": ("catchup", "delay"), "pit": ("delay", "catchup", "discard")}
_PRESENT_TIMERS = ("hpet", "kvmclock", "tsc", "hypervclock")
_PCI_TARGETS = {
    "pcie-root-port": ("chassis", "port", "hotplug"),
    "pcie-switch-downstream-port": ("chassis", "port", "hotplug"),
    "pci-bridge": ("chassisNr",),
    "pci-root": ("hotplug",),  # ACPI hotplug of pc's root bus (-global PIIX4_PM.acpi-root-pci-hotplug)
}
_PCI_MODEL_NAMES = {
    "pcie-root-port": ("pcie-root-port", "ioh3420"),
    "pci-bridge": ("pci-bridge",),
    "pcie-to-pci-bridge": ("pcie-pci-bridge",),
    "dmi-to-pci-bridge": ("i82801b11-bridge",),
    "pcie-switch-upstream-port": ("x3130-upstream",),
    "pcie-switch-downstream-port": ("xio3130-downstream",),
}
_USB_COMPANIONS = ("ich9-uhci1", "ich9-uhci2", "ich9-uhci3")


def _check_clock(dom: Domain) -> None:
    for timer in dom.clock.timers if dom.clock else []:
        policy = timer.tickpolicy
        if policy is not None and policy not in _TICK_POLICIES.get(timer.name, ()):
            raise UnsupportedConfig(
                f"unsupported configuration: tickpolicy '{policy}' of timer '{timer.name}' is not supported"
            )
        if timer.present is not None and timer.name not in _PRESENT_TIMERS:
            raise UnsupportedConfig(
                f"unsupported configuration: attribute 'present' of timer '{timer.name}' is not supported"
            )


def _check_firmware(dom: Domain) -> None:
    loader = dom.os.loader
    if loader is not None and loader.stateless:
        if dom.os.nvram is not None or dom.os.nvram_template is not None:
            raise InvalidArgument("os/loader stateless='yes' keeps no NVRAM: remove os/nvram")
        if loader.type == "pflash" and loader.secure:
            raise UnsupportedConfig(
                "unsupported configuration: stateless firmware (loader stateless='yes') cannot do secure boot"
            )
    if loader is None or not loader.secure:
        return
    if "q35" not in (dom.os.machine or ""):
        raise UnsupportedConfig(
            "unsupported configuration: secure boot (loader secure='yes') needs a q35 machine"
        )
    if loader.type != "pflash":
        raise UnsupportedConfig("unsupported configuration: loader secure='yes' needs loader type 'pflash'")
    smm = "smm" in dom.features and dom.feature_attrs.get("smm", {}).get("state", "on") == "on"
    if dom.os.firmware is None and not smm:
        raise InvalidArgument(
            "secure boot (loader secure='yes') requires the SMM feature: add <smm state='on'/>"
        )


def _check_controllers(dom: Domain) -> None:
    ctrls = dom.devices.controllers
    q35 = "q35" in (dom.os.machine or "")
    for ctl in ctrls:
        where = f"controller '{ctl.type}' index {ctl.index}"
        targets = [key[7:] for key in ctl.extra if key.startswith("target.")]
        allowed = _PCI_TARGETS.get(ctl.model or "", ())
        for name in targets:
            if name not in allowed:
                raise UnsupportedConfig(
                    f"unsupported configuration: target {name} of {where} is not supported"
                )
        hotplug = ctl.extra.get("target.hotplug")
        if hotplug not in (None, "on", "off"):
            raise InvalidArgument(f"target hotplug='{hotplug}' of {where} must be on or off")
        for name, low, high in (("chassis", 0, 255), ("port", 0, 255), ("chassisNr", 1, 255)):
            text = ctl.extra.get(f"target.{name}")
            if text is not None and not low <= parse_number(text, f"target {name} of {where}") <= high:
                raise InvalidArgument(f"target {name}='{text}' of {where} is out of range ({low}-{high})")
        model_name = ctl.extra.get("model.name")
        if model_name and model_name not in _PCI_MODEL_NAMES.get(ctl.model or "", ()):
            raise InvalidArgument(f"model name '{model_name}' does not fit {where} of model '{ctl.model}'")
        if ctl.type == "usb":
            if ctl.ports is not None and ctl.model not in ("qemu-xhci", "nec-xhci"):
                raise UnsupportedConfig(
                    f"unsupported configuration: 'ports' of usb controller model '{ctl.model}' (xHCI only)"
                )
            if "master.startport" in ctl.extra:
                if ctl.model not in _USB_COMPANIONS:
                    raise InvalidArgument(f"<master> of {where} needs a companion model (ich9-uhci1/2/3)")
                masters = [
                    c for c in ctrls if c.type == "usb" and c.index == ctl.index and c.model == "ich9-ehci1"
                ]
                if not masters:
                    raise InvalidArgument(f"companion {where} has no ich9-ehci1 master with the same index")
        if ctl.type == "fdc" and ctl.index != 0:
            raise UnsupportedConfig(
                f"unsupported configuration: {where}: there is one floppy controller (index 0)"
            )
        if ctl.type == "ide" and (q35 or ctl.index != 0):
            raise UnsupportedConfig(
                f"unsupported configuration: {where}: only the pc machine's IDE controller (index 0) exists"
            )


def _check_memory_devices(dom: Domain) -> None:
    balloon = dom.devices.memballoon
    has_balloon = balloon is not None and balloon.model == "virtio"
    if dom.current_memory_kib is not None and dom.current_memory_kib < dom.memory_kib and not has_balloon:
        raise InvalidArgument(
            f"currentMemory ({dom.current_memory_kib} KiB) below memory needs <memballoon model='virtio'> "
            "to set the balloon target"
        )
    if balloon is not None and balloon.stats_period is not None and balloon.model != "virtio":
        raise InvalidArgument("memballoon stats period needs memballoon model 'virtio'")


def _check_watchdogs_and_video(dom: Domain) -> None:
    dogs = dom.devices.watchdogs
    if len({dog.action for dog in dogs}) > 1:
        raise UnsupportedConfig("unsupported configuration: watchdogs with different actions")
    for dog in dogs:
        if dog.address is not None and (dog.model != "i6300esb" or dog.address.type != "pci"):
            raise InvalidArgument(
                f"watchdog '{dog.model}' cannot have an address of type '{dog.address.type}'"
            )
        if dog.model == "itco" and "q35" not in (dom.os.machine or ""):
            raise UnsupportedConfig("unsupported configuration: watchdog model 'itco' needs a q35 machine")
    if sum(1 for video in dom.devices.videos if video.primary) > 1:
        raise InvalidArgument("only one video device can be primary")
    for video in dom.devices.videos:
        sized = video.vram or video.heads not in (None, 1)
        if video.model == "ramfb" and (video.address is not None or sized):
            raise UnsupportedConfig(
                "unsupported configuration: video model 'ramfb' is no PCI device: it takes no address, "
                "vram or heads"
            )
        for name in ("ram", "vram64", "vgamem"):
            if getattr(video, name) is not None and video.model != "qxl":
                raise UnsupportedConfig(f"unsupported configuration: {name} for video model '{video.model}'")
        if video.model == "qxl":
            _check_qxl(video.ram, video.vram, video.vgamem)
        if video.heads is not None and video.heads > 1 and video.model not in ("virtio", "qxl"):
            raise UnsupportedConfig(f"unsupported configuration: heads > 1 for video model '{video.model}'")
        if video.vram is not None and video.model not in ("vga", "cirrus", "bochs", "qxl"):
            raise UnsupportedConfig(f"unsupported configuration: vram for video model '{video.model}'")
        if video.model == "cirrus" and video.vram is not None and video.vram not in (4096, 8192, 16384):
            raise InvalidArgument(f"cirrus video vram {video.vram} KiB: QEMU's cirrus has 4, 8 or 16 MiB")


def _check_qxl(ram: int | None, vram: int | None, vgamem: int | None) -> None:
    """QEMU's qxl takes power-of-two sizes; vgamem (the VGA framebuffer) must fit in ram (libvirt's rules)."""
    for name, value in (("ram", ram), ("vram", vram), ("vgamem", vgamem)):
        if value is not None and (value < 1024 or value & (value - 1)):
            raise InvalidArgument(
                f"qxl video {name} {value} KiB: a power of two of at least 1024 KiB is needed"
            )
    if ram is not None and vgamem is not None and vgamem * 2 > ram:
        raise InvalidArgument(f"qxl video ram {ram} KiB must be at least twice vgamem ({vgamem} KiB)")


def _check_audio(dom: Domain) -> None:
    devs = dom.devices
    ids = [audio.id for audio in devs.audios]
    for ident, count in Counter(ids).items():
        if count > 1:
            raise InvalidArgument(f"audio id '{ident}' is used by more than one <audio>")
    for audio in devs.audios:
        if audio.type == "spice" and not any(gfx.type == "spice" for gfx in devs.graphics):
            raise UnsupportedConfig(
                f"unsupported configuration: audio id '{audio.id}' of type 'spice' needs a SPICE display"
            )
    for index, sound in enumerate(devs.sounds):
        if sound.audio_id is not None and sound.audio_id not in ids:
            raise InvalidArgument(
                f"sound #{index} plays to audio id '{sound.audio_id}', which is not defined"
            )
        if sound.model == "sb16" and sound.address is not None:
            raise InvalidArgument("sound model 'sb16' is an ISA card: it takes no address")
        if sound.codecs and sound.model not in ("ich6", "ich9"):
            raise UnsupportedConfig("unsupported configuration: codecs are for HDA sound models (ich6, ich9)")
        if sound.model == "ich9" and "q35" not in (dom.os.machine or ""):
            raise UnsupportedConfig("unsupported configuration: sound model 'ich9' needs a q35 machine")


def _check_boot(dom: Domain) -> None:
    # A <boot dev> of a kind the domain has no device of orders nothing, as with libvirt (whose boot
    # order is the bootindex of each kind's first device).
    orders = [disk.boot_order for disk in dom.devices.disks if disk.boot_order is not None]
    orders += [nic.boot_order for nic in dom.devices.interfaces if nic.boot_order is not None]
    orders += [dev.boot_order for dev in dom.devices.hostdevs if dev.boot_order is not None]
    orders += [fs.boot_order for fs in dom.devices.filesystems if fs.boot_order is not None]
    if orders and dom.os.boot:
        raise InvalidArgument("per-device boot elements cannot be used together with os/boot elements")
    for order, count in Counter(orders).items():
        if count > 1:
            raise InvalidArgument(f"boot order {order} is used by more than one device")


def check_metadata(metadata: str, what: str = "domain") -> None:
    """Refuse metadata that is not a well-formed XML fragment (it is written out verbatim)."""
    try:
        parse_document(f"<metadata>{metadata}</metadata>")
    except XMLError as err:
        raise XMLError(f"{what} metadata is not well-formed XML: {err.message}") from err


def _check_machine(dom: Domain) -> None:
    machine = dom.os.machine or "pc"
    if not _MACHINE.fullmatch(machine):
        raise UnsupportedConfig(
            f"unsupported configuration: machine type '{machine}' (pc, q35, pc-i440fx-X.Y or pc-q35-X.Y)"
        )


def validate_domain(dom: Domain) -> None:
    """Raise InvalidArgument (or UnsupportedConfig) for the first problem found in ``dom``."""
    validate_name(dom.name)
    validate_uuid(dom.uuid)
    if dom.type not in ("kvm", "qemu"):
        raise UnsupportedConfig(f"unsupported configuration: domain type '{dom.type}' is not supported")
    for tag in ("on_poweroff", "on_reboot", "on_crash"):
        value = getattr(dom, tag)
        if value not in _LIFECYCLE:
            raise UnsupportedConfig(f"unsupported configuration: {tag} action '{value}' is not supported")
    _check_memory(dom)
    _check_vcpu_count(dom)
    cpu = dom.cpu
    if cpu is not None and None not in (cpu.sockets, cpu.cores, cpu.threads):
        total = (cpu.sockets or 1) * (cpu.dies or 1) * (cpu.cores or 1) * (cpu.threads or 1)
        total *= cpu.clusters or 1
        if total != dom.vcpus:
            raise InvalidArgument(f"CPU topology gives {total} vCPUs but <vcpu> is {dom.vcpus}")
    if cpu is not None and (cpu.clusters or 1) > 1:
        raise UnsupportedConfig(
            f"unsupported configuration: cpu/topology clusters='{cpu.clusters}': "
            "QEMU 7.2's x86 machines have no CPU clusters (only clusters='1')"
        )
    _check_vcpus(dom)
    _check_iothreads(dom)
    _check_numa(dom)
    memory_devices.validate(dom)
    memory_backing.validate(dom)
    numa_hmat.validate(dom.cpu)
    _check_audio(dom)
    if dom.os.loader is not None and not dom.os.loader.path and dom.os.firmware is None:
        raise InvalidArgument("os/loader needs a path unless os firmware='efi' selects one")
    if dom.metadata:
        check_metadata(dom.metadata)
    _check_machine(dom)
    feature_sizes.check(dom, "q35" in (dom.os.machine or ""))
    acpi_index.check(dom)
    _check_clock(dom)
    _check_firmware(dom)
    _check_devices(dom)
    _check_controllers(dom)
    _check_memory_devices(dom)
    _check_watchdogs_and_video(dom)
    if dom.devices.smartcards:
        from pyvirt.conf import smartcard

        smartcard.check(dom)
    check_addresses(dom)
    _check_boot(dom)

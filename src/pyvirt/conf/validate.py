"""Validation of a parsed, defaulted :class:`~pyvirt.conf.domain.Domain`: a separate pass, as in libvirt.

Checks what a single element cannot: names that become file names, sizes against each other, duplicate
targets and MACs, boot order given twice. Works on domains built in code as well as parsed ones, so it
re-checks enumerations the parser already limits.
"""

from __future__ import annotations

import re
from collections import Counter

from pyvirt.conf.domain import Domain
from pyvirt.conf.names import validate_name
from pyvirt.conf.units import MAX_KIB
from pyvirt.conf.xmlutil import parse_document
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

MAX_VCPUS = 255
MIN_MEMORY_KIB = 1024
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_DISK_TARGET = re.compile(r"(?:vd|sd|hd)[a-z]{1,3}")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_LIFECYCLE = ("destroy", "restart", "preserve")
_BUSES = ("virtio", "sata", "scsi", "ide", "usb")


def validate_uuid(value: str) -> None:
    if not _UUID.fullmatch(value):
        raise InvalidArgument(f"invalid UUID '{value}': expected lower-case 8-4-4-4-12 hex digits")


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


def _check_devices(dom: Domain) -> None:
    devs = dom.devices
    for disk in devs.disks:
        if not _DISK_TARGET.fullmatch(disk.target_dev):
            raise InvalidArgument(f"invalid disk target '{disk.target_dev}' (expected vdX, sdX or hdX)")
        if disk.target_bus not in _BUSES:
            raise InvalidArgument(f"disk '{disk.target_dev}' has no usable bus (give <target bus=...>)")
        has_source = disk.source or (disk.source_pool and disk.source_volume)
        if disk.device == "disk" and not has_source:
            raise InvalidArgument(f"disk '{disk.target_dev}' has no source")
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
        if nic.type == "network" and not nic.source_network:
            raise InvalidArgument(f"interface '{nic.mac}' of type 'network' names no network")
        if nic.type == "bridge" and not nic.source_bridge:
            raise InvalidArgument(f"interface '{nic.mac}' of type 'bridge' names no bridge")
    for mac, count in Counter(nic.mac for nic in devs.interfaces if nic.mac).items():
        if count > 1:
            raise InvalidArgument(f"MAC address '{mac}' is used by more than one interface")
    # USB companion controllers (<master startport>) share the index of their EHCI master.
    indexed = (c for c in devs.controllers if "master.startport" not in c.extra)
    for key, count in Counter((c.type, c.index) for c in indexed).items():
        if count > 1:
            raise InvalidArgument(f"more than one '{key[0]}' controller with index {key[1]}")
    for chardev in dom.all_chardevs():
        if chardev.type == "file" and not chardev.source_path:
            raise InvalidArgument(f"{chardev.kind} of type 'file' needs <source path=...>")
        if chardev.target_name is not None and not _CHANNEL_NAME.fullmatch(chardev.target_name):
            raise InvalidArgument(f"invalid channel target name '{chardev.target_name}'")
    for gfx in devs.graphics:
        if gfx.type != "vnc":
            raise UnsupportedConfig(f"unsupported configuration: graphics type '{gfx.type}' is not supported")
        if not gfx.autoport and (gfx.port is None or not 5900 <= gfx.port <= 65535):
            raise InvalidArgument(f"VNC port {gfx.port} is out of range (5900-65535, or autoport='yes')")
    for video in devs.videos:
        if video.model == "qxl":
            raise UnsupportedConfig("unsupported configuration: video model 'qxl' is not supported")


def _check_boot(dom: Domain) -> None:
    orders = [disk.boot_order for disk in dom.devices.disks if disk.boot_order is not None]
    orders += [nic.boot_order for nic in dom.devices.interfaces if nic.boot_order is not None]
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
    if not 1 <= dom.vcpus <= MAX_VCPUS:
        raise InvalidArgument(f"vcpu count {dom.vcpus} is out of range (1-{MAX_VCPUS})")
    cpu = dom.cpu
    if cpu is not None and None not in (cpu.sockets, cpu.cores, cpu.threads):
        total = (cpu.sockets or 1) * (cpu.dies or 1) * (cpu.cores or 1) * (cpu.threads or 1)
        if total != dom.vcpus:
            raise InvalidArgument(f"CPU topology gives {total} vCPUs but <vcpu> is {dom.vcpus}")
    if dom.os.loader is not None and not dom.os.loader.path and dom.os.firmware is None:
        raise InvalidArgument("os/loader needs a path unless os firmware='efi' selects one")
    if dom.metadata:
        check_metadata(dom.metadata)
    _check_devices(dom)
    _check_boot(dom)

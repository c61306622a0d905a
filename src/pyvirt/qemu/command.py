"""Domain → QEMU command line, as a pure function.

``build_argv`` turns a :class:`~pyvirt.conf.domain.Domain` plus the run-time facts the driver decided
(QMP socket descriptor, tap names, channel socket paths, accelerator) into an argv list. It does no
I/O, so it is tested as text against golden files. Disks use ``-blockdev``; the monitor is a
pre-bound socket passed by descriptor (so the daemon can connect before QEMU accepts); QEMU starts
paused (``-S``) with ``-no-shutdown`` so that the daemon decides what a guest power-off or crash
means (``on_poweroff``/``on_crash``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyvirt.conf.domain import (
    CharDevConfig,
    ControllerConfig,
    DiskConfig,
    Domain,
    InterfaceConfig,
    PCIAddress,
)
from pyvirt.errors import UnsupportedConfig

DEFAULT_EMULATOR = "/usr/bin/qemu-system-x86_64"
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

NIC_MODELS = {
    "virtio": "virtio-net-pci",
    "e1000": "e1000",
    "e1000e": "e1000e",
    "rtl8139": "rtl8139",
}
_VIDEO_DEVICES = {"vga": "VGA", "cirrus": "cirrus-vga", "virtio": "virtio-vga", "bochs": "bochs-display"}
_USB_MODELS = {
    "qemu-xhci": "qemu-xhci",
    "nec-xhci": "nec-usb-xhci",
    "piix3-uhci": "piix3-usb-uhci",
    "piix4-uhci": "piix4-usb-uhci",
    "ich9-ehci1": "ich9-usb-ehci1",
    "ich9-uhci1": "ich9-usb-uhci1",
    "ich9-uhci2": "ich9-usb-uhci2",
    "ich9-uhci3": "ich9-usb-uhci3",
}
_PCI_CONTROLLER_DEVICES = {
    "pcie-root-port": "pcie-root-port",
    "pci-bridge": "pci-bridge",
    "pcie-to-pci-bridge": "pcie-pci-bridge",
}


@dataclass
class RuntimeContext:
    """What the driver decided before building the command line."""

    accel: str  # "kvm" or "tcg"
    monitor_fd: int | None = None  # pre-bound listening QMP socket, inherited by QEMU
    monitor_path: str | None = None  # alternative to monitor_fd (used by golden tests)
    taps: dict[int, str] = field(default_factory=dict)  # interface index → tap name
    channel_paths: dict[int, str] = field(default_factory=dict)  # channel index → unix socket path
    disk_paths: dict[int, str] = field(default_factory=dict)  # disk index → resolved path (volumes)
    nvram_path: str | None = None
    pidfile: str | None = None


def is_q35(dom: Domain) -> bool:
    machine = dom.os.machine or "pc"
    return "q35" in machine


def _opts(head: str, **kv: str | int | None) -> str:
    parts = [head] if head else []
    for key, value in kv.items():
        if value is None:
            continue
        parts.append(f"{key.replace('_', '-')}={value}")
    return ",".join(parts)


def _pci_placement(addr: PCIAddress | None, q35: bool) -> dict[str, str]:
    if addr is None or addr.type != "pci":
        return {}
    bus = int(addr.attrs.get("bus", "0"), 0)
    slot = int(addr.attrs.get("slot", "0"), 0)
    function = int(addr.attrs.get("function", "0"), 0)
    out = {"bus": ("pcie.0" if q35 else "pci.0") if bus == 0 else f"pci.{bus}"}
    out["addr"] = f"{slot:#x}" if function == 0 else f"{slot:#x}.{function:#x}"
    if addr.attrs.get("multifunction") == "on":
        out["multifunction"] = "on"
    return out


def _device(driver: str, placement: dict[str, str], **kv: str | int | None) -> list[str]:
    merged: dict[str, str | int | None] = {**placement, **kv}
    return ["-device", _opts(driver, **merged)]


def _json_arg(flag: str, obj: dict[str, object]) -> list[str]:
    return [flag, json.dumps(obj, separators=(",", ":"))]


class _Builder:
    def __init__(self, dom: Domain, ctx: RuntimeContext) -> None:
        self.dom = dom
        self.ctx = ctx
        self.q35 = is_q35(dom)
        self.argv: list[str] = []
        self.has_usb = False
        self.sata_bus: str | None = None
        self.scsi_bus: str | None = None
        self.serial_bus: str | None = None
        self.boot_kinds_used: set[str] = set()

    def add(self, *args: str) -> None:
        self.argv.extend(args)

    def build(self) -> list[str]:
        dom = self.dom
        self.add(dom.devices.emulator or DEFAULT_EMULATOR)
        self.add("-name", f"guest={dom.name},debug-threads=on")
        self.add("-S")
        self.machine()
        self.add("-accel", self.ctx.accel)
        self.cpu()
        self.add("-m", f"size={dom.memory_kib}k")
        self.smp()
        self.add("-uuid", dom.uuid)
        self.add("-no-user-config", "-nodefaults")
        self.monitor()
        self.clock()
        self.add("-no-shutdown", "-action", "panic=pause")
        if dom.on_reboot == "destroy":
            self.add("-no-reboot")
        self.pm()
        self.boot()
        self.controllers()
        for index, disk in enumerate(dom.devices.disks):
            self.disk(index, disk)
        for index, iface in enumerate(dom.devices.interfaces):
            self.interface(index, iface)
        self.chardevs()
        self.graphics()
        self.inputs()
        self.misc_devices()
        self.add("-sandbox", SANDBOX)
        self.add("-msg", "timestamp=on")
        if self.ctx.pidfile:
            self.add("-pidfile", self.ctx.pidfile)
        return self.argv

    def machine(self) -> None:
        dom = self.dom
        opts: dict[str, str | int | None] = {"usb": "off", "dump-guest-core": "off"}
        if "acpi" not in dom.features:
            opts["acpi"] = "off"
        vmport = dom.feature_attrs.get("vmport", {}).get("state")
        if vmport:
            opts["vmport"] = vmport
        smm = dom.feature_attrs.get("smm", {}).get("state")
        if "smm" in dom.features:
            opts["smm"] = smm or "on"
        if dom.clock:
            for timer in dom.clock.timers:
                if timer.name == "hpet" and timer.present is not None:
                    opts["hpet"] = "on" if timer.present else "off"
        if dom.os.loader is not None and dom.os.loader.type == "pflash":
            opts["pflash0"] = "pyvirt-pflash0-format"
            if self.ctx.nvram_path:
                opts["pflash1"] = "pyvirt-pflash1-format"
        self.pflash()
        self.add("-machine", _opts(dom.os.machine or "pc", **opts))

    def pflash(self) -> None:
        loader = self.dom.os.loader
        if loader is None:
            return
        if loader.type == "rom":
            self.add("-bios", loader.path)
            return
        self._raw_node("pyvirt-pflash0", loader.path, readonly=loader.readonly)
        if self.ctx.nvram_path:
            self._raw_node("pyvirt-pflash1", self.ctx.nvram_path, readonly=False)

    def _raw_node(self, prefix: str, path: str, *, readonly: bool) -> None:
        self.add(
            *_json_arg(
                "-blockdev",
                {
                    "driver": "file",
                    "filename": path,
                    "node-name": f"{prefix}-storage",
                    "auto-read-only": True,
                    "discard": "unmap",
                },
            )
        )
        self.add(
            *_json_arg(
                "-blockdev",
                {
                    "node-name": f"{prefix}-format",
                    "read-only": readonly,
                    "driver": "raw",
                    "file": f"{prefix}-storage",
                },
            )
        )

    def cpu(self) -> None:
        cpu = self.dom.cpu
        kvm = self.ctx.accel == "kvm"
        if cpu is None:
            return
        if cpu.mode in ("host-passthrough", "host-model"):
            model = "host" if kvm else "max"
            if cpu.mode == "host-passthrough" and cpu.migratable is not None and kvm:
                model += ",migratable=" + ("on" if cpu.migratable else "off")
        elif cpu.mode == "maximum":
            model = "max"
        elif cpu.model:
            model = cpu.model
        else:
            return
        for feature in cpu.features:
            if feature.policy in ("require", "force"):
                model += f",{feature.name}=on"
            elif feature.policy in ("disable", "forbid"):
                model += f",{feature.name}=off"
        self.add("-cpu", model)

    def smp(self) -> None:
        dom = self.dom
        cpu = dom.cpu
        sockets = cpu.sockets if cpu and cpu.sockets else None
        cores = cpu.cores if cpu and cpu.cores else None
        threads = cpu.threads if cpu and cpu.threads else None
        if sockets is None and cores is None and threads is None:
            sockets, cores, threads = dom.vcpus, 1, 1
        self.add("-smp", _opts(str(dom.vcpus), sockets=sockets, cores=cores, threads=threads))

    def monitor(self) -> None:
        if self.ctx.monitor_fd is not None:
            chardev = f"socket,id=charmonitor,fd={self.ctx.monitor_fd},server=on,wait=off"
        elif self.ctx.monitor_path is not None:
            chardev = f"socket,id=charmonitor,path={self.ctx.monitor_path},server=on,wait=off"
        else:
            raise ValueError("a monitor socket is required")
        self.add("-chardev", chardev, "-mon", "chardev=charmonitor,id=monitor,mode=control")

    def clock(self) -> None:
        clock = self.dom.clock
        offset = clock.offset if clock else "utc"
        if offset not in ("utc", "localtime"):
            raise UnsupportedConfig(f"unsupported configuration: clock offset '{offset}' is not supported")
        rtc = f"base={offset}"
        if clock:
            for timer in clock.timers:
                if timer.name == "rtc" and timer.tickpolicy == "catchup":
                    rtc += ",driftfix=slew"
                if timer.name == "pit" and timer.tickpolicy == "delay" and self.ctx.accel == "kvm":
                    self.add("-global", "kvm-pit.lost_tick_policy=delay")
        self.add("-rtc", rtc)

    def pm(self) -> None:
        dom = self.dom
        device = "ICH9-LPC" if self.q35 else "PIIX4_PM"
        if dom.pm_suspend_to_mem is not None:
            self.add("-global", f"{device}.disable_s3={0 if dom.pm_suspend_to_mem else 1}")
        if dom.pm_suspend_to_disk is not None:
            self.add("-global", f"{device}.disable_s4={0 if dom.pm_suspend_to_disk else 1}")

    def boot(self) -> None:
        os_ = self.dom.os
        if os_.kernel:
            self.add("-kernel", os_.kernel)
        if os_.initrd:
            self.add("-initrd", os_.initrd)
        if os_.cmdline:
            self.add("-append", os_.cmdline)
        opts: dict[str, str | int | None] = {"strict": "on"}
        if os_.bootmenu is not None:
            opts["menu"] = "on" if os_.bootmenu else "off"
        self.add("-boot", _opts("", **opts))

    def _boot_index(self, order: int | None, kind: str) -> int | None:
        if order is not None:
            return order
        boots = self.dom.os.boot
        if kind in boots and kind not in self.boot_kinds_used and not self.dom.os.kernel:
            self.boot_kinds_used.add(kind)
            return boots.index(kind) + 1
        return None

    def controllers(self) -> None:
        for ctrl in sorted(self.dom.devices.controllers, key=lambda c: (c.type != "pci", c.index)):
            self.controller(ctrl)

    def controller(self, ctrl: ControllerConfig) -> None:
        place = _pci_placement(ctrl.address, self.q35)
        if ctrl.type == "pci":
            model = ctrl.model or ("pcie-root" if self.q35 else "pci-root")
            if model in ("pci-root", "pcie-root"):
                return
            driver = _PCI_CONTROLLER_DEVICES.get(model)
            if driver is None:
                raise UnsupportedConfig(f"unsupported configuration: pci controller model '{model}'")
            extra: dict[str, str | int | None] = {}
            if model == "pcie-root-port":
                extra["port"] = ctrl.extra.get("port")
                extra["chassis"] = ctrl.extra.get("chassis", str(ctrl.index))
            elif model == "pci-bridge":
                extra["chassis_nr"] = ctrl.extra.get("chassisNr", str(ctrl.index))
            self.add(*_device(driver, place, **extra, id=f"pci.{ctrl.index}"))
        elif ctrl.type == "usb":
            model = ctrl.model or ("qemu-xhci" if self.q35 else "piix3-uhci")
            if model == "none":
                return
            driver = _USB_MODELS.get(model)
            if driver is None:
                raise UnsupportedConfig(f"unsupported configuration: usb controller model '{model}'")
            if ctrl.index == 0 and model not in ("ich9-uhci1", "ich9-uhci2", "ich9-uhci3"):
                self.has_usb = True
                self.add(*_device(driver, place, id="usb"))
            elif model.startswith("ich9-uhci"):
                self.add(*_device(driver, place, masterbus="usb.0", id=f"usb{ctrl.index}"))
                self.has_usb = True
            else:
                self.add(*_device(driver, place, id=f"usb{ctrl.index}"))
        elif ctrl.type == "sata":
            if self.q35 and ctrl.index == 0:
                self.sata_bus = "ide"
                return
            self.sata_bus = f"sata{ctrl.index}"
            self.add(*_device("ahci", place, id=self.sata_bus))
        elif ctrl.type == "scsi":
            model = ctrl.model or "virtio-scsi"
            if model != "virtio-scsi":
                raise UnsupportedConfig(f"unsupported configuration: scsi controller model '{model}'")
            self.scsi_bus = f"scsi{ctrl.index}"
            self.add(*_device("virtio-scsi-pci", place, id=self.scsi_bus))
        elif ctrl.type == "virtio-serial":
            self.serial_bus = f"virtio-serial{ctrl.index}"
            self.add(*_device("virtio-serial-pci", place, id=self.serial_bus))
        elif ctrl.type == "ide":
            return  # built into the machine (piix3-ide on pc)
        else:
            raise UnsupportedConfig(f"unsupported configuration: controller type '{ctrl.type}'")

    def _ensure_sata(self) -> str:
        if self.sata_bus is None:
            if self.q35:
                self.sata_bus = "ide"
            else:
                self.sata_bus = "sata0"
                self.add("-device", "ahci,id=sata0")
        return self.sata_bus

    def _ensure_scsi(self) -> str:
        if self.scsi_bus is None:
            self.scsi_bus = "scsi0"
            self.add("-device", "virtio-scsi-pci,id=scsi0")
        return self.scsi_bus

    def _ensure_virtio_serial(self) -> str:
        if self.serial_bus is None:
            self.serial_bus = "virtio-serial0"
            self.add("-device", "virtio-serial-pci,id=virtio-serial0")
        return self.serial_bus

    def disk(self, index: int, disk: DiskConfig) -> None:
        node = f"pyvirt-{index + 1}"
        path = self.ctx.disk_paths.get(index, disk.source)
        readonly = disk.readonly or disk.device == "cdrom"
        has_media = path is not None
        if has_media:
            assert path is not None
            storage: dict[str, object] = {
                "driver": "host_device" if disk.type == "block" else "file",
                "filename": path,
                "node-name": f"{node}-storage",
                "auto-read-only": True,
                "discard": "unmap" if disk.discard == "unmap" else "ignore",
            }
            cache_direct, cache_no_flush = _cache_mode(disk.cache)
            if cache_direct:
                storage["cache"] = {"direct": True, "no-flush": cache_no_flush}
            elif cache_no_flush:
                storage["cache"] = {"direct": False, "no-flush": True}
            if disk.io in ("native", "io_uring"):
                storage["aio"] = disk.io
            self.add(*_json_arg("-blockdev", storage))
            fmt: dict[str, object] = {
                "node-name": f"{node}-format",
                "read-only": readonly,
                "driver": disk.driver_type,
                "file": f"{node}-storage",
            }
            if disk.discard == "unmap":
                fmt["discard"] = "unmap"
            if cache_direct or cache_no_flush:
                fmt["cache"] = storage["cache"]
            self.add(*_json_arg("-blockdev", fmt))
        drive = f"{node}-format" if has_media else None
        bootindex = self._boot_index(disk.boot_order, "cdrom" if disk.device == "cdrom" else "hd")
        dev_id = disk.alias or _disk_alias(disk)
        place = _pci_placement(disk.address, self.q35)
        wce = None
        if disk.cache in ("writethrough", "directsync"):
            wce = "off"
        if disk.target_bus == "virtio":
            if disk.device == "cdrom":
                raise UnsupportedConfig("unsupported configuration: a cdrom cannot be on the virtio bus")
            if not has_media:
                raise UnsupportedConfig(f"unsupported configuration: disk '{disk.target_dev}' has no source")
            self.add(
                *_device(
                    "virtio-blk-pci",
                    place,
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                    serial=disk.serial,
                    write_cache=wce,
                )
            )
            return
        unit = _drive_unit(disk.target_dev)
        if disk.target_bus == "sata":
            bus = self._ensure_sata()
            driver = "ide-cd" if disk.device == "cdrom" else "ide-hd"
            self.add(*_device(driver, {}, bus=f"{bus}.{unit}", drive=drive, id=dev_id, bootindex=bootindex))
        elif disk.target_bus == "ide":
            if self.q35:
                raise UnsupportedConfig("unsupported configuration: IDE disks are not available on q35")
            driver = "ide-cd" if disk.device == "cdrom" else "ide-hd"
            self.add(
                *_device(
                    driver,
                    {},
                    bus=f"ide.{unit // 2}",
                    unit=unit % 2,
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                )
            )
        elif disk.target_bus == "scsi":
            bus = self._ensure_scsi()
            driver = "scsi-cd" if disk.device == "cdrom" else "scsi-hd"
            self.add(
                *_device(
                    driver,
                    {},
                    bus=f"{bus}.0",
                    channel=0,
                    scsi_id=0,
                    lun=unit,
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                    serial=disk.serial,
                )
            )
        elif disk.target_bus == "usb":
            if not self.has_usb:
                raise UnsupportedConfig("unsupported configuration: a USB disk needs a USB controller")
            self.add(*_device("usb-storage", {}, bus="usb.0", drive=drive, id=dev_id, bootindex=bootindex))
        else:
            raise UnsupportedConfig(f"unsupported configuration: disk bus '{disk.target_bus}'")

    def interface(self, index: int, iface: InterfaceConfig) -> None:
        netdev = f"hostnet{index}"
        if iface.type in ("network", "bridge"):
            tap = self.ctx.taps.get(index) or iface.target_dev
            if not tap:
                raise UnsupportedConfig(f"interface {index} has no tap device")
            self.add("-netdev", f"tap,ifname={tap},script=no,downscript=no,id={netdev}")
        elif iface.type == "user":
            self.add("-netdev", f"user,id={netdev}")
        else:
            raise UnsupportedConfig(f"unsupported configuration: interface type '{iface.type}'")
        driver = NIC_MODELS.get(iface.model)
        if driver is None:
            raise UnsupportedConfig(f"unsupported configuration: interface model '{iface.model}'")
        self.add(
            *_device(
                driver,
                _pci_placement(iface.address, self.q35),
                netdev=netdev,
                id=iface.alias or f"net{index}",
                mac=iface.mac,
                bootindex=self._boot_index(iface.boot_order, "network"),
            )
        )

    def chardevs(self) -> None:
        dom = self.dom
        for index, serial in enumerate(dom.devices.serials):
            chardev = f"charserial{index}"
            self.add("-chardev", _chardev_spec(serial, chardev))
            port = serial.target_port if serial.target_port is not None else index
            model = serial.target_model or "isa-serial"
            if model != "isa-serial":
                raise UnsupportedConfig(f"unsupported configuration: serial model '{model}'")
            self.add("-device", f"isa-serial,chardev={chardev},id=serial{index},index={port}")
        for index, console in enumerate(dom.devices.consoles):
            if console.target_type in (None, "serial"):
                continue  # the console is the first serial port
            if console.target_type != "virtio":
                raise UnsupportedConfig(f"unsupported configuration: console type '{console.target_type}'")
            bus = self._ensure_virtio_serial()
            chardev = f"charconsole{index}"
            self.add("-chardev", _chardev_spec(console, chardev))
            self.add("-device", f"virtconsole,bus={bus}.0,chardev={chardev},id=console{index}")
        for index, channel in enumerate(dom.devices.channels):
            if channel.target_type != "virtio":
                raise UnsupportedConfig(f"unsupported configuration: channel type '{channel.target_type}'")
            bus = self._ensure_virtio_serial()
            chardev = f"charchannel{index}"
            path = self.ctx.channel_paths.get(index, channel.source_path)
            spec = CharDevConfig(kind="channel", type=channel.type, source_path=path, source_mode="bind")
            self.add("-chardev", _chardev_spec(spec, chardev))
            self.add(
                "-device",
                _opts(
                    "virtserialport",
                    bus=f"{bus}.0",
                    nr=index + 1,
                    chardev=chardev,
                    id=f"channel{index}",
                    name=channel.target_name,
                ),
            )

    def graphics(self) -> None:
        graphics = self.dom.devices.graphics
        if not graphics:
            self.add("-display", "none")
            return
        if len(graphics) > 1:
            raise UnsupportedConfig("unsupported configuration: only one graphics device is supported")
        gfx = graphics[0]
        if gfx.type != "vnc":
            raise UnsupportedConfig(f"unsupported configuration: graphics type '{gfx.type}'")
        listen = gfx.listen or "127.0.0.1"
        host = f"[{listen}]" if ":" in listen else listen
        if gfx.autoport or gfx.port in (None, -1):
            spec = f"{host}:0,to=99"
        else:
            assert gfx.port is not None
            if gfx.port < 5900:
                raise UnsupportedConfig(f"unsupported configuration: vnc port {gfx.port} is below 5900")
            spec = f"{host}:{gfx.port - 5900}"
        if gfx.passwd:
            spec += ",password=on"
        self.add("-vnc", spec)
        if not self.dom.devices.videos:
            self.add("-device", "VGA,id=video0")

    def inputs(self) -> None:
        for index, inp in enumerate(self.dom.devices.inputs):
            if inp.bus == "ps2":
                if inp.type == "tablet":
                    raise UnsupportedConfig("unsupported configuration: a tablet cannot be on the ps2 bus")
                continue  # part of the machine's i8042
            name = {"tablet": "tablet", "mouse": "mouse", "keyboard": "kbd"}[inp.type]
            if inp.bus == "usb":
                if not self.has_usb:
                    raise UnsupportedConfig(
                        f"unsupported configuration: usb {inp.type} needs a USB controller"
                    )
                self.add("-device", f"usb-{name},id=input{index},bus=usb.0")
            elif inp.bus == "virtio":
                vname = {"tablet": "tablet", "mouse": "mouse", "keyboard": "keyboard"}[inp.type]
                self.add(
                    *_device(f"virtio-{vname}-pci", _pci_placement(inp.address, self.q35), id=f"input{index}")
                )
            else:
                raise UnsupportedConfig(f"unsupported configuration: input bus '{inp.bus}'")

    def misc_devices(self) -> None:
        dev = self.dom.devices
        for index, video in enumerate(dev.videos):
            if video.model == "none":
                continue
            driver = _VIDEO_DEVICES.get(video.model)
            if driver is None:
                raise UnsupportedConfig(f"unsupported configuration: video model '{video.model}'")
            if index > 0 and driver == "virtio-vga":
                driver = "virtio-gpu-pci"
            extra: dict[str, str | int | None] = {}
            if video.model == "vga" and video.vram:
                extra["vgamem_mb"] = max(1, video.vram // 1024)
            self.add(*_device(driver, _pci_placement(video.address, self.q35), id=f"video{index}", **extra))
        if dev.memballoon is not None and dev.memballoon.model == "virtio":
            self.add(
                *_device(
                    "virtio-balloon-pci", _pci_placement(dev.memballoon.address, self.q35), id="balloon0"
                )
            )
        for index, rng in enumerate(dev.rngs):
            obj = f"objrng{index}"
            self.add(*_json_arg("-object", {"qom-type": "rng-random", "id": obj, "filename": rng.backend}))
            self.add(
                *_device(
                    "virtio-rng-pci",
                    _pci_placement(rng.address, self.q35),
                    rng=obj,
                    id=f"rng{index}",
                    max_bytes=rng.rate_bytes,
                    period=rng.rate_period,
                )
            )
        for panic in dev.panics:
            if panic.model not in ("isa", "pvpanic"):
                raise UnsupportedConfig(f"unsupported configuration: panic model '{panic.model}'")
            self.add("-device", "pvpanic,ioport=1285")


def _cache_mode(cache: str | None) -> tuple[bool, bool]:
    """(direct, no-flush) for a libvirt cache mode."""
    return {
        None: (False, False),
        "default": (False, False),
        "writeback": (False, False),
        "writethrough": (False, False),
        "none": (True, False),
        "directsync": (True, False),
        "unsafe": (False, True),
    }.get(cache, (False, False))


def _disk_alias(disk: DiskConfig) -> str:
    prefix = {"virtio": "virtio-disk", "sata": "sata0-0-", "scsi": "scsi0-0-0-", "ide": "ide0-0-"}
    unit = _drive_unit(disk.target_dev)
    return f"{prefix.get(disk.target_bus, 'disk')}{unit}"


def _drive_unit(target: str) -> int:
    """vda → 0, sdb → 1, hdc → 2, vdaa → 26."""
    letters = target[2:] if len(target) > 2 else "a"
    value = 0
    for char in letters:
        if not "a" <= char <= "z":
            raise UnsupportedConfig(f"unsupported configuration: disk target '{target}'")
        value = value * 26 + (ord(char) - ord("a") + 1)
    return value - 1


def _chardev_spec(dev: CharDevConfig, chardev_id: str) -> str:
    if dev.type == "pty":
        return f"pty,id={chardev_id}"
    if dev.type == "null":
        return f"null,id={chardev_id}"
    if dev.type == "file":
        if not dev.source_path:
            raise UnsupportedConfig(f"unsupported configuration: {dev.kind} of type 'file' needs a path")
        return f"file,id={chardev_id},path={dev.source_path}"
    if dev.type == "unix":
        if not dev.source_path:
            raise UnsupportedConfig(f"unsupported configuration: {dev.kind} of type 'unix' needs a path")
        server = dev.source_mode != "connect"
        tail = ",server=on,wait=off" if server else ""
        return f"socket,id={chardev_id},path={dev.source_path}{tail}"
    raise UnsupportedConfig(f"unsupported configuration: {dev.kind} type '{dev.type}'")


def build_argv(dom: Domain, ctx: RuntimeContext) -> list[str]:
    """The QEMU command line for ``dom``."""
    if dom.os.type != "hvm":
        raise UnsupportedConfig(f"unsupported configuration: os type '{dom.os.type}'")
    if dom.os.arch not in ("x86_64", "i686"):
        raise UnsupportedConfig(f"unsupported configuration: architecture '{dom.os.arch}'")
    return _Builder(dom, ctx).build()

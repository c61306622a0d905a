"""domxml-from-native qemu-argv: a QEMU command line to domain XML, for what it can say in XML.

The command lines pyvirt and libvirt write, and the usual hand-written ones, are understood: the
emulator, ``-name``, ``-m``, ``-smp``, ``-uuid``, ``-machine``/``-M``, ``-accel``/``-enable-kvm``, ``-cpu``,
``-boot``, ``-kernel``/``-initrd``/``-append``, disks (``-drive``, ``-hda``..., ``-cdrom``, ``-blockdev`` with
the ``-device`` that uses it), NICs (``-netdev`` user/tap/bridge with their ``-device``, ``-nic``), ``-vnc``,
``-spice``, ``-serial pty``, video, balloon and RNG devices. Options that only set up QEMU's process
(``-S``, ``-no-user-config``, ``-nodefaults``, ``-pidfile``, the monitor, ``-sandbox``...) are skipped, and
so are the controllers the domain's defaults and addresses bring back. Anything else is refused, naming
it: nothing is dropped silently.
"""

from __future__ import annotations

import json
import shlex

from pyvirt.conf.domain import (
    AudioConfig,
    CharDevConfig,
    ClockConfig,
    ControllerConfig,
    CPUConfig,
    CPUFeature,
    DiskConfig,
    Domain,
    GraphicsConfig,
    InputConfig,
    InterfaceConfig,
    Loader,
    MemballoonConfig,
    NUMACell,
    RNGConfig,
    SoundConfig,
    Timer,
    VideoConfig,
)
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import InvalidArgument, UnsupportedConfig

_SKIP_WITH_VALUE = ("-pidfile", "-chardev", "-mon", "-sandbox", "-msg", "-overcommit", "-action")
_SKIP_ALONE = ("-S", "-no-user-config", "-nodefaults", "-no-shutdown", "-daemonize", "-no-hpet")
_NIC_DRIVERS = {"virtio-net-pci": "virtio", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139"}
_VIDEO_DRIVERS = {
    "VGA": "vga",
    "cirrus-vga": "cirrus",
    "virtio-vga": "virtio",
    "qxl-vga": "qxl",
    "bochs-display": "bochs",
}
_DISK_DRIVERS = {
    "virtio-blk-pci": ("virtio", "disk"),
    "ide-hd": ("ide", "disk"),
    "ide-cd": ("ide", "cdrom"),
    "scsi-hd": ("scsi", "disk"),
    "scsi-cd": ("scsi", "cdrom"),
    "usb-storage": ("usb", "disk"),
    "floppy": ("fdc", "floppy"),
}
_PREFIX = {"virtio": "vd", "ide": "hd", "scsi": "sd", "sata": "sd", "usb": "sd", "fdc": "fd"}
_IGNORED_DEVICES = (
    "pcie-root-port",
    "pci-bridge",
    "virtio-scsi-pci",
    "ahci",
    "virtio-serial-pci",
    "isa-fdc",
)
# -spice option (and value, or "*" for any) → libvirt's (element, attribute) and value ("*": the same)
_SPICE_OPTIONS: dict[tuple[str, str], tuple[tuple[str, str], str]] = {
    ("image-compression", "*"): (("image", "compression"), "*"),
    ("jpeg-wan-compression", "*"): (("jpeg", "compression"), "*"),
    ("zlib-glz-wan-compression", "*"): (("zlib", "compression"), "*"),
    ("playback-compression", "*"): (("playback", "compression"), "*"),
    ("streaming-video", "*"): (("streaming", "mode"), "*"),
    ("agent-mouse", "on"): (("mouse", "mode"), "client"),
    ("agent-mouse", "off"): (("mouse", "mode"), "server"),
    ("disable-copy-paste", "on"): (("clipboard", "copypaste"), "no"),
    ("disable-agent-file-xfer", "on"): (("filetransfer", "enable"), "no"),
}
_INPUTS = {"usb-tablet": "tablet", "usb-kbd": "keyboard", "usb-mouse": "mouse"}


def _kv(text: str) -> tuple[str, dict[str, str]]:
    """``head,k=v,k=v`` (a JSON object too) → (head or "", {k: v})."""
    if text.startswith("{"):
        obj = json.loads(text)
        return str(obj.pop("driver", obj.pop("qom-type", ""))), {k: _str(v) for k, v in obj.items()}
    head, pairs = "", {}
    for index, part in enumerate(text.split(",")):
        key, sep, value = part.partition("=")
        if not sep and index == 0:
            head = key
        else:
            pairs[key] = value if sep else "on"
    return head, pairs


def _str(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value if isinstance(value, str) else json.dumps(value)


def _size_kib(text: str) -> int:
    text = text.removeprefix("size=")
    units = {"k": 1, "K": 1, "m": 1024, "M": 1024, "g": 1024**2, "G": 1024**2, "t": 1024**3, "T": 1024**3}
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text) * 1024  # QEMU's default unit is MiB


class _Converter:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.dom = Domain(name="unnamed")
        self.dom.uuid_given = False
        self.nodes: dict[str, dict[str, str]] = {}  # -blockdev node-name → its options
        self.netdevs: dict[str, tuple[str, dict[str, str]]] = {}
        self.named = False
        self.boot_order = ""
        self.floppy_boot: dict[int, int] = {}
        self.memory_backend: str | None = None
        self.pflash: dict[str, str] = {}  # pflash0/1 → -blockdev node name
        self.backends: dict[str, int] = {}  # memory-backend id → KiB
        self.rng_backends: dict[str, str] = {}  # rng-random id → file
        self.secure = False

    def value(self, index: int, flag: str) -> str:
        if index + 1 >= len(self.argv):
            raise InvalidArgument(f"option '{flag}' needs a value")
        return self.argv[index + 1]

    def run(self) -> Domain:
        dom = self.dom
        dom.devices.emulator = self.argv[0]
        dom.type = "qemu"
        i = 1
        while i < len(self.argv):
            flag = self.argv[i]
            if flag in _SKIP_ALONE:
                i += 1
                continue
            if flag == "-no-reboot":
                dom.on_reboot = "destroy"
                i += 1
                continue
            if flag == "-enable-kvm":
                dom.type = "kvm"
                i += 1
                continue
            if flag == "-nographic":
                i += 1
                continue
            value = self.value(i, flag)
            self.option(flag, value)
            i += 2
        for key, node_name in self.pflash.items():
            node = self.nodes.get(node_name, {})
            storage = self.nodes.get(node.get("file", ""), node)
            if "filename" not in storage:
                raise UnsupportedConfig(
                    f"unsupported configuration: -machine {key}={node_name} names no file"
                )
            if key == "pflash0":
                dom.os.loader = Loader(
                    path=storage["filename"], readonly=node.get("read-only", "off") == "on"
                )
            else:
                dom.os.nvram = storage["filename"]
        if self.memory_backend is not None:
            if self.memory_backend not in self.backends:
                raise UnsupportedConfig(
                    "unsupported configuration: -machine memory-backend="
                    f"{self.memory_backend} names no object"
                )
            dom.memory_source = dom.memory_source or "anonymous"
        floppies = [disk for disk in dom.devices.disks if disk.target_bus == "fdc"]
        for unit, order in self.floppy_boot.items():
            if unit < len(floppies):
                floppies[unit].boot_order = order
        if dom.os.loader is not None and self.secure:
            dom.os.loader.secure = True
        for letter in self.boot_order:
            dev = {"c": "hd", "d": "cdrom", "n": "network", "a": "fd"}.get(letter)
            if dev is None:
                raise UnsupportedConfig(f"unsupported configuration: -boot order '{letter}'")
            dom.os.boot.append(dev)
        return dom

    def option(self, flag: str, value: str) -> None:
        dom = self.dom
        if flag in _SKIP_WITH_VALUE:
            return
        if flag == "-name":
            head, opts = _kv(value)
            dom.name = opts.get("guest", head)
        elif flag == "-m":
            dom.memory_kib = _size_kib(value.split(",")[0])
        elif flag == "-smp":
            head, opts = _kv(value)
            count = int(opts.get("cpus", head or "1"))
            maxcpus = int(opts.get("maxcpus", count))
            dom.vcpus, dom.vcpu_current = maxcpus, (count if count != maxcpus else None)
            plain = (opts.get("sockets"), opts.get("cores"), opts.get("threads")) == (str(maxcpus), "1", "1")
            if "dies" not in opts and plain:
                pass  # QEMU's and libvirt's default topology: one core per socket
            elif any(k in opts for k in ("sockets", "cores", "threads")):
                dom.cpu = dom.cpu or CPUConfig()
                dom.cpu.sockets = int(opts.get("sockets", "1"))
                dom.cpu.dies = int(opts["dies"]) if "dies" in opts else None
                dom.cpu.cores = int(opts.get("cores", "1"))
                dom.cpu.threads = int(opts.get("threads", "1"))
        elif flag == "-rtc":
            base = _kv(value)[1].get("base", "utc")
            if base not in ("utc", "localtime"):
                raise UnsupportedConfig(f"unsupported configuration: -rtc base '{base}'")
            dom.clock = dom.clock or ClockConfig()
            dom.clock.offset = base
        elif flag == "-global":
            self.global_(value)
        elif flag == "-bios":
            dom.os.loader = Loader(path=value, type="rom")
        elif flag == "-uuid":
            dom.uuid, dom.uuid_given = value, True
        elif flag in ("-machine", "-M"):
            head, opts = _kv(value)
            dom.os.machine = opts.get("type", head) or None
            if opts.get("accel") == "kvm":
                dom.type = "kvm"
            if opts.pop("acpi", "on") != "off":
                dom.features.append("acpi")
            self.machine_options(opts)
        elif flag == "-accel":
            dom.type = "kvm" if value.split(",")[0] == "kvm" else "qemu"
        elif flag == "-cpu":
            head, opts = _kv(value)
            cpu = dom.cpu or CPUConfig()
            if head in ("host", "max"):
                cpu.mode = "host-passthrough" if head == "host" else "maximum"
            else:
                cpu.mode, cpu.model = "custom", head
            if (migratable := opts.pop("migratable", None)) is not None:
                cpu.migratable = migratable == "on"
            timers = {"kvmclock": "kvmclock", "tsc": "tsc", "hv-time": "hypervclock"}
            for name, state in opts.items():
                if state not in ("on", "off"):
                    raise UnsupportedConfig(f"unsupported configuration: -cpu flag '{name}={state}'")
                if name in timers:
                    dom.clock = dom.clock or ClockConfig()
                    dom.clock.timers.append(Timer(name=timers[name], present=state == "on"))
                elif name == "kvm-pv-eoi":
                    dom.features.append("apic")
                    dom.feature_attrs["apic"] = {"eoi": state}
                else:
                    cpu.features.append(
                        CPUFeature(name=name, policy="require" if state == "on" else "disable")
                    )
            dom.cpu = cpu
        elif flag == "-boot":
            head, opts = _kv(value)
            self.boot_order = opts.get("order", head if "=" not in value.split(",")[0] else "")
        elif flag in ("-kernel", "-initrd", "-append"):
            setattr(dom.os, {"-kernel": "kernel", "-initrd": "initrd", "-append": "cmdline"}[flag], value)
        elif flag in ("-hda", "-hdb", "-hdc", "-hdd", "-cdrom"):
            bus_index = "abcd".index(flag[-1]) if flag != "-cdrom" else 2
            self.add_disk(value, "ide", "cdrom" if flag == "-cdrom" else "disk", None, bus_index)
        elif flag == "-drive":
            self.drive(value)
        elif flag == "-blockdev":
            _head, opts = _kv(value)
            self.nodes[opts.get("node-name", "")] = opts
        elif flag == "-netdev":
            head, opts = _kv(value)
            self.netdevs[opts.get("id", "")] = (head, opts)
        elif flag == "-nic":
            head, opts = _kv(value)
            self.add_nic(head, opts, opts.get("model", "virtio-net-pci"), opts.get("mac"))
        elif flag == "-device":
            self.device(value)
        elif flag == "-vnc":
            for extra in value.split(",")[1:]:
                if extra.partition("=")[0] not in ("to", "audiodev"):
                    raise UnsupportedConfig(
                        f"unsupported configuration: -vnc option '{extra}' "
                        "(a password is not on the command line)"
                    )
            host, _sep, display = value.split(",")[0].rpartition(":")
            gfx = GraphicsConfig(type="vnc", listen=host.strip("[]") or "127.0.0.1")
            if display.isdigit() and "to=" not in value:
                gfx.autoport, gfx.port = False, 5900 + int(display)
            dom.devices.graphics.append(gfx)
        elif flag == "-spice":
            _head, opts = _kv(value)
            gfx = GraphicsConfig(type="spice", listen=opts.pop("addr", "127.0.0.1"))
            if opts.pop("unix", "off") == "on":
                gfx.listen_socket, gfx.socket = True, gfx.listen
            if "port" in opts:
                gfx.autoport, gfx.port = False, int(opts.pop("port"))
            for key in ("disable-ticketing", "seamless-migration"):
                opts.pop(key, None)
            for key, state in opts.items():
                setting = _SPICE_OPTIONS.get((key, state)) or _SPICE_OPTIONS.get((key, "*"))
                if setting is None:
                    raise UnsupportedConfig(f"unsupported configuration: -spice option '{key}={state}'")
                element, value = setting
                gfx.spice[element] = state if value == "*" else value
            dom.devices.graphics.append(gfx)
        elif flag == "-display":
            if value.split(",")[0] != "none":
                raise UnsupportedConfig(f"unsupported configuration: -display '{value}'")
        elif flag == "-serial":
            if value != "pty":
                raise UnsupportedConfig(f"unsupported configuration: -serial '{value}' (only pty)")
            dom.devices.serials.append(CharDevConfig(kind="serial", type="pty"))
        elif flag == "-audiodev":
            head, opts = _kv(value)
            ident = opts.get("id", "audio1").removeprefix("audio")
            dom.devices.audios.append(AudioConfig(id=int(ident) if ident.isdigit() else 1, type=head))
        elif flag == "-object":
            head, opts = _kv(value)
            ident = opts.get("id", "")
            if head == "iothread" and ident.startswith("iothread") and ident[8:].isdigit():
                dom.iothread_ids.append(int(ident[8:]))
                dom.iothreads = len(dom.iothread_ids)
            elif head in ("memory-backend-ram", "memory-backend-memfd") and "size" in opts:
                self.backends[ident] = int(opts["size"]) // 1024
                if head == "memory-backend-memfd":
                    dom.memory_source = "memfd"
                if "share" in opts:
                    dom.memory_access = "shared" if opts["share"] == "on" else "private"
            elif head == "secret" and ident == "masterKey0":
                pass  # libvirt's per-domain master key: how libvirt passes secrets, not guest configuration
            elif head == "rng-random":
                self.rng_backends[ident] = opts.get("filename", "/dev/urandom")
            else:
                raise UnsupportedConfig(f"unsupported configuration: -object '{head}' has no domain XML here")
        elif flag == "-numa":
            _head, opts = _kv(value)
            cpus = [part[5:] for part in value.split(",") if part.startswith("cpus=")]
            memdev = opts.get("memdev", "")
            if memdev not in self.backends or not cpus:
                raise UnsupportedConfig(
                    f"unsupported configuration: -numa '{value}' (cpus= and memdev= needed)"
                )
            dom.cpu = dom.cpu or CPUConfig()
            cell = NUMACell(
                id=int(opts.get("nodeid", "0")), cpus=",".join(cpus), memory_kib=self.backends[memdev]
            )
            dom.cpu.numa.append(cell)
        else:
            raise UnsupportedConfig(f"unsupported configuration: QEMU option '{flag}' has no domain XML here")

    def machine_options(self, opts: dict[str, str]) -> None:
        dom = self.dom
        for key in ("type", "accel", "usb", "dump-guest-core"):  # read above, or QEMU's defaults libvirt sets
            opts.pop(key, None)
        for feature in ("vmport", "smm"):
            if (state := opts.pop(feature, None)) is not None:
                dom.features.append(feature)
                dom.feature_attrs[feature] = {"state": state}
        if (irqchip := opts.pop("kernel_irqchip", None)) is not None:
            dom.features.append("ioapic")
            dom.feature_attrs["ioapic"] = {"driver": "kvm" if irqchip == "on" else "qemu"}
        if (hpet := opts.pop("hpet", None)) is not None:
            dom.clock = dom.clock or ClockConfig()
            dom.clock.timers.append(Timer(name="hpet", present=hpet == "on"))
        self.memory_backend = opts.pop("memory-backend", None)  # checked once the objects are read
        for key in ("pflash0", "pflash1"):
            if key in opts:
                self.pflash[key] = opts.pop(key)
        if opts:
            raise UnsupportedConfig(f"unsupported configuration: -machine option '{next(iter(opts))}'")

    def global_(self, value: str) -> None:
        dom = self.dom
        _head, opts = _kv(value)
        if "driver" in opts:  # driver=D,property=P,value=V
            key, state = f"{opts['driver']}.{opts.get('property', '')}", opts.get("value", "")
        else:
            key, _sep, state = value.partition("=")
        if key == "kvm-pit.lost_tick_policy" and state in ("delay", "slew", "discard"):
            dom.clock = dom.clock or ClockConfig()
            policy = {"slew": "catchup"}.get(state, state)
            dom.clock.timers.append(Timer(name="pit", tickpolicy=policy))
        elif key.endswith((".disable_s3", ".disable_s4")) and key.split(".")[0] in ("PIIX4_PM", "ICH9-LPC"):
            attr = "pm_suspend_to_mem" if key.endswith("s3") else "pm_suspend_to_disk"
            setattr(dom, attr, state == "0")
        elif key in ("isa-fdc.bootindexA", "isa-fdc.bootindexB"):
            self.floppy_boot["AB".index(key[-1])] = int(state)
        elif key == "cfi.pflash01.secure" and state == "on":
            self.secure = True
        else:
            raise UnsupportedConfig(f"unsupported configuration: -global '{value}' has no domain XML here")

    def drive(self, value: str) -> None:
        _head, opts = _kv(value)
        if extra := sorted(set(opts) - {"file", "if", "format", "media", "index", "id", "readonly", "cache"}):
            raise UnsupportedConfig(
                f"unsupported configuration: -drive option '{extra[0]}' has no domain XML here"
            )
        interface = opts.get("if", "ide")
        if interface == "none":
            self.nodes[opts.get("id", "")] = {
                "filename": opts.get("file", ""),
                "driver": opts.get("format", "raw"),
            }
            return
        if interface not in ("ide", "virtio", "scsi"):
            raise UnsupportedConfig(f"unsupported configuration: -drive if='{interface}'")
        media = "cdrom" if opts.get("media") == "cdrom" else "disk"
        self.add_disk(opts.get("file"), interface, media, opts.get("format"), None)
        disk = self.dom.devices.disks[-1]
        disk.readonly = disk.readonly or opts.get("readonly") == "on"
        if (cache := opts.get("cache")) is not None:
            if cache not in ("none", "writeback", "writethrough", "directsync", "unsafe"):
                raise UnsupportedConfig(f"unsupported configuration: -drive cache='{cache}'")
            disk.cache = cache

    def add_disk(self, path: str | None, bus: str, device: str, fmt: str | None, unit: int | None) -> None:
        disks = self.dom.devices.disks
        n = unit if unit is not None else sum(1 for d in disks if d.target_bus == bus)
        disk = DiskConfig(type="block" if path and path.startswith("/dev/") else "file", device=device)
        disk.source, disk.target_bus = path or None, bus
        disk.driver_type = fmt or ("raw" if not path or not path.endswith(".qcow2") else "qcow2")
        disk.target_dev = _PREFIX[bus] + chr(ord("a") + n)
        disk.readonly = device == "cdrom"
        if bus == "fdc" and not path:
            disk.source = None
        disks.append(disk)

    def add_nic(self, kind: str, opts: dict[str, str], driver: str, mac: str | None) -> None:
        model = _NIC_DRIVERS.get(driver)
        if model is None:
            raise UnsupportedConfig(f"unsupported configuration: NIC model '{driver}'")
        if extra := sorted(set(opts) - {"id", "model", "mac", "br", "ifname", "script", "downscript"}):
            raise UnsupportedConfig(
                f"unsupported configuration: network option '{extra[0]}' has no domain XML here"
            )
        if kind == "user":
            nic = InterfaceConfig(type="user")
        elif kind in ("tap", "bridge") and "br" in opts:
            nic = InterfaceConfig(type="bridge", source_bridge=opts["br"])
        else:
            raise UnsupportedConfig(f"unsupported configuration: netdev type '{kind}' (user, or bridge br=)")
        nic.model, nic.mac = model, mac
        ifname = opts.get("ifname")
        if ifname and kind != "user" and not ifname.startswith(("vnet", "macvtap", "macvlan")):
            nic.target_dev = ifname  # a chosen tap name; the numbered ones are the host's to pick again
        self.dom.devices.interfaces.append(nic)

    def device(self, value: str) -> None:
        driver, opts = _kv(value)
        devs = self.dom.devices
        used = {"id", "bus", "addr", "multifunction", "port"}  # placement: the defaults and addresses redo it
        if driver in _DISK_DRIVERS:
            used |= {"drive", "bootindex", "iothread", "serial", "share-rw", "write-cache", "unit"}
            used |= {"channel", "scsi-id", "lun"}
            bus, device = _DISK_DRIVERS[driver]
            node = self.nodes.get(opts.get("drive", ""), {})
            storage = self.nodes.get(node.get("file", ""), node)
            fmt = node.get("driver") if node.get("driver") in ("raw", "qcow2") else None
            self.add_disk(storage.get("filename"), bus, device, fmt, None)
            if node.get("read-only") == "on" and device != "cdrom":
                devs.disks[-1].readonly = True
            disk = devs.disks[-1]
            if storage.get("discard") == "unmap":
                disk.discard = "unmap"
            if storage.get("aio") in ("native", "io_uring"):
                disk.io = storage["aio"]
            cache = json.loads(storage.get("cache", "{}"))
            direct, no_flush = bool(cache.get("direct")), bool(cache.get("no-flush"))
            write_through = opts.get("write-cache") == "off"
            disk.cache = {
                (True, False, False): "none",
                (True, False, True): "directsync",
                (False, True, False): "unsafe",
                (False, False, True): "writethrough",
            }.get((direct, no_flush, write_through))
            disk.serial = opts.get("serial")
            disk.shareable = opts.get("share-rw") == "on"
            if "bootindex" in opts:
                devs.disks[-1].boot_order = int(opts["bootindex"])
            if opts.get("iothread", "").startswith("iothread"):
                devs.disks[-1].iothread = int(opts["iothread"][8:])
        elif driver in _NIC_DRIVERS:
            kind, netdev = self.netdevs.get(opts.get("netdev", ""), ("", {}))
            used |= {"netdev", "mac", "bootindex"}
            if kind == "tap" and "br" not in netdev:
                netdev = {**netdev, "br": "virbr0"}  # a tap of libvirt's or pyvirt's: on the default network
                self.add_nic("tap", netdev, driver, opts.get("mac"))
                nic = devs.interfaces[-1]
                nic.type, nic.source_network, nic.source_bridge = "network", "default", None
            else:
                self.add_nic(kind, netdev, driver, opts.get("mac"))
            if "bootindex" in opts:
                devs.interfaces[-1].boot_order = int(opts["bootindex"])
        elif driver in _VIDEO_DRIVERS or driver == "qxl":
            video = VideoConfig(model=_VIDEO_DRIVERS.get(driver, "qxl"))
            used |= {"max_outputs", "vgamem_mb", "vgamem", "ram_size", "vram_size", "vram64_size_mb"}
            video.heads = int(opts["max_outputs"]) if "max_outputs" in opts else None
            if video.model == "qxl":
                video.ram = int(opts["ram_size"]) // 1024 if "ram_size" in opts else None
                video.vram = int(opts["vram_size"]) // 1024 if "vram_size" in opts else None
                video.vram64 = int(opts["vram64_size_mb"]) * 1024 if "vram64_size_mb" in opts else None
                video.vgamem = int(opts["vgamem_mb"]) * 1024 if "vgamem_mb" in opts else None
            elif "vgamem_mb" in opts:
                video.vram = int(opts["vgamem_mb"]) * 1024
            elif "vgamem" in opts:
                video.vram = int(opts["vgamem"]) // 1024
            devs.videos.append(video)
        elif driver in ("qemu-xhci", "piix3-usb-uhci"):
            model = "qemu-xhci" if driver == "qemu-xhci" else "piix3-uhci"
            index = sum(1 for c in devs.controllers if c.type == "usb")
            devs.controllers.append(ControllerConfig(type="usb", index=index, model=model))
            used |= {"p2", "p3"}
            if "p2" in opts:
                devs.controllers[-1].ports = int(opts["p2"])
        elif driver == "isa-serial":
            used |= {"chardev", "index"}
            devs.serials.append(CharDevConfig(kind="serial", type="pty"))
            if "index" in opts:
                devs.serials[-1].target_port = int(opts["index"])
        elif driver in ("AC97", "intel-hda", "ich9-intel-hda"):
            model = {"AC97": "ac97", "intel-hda": "ich6", "ich9-intel-hda": "ich9"}[driver]
            devs.sounds.append(SoundConfig(model=model))
            used.add("audiodev")
        elif driver in ("hda-duplex", "hda-micro", "hda-output"):
            if not devs.sounds:
                raise UnsupportedConfig(f"unsupported configuration: codec '{driver}' with no HDA controller")
            devs.sounds[-1].codecs.append(driver[4:])
            used |= {"cad", "audiodev"}
        elif driver in _INPUTS:
            devs.inputs.append(InputConfig(type=_INPUTS[driver], bus="usb"))
        elif driver == "virtio-balloon-pci":
            devs.memballoon = MemballoonConfig(model="virtio")
        elif driver == "virtio-rng-pci":
            devs.rngs.append(RNGConfig(backend=self.rng_backends.get(opts.get("rng", ""), "/dev/urandom")))
            used.add("rng")
        elif driver not in _IGNORED_DEVICES:
            raise UnsupportedConfig(
                f"unsupported configuration: QEMU device '{driver}' has no domain XML here"
            )
        if driver not in _IGNORED_DEVICES and (extra := sorted(set(opts) - used)):
            raise UnsupportedConfig(
                f"unsupported configuration: property '{extra[0]}' of QEMU device '{driver}' "
                "has no domain XML here"
            )


def argv_from_text(text: str) -> list[str]:
    """The argv of a command line as virsh takes it: environment assignments first, then the emulator."""
    words = shlex.split(text.replace("\\\n", " "))
    while words and "=" in words[0] and not words[0].startswith("/"):
        words.pop(0)
    if not words:
        raise InvalidArgument("no QEMU command line in the input")
    return words


def domxml_from_native(fmt: str, text: str) -> str:
    """The domain XML of a QEMU command line (``fmt``: ``qemu-argv``); checked as define would."""
    if fmt != "qemu-argv":
        raise InvalidArgument(f"unsupported config type {fmt} (supported: qemu-argv)")
    try:
        dom = _Converter(argv_from_text(text)).run()
    except ValueError as err:  # a number that is not one, JSON that is not JSON, unbalanced quotes
        raise InvalidArgument(f"cannot read the QEMU command line: {err}") from err
    if dom.devices.memballoon is None:
        dom.devices.memballoon = MemballoonConfig(model="none")
    if not any(ctl.type == "usb" for ctl in dom.devices.controllers):  # else define adds libvirt's
        dom.devices.controllers.append(ControllerConfig(type="usb", index=0, model="none"))
    xml = format_domain(dom)
    load_domain_xml(xml)  # what it says must define
    return xml

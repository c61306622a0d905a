"""libvirt ``<domain>`` XML to :class:`~pyvirt.conf.domain.Domain` and back.

:func:`parse_domain` reads exactly what the model holds and refuses everything else by name and path
(``unsupported configuration: element 'devices/hostdev' is not supported``). A few things real libvirt
files carry are accepted and dropped, because pyvirt has nothing to do with them: ``<seclabel>`` of the
DAC model or none (pyvirt's own DAC confinement applies, and dominfo reports it; SELinux and AppArmor
labels are refused, being what pyvirt does not do), runtime ``<alias>`` names (kept in live mode, and
in config mode when user-defined ``ua-`` names), the runtime pty paths, tap names and channel states
of a running domain's XML (kept in live mode).

:func:`format_domain` writes libvirt's layout; ``live=True`` adds the runtime bits (``id``, aliases, pty
paths, tap names, the VNC port in use). :func:`load_domain_xml` is parse, post-parse defaults, validate.
"""

from __future__ import annotations

import re
import uuid as uuidlib

from pyvirt.conf import (
    acpi_index,
    backing_chain,
    bandwidth,
    chardev_backends,
    chardev_options,
    controller_models,
    disk_layers,
    disk_reservations,
    disk_tuning,
    feature_sizes,
    guestfwd,
    iothread_pools,
    iotune,
    memory_backing,
    numa_hmat,
    virtio_options,
    vnc_options,
)
from pyvirt.conf import audio as audio_backends
from pyvirt.conf import clock as clock_xml
from pyvirt.conf.addresses import check_address
from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.defaults import DEFAULT_NET_MODEL, apply_defaults
from pyvirt.conf.disk_encryption import DISK_FORMATS as ENCRYPTED_FORMATS
from pyvirt.conf.disk_encryption import encryption_node, parse_encryption
from pyvirt.conf.domain import (
    AudioConfig,
    CharDevConfig,
    ClockConfig,
    ControllerConfig,
    CPUConfig,
    CPUFeature,
    CPUTune,
    Devices,
    DiskConfig,
    Domain,
    GraphicsConfig,
    InputConfig,
    InterfaceConfig,
    Loader,
    MemballoonConfig,
    MemTune,
    NUMACell,
    OSConfig,
    PanicConfig,
    PCIAddress,
    RNGConfig,
    SoundConfig,
    VideoConfig,
    WatchdogConfig,
)
from pyvirt.conf.units import parse_size_kib
from pyvirt.conf.validate import check_metadata, validate_domain
from pyvirt.conf.xmlutil import (
    AttrValue,
    Elem,
    XNode,
    on_off,
    parse_document,
    serialize,
    unsupported,
    x,
    yes_no,
)
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

DOMAIN_TYPES = ("kvm", "qemu")
LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve")
ARCHES = ("x86_64", "i686", "aarch64")
BOOT_DEVICES = ("hd", "cdrom", "network", "fd")
FEATURES: dict[str, dict[str, tuple[str, ...]]] = {
    "acpi": {},
    "apic": {"eoi": ("on", "off")},
    "pae": {},
    "vmport": {"state": ("on", "off")},
    "ioapic": {"driver": ("kvm", "qemu")},
    "smm": {"state": ("on", "off")},
    "vmcoreinfo": {"state": ("on", "off")},
    "pvspinlock": {"state": ("on", "off")},  # KVM's paravirtual spinlocks: -cpu kvm-pv-unhalt
    "tcg": {},  # <tb-cache> (conf.feature_sizes)
}
CPU_MODES = ("host-passthrough", "host-model", "custom", "maximum")
CPU_FEATURE_POLICIES = ("force", "require", "optional", "disable", "forbid")
DISK_TYPES = ("file", "block", "volume", "network", "dir", "vhostuser")
DISK_DEVICES = ("disk", "cdrom", "floppy", "lun")
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "fat")  # fat: a type='dir' disk's
DISK_BUSES = ("virtio", "sata", "scsi", "ide", "usb", "fdc")
DISK_CACHE = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
DISK_DISCARD = ("unmap", "ignore")
DISK_IO = ("native", "threads", "io_uring")
CONTROLLER_MODELS: dict[str, tuple[str, ...]] = {
    "pci": (
        "pci-root",
        "pcie-root",
        "pcie-root-port",
        "pci-bridge",
        "pcie-to-pci-bridge",
        *controller_models.PCI_DEVICES,
    ),
    "usb": (
        "qemu-xhci",
        "nec-xhci",
        "ich9-ehci1",
        "ich9-uhci1",
        "ich9-uhci2",
        "ich9-uhci3",
        "piix3-uhci",
        "piix4-uhci",
        "none",
    ),
    "sata": (),
    "scsi": tuple(controller_models.SCSI_DEVICES),
    "virtio-serial": (),
    "ide": (),
    "fdc": (),
    "ccid": (),  # a USB smartcard reader (conf.smartcard)
}
PCI_MODEL_NAMES = (
    "pcie-root-port",
    "ioh3420",
    "pci-bridge",
    "pcie-pci-bridge",
    *controller_models.PCI_MODEL_NAMES,
)
PCI_TARGET_ATTRS = ("chassisNr", "chassis", "port", "busNr", "hotplug")
NET_TYPES = ("network", "bridge", "user", "vdpa", "vhostuser", "server", "client", "mcast", "udp", "ethernet")
NET_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
CHAR_TYPES: dict[str, tuple[str, ...]] = {
    "serial": ("pty", "unix", "file", "null", *chardev_backends.TYPES),
    "console": ("pty", "unix", "file", "null", *chardev_backends.TYPES),
    "parallel": ("pty", "unix", "file", "null", *chardev_backends.TYPES),
    "channel": ("unix", "pty", "spicevmc", "file", "null", *chardev_backends.TYPES),
    "rng": ("unix", "pty", "file", "null", *chardev_backends.TYPES),  # an egd backend's
    "redirdev": ("unix", "tcp"),  # a usbredir peer on a socket (a redirdev other than spicevmc)
    "smartcard": ("unix", "pty", "file", "null", *chardev_backends.TYPES),  # passthrough's
}
SERIAL_TARGETS = ("isa-serial", "pci-serial", "usb-serial", "isa-debug")
SERIAL_MODELS = ("isa-serial", "pci-serial", "usb-serial", "isa-debugcon")
CONSOLE_TARGETS = ("serial", "virtio")
VIDEO_MODELS = ("vga", "cirrus", "virtio", "bochs", "qxl", "ramfb", "none")
INPUT_TYPES = ("mouse", "keyboard", "tablet", "passthrough", "evdev")
INPUT_BUSES = ("ps2", "usb", "virtio")
RNG_BACKENDS = ("/dev/urandom", "/dev/random", "/dev/hwrng")
PANIC_MODELS = ("isa", "pvpanic", "hyperv")
WATCHDOG_MODELS = ("itco", "i6300esb", "ib700")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "inject-nmi", "dump")
ADDRESS_ATTRS: dict[str, tuple[str, ...]] = {
    "pci": ("domain", "bus", "slot", "function", "multifunction"),
    "drive": ("controller", "bus", "target", "unit"),
    "virtio-serial": ("controller", "bus", "port"),
    "usb": ("bus", "port"),
    "isa": ("iobase", "irq"),
    "dimm": ("slot", "base"),
    "ccid": ("controller", "slot"),
}
# SPICE's child elements libvirt writes, each with the one attribute pyvirt maps onto -spice.
SPICE_SETTINGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("image", "compression", ("auto_glz", "auto_lz", "quic", "glz", "lz", "off")),
    ("jpeg", "compression", ("auto", "never", "always")),
    ("zlib", "compression", ("auto", "never", "always")),
    ("playback", "compression", ("on", "off")),
    ("streaming", "mode", ("filter", "all", "off")),
    ("clipboard", "copypaste", ("yes", "no")),
    ("mouse", "mode", ("server", "client")),
    ("filetransfer", "enable", ("yes", "no")),
)
AUDIO_TYPES = (*audio_backends.TYPES, "coreaudio")  # coreaudio: refused by name (macOS only)
SOUND_MODELS = ("ich9", "ich6", "ac97", "es1370", "sb16")
SOUND_CODECS = ("duplex", "micro", "output")
AUTO_TAP_PREFIXES = ("vnet", "macvtap", "macvlan")


def _is_auto_tap(name: str | None) -> bool:
    return name is not None and name.startswith(AUTO_TAP_PREFIXES)


def _raw_format(node: Elem, name: str, what: str) -> str | None:
    value = node.attr(name)
    if value is not None and value != "raw":
        raise unsupported(
            f"attribute '{name}' = '{value}' of '{node.path}': only raw {what} images are supported "
            "(the firmware QEMU 7.2 and Debian's OVMF/SeaBIOS packages ship)"
        )
    return value


# ---------------------------------------------------------------------------------------------- parsing


class _Parser:
    """One parse of one document; ``live`` keeps runtime-only state (ids, aliases, pty paths, taps)."""

    def __init__(self, live: bool) -> None:
        self.live = live

    def alias(self, e: Elem) -> str | None:
        node = e.child("alias")
        if node is None:
            return None
        name = node.require("name")
        node.done()
        return name if self.live or name.startswith("ua-") else None

    @staticmethod
    def address(e: Elem) -> PCIAddress | None:
        node = e.child("address")
        if node is None:
            return None
        kind = node.choice("type", ADDRESS_ATTRS, required=True)
        assert kind is not None
        attrs = {name: value for name in ADDRESS_ATTRS[kind] if (value := node.attr(name)) is not None}
        node.done()
        address = PCIAddress(type=kind, attrs=attrs)
        check_address(address, f"'{node.path}'")
        return address

    @staticmethod
    def boot_order(e: Elem) -> int | None:
        node = e.child("boot")
        if node is None:
            return None
        order = node.integer("order", minimum=1)
        if order is None:
            raise XMLError(f"missing attribute 'order' of '{node.path}'")
        node.done()
        return order

    # ------------------------------------------------------------------------------------- top level

    def domain(self, root: Elem) -> Domain:
        dom_type = root.choice("type", DOMAIN_TYPES, required=True)
        assert dom_type is not None
        dom_id = root.integer("id", minimum=-1)
        name_node = root.child("name")
        if name_node is None:
            raise XMLError("missing element 'name' in the domain XML")
        dom = Domain(name=name_node.text())
        name_node.done()
        dom.type = dom_type
        dom.id = dom_id if self.live and dom_id is not None and dom_id >= 0 else None
        if (node := root.child("uuid")) is not None:
            dom.uuid = parse_uuid(node.text())
            dom.uuid_given = True
            node.done()
        if (node := root.child("genid")) is not None:
            from pyvirt.conf import genid

            dom.genid = genid.parse(node)
        for tag in ("title", "description"):
            if (node := root.child(tag)) is not None:
                setattr(dom, tag, node.text(required=False))
                node.done()
        if (node := root.child("metadata")) is not None:
            dom.metadata = node.node.raw_inner or None
            node.skip(*(child.tag for child in node.node.children))
            node.text(required=False)
            node.done()
        self.memory(root, dom)
        if (node := root.child("vcpu")) is not None:
            dom.vcpu_placement = node.choice("placement", ("static",))
            dom.vcpu_current = node.integer("current", minimum=1)
            if (cpuset := node.attr("cpuset")) is not None:
                parse_cpuset(cpuset, f"attribute 'cpuset' of '{node.path}'")
                dom.vcpu_cpuset = cpuset
            dom.vcpus = node.text_int(minimum=1)
            node.done()
        if (node := root.child("iothreads")) is not None:
            dom.iothreads = node.text_int(minimum=0)
            node.done()
        if (node := root.child("iothreadids")) is not None:
            for thread in node.children("iothread"):
                ident = thread.integer("id", minimum=1)
                if ident is None:
                    raise XMLError(f"missing attribute 'id' of '{thread.path}'")
                dom.iothread_ids.append(ident)
                if pool := iothread_pools.parse(thread):
                    dom.iothread_pools[ident] = pool
                thread.done()
            node.done()
        if (node := root.child("defaultiothread")) is not None:
            if pool := iothread_pools.parse(node):
                dom.iothread_pools[iothread_pools.DEFAULT] = pool
            node.done()
        if (node := root.child("cputune")) is not None:
            dom.cputune = self.cputune(node)
        if (node := root.child("numatune")) is not None:
            dom.numatune = memory_backing.parse_numatune(node)
        if (node := root.child("resource")) is not None:
            partition = node.child("partition")
            if partition is not None:
                dom.resource_partition = partition.text()
                partition.done()
            node.done()
        os_node = root.child("os")
        if os_node is None:
            raise XMLError("missing element 'os' in the domain XML")
        dom.os = self.os(os_node)
        if (node := root.child("features")) is not None:
            self.features(node, dom)
        if (node := root.child("cpu")) is not None:
            dom.cpu = self.cpu(node)
        if (node := root.child("clock")) is not None:
            dom.clock = self.clock(node)
        for tag in ("on_poweroff", "on_reboot", "on_crash"):
            if (node := root.child(tag)) is not None:
                value = node.text()
                if value not in LIFECYCLE_ACTIONS:
                    raise unsupported(f"value '{value}' of element '{node.path}' is not supported")
                setattr(dom, tag, value)
                node.done()
        if (node := root.child("pm")) is not None:
            self.pm(node, dom)
        if (node := root.child("devices")) is not None:
            dom.devices = self.devices(node)
        for node in root.children("seclabel"):
            self.seclabel(node)
        if any(name.startswith("xmlns:") for name in root.node.attrib):
            from pyvirt.conf import qemu_ns

            dom.qemu_ns = qemu_ns.parse(root)
        if root.children("idmap"):
            raise UnsupportedConfig(
                "unsupported configuration: element 'idmap' maps a container's user namespace (libvirt's "
                "LXC driver): a QEMU guest has none, and its QEMU runs as a user of its own"
            )
        root.done()
        return dom

    @staticmethod
    def cputune(e: Elem) -> CPUTune:
        tune = CPUTune()
        for node in e.children("vcpupin"):
            vcpu = node.integer("vcpu", minimum=0)
            cpuset = node.require("cpuset")
            if vcpu is None:
                raise XMLError(f"missing attribute 'vcpu' of '{node.path}'")
            if vcpu in tune.vcpupin:
                raise XMLError(f"vcpu {vcpu} is pinned twice in '{node.path}'")
            parse_cpuset(cpuset, f"attribute 'cpuset' of '{node.path}'")
            tune.vcpupin[vcpu] = cpuset
            node.done()
        if (pin := e.child("emulatorpin")) is not None:
            tune.emulatorpin = pin.require("cpuset")
            parse_cpuset(tune.emulatorpin, f"attribute 'cpuset' of '{pin.path}'")
            pin.done()
        for tag, low, high in (("shares", 2, 262144), ("global_period", 1000, 1000000)):
            if (value := e.child(tag)) is not None:
                setattr(tune, tag, value.text_int(minimum=low, maximum=high))
                value.done()
        if (quota := e.child("global_quota")) is not None:
            tune.global_quota = quota.text_int(minimum=-1, maximum=17592186044415)
            if tune.global_quota in range(0, 1000):
                raise XMLError(f"'{quota.path}' must be -1 or at least 1000")
            quota.done()
        e.done()
        return tune

    @staticmethod
    def memory(root: Elem, dom: Domain) -> None:
        node = root.child("memory")
        if node is None:
            raise XMLError("missing element 'memory' in the domain XML")
        dom.memory_kib = parse_size_kib(node.text(), node.attr("unit"), element="memory")
        node.done()
        if (node := root.child("maxMemory")) is not None:
            from pyvirt.conf import memory_devices

            dom.max_memory_kib, dom.max_memory_slots = memory_devices.parse_max_memory(node)
        if (node := root.child("currentMemory")) is not None:
            dom.current_memory_kib = parse_size_kib(node.text(), node.attr("unit"), element="currentMemory")
            node.done()
        if (node := root.child("memtune")) is not None:
            dom.memtune = MemTune()
            for tag in ("hard_limit", "soft_limit", "swap_hard_limit"):
                if (limit := node.child(tag)) is not None:
                    setattr(
                        dom.memtune, tag, parse_size_kib(limit.text(), limit.attr("unit"), element=limit.path)
                    )
                    limit.done()
            hard, swap = dom.memtune.hard_limit, dom.memtune.swap_hard_limit
            if hard is not None and swap is not None and swap < hard:
                raise XMLError("memtune/hard_limit must be lower than or equal to memtune/swap_hard_limit")
            node.done()
        if (node := root.child("memoryBacking")) is not None:
            memory_backing.parse(node, dom)

    @staticmethod
    def os(e: Elem) -> OSConfig:
        osc = OSConfig()
        osc.firmware = e.choice("firmware", ("efi", "bios"))
        type_node = e.child("type")
        if type_node is None:
            raise XMLError("missing element 'os/type' in the domain XML")
        osc.type = type_node.text()
        if osc.type != "hvm":
            raise unsupported(f"value '{osc.type}' of element 'os/type' is not supported")
        osc.arch = type_node.choice("arch", ARCHES) or osc.arch
        osc.machine = type_node.attr("machine")
        type_node.done()
        for boot in e.children("boot"):
            dev = boot.choice("dev", BOOT_DEVICES, required=True)
            assert dev is not None
            osc.boot.append(dev)
            boot.done()
        if (node := e.child("bootmenu")) is not None:
            osc.bootmenu = node.flag("enable")
            osc.bootmenu_timeout = node.integer("timeout", minimum=0, maximum=65535)
            node.done()
        for tag in ("kernel", "initrd", "cmdline"):
            if (node := e.child(tag)) is not None:
                setattr(osc, tag, node.text(required=tag != "cmdline"))
                node.done()
        if (node := e.child("loader")) is not None:
            path = node.text(required=osc.firmware is None)
            osc.loader = Loader(path=path)
            if (readonly := node.flag("readonly")) is not None:
                osc.loader.readonly = readonly
            osc.loader.type = node.choice("type", ("pflash", "rom")) or osc.loader.type
            osc.loader.secure = node.flag("secure")
            osc.loader.format = _raw_format(node, "format", "firmware")
            osc.loader.stateless = node.flag("stateless")
            node.done()
        if (node := e.child("nvram")) is not None:
            osc.nvram = node.text(required=False) or None
            if (kind := node.choice("type", ("file", "network"))) is not None:  # in <source>
                source = node.child("source")
                if source is None or osc.nvram is not None:
                    raise XMLError(f"'{node.path}' of type '{kind}' takes its source in <source> only")
                osc.nvram_type = kind
                if kind == "network":
                    osc.nvram_source = _Parser.nvram_network(source)
                else:
                    osc.nvram = source.require("file")
                source.done()
            osc.nvram_template = node.attr("template")
            osc.nvram_format = _raw_format(node, "format", "NVRAM")
            osc.nvram_template_format = _raw_format(node, "templateFormat", "NVRAM template")
            node.done()
        if (node := e.child("firmware")) is not None:
            for feature in node.children("feature"):
                name = feature.choice("name", ("enrolled-keys", "secure-boot"), required=True)
                enabled = feature.flag("enabled")
                if name is None or enabled is None:
                    raise XMLError(f"missing attribute 'enabled' of '{feature.path}'")
                osc.firmware_features[name] = enabled
                feature.done()
            node.done()
        e.done()
        return osc

    @staticmethod
    def features(e: Elem, dom: Domain) -> None:
        for node in e.each():
            if node.tag == "hyperv":
                from pyvirt.conf import hyperv

                dom.features.append("hyperv")
                dom.hyperv = hyperv.parse(node)
                continue
            allowed = FEATURES.get(node.tag)
            if allowed is None:
                raise node.refuse()
            dom.features.append(node.tag)
            attrs = {name: value for name, values in allowed.items() if (value := node.choice(name, values))}
            if node.tag in feature_sizes.TAGS:
                feature_sizes.parse(node, attrs)
            if attrs:
                dom.feature_attrs[node.tag] = attrs
            node.done()
        e.done()

    @staticmethod
    def cpu(e: Elem) -> CPUConfig:
        cpu = CPUConfig(mode=e.choice("mode", CPU_MODES) or "custom")
        cpu.match = e.choice("match", ("exact", "minimum", "strict"))
        cpu.check = e.choice("check", ("none", "partial", "full"))
        cpu.migratable = e.flag("migratable", "on", "off")
        if (node := e.child("model")) is not None:
            cpu.model = node.text(required=False) or None
            cpu.fallback = node.choice("fallback", ("allow", "forbid"))
            node.done()
        if (node := e.child("topology")) is not None:
            cpu.sockets = node.integer("sockets", minimum=1)
            cpu.dies = node.integer("dies", minimum=1)
            cpu.clusters = node.integer("clusters", minimum=1)
            cpu.cores = node.integer("cores", minimum=1)
            cpu.threads = node.integer("threads", minimum=1)
            node.done()
        for node in e.children("feature"):
            policy = node.choice("policy", CPU_FEATURE_POLICIES) or "require"
            cpu.features.append(CPUFeature(name=node.require("name"), policy=policy))
            node.done()
        if (numa := e.child("numa")) is not None:
            for cell in numa.children("cell"):
                ident = cell.integer("id", minimum=0)
                cpus = cell.attr("cpus") or ""  # a node without CPUs: memory only
                if cpus:
                    parse_cpuset(cpus, f"attribute 'cpus' of '{cell.path}'")
                memory = parse_size_kib(cell.require("memory"), cell.attr("unit"), element="cpu/numa/cell")
                numa_cell = NUMACell(
                    id=len(cpu.numa) if ident is None else ident, cpus=cpus, memory_kib=memory
                )
                numa_cell.mem_access = cell.choice("memAccess", ("shared", "private"))
                numa_cell.discard = cell.flag("discard")
                numa_cell.caches = numa_hmat.parse_caches(cell)
                cpu.numa.append(numa_cell)
                cell.done()
            cpu.interconnects = numa_hmat.parse_interconnects(numa)
            numa.done()
        e.done()
        return cpu

    @staticmethod
    def clock(e: Elem) -> ClockConfig:
        return clock_xml.parse(e)

    @staticmethod
    def pm(e: Elem, dom: Domain) -> None:
        if (node := e.child("suspend-to-mem")) is not None:
            dom.pm_suspend_to_mem = node.flag("enabled")
            node.done()
        if (node := e.child("suspend-to-disk")) is not None:
            dom.pm_suspend_to_disk = node.flag("enabled")
            node.done()
        e.done()

    def seclabel(self, e: Elem) -> None:
        e.choice("type", ("none", "dynamic"))
        model = e.choice("model", ("dac", "selinux", "apparmor", "none"))
        if model in ("selinux", "apparmor") and not self.live:
            raise unsupported(
                f"seclabel model '{model}': pyvirt confines QEMU by DAC only (a user of its own), "
                f"it does no {'SELinux' if model == 'selinux' else 'AppArmor'} labelling"
            )
        e.flag("relabel")
        for tag in ("label", "imagelabel", "baselabel"):
            if (node := e.child(tag)) is not None:
                node.text(required=False)
                node.done()
        e.done()

    # --------------------------------------------------------------------------------------- devices

    def devices(self, e: Elem) -> Devices:
        devs = Devices()
        pending_index: list[ControllerConfig] = []
        for node in e.each():
            tag = node.tag
            if tag == "emulator":
                if devs.emulator is not None:
                    raise XMLError(f"element '{node.path}' may appear only once")
                devs.emulator = node.text()
                node.done()
            elif tag == "disk":
                devs.disks.append(self.disk(node))
            elif tag == "controller":
                controller, has_index = self.controller(node)
                devs.controllers.append(controller)
                if not has_index:
                    pending_index.append(controller)
            elif tag == "interface":
                devs.interfaces.append(self.interface(node))
            elif tag in ("serial", "console", "channel", "parallel"):
                lists = {"serial": devs.serials, "console": devs.consoles, "channel": devs.channels}
                lists["parallel"] = devs.parallels
                lists[tag].append(self.chardev(node))
            elif tag == "graphics":
                devs.graphics.append(self.graphics(node))
            elif tag == "video":
                devs.videos.append(self.video(node))
            elif tag == "input":
                devs.inputs.append(self.input(node))
            elif tag == "memballoon":
                if devs.memballoon is not None:
                    raise XMLError(f"element '{node.path}' may appear only once")
                devs.memballoon = self.memballoon(node)
            elif tag == "rng":
                devs.rngs.append(self.rng(node))
            elif tag == "panic":
                panic = PanicConfig(model=node.choice("model", PANIC_MODELS) or "isa")
                panic.alias = self.alias(node)
                panic.address = self.address(node)
                node.done()
                devs.panics.append(panic)
            elif tag == "audio":
                audio = AudioConfig(id=node.integer("id", minimum=1) or 1)
                audio.type = node.choice("type", AUDIO_TYPES, required=True) or "none"
                audio_backends.parse(node, audio)
                node.done()
                devs.audios.append(audio)
            elif tag == "sound":
                devs.sounds.append(self.sound(node))
            elif tag == "watchdog":
                devs.watchdogs.append(self.watchdog(node))
            elif tag == "filesystem":
                from pyvirt.conf import filesystem

                share = filesystem.parse(node)
                share.boot_order = self.boot_order(node)
                if share.boot_order is not None and share.virtiofs is None:
                    raise unsupported(f"element 'boot' of '{node.path}': a virtio-9p share cannot boot")
                share.alias = self.alias(node)
                share.address = self.address(node)
                node.done()
                devs.filesystems.append(share)
            elif tag == "hostdev":
                from pyvirt.conf import hostdev

                host = hostdev.parse(node)
                host.alias = self.alias(node)
                host.address = self.address(node)
                node.done()
                devs.hostdevs.append(host)
            elif tag == "tpm":
                from pyvirt.conf import tpm

                if devs.tpm is not None:
                    raise UnsupportedConfig(f"unsupported configuration: more than one '{node.path}'")
                devs.tpm = tpm.parse(node)
                devs.tpm.alias = self.alias(node)
                devs.tpm.address = self.address(node)
                node.done()
            elif tag == "memory":
                from pyvirt.conf import memory_devices

                mem = memory_devices.parse(node)
                mem.alias = self.alias(node)
                mem.address = self.address(node)
                node.done()
                devs.memory.append(mem)
            elif tag == "vsock":
                from pyvirt.conf import vsock

                if devs.vsock is not None:
                    raise UnsupportedConfig(f"unsupported configuration: more than one '{node.path}'")
                devs.vsock = vsock.parse(node)
                devs.vsock.alias = self.alias(node)
                devs.vsock.address = self.address(node)
                node.done()
            elif tag == "iommu":
                from pyvirt.conf import iommu

                if devs.iommu is not None:
                    raise UnsupportedConfig(f"unsupported configuration: more than one '{node.path}'")
                devs.iommu = iommu.parse(node)
                devs.iommu.alias = self.alias(node)
                devs.iommu.address = self.address(node)
                node.done()
            elif tag == "smartcard":
                from pyvirt.conf import smartcard

                card = smartcard.parse(node, CHAR_TYPES["smartcard"])
                if card.source is not None and card.source.type != "spicevmc":
                    self.char_source(node, card.source)
                card.alias = self.alias(node)
                card.address = self.address(node)
                node.done()
                devs.smartcards.append(card)
            elif tag == "redirdev":
                from pyvirt.conf.spicevmc import parse_redirdev

                redir = parse_redirdev(node, CHAR_TYPES["redirdev"])
                if redir.source is not None:
                    self.char_source(node, redir.source)
                redir.alias = self.alias(node)
                redir.address = self.address(node)
                node.done()
                devs.redirdevs.append(redir)
            else:
                raise node.refuse()
        for controller in pending_index:
            same = [c.index for c in devs.controllers if c.type == controller.type and c.index >= 0]
            controller.index = max(same, default=-1) + 1
        e.done()
        return devs

    def disk(self, e: Elem) -> DiskConfig:
        disk = DiskConfig(type=e.choice("type", DISK_TYPES) or "file")
        disk.device = e.choice("device", DISK_DEVICES) or "disk"
        disk.snapshot = e.choice("snapshot", ("no", "internal", "external", "manual"))
        if (node := e.child("driver")) is not None:
            disk.driver_name = node.choice("name", ("qemu",)) or "qemu"
            disk.driver_type = node.choice("type", DISK_FORMATS) or "raw"
            disk.cache = node.choice("cache", DISK_CACHE)
            disk.discard = node.choice("discard", DISK_DISCARD)
            disk.io = node.choice("io", DISK_IO)
            disk.iothread = node.integer("iothread", minimum=1)
            disk.virtio = virtio_options.parse(node)
            disk_tuning.parse_driver(node, disk.tuning)
            disk_layers.parse_driver(node, disk.layers)
            node.done()
        if (node := e.child("source")) is not None:
            if disk.type == "file":
                disk.source = node.attr("file")
            elif disk.type == "block":
                disk.source = node.attr("dev")
            elif disk.type == "dir":
                disk.source = node.attr("dir")
            elif disk.type == "vhostuser":
                from pyvirt.conf import vhostuser_disk

                vhostuser_disk.parse_source(node, disk)
            elif disk.type == "network":
                self.network_source(node, disk)
            else:
                disk.source_pool = node.require("pool")
                disk.source_volume = node.require("volume")
            node.skip("index")
            disk.reservations = disk_reservations.parse(node)
            disk.startup_policy = node.choice("startupPolicy", ("mandatory", "requisite", "optional"))
            if (enc := node.child("encryption")) is not None:
                disk.encryption = parse_encryption(enc, in_source=True)
            node.done()
        if (node := e.child("auth")) is not None:  # libvirt's first place for it; <source> is the other
            from pyvirt.conf import network_disk

            if disk.net is None:
                raise node.refuse()
            if disk.net.auth is not None:
                raise unsupported("an <auth> definition already found for disk source")
            disk.net.auth = network_disk.parse_auth(node, disk.net.protocol, in_source=False)
        if (node := e.child("backingStore")) is not None:
            disk.backing, disk.backing_given = backing_chain.parse(node, live=self.live)
        target = e.child("target")
        if target is None:
            raise XMLError(f"missing element 'target' of '{e.path}'")
        disk.target_dev = target.require("dev")
        disk.target_bus = target.choice("bus", DISK_BUSES) or ""
        disk_tuning.parse_target(target, disk.tuning)
        if disk.device in ("cdrom", "floppy"):
            disk.tray = target.choice("tray", ("open", "closed"))
            disk.tray = None if disk.tray == "closed" else disk.tray  # libvirt writes only an open one
        target.done()
        for tag in ("readonly", "shareable"):
            if (node := e.child(tag)) is not None:
                setattr(disk, tag, True)
                node.done()
        if (node := e.child("serial")) is not None:
            disk.serial = node.text()
            node.done()
        disk_tuning.parse_children(e, disk.tuning)
        disk_layers.parse_transient(e, disk.layers)
        if (enc := e.child("encryption")) is not None:
            if disk.encryption is not None:
                raise XMLError("an <encryption> definition already found for disk source")
            disk.encryption = parse_encryption(enc, in_source=False)
        if disk.encryption is not None and disk.driver_type not in ENCRYPTED_FORMATS:
            raise unsupported(
                f"disk '{disk.target_dev}' of format '{disk.driver_type}' cannot be LUKS-encrypted "
                f"(only {' or '.join(ENCRYPTED_FORMATS)})"
            )
        if (node := e.child("iotune")) is not None:
            for name in iotune.NAMES:
                if (limit := node.child(name)) is not None:
                    disk.iotune[name] = limit.text() if name == "group_name" else limit.text_int(minimum=0)
                    limit.done()
            node.done()
            iotune.check(disk.iotune, "disk/iotune")
            disk.iotune = iotune.nonzero(disk.iotune)
        disk_reservations.check(
            disk.reservations, device=disk.device, disk_type=disk.type, target=disk.target_dev
        )
        readonly = disk.readonly or disk.device == "cdrom"
        disk_layers.check(
            disk.layers, fmt=disk.driver_type, disk_type=disk.type, readonly=readonly, target=disk.target_dev
        )
        backing_chain.check(disk)
        disk.boot_order = self.boot_order(e)
        disk.acpi_index = acpi_index.parse(e)
        disk.alias = self.alias(e)
        disk.address = self.address(e)
        e.done()
        return disk

    @staticmethod
    def nvram_network(source: Elem) -> DiskConfig:
        """``<nvram type='network'>``'s source, as a network disk's (libvirt 9.0's NBD NVRAM); its
        credentials (an iSCSI NVRAM's CHAP) as a disk's (daemon.disk_secrets)."""
        disk = DiskConfig(type="network", target_dev="nvram")
        _Parser.network_source(source, disk)
        return disk  # NBD over TLS (tls='yes'): as a disk's (conf.nbd_tls)

    @staticmethod
    def network_source(node: Elem, disk: DiskConfig) -> None:
        from pyvirt.conf import network_disk

        protocol = node.require("protocol")
        if protocol in network_disk.PROTOCOLS:
            disk.net = network_disk.parse(node, protocol)
            disk.source_protocol, disk.source_name = protocol, disk.net.name
            return
        if protocol != "nbd":
            raise unsupported(
                f"disk source protocol '{protocol}' of '{node.path}': QEMU 7.2 opens "
                f"{', '.join(('nbd', *network_disk.PROTOCOLS))}"
            )
        disk.source_protocol, disk.source_name = protocol, node.attr("name")
        disk.source_tls = node.choice("tls", ("yes", "no"))
        disk.source_tls_hostname = node.attr("tlsHostname")
        if disk.source_tls_hostname is not None and disk.source_tls != "yes":
            raise XMLError(f"tlsHostname of '{node.path}' needs tls='yes'")
        hosts = node.children("host")
        if len(hosts) != 1:
            raise XMLError(f"'{node.path}' of protocol 'nbd' needs exactly one <host>")
        host = hosts[0]
        transport = host.choice("transport", ("tcp", "unix")) or "tcp"
        if transport == "unix":
            socket = host.require("socket")
            if not socket.startswith("/"):
                raise XMLError(f"socket '{socket}' of '{host.path}' must be an absolute path")
            disk.source_host = ("unix", socket, None)
        else:
            port = host.integer("port", minimum=1, maximum=65535)
            disk.source_host = ("tcp", host.require("name"), str(port or 10809))
        host.done()

    def controller(self, e: Elem) -> tuple[ControllerConfig, bool]:
        kind = e.choice("type", CONTROLLER_MODELS, required=True)
        assert kind is not None
        index = e.integer("index", minimum=0, maximum=255)
        ctl = ControllerConfig(type=kind, index=-1 if index is None else index)
        if CONTROLLER_MODELS[kind]:
            ctl.model = e.choice("model", CONTROLLER_MODELS[kind])
        if kind in ("usb", "virtio-serial"):
            ctl.ports = e.integer("ports", minimum=1, maximum=31 if kind == "virtio-serial" else 15)
        if kind == "virtio-serial" and (vectors := e.integer("vectors", minimum=0)) is not None:
            ctl.extra["vectors"] = str(vectors)
        if kind == "pci":
            if (node := e.child("model")) is not None:
                ctl.extra["model.name"] = node.choice("name", PCI_MODEL_NAMES, required=True) or ""
                node.done()
            if (node := e.child("target")) is not None:
                for name in PCI_TARGET_ATTRS:
                    if (value := node.attr(name)) is not None:
                        ctl.extra[f"target.{name}"] = value
                node.done()
        if kind == "usb" and (node := e.child("master")) is not None:
            startport = node.integer("startport", minimum=0, maximum=15)
            if startport is None:
                raise XMLError(f"missing attribute 'startport' of '{node.path}'")
            ctl.extra["master.startport"] = str(startport)
            node.done()
        if (driver := e.child("driver")) is not None:
            ctl.virtio = virtio_options.parse(driver)
            if kind == "scsi" and ctl.model == "virtio-scsi":
                controller_models.parse_scsi_driver(driver, ctl.extra)
            driver.done()
        ctl.alias = self.alias(e)
        ctl.address = self.address(e)
        e.done()
        return ctl, index is not None

    def interface(self, e: Elem) -> InterfaceConfig:
        nic = InterfaceConfig(type=e.choice("type", NET_TYPES, required=True) or "network")
        if (node := e.child("mac")) is not None:
            nic.mac = parse_mac(node.require("address"), node.path)
            node.done()
        if (node := e.child("source")) is not None:
            if nic.type == "network":
                nic.source_network = node.require("network")
                node.skip("portid", "bridge")
            elif nic.type == "bridge":
                nic.source_bridge = node.require("bridge")
            elif nic.type == "vdpa":
                from pyvirt.conf import net_vdpa

                net_vdpa.parse_source(node, nic)
            elif nic.type in ("vhostuser", "server", "client", "mcast", "udp"):
                from pyvirt.conf import net_sockets

                net_sockets.parse_source(node, nic)
            node.done()
        if (node := e.child("target")) is not None:
            dev = node.require("dev")
            nic.target_dev = dev if self.live or not _is_auto_tap(dev) else None
            if nic.type == "ethernet":
                from pyvirt.conf import net_ethernet

                net_ethernet.parse_target(node, nic)
                if nic.ethernet is not None and not nic.ethernet.managed:
                    nic.target_dev = dev  # the user's tap, whatever its name
            node.done()
        if nic.type == "ethernet":
            from pyvirt.conf import net_ethernet

            net_ethernet.parse(e, nic)
        elif e.child("script") is not None:  # libvirt's QEMU driver refuses it (at start) in these words
            raise UnsupportedConfig(
                f"unsupported configuration: scripts are not supported on interfaces of type {nic.type}"
            )
        if (node := e.child("model")) is not None:
            nic.model = node.choice("type", NET_MODELS, required=True) or DEFAULT_NET_MODEL
            node.done()
        else:  # libvirt 9.0's: a vDPA device is always virtio
            nic.model = "virtio" if nic.type == "vdpa" else DEFAULT_NET_MODEL
        if (node := e.child("bandwidth")) is not None:
            for direction in bandwidth.DIRECTIONS:
                if (rates := node.child(direction)) is not None:
                    values = {name: rates.integer(name, minimum=0) for name in bandwidth.FIELDS}
                    nic.bandwidth[direction] = {k: v for k, v in values.items() if v is not None}
                    rates.done()
            node.done()
            bandwidth.check(nic.bandwidth, "interface/bandwidth")
        if (node := e.child("link")) is not None:
            nic.link_state = node.choice("state", ("up", "down"), required=True)
            node.done()
        if (driver := e.child("driver")) is not None:
            from pyvirt.conf import net_driver

            nic.virtio = virtio_options.parse(driver)
            net_driver.parse(driver, nic.driver)
            driver.done()
        nic.boot_order = self.boot_order(e)
        nic.acpi_index = acpi_index.parse(e)
        nic.alias = self.alias(e)
        nic.address = self.address(e)
        e.done()
        return nic

    def chardev(self, e: Elem) -> CharDevConfig:
        kind = e.tag
        dev = CharDevConfig(kind=kind, type=e.choice("type", CHAR_TYPES[kind], required=True) or "pty")
        if kind == "console" and (tty := e.attr("tty")) is not None and self.live:
            dev.source_path = tty
        self.char_source(e, dev)
        chardev_options.parse_log(e, dev)
        if (node := e.child("target")) is not None:
            if kind == "serial":
                dev.target_type = node.choice("type", SERIAL_TARGETS)
                if (model := node.child("model")) is not None:
                    dev.target_model = model.choice("name", SERIAL_MODELS, required=True)
                    model.done()
            elif kind == "console":
                dev.target_type = node.choice("type", CONSOLE_TARGETS)
            elif kind == "channel":
                dev.target_type = node.choice("type", ("virtio", "guestfwd"), required=True)
                if dev.target_type == "guestfwd":
                    guestfwd.parse_target(node, dev)
                else:
                    dev.target_name = node.attr("name")
                    node.skip("state")
            if kind != "channel":
                dev.target_port = node.integer("port", minimum=0, maximum=31)
            node.done()
        dev.alias = self.alias(e)
        dev.address = self.address(e)
        e.done()
        return dev

    def char_source(self, e: Elem, dev: CharDevConfig) -> None:
        """The host side of a character device (``<source>``, ``<protocol>``) of ``e`` into ``dev``."""
        if dev.type in chardev_backends.TYPES:
            chardev_backends.parse(e, dev)
        elif (node := e.child("source")) is not None:
            path = node.attr("path")
            if dev.type == "unix":
                # libvirt: a socket at a given path without a mode is connected to (a channel without
                # a path gets one made by the daemon and listens there).
                dev.source_mode = node.choice("mode", ("bind", "connect")) or ("connect" if path else None)
                dev.source_path = path
                chardev_options.parse_reconnect(node, dev, dev.source_mode)
                if (
                    proto := e.child("protocol")
                ) is not None:  # a UNIX socket is raw (libvirt writes none back)
                    proto.choice("type", ("raw",), required=True)
                    proto.done()
            elif dev.type == "file":
                dev.source_path = node.require("path")
                if (append := node.choice("append", ("on", "off"))) is not None:
                    dev.source_extra["append"] = append
            elif dev.type == "pty":
                if self.live and path is not None:
                    dev.source_path = path
            else:
                raise node.refuse()
            node.done()

    def graphics(self, e: Elem) -> GraphicsConfig:
        from pyvirt.conf import graphics_local

        kinds = ("vnc", "spice", *graphics_local.LOCAL_TYPES)
        gfx = GraphicsConfig(type=e.choice("type", kinds, required=True) or "vnc")
        if gfx.type in graphics_local.LOCAL_TYPES:
            graphics_local.parse_local(e, gfx)
            e.done()
            return gfx
        graphics_local.parse_password_settings(e, gfx)
        port = e.integer("port", minimum=-1, maximum=65535)
        autoport = e.flag("autoport")
        gfx.autoport = autoport if autoport is not None else port is None or port == -1
        if gfx.autoport:
            gfx.port = port if self.live and port is not None and port >= 0 else -1
        else:
            gfx.port = port
        vnc_options.parse(e, gfx.vnc)
        if (socket_attr := e.attr("socket")) is not None:  # the legacy form of <listen type='socket'>
            gfx.listen_socket, gfx.socket = True, socket_attr
            if not socket_attr.startswith("/"):
                raise XMLError(f"socket '{socket_attr}' of '{e.path}' must be an absolute path")
        listen_attr = e.attr("listen")
        listens = e.children("listen")
        if len(listens) > 1:
            raise unsupported(f"element '{listens[1].path}' given more than once is not supported")
        listen_addr = None
        for node in listens:
            kind = node.choice("type", ("address", "socket", "none"), required=True)
            if kind == "none":
                gfx.listen_none = True
            elif kind == "socket":
                gfx.listen_socket = True
                gfx.socket = node.attr("socket")
                if gfx.socket is not None and not gfx.socket.startswith("/"):
                    raise XMLError(f"socket '{gfx.socket}' of '{node.path}' must be an absolute path")
            else:
                listen_addr = node.attr("address")
            node.done()
        if listen_attr and listen_addr and listen_attr != listen_addr:
            raise XMLError(
                f"graphics 'listen' attribute '{listen_attr}' must match the 'address' attribute "
                f"'{listen_addr}' of its first <listen> element"
            )
        gfx.listen = listen_addr or listen_attr or gfx.listen
        gfx.passwd = e.attr("passwd")
        if gfx.type == "spice":
            if (tls := e.integer("tlsPort", minimum=-1, maximum=65535)) not in (None, -1):
                raise unsupported(
                    f"attribute 'tlsPort' = '{tls}' of '{e.path}': SPICE over TLS is not supported"
                )
            e.choice("defaultMode", ("any", "insecure"))
            for tag, attr, values in SPICE_SETTINGS:
                if (setting := e.child(tag)) is not None:
                    gfx.spice[(tag, attr)] = setting.choice(attr, values, required=True) or ""
                    setting.done()
            graphics_local.parse_gl(e, gfx)
        if (sound := e.child("audio")) is not None:
            gfx.audio_id = sound.integer("id", minimum=1)
            sound.done()
        e.done()
        return gfx

    def video(self, e: Elem) -> VideoConfig:
        video = VideoConfig()
        if (node := e.child("model")) is not None:
            video.model = node.choice("type", VIDEO_MODELS, required=True) or "virtio"
            video.vram = node.integer("vram", minimum=0)
            video.ram = node.integer("ram", minimum=0)
            video.vram64 = node.integer("vram64", minimum=0)
            video.vgamem = node.integer("vgamem", minimum=0)
            video.heads = node.integer("heads", minimum=1, maximum=16)
            video.primary = node.flag("primary")
            if (accel := node.child("acceleration")) is not None:
                video.accel3d = accel.choice("accel3d", ("no", "yes"))  # yes: virgl (a GL display at start)
                if video.accel3d == "yes" and video.model != "virtio":
                    raise UnsupportedConfig(
                        f"unsupported configuration: accel3d='yes' of '{accel.path}': 3D acceleration "
                        f"is only for virtio video, not '{video.model}'"
                    )
                accel.done()
            node.done()
        video.virtio = virtio_options.parse_driver(e)
        video.acpi_index = acpi_index.parse(e)
        video.alias = self.alias(e)
        video.address = self.address(e)
        e.done()
        return video

    def sound(self, e: Elem) -> SoundConfig:
        sound = SoundConfig(model=e.choice("model", SOUND_MODELS, required=True) or "ich9")
        for node in e.children("codec"):
            sound.codecs.append(node.choice("type", SOUND_CODECS, required=True) or "duplex")
            node.done()
        if (target := e.child("audio")) is not None:
            sound.audio_id = target.integer("id", minimum=1)
            target.done()
        sound.alias = self.alias(e)
        sound.address = self.address(e)
        e.done()
        return sound

    def input(self, e: Elem) -> InputConfig:
        kind = e.choice("type", INPUT_TYPES, required=True) or "mouse"
        if kind == "evdev":  # a host device read by QEMU (conf.input_linux): no guest device, no bus
            from pyvirt.conf import input_linux

            evdev = InputConfig(type=kind, bus="")
            input_linux.parse(e, evdev)
            evdev.alias = self.alias(e)
            e.done()
            return evdev
        bus = e.choice("bus", INPUT_BUSES) or ("usb" if kind == "tablet" else "ps2")
        dev = InputConfig(type=kind, bus=bus)
        if kind == "passthrough":  # a host input device, on virtio only
            if bus != "virtio":
                raise unsupported(f"input type 'passthrough' on bus '{bus}' (virtio only)")
            source = e.child("source")
            if source is None:
                raise XMLError(f"'{e.path}' of type 'passthrough' needs <source evdev>")
            dev.evdev = source.require("evdev")
            if not dev.evdev.startswith("/dev/input/"):
                raise XMLError(f"evdev '{dev.evdev}' of '{source.path}' must be a device under /dev/input")
            source.done()
        dev.virtio = virtio_options.parse_driver(e)
        dev.alias = self.alias(e)
        dev.address = self.address(e)
        e.done()
        return dev

    def memballoon(self, e: Elem) -> MemballoonConfig:
        balloon = MemballoonConfig(model=e.choice("model", ("virtio", "none"), required=True) or "virtio")
        balloon.free_page_reporting = e.choice("freePageReporting", ("on", "off"))
        if (node := e.child("stats")) is not None:
            balloon.stats_period = node.integer("period", minimum=0)
            node.done()
        balloon.virtio = virtio_options.parse_driver(e)
        balloon.alias = self.alias(e)
        balloon.address = self.address(e)
        e.done()
        return balloon

    def rng(self, e: Elem) -> RNGConfig:
        rng = RNGConfig(model=e.choice("model", ("virtio",), required=True) or "virtio")
        if (node := e.child("rate")) is not None:
            rng.rate_bytes = node.integer("bytes", minimum=1)
            rng.rate_period = node.integer("period", minimum=1)
            node.done()
        backend = e.child("backend")
        if backend is None:
            raise XMLError(f"missing element 'backend' of '{e.path}'")
        rng.backend_model = backend.choice("model", ("random", "builtin", "egd"), required=True) or "random"
        if rng.backend_model == "egd":  # an Entropy Gathering Daemon behind a character device
            kind = backend.choice("type", CHAR_TYPES["rng"], required=True) or "unix"
            rng.egd = CharDevConfig(kind="rng", type=kind)
            self.char_source(backend, rng.egd)
            backend.done()
            rng.virtio = virtio_options.parse_driver(e)
            rng.alias, rng.address = self.alias(e), self.address(e)
            e.done()
            return rng
        path = backend.text(required=False) or "/dev/urandom"
        if rng.backend_model == "builtin" and backend.node.text.strip():
            raise XMLError(f"'{backend.path}' of model 'builtin' takes no device path")
        if path not in RNG_BACKENDS:
            raise unsupported(f"value '{path}' of element '{backend.path}' is not supported")
        rng.backend = path
        backend.done()
        rng.virtio = virtio_options.parse_driver(e)
        rng.alias = self.alias(e)
        rng.address = self.address(e)
        e.done()
        return rng

    def watchdog(self, e: Elem) -> WatchdogConfig:
        dog = WatchdogConfig(model=e.choice("model", WATCHDOG_MODELS, required=True) or "itco")
        dog.action = e.choice("action", WATCHDOG_ACTIONS) or "reset"
        dog.alias = self.alias(e)
        dog.address = self.address(e)
        e.done()
        return dog


def parse_uuid(text: str) -> str:
    """A UUID in libvirt's accepted spellings, as lower-case canonical text."""
    try:
        return str(uuidlib.UUID(text.strip()))
    except ValueError as err:
        raise InvalidArgument(f"invalid UUID '{text}' in element 'uuid'") from err


def parse_mac(text: str, where: str) -> str:
    """A colon-separated MAC address, lower-cased."""
    parts = text.strip().split(":")
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{2}", part) for part in parts):
        raise InvalidArgument(f"invalid MAC address '{text}' in '{where}' (expected six hex pairs)")
    return ":".join(parts).lower()


def parse_domain(text: str, *, live: bool = False) -> Domain:
    """Parse domain XML into a :class:`Domain`, refusing anything the model does not hold.

    With ``live=False`` (a config file, ``virsh define``) runtime-only state is dropped, as libvirt
    does for inactive XML; ``live=True`` keeps it (a running domain's status XML).
    """
    root = parse_document(text, raw_paths=frozenset({"metadata"}))
    if root.tag != "domain":
        raise XMLError(f"expected a <domain> root element, found <{root.tag}>")
    return _Parser(live).domain(Elem(root))


# -------------------------------------------------------------------------------------------- formatting


def _alias(alias: str | None, live: bool) -> XNode | None:
    return x("alias", {"name": alias}) if alias and (live or alias.startswith("ua-")) else None


def _address(address: PCIAddress | None) -> XNode | None:
    if address is None:
        return None
    return x("address", {"type": address.type, **address.attrs})


def _driver(options: dict[str, str]) -> XNode | None:
    return x("driver", virtio_options.attrs(options)) if options else None


def _boot(order: int | None) -> XNode | None:
    return x("boot", {"order": order}) if order is not None else None


def _os(osc: OSConfig) -> XNode:
    node = x("os", {"firmware": osc.firmware})
    node.add(x("type", {"arch": osc.arch, "machine": osc.machine}, text=osc.type))
    if osc.firmware_features:
        firmware = x("firmware")
        for name, enabled in osc.firmware_features.items():
            firmware.add(x("feature", {"enabled": yes_no(enabled), "name": name}))
        node.add(firmware)
    if osc.loader is not None:
        loader = osc.loader
        attrs = {
            "readonly": yes_no(loader.readonly),
            "secure": yes_no(loader.secure),
            "type": loader.type,
            "format": loader.format,
            "stateless": yes_no(loader.stateless),
        }
        node.add(x("loader", attrs, text=loader.path))
    if osc.nvram is not None or osc.nvram_template is not None or osc.nvram_source is not None:
        nvram_attrs = {
            "template": osc.nvram_template,
            "templateFormat": osc.nvram_template_format,
            "format": osc.nvram_format,
        }
        if osc.nvram_type == "network" and osc.nvram_source is not None:
            nvram_attrs["type"] = "network"
            node.add(x("nvram", nvram_attrs).add(_network_source(osc.nvram_source)))
        elif osc.nvram_type == "file":
            nvram_attrs["type"] = "file"
            node.add(x("nvram", nvram_attrs).add(x("source", {"file": osc.nvram})))
        else:
            node.add(x("nvram", nvram_attrs, text=osc.nvram))
    for tag in ("kernel", "initrd", "cmdline"):
        value = getattr(osc, tag)
        if value is not None:
            node.add(x(tag, text=value))
    node.add(*(x("boot", {"dev": dev}) for dev in osc.boot))
    if osc.bootmenu is not None:
        node.add(x("bootmenu", {"enable": yes_no(osc.bootmenu), "timeout": osc.bootmenu_timeout}))
    return node


def _features(dom: Domain) -> XNode | None:
    if not dom.features:
        return None
    node = x("features")
    for name in dom.features:
        if name == "hyperv":
            from pyvirt.conf import hyperv

            node.add(hyperv.write(dom.hyperv))
            continue
        attrs = dom.feature_attrs.get(name, {})
        node.add(feature_sizes.write(name, attrs) if name in feature_sizes.TAGS else x(name, attrs))
    return node


def _cpu(cpu: CPUConfig) -> XNode:
    attrs = {"mode": cpu.mode, "match": cpu.match, "check": cpu.check, "migratable": on_off(cpu.migratable)}
    node = x("cpu", attrs)
    if cpu.model is not None or cpu.fallback is not None:
        node.add(x("model", {"fallback": cpu.fallback}, text=cpu.model))
    topology = {
        "sockets": cpu.sockets,
        "dies": cpu.dies,
        "clusters": cpu.clusters,
        "cores": cpu.cores,
        "threads": cpu.threads,
    }
    if any(value is not None for value in topology.values()):
        node.add(x("topology", topology))
    node.add(*(x("feature", {"policy": f.policy, "name": f.name}) for f in cpu.features))
    if cpu.numa:
        cells = (
            x(
                "cell",
                {
                    "id": c.id,
                    "cpus": c.cpus or None,
                    "memory": c.memory_kib,
                    "unit": "KiB",
                    "memAccess": c.mem_access,
                    "discard": yes_no(c.discard),
                },
            ).add(*numa_hmat.write_caches(c))
            for c in cpu.numa
        )
        node.add(x("numa").add(*cells, numa_hmat.write_interconnects(cpu)))
    return node


def _pm(dom: Domain) -> XNode | None:
    if dom.pm_suspend_to_mem is None and dom.pm_suspend_to_disk is None:
        return None
    node = x("pm")
    if dom.pm_suspend_to_mem is not None:
        node.add(x("suspend-to-mem", {"enabled": yes_no(dom.pm_suspend_to_mem)}))
    if dom.pm_suspend_to_disk is not None:
        node.add(x("suspend-to-disk", {"enabled": yes_no(dom.pm_suspend_to_disk)}))
    return node


def _disk(disk: DiskConfig, live: bool) -> XNode:
    node = x("disk", {"type": disk.type, "device": disk.device, "snapshot": disk.snapshot})
    driver = {"name": disk.driver_name, "type": disk.driver_type}
    attrs = {"cache": disk.cache, "discard": disk.discard, "io": disk.io, "iothread": disk.iothread}
    tuning = disk_tuning.driver_attrs(disk.tuning)
    attrs.update(disk_layers.driver_attrs(disk.layers))
    driver_node = x("driver", {**driver, **attrs, **tuning, **virtio_options.attrs(disk.virtio)})
    node.add(driver_node.add(*disk_layers.driver_children(disk.layers)))
    source: XNode | None = None
    if disk.type == "volume" and disk.source_pool is not None:
        source = x("source", {"pool": disk.source_pool, "volume": disk.source_volume})
    elif disk.type == "network" and disk.net is not None:
        from pyvirt.conf import network_disk

        source = network_disk.write_source(disk.net)
        if disk.net.auth is not None and not disk.net.auth.in_source:
            node.add(network_disk.write_auth(disk.net.auth))
    elif disk.type == "network" and disk.source_host is not None:
        source = _network_source(disk)
    elif disk.type == "vhostuser":
        from pyvirt.conf import vhostuser_disk

        source = vhostuser_disk.write_source(disk)
    elif disk.source is not None:
        source = x("source", {{"file": "file", "dir": "dir"}.get(disk.type, "dev"): disk.source})
    if source is not None and disk.reservations is not None:
        source.add(disk_reservations.write(disk.reservations))
    if disk.startup_policy is not None:
        source = source or x("source")
        source.attrs.append(("startupPolicy", disk.startup_policy))
    enc = disk.encryption
    if source is not None and enc is not None and enc.in_source:
        source.add(encryption_node(enc))
    node.add(source)
    if disk.backing is not None and (live or disk.backing_given is not None):
        node.add(backing_chain.write(disk.backing, closed=live or disk.backing_given == backing_chain.CLOSED))
    target = {"dev": disk.target_dev, "bus": disk.target_bus or None, "tray": disk.tray}
    target.update(disk_tuning.target_attrs(disk.tuning))
    node.add(x("target", target))
    if disk.iotune:
        node.add(x("iotune").add(*(x(name, text=str(value)) for name, value in disk.iotune.items())))
    node.add(x("readonly") if disk.readonly else None, x("shareable") if disk.shareable else None)
    node.add(x("serial", text=disk.serial) if disk.serial else None, *disk_tuning.children(disk.tuning))
    node.add(disk_layers.transient_node(disk.layers))
    if enc is not None and (not enc.in_source or source is None):
        node.add(encryption_node(enc))
    node.add(_boot(disk.boot_order), acpi_index.write(disk.acpi_index), _alias(disk.alias, live))
    node.add(_address(disk.address))
    return node


def _network_source(disk: DiskConfig) -> XNode:
    """The ``<source protocol=...>`` of a network disk (or NVRAM)."""
    if disk.net is not None:
        from pyvirt.conf import network_disk

        return network_disk.write_source(disk.net)
    assert disk.source_host is not None
    transport, where, port = disk.source_host
    host = {"transport": "unix", "socket": where} if transport == "unix" else {"name": where, "port": port}
    source = x(
        "source",
        {
            "protocol": disk.source_protocol,
            "name": disk.source_name,
            "tls": disk.source_tls,
            "tlsHostname": disk.source_tls_hostname,
        },
    )
    return source.add(x("host", host))


def _controller(ctl: ControllerConfig, live: bool) -> XNode:
    attrs: dict[str, AttrValue] = {"type": ctl.type, "index": ctl.index, "model": ctl.model}
    attrs["ports"] = ctl.ports
    node = x("controller", {**attrs, "vectors": ctl.extra.get("vectors")})
    driver = {**controller_models.scsi_driver_attrs(ctl.extra), **virtio_options.attrs(ctl.virtio)}
    node.add(x("driver", driver) if driver else None)
    if "model.name" in ctl.extra:
        node.add(x("model", {"name": ctl.extra["model.name"]}))
    target = {name: ctl.extra.get(f"target.{name}") for name in PCI_TARGET_ATTRS}
    if any(value is not None for value in target.values()):
        node.add(x("target", target))
    node.add(_alias(ctl.alias, live))
    if "master.startport" in ctl.extra:
        node.add(x("master", {"startport": ctl.extra["master.startport"]}))
    node.add(_address(ctl.address))
    return node


def _interface(nic: InterfaceConfig, live: bool) -> XNode:
    node = x("interface", {"type": nic.type})
    node.add(x("mac", {"address": nic.mac}) if nic.mac else None)
    if nic.type == "network":
        node.add(x("source", {"network": nic.source_network}))
    elif nic.type == "bridge":
        node.add(x("source", {"bridge": nic.source_bridge}))
    elif nic.type == "vdpa":
        node.add(x("source", {"dev": nic.source_dev}))
    elif nic.socket:
        from pyvirt.conf import net_sockets

        node.add(net_sockets.write_source(nic))
    if nic.ethernet is not None:
        from pyvirt.conf import net_ethernet

        node.add(*net_ethernet.write(nic))
    unmanaged = "no" if nic.ethernet is not None and not nic.ethernet.managed else None
    if nic.target_dev and (live or unmanaged or not _is_auto_tap(nic.target_dev)):
        node.add(x("target", {"dev": nic.target_dev, "managed": unmanaged}))
    driver = {**nic.driver, **virtio_options.attrs(nic.virtio)}
    node.add(x("model", {"type": nic.model}), x("driver", driver) if driver else None)
    if any(nic.bandwidth.values()):
        rates = [x(d, dict(v)) for d, v in nic.bandwidth.items() if v]  # type: ignore[arg-type]
        node.add(x("bandwidth").add(*rates))
    node.add(x("link", {"state": nic.link_state}) if nic.link_state else None)
    node.add(_boot(nic.boot_order), acpi_index.write(nic.acpi_index), _alias(nic.alias, live))
    node.add(_address(nic.address))
    return node


def char_source_nodes(dev: CharDevConfig, live: bool) -> list[XNode | None]:
    """The ``<source>`` (and ``<protocol>``) of a character device's host side."""
    if dev.type == "pty":
        return [x("source", {"path": dev.source_path}) if live and dev.source_path else None]
    if dev.type in ("unix", "file") and (dev.source_path or dev.source_mode):
        append = dev.source_extra.get("append")
        mode = dev.source_mode
        if dev.type == "unix" and mode is None and dev.source_path:
            mode = "bind"  # the path the daemon made for a listening socket (read back, no mode connects)
        source = x("source", {"mode": mode, "path": dev.source_path, "append": append})
        return [source.add(chardev_options.write_reconnect(dev))]
    if dev.type in chardev_backends.TYPES:
        return list(chardev_backends.write(dev))
    return []


def _chardev(dev: CharDevConfig, live: bool) -> XNode:
    tty = dev.source_path if live and dev.kind == "console" and dev.type == "pty" else None
    node = x(dev.kind, {"type": dev.type, "tty": tty}).add(*char_source_nodes(dev, live))
    node.add(chardev_options.write_log(dev))
    if dev.target_type == "guestfwd":
        target = guestfwd.write_target(dev)
    elif dev.kind == "channel":
        target = x("target", {"type": dev.target_type, "name": dev.target_name})
    else:
        target = x("target", {"type": dev.target_type, "port": dev.target_port})
        target.add(x("model", {"name": dev.target_model}) if dev.target_model else None)
    node.add(target if target.attrs or target.children else None)
    node.add(_alias(dev.alias, live), _address(dev.address))
    return node


def _graphics(gfx: GraphicsConfig, live: bool, secure: bool) -> XNode:
    from pyvirt.conf import graphics_local

    if gfx.type in graphics_local.LOCAL_TYPES:
        return graphics_local.write_local(gfx)
    node = _network_graphics(gfx, live, secure)
    node.attrs += [
        (k, v) for k, v in (("passwdValidTo", gfx.passwd_valid_to), ("connected", gfx.connected)) if v
    ]
    for (tag, attr), value in gfx.spice.items():
        node.add(x(tag, {attr: value}))
    node.add(graphics_local.write_gl(gfx))
    node.add(x("audio", {"id": gfx.audio_id}) if gfx.audio_id is not None else None)
    return node


def _network_graphics(gfx: GraphicsConfig, live: bool, secure: bool) -> XNode:
    port: int | None = gfx.port if gfx.port is not None and (live or not gfx.autoport) else -1
    if not gfx.autoport and gfx.port is None:
        port = None  # SPICE without a port (conf.validate): written as it was read
    attrs: dict[str, AttrValue] = {"type": gfx.type, "port": port, "autoport": yes_no(gfx.autoport)}
    attrs.update(gfx.vnc)
    if gfx.listen_none:
        node = x("graphics", {"type": gfx.type, **gfx.vnc, "passwd": gfx.passwd if secure else None})
        node.add(x("listen", {"type": "none"}))
    elif gfx.listen_socket:
        attrs = {"type": gfx.type, **gfx.vnc}
        node = x("graphics", {**attrs, "passwd": gfx.passwd if secure else None})
        socket = gfx.socket if live or gfx.socket else None
        node.add(x("listen", {"type": "socket", "socket": socket}))
    else:
        attrs["listen"] = gfx.listen or None
        node = x("graphics", {**attrs, "passwd": gfx.passwd if secure else None})
        node.add(x("listen", {"type": "address", "address": gfx.listen or None}))
    return node


def _sound(sound: SoundConfig, live: bool) -> XNode:
    node = x("sound", {"model": sound.model})
    node.add(*(x("codec", {"type": codec}) for codec in sound.codecs))
    node.add(x("audio", {"id": sound.audio_id}) if sound.audio_id is not None else None)
    return node.add(_alias(sound.alias, live), _address(sound.address))


def _video(video: VideoConfig, live: bool) -> XNode:
    attrs = {
        "type": video.model,
        "ram": video.ram,
        "vram": video.vram,
        "vram64": video.vram64,
        "vgamem": video.vgamem,
        "heads": video.heads,
        "primary": yes_no(video.primary),
    }
    model = x("model", attrs).add(x("acceleration", {"accel3d": video.accel3d}) if video.accel3d else None)
    extra = (acpi_index.write(video.acpi_index), _alias(video.alias, live), _address(video.address))
    return x("video").add(_driver(video.virtio), model, *extra)


def _devices(devs: Devices, live: bool, secure: bool) -> XNode:
    node = x("devices")
    node.add(x("emulator", text=devs.emulator) if devs.emulator else None)
    node.add(*(_disk(disk, live) for disk in devs.disks))
    node.add(*(_controller(ctl, live) for ctl in devs.controllers))
    if devs.filesystems:
        from pyvirt.conf import filesystem

        for share in devs.filesystems:
            extra = (_boot(share.boot_order), _alias(share.alias, live), _address(share.address))
            node.add(filesystem.write(share, extra))
    node.add(*(_interface(nic, live) for nic in devs.interfaces))
    chardevs = (*devs.serials, *devs.parallels, *devs.consoles, *devs.channels)
    node.add(*(_chardev(dev, live) for dev in chardevs))
    for dev in devs.inputs:
        source = x("source", {"evdev": dev.evdev}) if dev.evdev else None
        if dev.type == "evdev":
            from pyvirt.conf import input_linux

            source = input_linux.write(dev)
        node.add(
            x("input", {"type": dev.type, "bus": dev.bus or None}).add(
                source, _driver(dev.virtio), _alias(dev.alias, live), _address(dev.address)
            )
        )
    node.add(*(_graphics(gfx, live, secure) for gfx in devs.graphics))
    node.add(*(_sound(sound, live) for sound in devs.sounds))
    node.add(*(audio_backends.write(audio) for audio in devs.audios))
    node.add(*(_video(video, live) for video in devs.videos))
    for dog in devs.watchdogs:
        attrs = {"model": dog.model, "action": dog.action}
        node.add(x("watchdog", attrs).add(_alias(dog.alias, live), _address(dog.address)))
    if devs.redirdevs:
        from pyvirt.conf.spicevmc import write_redirdev

        for r in devs.redirdevs:
            redir_source = char_source_nodes(r.source, live) if r.source else []
            node.add(write_redirdev(r, (*redir_source, _alias(r.alias, live), _address(r.address))))
    if devs.smartcards:
        from pyvirt.conf import smartcard

        for card in devs.smartcards:
            spicevmc = card.source is None or card.source.type == "spicevmc"
            card_source = [] if spicevmc or card.source is None else char_source_nodes(card.source, live)
            node.add(smartcard.write(card, (*card_source, _alias(card.alias, live), _address(card.address))))
    if (balloon := devs.memballoon) is not None:
        stats = x("stats", {"period": balloon.stats_period}) if balloon.stats_period is not None else None
        extra = (_alias(balloon.alias, live), _address(balloon.address), _driver(balloon.virtio))
        reporting = balloon.free_page_reporting
        node.add(x("memballoon", {"model": balloon.model, "freePageReporting": reporting}).add(stats, *extra))
    for rng in devs.rngs:
        rate = {"bytes": rng.rate_bytes, "period": rng.rate_period}
        rng_node = x("rng", {"model": rng.model})
        rng_node.add(x("rate", rate) if rng.rate_bytes is not None else None)
        rng_text = rng.backend if rng.backend_model == "random" else None
        egd_type = rng.egd.type if rng.egd else None
        backend = x("backend", {"model": rng.backend_model, "type": egd_type}, text=rng_text)
        backend.add(*(char_source_nodes(rng.egd, live) if rng.egd else ()))
        rng_node.add(backend, _driver(rng.virtio))
        node.add(rng_node.add(_alias(rng.alias, live), _address(rng.address)))
    for panic in devs.panics:
        node.add(x("panic", {"model": panic.model}).add(_alias(panic.alias, live), _address(panic.address)))
    if (guest_iommu := devs.iommu) is not None:
        from pyvirt.conf import iommu

        node.add(iommu.write(guest_iommu, (_alias(guest_iommu.alias, live), _address(guest_iommu.address))))
    if devs.hostdevs:
        from pyvirt.conf import hostdev

        node.add(*(hostdev.write(h, (_alias(h.alias, live), _address(h.address))) for h in devs.hostdevs))
    if (guest_tpm := devs.tpm) is not None:
        from pyvirt.conf import tpm

        node.add(tpm.write(guest_tpm, (_alias(guest_tpm.alias, live), _address(guest_tpm.address))))
    if devs.memory:
        from pyvirt.conf import memory_devices

        for mem in devs.memory:
            node.add(memory_devices.write(mem, (_alias(mem.alias, live), _address(mem.address))))
    if (sock := devs.vsock) is not None:
        from pyvirt.conf import vsock

        node.add(vsock.write(sock, (_alias(sock.alias, live), _address(sock.address))))
    return node


def format_domain(dom: Domain, *, live: bool = False, secure: bool = True) -> str:
    """Domain XML as libvirt writes it; ``live`` adds runtime state, ``secure=False`` hides passwords."""
    root = x("domain", {"type": dom.type, "id": dom.id if live else None})
    root.add(x("name", text=dom.name), x("uuid", text=dom.uuid))
    if dom.genid is not None:
        from pyvirt.conf import genid

        root.add(genid.write(dom.genid))
    root.add(x("title", text=dom.title) if dom.title else None)
    root.add(x("description", text=dom.description) if dom.description else None)
    if dom.metadata:
        check_metadata(dom.metadata)  # raw text goes out verbatim: never let it break the document
        root.add(XNode("metadata", raw=dom.metadata))
    if dom.max_memory_kib is not None:
        attrs = {"slots": dom.max_memory_slots, "unit": "KiB"}
        root.add(x("maxMemory", attrs, text=str(dom.max_memory_kib)))
    root.add(x("memory", {"unit": "KiB"}, text=str(dom.memory_kib)))
    if dom.current_memory_kib is not None:
        root.add(x("currentMemory", {"unit": "KiB"}, text=str(dom.current_memory_kib)))
    if dom.memtune is not None:
        limits = [(t, getattr(dom.memtune, t)) for t in ("hard_limit", "soft_limit", "swap_hard_limit")]
        root.add(x("memtune").add(*(x(t, {"unit": "KiB"}, text=str(v)) for t, v in limits if v is not None)))
    root.add(memory_backing.write(dom))
    vcpu_attrs = {"placement": dom.vcpu_placement, "cpuset": dom.vcpu_cpuset, "current": dom.vcpu_current}
    root.add(x("vcpu", vcpu_attrs, text=str(dom.vcpus)))
    if dom.iothreads is not None:
        root.add(x("iothreads", text=str(dom.iothreads)))
    if dom.iothread_ids:
        threads = (
            x("iothread", {"id": ident, **iothread_pools.attrs(dom.iothread_pools.get(ident))})
            for ident in dom.iothread_ids
        )
        root.add(x("iothreadids").add(*threads))
    root.add(iothread_pools.default_node(dom))
    if dom.cputune is not None:
        tune = x("cputune")
        for tag in ("shares", "global_period", "global_quota"):
            value = getattr(dom.cputune, tag)
            tune.add(x(tag, text=str(value)) if value is not None else None)
        for vcpu, cpuset in sorted(dom.cputune.vcpupin.items()):
            tune.add(x("vcpupin", {"vcpu": vcpu, "cpuset": cpuset}))
        if dom.cputune.emulatorpin is not None:
            tune.add(x("emulatorpin", {"cpuset": dom.cputune.emulatorpin}))
        root.add(tune)
    if dom.numatune is not None:
        root.add(memory_backing.write_numatune(dom.numatune))
    if dom.resource_partition is not None:
        root.add(x("resource").add(x("partition", text=dom.resource_partition)))
    root.add(_os(dom.os), _features(dom))
    root.add(_cpu(dom.cpu) if dom.cpu is not None else None)
    root.add(clock_xml.write(dom.clock) if dom.clock is not None else None)
    for tag in ("on_poweroff", "on_reboot", "on_crash"):
        root.add(x(tag, text=getattr(dom, tag)))
    root.add(_pm(dom), _devices(dom.devices, live, secure))
    if dom.qemu_ns is not None:
        from pyvirt.conf import qemu_ns

        root.attrs.append(("xmlns:qemu", qemu_ns.NS))
        root.add(*qemu_ns.write(dom.qemu_ns))
    return serialize(root)


def load_domain_xml(text: str) -> Domain:
    """Parse config XML, apply post-parse defaults and validate: what ``define`` needs."""
    dom = parse_domain(text)
    apply_defaults(dom)
    validate_domain(dom)
    return dom

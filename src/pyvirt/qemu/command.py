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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pyvirt.conf import (
    backing_chain,
    chardev_backends,
    chardev_options,
    controller_models,
    disk_layers,
    disk_reservations,
    disk_tuning,
    feature_sizes,
    guestfwd,
    iothread_pools,
    memory_backing,
    memory_devices,
    nbd_tls,
    network_disk,
    numa_hmat,
    virtio_options,
    vnc_options,
)
from pyvirt.conf import clock as clock_xml
from pyvirt.conf import hostdev as hostdev_conf
from pyvirt.conf.addresses import drive_address, number, parse_number
from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.conf.domain import (
    CharDevConfig,
    ControllerConfig,
    DiskConfig,
    Domain,
    GraphicsConfig,
    InterfaceConfig,
    NUMACell,
    PCIAddress,
)
from pyvirt.conf.implicit_devices import DEFAULT_SCSI_MODEL
from pyvirt.conf.validate import iothread_ids
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu import backing_nodes, scsi_address

if TYPE_CHECKING:
    from pyvirt.conf.filesystem import FilesystemConfig

DEFAULT_EMULATOR = "/usr/bin/qemu-system-x86_64"
# The video device libvirt 9.0 adds for a display with no <video> (its qemuDomainDefaultVideoDevice on
# x86 with QEMU's cirrus-vga: checked with virsh domxml-to-native for VNC, SPICE and SDL, pc and q35)
DEFAULT_VIDEO = "cirrus-vga,id=video0"
MASTER_KEY_ID = "masterKey0"  # libvirt's name for the per-domain key that secrets are encrypted with
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

NIC_MODELS = {
    "virtio": "virtio-net-pci",
    "e1000": "e1000",
    "e1000e": "e1000e",
    "rtl8139": "rtl8139",
}
_VIDEO_DEVICES = {
    "vga": "VGA",
    "cirrus": "cirrus-vga",
    "virtio": "virtio-vga",
    "bochs": "bochs-display",
    "qxl": "qxl-vga",
}
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
_XHCI_MODELS = ("qemu-xhci", "nec-xhci")
_SECONDARY_VIDEO = {
    "VGA": "secondary-vga",
    "virtio-vga": "virtio-gpu-pci",
    "bochs-display": "bochs-display",
    "qxl-vga": "qxl",
}
_PIT_POLICIES = {"delay": "delay", "catchup": "slew", "discard": "discard"}
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
    tap_fds: dict[int, int] = field(default_factory=dict)  # interface index → an ethernet tap's fd
    channel_paths: dict[int, str] = field(default_factory=dict)  # channel index → unix socket path
    disk_paths: dict[int, str] = field(default_factory=dict)  # disk index → resolved path (volumes)
    nvram_path: str | None = None
    pidfile: str | None = None
    graphics_port: int | None = None  # the free port start chose for an autoport SPICE display
    graphics_socket: str | None = None  # the socket path start chose for <listen type='socket'/>
    incoming: bool = False  # -incoming defer: the machine state comes later (migrate-incoming, a restore)
    # Encrypted disks (pyvirt.daemon.disk_secrets): the file QEMU reads the domain's master key from, and
    # each disk's passphrase encrypted with it, as (ciphertext, IV) in base64: the passphrase itself is
    # never on the command line.
    master_key_path: str | None = None
    disk_secrets: dict[int, tuple[str, str]] = field(default_factory=dict)
    # Network disks' passwords, keys and cookies (conf.network_disk), the same way: secret id → sealed
    net_secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    # <transient shareBacking='yes'/> disks: disk index → the overlay start made above the image
    shared_overlays: dict[int, str] = field(default_factory=dict)
    pr_helper_socket: str | None = None  # the managed qemu-pr-helper's socket (conf.disk_reservations)
    tpm_socket: str | None = None  # swtpm's control socket (conf.tpm)
    virtiofs_sockets: dict[int, str] = field(default_factory=dict)  # share index -> its virtiofsd's socket
    # Huge page size (KiB) → the directory the domain's huge page backend files go in (conf.memory_backing).
    hugepage_dirs: dict[int, str] = field(default_factory=dict)
    memory_dir: str | None = None  # where <memoryBacking><source type='file'/> backend files go
    nbd_tls_dir: str = nbd_tls.DEFAULT_DIR  # the client credentials of NBD disks over TLS
    vsock_cid: int | None = None  # the CID start chose for a <vsock><cid auto='yes'/> without an address
    now: float | None = None  # the start's time, for the RTC's base (conf.clock); the current time if None
    # UNIX chardev path → a listening socket the daemon bound there, inherited by QEMU (chardev_sockets)
    socket_fds: dict[str, int] = field(default_factory=dict)


def is_q35(dom: Domain) -> bool:
    machine = dom.os.machine or "pc"
    return "q35" in machine


def _escape(value: object) -> str:
    """A value inside QEMU's ``key=value,...`` options: its commas doubled (a domain's name, a path)."""
    return str(value).replace(",", ",,")


def _opts(head: str, **kv: str | int | None) -> str:
    parts = [head] if head else []
    for key, value in kv.items():
        if value is None:
            continue
        parts.append(f"{key}={value}")
    return ",".join(parts)


def _pci_placement(addr: PCIAddress | None, q35: bool) -> dict[str, str]:
    if addr is None or addr.type != "pci":
        return {}
    bus, slot, function = number(addr, "bus"), number(addr, "slot"), number(addr, "function")
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
        self.usb_buses: set[int] = set()  # indexes of the USB controllers emitted
        self.sata_buses: dict[int, str] = {}  # controller index → QEMU bus id
        self.scsi_buses: dict[int, str] = {}
        self.serial_buses: dict[int, str] = {}
        self.boot_kinds_used: set[str] = set()
        self.fdc_added = False

    def add(self, *args: str) -> None:
        self.argv.extend(args)

    def build(self) -> list[str]:
        dom = self.dom
        self.add(dom.devices.emulator or DEFAULT_EMULATOR)
        self.add("-name", f"guest={_escape(dom.name)},debug-threads=on")
        if dom.qemu_ns is not None:
            from pyvirt.conf import qemu_ns

            if (policy := qemu_ns.compat(dom.qemu_ns)) is not None:
                self.add(*_json_arg("-compat", policy))
        self.add("-S")
        if self.ctx.master_key_path:  # first, as libvirt: a network NVRAM's secret (machine()) needs it
            master = {"qom-type": "secret", "id": MASTER_KEY_ID, "format": "raw"}
            self.add(*_json_arg("-object", {**master, "file": self.ctx.master_key_path}))
        self.machine()
        self.add("-accel", feature_sizes.accel(dom, self.ctx.accel))
        self.add(*feature_sizes.globals_(dom))
        self.cpu()
        # Rounded up to whole MiB, as libvirt aligns guest memory for QEMU.
        self.add("-m", memory_devices.memory_option(dom))
        self.add(*memory_backing.overcommit(dom))
        self.smp()
        self.numa()
        self.memory_devices()
        for ident in iothread_ids(dom):
            pool = iothread_pools.props(dom.iothread_pools.get(ident))
            self.add(*_json_arg("-object", {"qom-type": "iothread", "id": f"iothread{ident}", **pool}))
        if (main_loop := iothread_pools.main_loop(dom)) is not None:
            self.add(*_json_arg("-object", main_loop))
        self.add("-uuid", dom.uuid)
        if any(d.reservations is not None and d.reservations.managed for d in dom.devices.disks):
            if self.ctx.pr_helper_socket is None:
                raise UnsupportedConfig(
                    "unsupported configuration: <reservations managed='yes'>: the helper is run at start only"
                )
            helper = disk_reservations.helper_object(disk_reservations.MANAGED_ID, self.ctx.pr_helper_socket)
            self.add(*_json_arg("-object", helper))
        self.add("-no-user-config", "-nodefaults")
        self.monitor()
        self.clock()
        self.add("-no-shutdown", "-action", "panic=pause")
        if dom.on_reboot == "destroy":
            self.add("-no-reboot")
        self.pm()
        self.boot()
        self.iommu()
        self.controllers()
        for index, disk in enumerate(dom.devices.disks):
            self.disk(index, disk)
        for index, iface in enumerate(dom.devices.interfaces):
            self.interface(index, iface)
        self.filesystems()
        self.vsock()
        self.hostdevs()
        if self.dom.devices.tpm is not None:
            from pyvirt.conf import tpm

            self.add(*tpm.options(self.dom.devices.tpm, self.ctx.tpm_socket))
        self.chardevs()
        self.audio()
        self.graphics()
        self.inputs()
        self.redirdevs()
        self.smartcards()
        self.misc_devices()
        if dom.qemu_ns is not None:  # libvirt applies the overrides, then appends the arguments
            from pyvirt.qemu import overrides

            overrides.apply(dom.qemu_ns, self.argv)
            self.add(*dom.qemu_ns.args)
        self.add("-sandbox", SANDBOX)
        self.add("-msg", "timestamp=on")
        if self.ctx.pidfile:
            self.add("-pidfile", self.ctx.pidfile)
        if self.ctx.incoming:
            self.add("-incoming", "defer")
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
        ioapic = dom.feature_attrs.get("ioapic", {}).get("driver")
        if ioapic:
            opts["kernel_irqchip"] = "on" if ioapic == "kvm" else "split"
        if dom.clock:
            for timer in dom.clock.timers:
                if timer.name == "hpet" and timer.present is not None:
                    opts["hpet"] = "on" if timer.present else "off"
        if self._main_ram_backend():
            opts["memory-backend"] = "pc.ram"
        opts.update(memory_devices.machine_options(dom))
        opts.update(memory_backing.machine_options(dom))
        if numa_hmat.in_use(dom.cpu):
            opts["hmat"] = "on"
        if dom.os.loader is not None and dom.os.loader.type == "pflash":
            opts["pflash0"] = "pyvirt-pflash0-format"
            if self.ctx.nvram_path or dom.os.nvram_source is not None:
                opts["pflash1"] = "pyvirt-pflash1-format"
        self.pflash()
        self.add("-machine", _opts(dom.os.machine or "pc", **opts))
        if dom.os.loader is not None and dom.os.loader.secure:
            self.add("-global", "driver=cfi.pflash01,property=secure,value=on")

    def pflash(self) -> None:
        loader = self.dom.os.loader
        if loader is None:
            return
        if loader.type == "rom":
            self.add("-bios", loader.path)
            return
        self._raw_node("pyvirt-pflash0", loader.path, readonly=loader.readonly)
        if (remote := self.dom.os.nvram_source) is not None:  # <nvram type='network'>: as a disk's source
            if nbd_tls.uses_tls(remote):
                self.add(*_json_arg("-object", nbd_tls.creds_object("pyvirt-pflash1", self.ctx.nbd_tls_dir)))
            if remote.net is not None:
                self.secret_objects(remote.net, "pyvirt-pflash1", "the NVRAM")
            self.add(*_json_arg("-blockdev", storage_node(remote, "pyvirt-pflash1", None)))
            fmt = {"node-name": "pyvirt-pflash1-format", "read-only": False, "driver": "raw"}
            self.add(*_json_arg("-blockdev", {**fmt, "file": "pyvirt-pflash1-storage"}))
        elif self.ctx.nvram_path:
            self._raw_node("pyvirt-pflash1", self.ctx.nvram_path, readonly=False)

    def _raw_node(self, prefix: str, path: str, *, readonly: bool) -> None:
        storage = {
            "driver": "file",
            "filename": path,
            "node-name": f"{prefix}-storage",
            "auto-read-only": True,
            "discard": "unmap",
        }
        self.add(*_json_arg("-blockdev", storage))
        fmt = {
            "node-name": f"{prefix}-format",
            "read-only": readonly,
            "driver": "raw",
            "file": f"{prefix}-storage",
        }
        self.add(*_json_arg("-blockdev", fmt))

    def cpu(self) -> None:
        cpu = self.dom.cpu
        kvm = self.ctx.accel == "kvm"
        model: str | None = None
        flags: list[str] = []
        if cpu is not None:
            if cpu.mode in ("host-passthrough", "host-model"):
                model = "host" if kvm else "max"
                if cpu.mode == "host-passthrough" and cpu.migratable is not None and kvm:
                    flags.append("migratable=" + ("on" if cpu.migratable else "off"))
            elif cpu.mode == "maximum":
                model = "max"
            elif cpu.model:
                model = cpu.model
            for feature in cpu.features:
                if feature.policy in ("require", "force"):
                    flags.append(f"{feature.name}=on")
                elif feature.policy in ("disable", "forbid"):
                    flags.append(f"{feature.name}=off")
        flags += self._cpu_timer_flags() + clock_xml.tsc_frequency(self.dom.clock)
        if self.dom.hyperv:
            from pyvirt.conf.hyperv import cpu_flags

            flags += cpu_flags(self.dom.hyperv)
        eoi = self.dom.feature_attrs.get("apic", {}).get("eoi")
        if eoi:
            flags.append(f"kvm-pv-eoi={eoi}")
        if pvspinlock := self.dom.feature_attrs.get("pvspinlock", {}).get("state"):
            flags.append(f"kvm-pv-unhalt={pvspinlock}")
        if any(panic.model == "hyperv" for panic in self.dom.devices.panics):
            flags.append("hv-crash")  # the Hyper-V crash MSRs a Windows guest reports its crash through
        if model is None and not flags:
            return
        self.add("-cpu", ",".join([model or "qemu64", *flags]))

    def _cpu_timer_flags(self) -> list[str]:
        flags: list[str] = []
        for timer in self.dom.clock.timers if self.dom.clock else []:
            if timer.present is None:
                continue
            state = "on" if timer.present else "off"
            if timer.name == "kvmclock":
                flags.append(f"kvmclock={state}")
            elif timer.name == "hypervclock":
                flags.append(f"hv-time={state}")
            elif timer.name == "tsc":
                flags.append(f"tsc={state}")
        return flags

    def smp(self) -> None:
        dom = self.dom
        cpu = dom.cpu
        sockets = cpu.sockets if cpu and cpu.sockets else None
        dies = cpu.dies if cpu and cpu.dies else None
        cores = cpu.cores if cpu and cpu.cores else None
        threads = cpu.threads if cpu and cpu.threads else None
        if sockets is None and cores is None and threads is None and dies is None:
            sockets, cores, threads = dom.vcpus, 1, 1
        elif sockets is not None and dies is None:
            dies = 1  # libvirt writes dies='1' into every topology
        # clusters: validation allows only 1, which is QEMU's default and libvirt 9.0 does not write
        maxcpus = dom.vcpus if dom.online_vcpus != dom.vcpus else None
        self.add(
            "-smp",
            _opts(
                str(dom.online_vcpus),
                maxcpus=maxcpus,
                sockets=sockets,
                dies=dies,
                cores=cores,
                threads=threads,
            ),
        )

    def _main_ram_backend(self) -> bool:
        """<memoryBacking> without NUMA cells: the guest RAM is one backend (libvirt's "pc.ram")."""
        dom = self.dom
        return memory_backing.needs_main_backend(dom) and not (dom.cpu is not None and dom.cpu.numa)

    def _ram_backend(self, backend: str, size_kib: int, cell: NUMACell | None) -> dict[str, object]:
        return memory_backing.backend(
            self.dom,
            backend,
            size_kib,
            cell,
            hugepage_dirs=self.ctx.hugepage_dirs,
            memory_dir=self.ctx.memory_dir,
        )

    def numa(self) -> None:
        if self._main_ram_backend():
            size = memory_devices.initial_kib(self.dom)
            for obj in memory_backing.with_thread_context(self._ram_backend("pc.ram", size, None)):
                self.add(*_json_arg("-object", obj))
        for cell in self.dom.cpu.numa if self.dom.cpu is not None else []:
            backend = f"ram-node{cell.id}"
            for obj in memory_backing.with_thread_context(self._ram_backend(backend, cell.memory_kib, cell)):
                self.add(*_json_arg("-object", obj))
            cpus = parse_cpuset(cell.cpus, "cpu/numa/cell") if cell.cpus else frozenset()
            ranges = "".join(f",cpus={r}" for r in _ranges(cpus))
            initiator = numa_hmat.initiator(self.dom.cpu, cell) if self.dom.cpu is not None else None
            hmat = "" if initiator is None else f",initiator={initiator}"
            self.add("-numa", f"node,nodeid={cell.id}{ranges}{hmat},memdev={backend}")
        self.add(*numa_hmat.options(self.dom.cpu))

    def memory_devices(self) -> None:
        placement = {
            index: _pci_placement(mem.address, self.q35)
            for index, mem in enumerate(self.dom.devices.memory)
            if mem.model in ("virtio-pmem", "virtio-mem")
        }
        self.add(*memory_devices.options(self.dom, self.ctx.hugepage_dirs, placement))

    def monitor(self) -> None:
        if self.ctx.monitor_fd is not None:
            chardev = f"socket,id=charmonitor,fd={self.ctx.monitor_fd},server=on,wait=off"
        elif self.ctx.monitor_path is not None:
            chardev = f"socket,id=charmonitor,path={_escape(self.ctx.monitor_path)},server=on,wait=off"
        else:
            raise ValueError("a monitor socket is required")
        self.add("-chardev", chardev, "-mon", "chardev=charmonitor,id=monitor,mode=control")

    def clock(self) -> None:
        clock = self.dom.clock
        for timer in clock.timers if clock else []:
            if timer.name == "pit" and timer.tickpolicy and self.ctx.accel == "kvm":
                policy = _PIT_POLICIES[timer.tickpolicy]
                self.add("-global", f"kvm-pit.lost_tick_policy={policy}")
        self.add("-rtc", clock_xml.rtc(clock, self.ctx.now if self.ctx.now is not None else time.time()))

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
            if os_.bootmenu and os_.bootmenu_timeout is not None:
                opts["splash-time"] = os_.bootmenu_timeout
        self.add("-boot", _opts("", **opts))

    def _boot_index(self, order: int | None, kind: str) -> int | None:
        if order is not None:
            return order
        boots = self.dom.os.boot
        if kind in boots and kind not in self.boot_kinds_used and not self.dom.os.kernel:
            self.boot_kinds_used.add(kind)
            return boots.index(kind) + 1
        return None

    def iommu(self) -> None:
        if (guest_iommu := self.dom.devices.iommu) is None:
            return
        from pyvirt.conf import iommu

        ioapic = self.dom.feature_attrs.get("ioapic", {}).get("driver")
        iommu.check(guest_iommu, self.q35, ioapic)
        if guest_iommu.driver.get("eim") == "on" and self.ctx.accel != "kvm":
            raise UnsupportedConfig(
                "unsupported configuration: IOMMU eim='on' needs KVM (QEMU refuses it under TCG)"
            )
        driver, props = iommu.device_props(guest_iommu)
        place = _pci_placement(guest_iommu.address, self.q35)
        self.add(*_device(driver, {}, id=guest_iommu.alias or "iommu0", **props, **place))

    def controllers(self) -> None:
        def order(c: ControllerConfig) -> tuple[bool, int, bool]:
            return c.type != "pci", c.index, "master.startport" in c.extra  # companions after their master

        for ctrl in sorted(self.dom.devices.controllers, key=order):
            self.controller(ctrl)

    def controller(self, ctrl: ControllerConfig) -> None:
        place = _pci_placement(ctrl.address, self.q35)
        is_virtio = ctrl.type == "virtio-serial" or (ctrl.type == "scsi" and ctrl.model == "virtio-scsi")
        place.update(virtio_options.props(ctrl.virtio, virtio=is_virtio, what=f"controller '{ctrl.type}'"))
        if ctrl.type == "pci":
            model = ctrl.model or ("pcie-root" if self.q35 else "pci-root")
            if model in ("pci-root", "pcie-root"):
                if (hotplug := ctrl.extra.get("target.hotplug")) is not None:  # pc's root bus (ACPI)
                    self.add("-global", f"PIIX4_PM.acpi-root-pci-hotplug={hotplug}")
                return
            driver = ctrl.extra.get("model.name") or _PCI_CONTROLLER_DEVICES.get(model)
            driver = driver or controller_models.PCI_DEVICES.get(model)
            if driver is None:
                raise UnsupportedConfig(f"unsupported configuration: pci controller model '{model}'")
            extra: dict[str, str | int | None] = {}
            target = {k[7:]: v for k, v in ctrl.extra.items() if k.startswith("target.")}
            if model in ("pcie-root-port", "pcie-switch-downstream-port"):
                port = target.get("port")
                extra["port"] = None if port is None else parse_number(port, "pcie-root-port target port")
                extra["chassis"] = parse_number(target.get("chassis", str(ctrl.index)), "target chassis")
                extra["hotplug"] = target.get("hotplug")
            elif model == "pci-bridge":
                extra["chassis_nr"] = parse_number(target.get("chassisNr", str(ctrl.index)), "chassisNr")
            self.add(*_device(driver, place, **extra, id=f"pci.{ctrl.index}"))
        elif ctrl.type == "usb":
            model = ctrl.model or ("qemu-xhci" if self.q35 else "piix3-uhci")
            if model == "none":
                return
            driver = _USB_MODELS.get(model)
            if driver is None:
                raise UnsupportedConfig(f"unsupported configuration: usb controller model '{model}'")
            bus_id = _usb_id(ctrl.index)
            if "master.startport" in ctrl.extra:  # an EHCI companion: ports of its master's bus
                firstport = int(ctrl.extra["master.startport"])
                self.add(*_device(driver, place, masterbus=f"{bus_id}.0", firstport=firstport))
                return
            ports = ctrl.ports if model in _XHCI_MODELS else None
            self.add(*_device(driver, place, id=bus_id, p2=ports, p3=ports))
            self.usb_buses.add(ctrl.index)
        elif ctrl.type == "sata":
            if self.q35 and ctrl.index == 0:
                self.sata_buses[0] = "ide"
                return
            self.sata_buses[ctrl.index] = f"sata{ctrl.index}"
            self.add(*_device("ahci", place, id=f"sata{ctrl.index}"))
        elif ctrl.type == "scsi":
            model = ctrl.model or DEFAULT_SCSI_MODEL
            scsi_driver = controller_models.SCSI_DEVICES.get(model)
            if scsi_driver is None:
                raise UnsupportedConfig(f"unsupported configuration: scsi controller model '{model}'")
            self.scsi_buses[ctrl.index] = f"scsi{ctrl.index}"
            tuning = controller_models.scsi_driver_props(ctrl.extra)
            self.add(*_device(scsi_driver, place, id=f"scsi{ctrl.index}", **tuning))
        elif ctrl.type == "virtio-serial":
            name = f"virtio-serial{ctrl.index}"
            self.serial_buses[ctrl.index] = name
            vectors = ctrl.extra.get("vectors")
            self.add(*_device("virtio-serial-pci", place, id=name, max_ports=ctrl.ports, vectors=vectors))
        elif ctrl.type == "ide":
            if self.q35 or ctrl.index != 0:
                raise UnsupportedConfig(
                    f"unsupported configuration: ide controller index {ctrl.index} (only pc's own)"
                )
            return  # built into the machine (piix3-ide on pc)
        elif ctrl.type == "fdc":
            return  # pc's own isa-fdc; on q35 one is added with the first floppy
        elif ctrl.type == "ccid":
            return  # with its smartcard (smartcards())
        else:
            raise UnsupportedConfig(f"unsupported configuration: controller type '{ctrl.type}'")

    def _sata_bus(self, controller: int) -> str:
        if controller not in self.sata_buses:
            if controller != 0:
                raise UnsupportedConfig(
                    f"unsupported configuration: no sata controller with index {controller}"
                )
            if self.q35:
                self.sata_buses[0] = "ide"
            else:
                self.sata_buses[0] = "sata0"
                self.add("-device", "ahci,id=sata0")
        return self.sata_buses[controller]

    def _scsi_bus(self, controller: int) -> str:
        if controller not in self.scsi_buses:
            if controller != 0:
                raise UnsupportedConfig(
                    f"unsupported configuration: no scsi controller with index {controller}"
                )
            self.scsi_buses[0] = "scsi0"
            self.add("-device", f"{controller_models.SCSI_DEVICES[DEFAULT_SCSI_MODEL]},id=scsi0")
        return self.scsi_buses[controller]

    def _virtio_serial_bus(self, controller: int) -> str:
        if controller not in self.serial_buses:
            if controller != 0:
                raise UnsupportedConfig(
                    f"unsupported configuration: no virtio-serial controller with index {controller}"
                )
            self.serial_buses[0] = "virtio-serial0"
            self.add("-device", "virtio-serial-pci,id=virtio-serial0")
        return self.serial_buses[controller]

    def _usb_placement(self, addr: PCIAddress | None, what: str) -> dict[str, str]:
        """``bus`` (and ``port``) of a USB device: its address, or the first USB controller."""
        bus = (
            number(addr, "bus") if addr is not None and addr.type == "usb" else min(self.usb_buses, default=0)
        )
        if bus not in self.usb_buses:
            raise UnsupportedConfig(f"unsupported configuration: {what} needs a USB controller")
        out = {"bus": f"{_usb_id(bus)}.0"}
        if addr is not None and addr.type == "usb" and "port" in addr.attrs:
            out["port"] = addr.attrs["port"]
        return out

    def disk(self, index: int, disk: DiskConfig) -> None:
        if disk.type == "vhostuser":  # a vhost-user block backend: no image, no block nodes
            from pyvirt.conf import vhostuser_disk

            dev_id = disk_device_id(self.dom, index)
            self.add("-chardev", vhostuser_disk.chardev_spec(disk, dev_id))
            place = _pci_placement(disk.address, self.q35)
            place.update(virtio_options.props(disk.virtio, virtio=True, what=f"disk '{disk.target_dev}'"))
            bootindex = self._boot_index(disk.boot_order, "hd")
            chardev = vhostuser_disk.chardev_id(dev_id)
            self.add(*_device("vhost-user-blk-pci", place, chardev=chardev, id=dev_id, bootindex=bootindex))
            return
        node = f"pyvirt-{index + 1}"
        path = self.ctx.disk_paths.get(index, disk.source)
        has_media = path is not None or disk.source_host is not None or disk.net is not None
        if has_media and disk.encryption is not None:
            self.disk_secret(index, disk, node)
        if has_media and disk.net is not None:
            self.network_secrets(disk, node)
        if has_media and disk.reservations is not None and disk.reservations.path is not None:
            helper = disk_reservations.helper_object(
                disk_reservations.object_id(disk.reservations, node), disk.reservations.path
            )
            self.add(*_json_arg("-object", helper))
        if has_media and nbd_tls.uses_tls(disk):
            self.add(*_json_arg("-object", nbd_tls.creds_object(node, self.ctx.nbd_tls_dir)))
        for name, remote in backing_chain.remotes(disk, node) if has_media else []:  # as for the top's
            if remote.net is not None:
                self.network_secrets(remote, name)
            if nbd_tls.uses_tls(remote):
                self.add(*_json_arg("-object", nbd_tls.creds_object(name, self.ctx.nbd_tls_dir)))
        drive = f"{node}-format" if has_media else None
        layers, backing = backing_nodes.layer_nodes(disk, node) if has_media else ([], {})
        for layer in layers:
            self.add(*_json_arg("-blockdev", layer))
        if has_media and disk.layers.share_backing:  # the image read-only under the transient overlay
            self.add(*_json_arg("-blockdev", storage_node(disk, node, path)))
            self.add(*_json_arg("-blockdev", format_node(disk, node, **{"read-only": True}, **backing)))
            drive = self.shared_overlay(index, disk, node)
        elif has_media:
            self.add(*_json_arg("-blockdev", storage_node(disk, node, path)))
            self.add(*_json_arg("-blockdev", format_node(disk, node, **backing)))
        if drive is not None and disk.layers.copy_on_read:
            self.add(*_json_arg("-blockdev", disk_layers.cor_blockdev(disk.target_dev, drive)))
            drive = disk_layers.cor_node(disk.target_dev)
        boot_kind = {"cdrom": "cdrom", "floppy": "fd"}.get(disk.device, "hd")
        bootindex = self._boot_index(disk.boot_order, boot_kind)
        place = _pci_placement(disk.address, self.q35)
        share: dict[str, str | int | None] = {"share-rw": "on" if disk.shareable else None}
        share["acpi-index"] = disk.acpi_index
        disk_tuning.check(disk)
        share.update(disk_tuning.device_props(disk))
        wce = "off" if disk.cache in ("writethrough", "directsync") else None
        dev_id = disk_device_id(self.dom, index)
        what = f"disk '{disk.target_dev}'"
        place.update(virtio_options.props(disk.virtio, virtio=disk.target_bus == "virtio", what=what))
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
                    iothread=None if disk.iothread is None else f"iothread{disk.iothread}",
                    **share,
                    **{"write-cache": wce},
                )
            )
            return
        if disk.target_bus == "usb":
            usb = self._usb_placement(disk.address, f"USB disk '{disk.target_dev}'")
            self.add(
                *_device(
                    "usb-storage",
                    {},
                    **usb,
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                    serial=disk.serial,
                    **share,
                )
            )
            return
        controller, bus, target, unit = drive_address(self.dom, index)
        if disk.target_bus == "fdc":
            if self.q35 and not self.fdc_added:
                self.add("-device", "isa-fdc,id=fdc0")
            self.fdc_added = True
            placement = {"bus": "fdc0.0"} if self.q35 else {}
            self.add(*_device("floppy", placement, unit=unit, drive=drive, id=dev_id))
            if bootindex is not None:  # QEMU's floppy has no bootindex: its controller has one per drive
                self.add("-global", f"isa-fdc.bootindex{'AB'[unit]}={bootindex}")
            return
        ide_driver = "ide-cd" if disk.device == "cdrom" else "ide-hd"
        if disk.target_bus == "sata":
            name = self._sata_bus(controller)
            self.add(
                *_device(
                    ide_driver,
                    {},
                    bus=f"{name}.{unit}",
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                    serial=disk.serial,
                    **share,
                )
            )
        elif disk.target_bus == "ide":
            if self.q35:
                raise UnsupportedConfig("unsupported configuration: IDE disks are not available on q35")
            self.add(
                *_device(
                    ide_driver,
                    {},
                    bus=f"ide.{bus}",
                    unit=unit,
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                    serial=disk.serial,
                    **share,
                )
            )
        elif disk.target_bus == "scsi":
            self._scsi_bus(controller)
            driver = {"cdrom": "scsi-cd", "lun": "scsi-block"}.get(disk.device, "scsi-hd")
            where = (controller, bus, target, unit)
            self.add(
                *_device(
                    driver,
                    {},
                    **scsi_address.placement(self.dom, where, f"disk '{disk.target_dev}'"),
                    drive=drive,
                    id=dev_id,
                    bootindex=bootindex,
                    serial=disk.serial,
                    **share,
                )
            )
        else:
            raise UnsupportedConfig(f"unsupported configuration: disk bus '{disk.target_bus}'")

    def disk_secret(self, index: int, disk: DiskConfig, node: str) -> None:
        """The ``secret`` object holding an encrypted disk's passphrase, itself encrypted."""
        sealed = self.ctx.disk_secrets.get(index)
        if sealed is None or not self.ctx.master_key_path:
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}' is encrypted: its secret is given "
                "to QEMU only when the domain starts"
            )
        data, iv = sealed
        obj = {"qom-type": "secret", "id": disk_secret_id(node), "data": data, "keyid": MASTER_KEY_ID}
        self.add(*_json_arg("-object", {**obj, "iv": iv, "format": "base64"}))

    def shared_overlay(self, index: int, disk: DiskConfig, node: str) -> str:
        """The qcow2 overlay of a ``<transient shareBacking='yes'/>`` disk over its read-only image
        (daemon/transient_disks.py makes it before QEMU starts); returns its format node."""
        overlay = self.ctx.shared_overlays.get(index)
        if overlay is None:
            raise UnsupportedConfig(
                f"unsupported configuration: disk '{disk.target_dev}' is transient: its overlay is made "
                "when the domain starts"
            )
        top = f"{node}-o1"
        storage: dict[str, object] = {"driver": "file", "filename": overlay, "node-name": f"{top}-storage"}
        storage.update({"auto-read-only": True, "discard": "unmap" if disk.discard == "unmap" else "ignore"})
        fmt: dict[str, object] = {"node-name": f"{top}-format", "read-only": False, "driver": "qcow2"}
        fmt.update({"file": f"{top}-storage", "backing": f"{node}-format"})
        if (cache := _cache_options(disk)) is not None:
            storage["cache"] = fmt["cache"] = cache
        self.add(*_json_arg("-blockdev", storage))
        self.add(*_json_arg("-blockdev", fmt))
        return f"{top}-format"

    def network_secrets(self, disk: DiskConfig, node: str) -> None:
        """The secret objects of a network disk's password, key or cookies, encrypted."""
        assert disk.net is not None
        self.secret_objects(disk.net, node, f"disk '{disk.target_dev}'")

    def secret_objects(self, src: network_disk.NetworkSource, node: str, what: str) -> None:
        """The secret objects of the password, key or cookies of a network source (a disk's, an iSCSI
        hostdev's, the NVRAM's) whose nodes are named ``node``-*, encrypted."""
        for secret_id in network_disk.secret_ids(src, node):
            sealed = self.ctx.net_secrets.get(secret_id)
            if sealed is None or not self.ctx.master_key_path:
                raise UnsupportedConfig(
                    f"unsupported configuration: {what} has credentials or cookies: "
                    "they are given to QEMU only when the domain starts"
                )
            data, iv = sealed
            obj = {"qom-type": "secret", "id": secret_id, "data": data, "keyid": MASTER_KEY_ID}
            self.add(*_json_arg("-object", {**obj, "iv": iv, "format": "base64"}))

    def interface(self, index: int, iface: InterfaceConfig) -> None:
        netdev = f"hostnet{index}"
        if iface.type in ("network", "bridge"):
            tap = self.ctx.taps.get(index) or iface.target_dev
            if not tap:
                raise UnsupportedConfig(f"interface {index} has no tap device")
            self.add("-netdev", f"tap,ifname={tap},script=no,downscript=no,id={netdev}")
        elif iface.type == "user":
            self.add("-netdev", f"user,id={netdev}")
        elif iface.type == "ethernet":  # the daemon's descriptor on the tap (daemon.ethernet), as libvirt
            if index in self.ctx.tap_fds:
                self.add(
                    *_json_arg("-netdev", {"type": "tap", "fd": str(self.ctx.tap_fds[index]), "id": netdev})
                )
            elif tap := self.ctx.taps.get(index) or iface.target_dev:
                self.add("-netdev", f"tap,ifname={tap},script=no,downscript=no,id={netdev}")
            else:
                raise UnsupportedConfig(f"interface {index} has no tap device")
        elif iface.type == "vdpa":
            from pyvirt.conf import net_vdpa

            self.add(*_json_arg("-netdev", net_vdpa.netdev(iface, netdev)))
        elif iface.socket:
            from pyvirt.conf import net_sockets

            if iface.type == "vhostuser":
                self.add("-chardev", net_sockets.chardev_spec(iface, index))
            self.add(*_json_arg("-netdev", net_sockets.netdev(iface, index, netdev)))
        else:
            raise UnsupportedConfig(f"unsupported configuration: interface type '{iface.type}'")
        driver = NIC_MODELS.get(iface.model)
        if driver is None:
            raise UnsupportedConfig(f"unsupported configuration: interface model '{iface.model}'")
        place = _pci_placement(iface.address, self.q35)
        place.update(virtio_options.props(iface.virtio, virtio=iface.model == "virtio", what="an interface"))
        if iface.driver:
            from pyvirt.conf import net_driver

            place.update(net_driver.device_props(iface.driver, iface.type, iface.model))
        if iface.type in ("vdpa", "vhostuser"):  # multiqueue: mq, vectors
            from pyvirt.conf import net_vdpa

            place.update({k: str(v) for k, v in net_vdpa.device_props(iface).items()})
        self.add(
            *_device(
                driver,
                place,
                netdev=netdev,
                id=iface.alias or f"net{index}",
                mac=iface.mac,
                bootindex=self._boot_index(iface.boot_order, "network"),
                **{"acpi-index": iface.acpi_index},
            )
        )

    def hostdevs(self) -> None:
        if not self.dom.devices.hostdevs:
            return
        from pyvirt.conf import hostdev

        for index, dev in enumerate(self.dom.devices.hostdevs):
            if dev.iscsi is not None:
                self.iscsi_hostdev(index, dev)
                continue
            driver, props = hostdev.device_props(dev, index)
            if dev.type in ("pci", "mdev"):
                place = _pci_placement(dev.address, self.q35)
            else:
                place = {
                    "bus": "usb.0",
                    **(
                        {"port": dev.address.attrs["port"]}
                        if dev.address and "port" in dev.address.attrs
                        else {}
                    ),
                }
            self.add(*_device(driver, place, **props))

    def iscsi_hostdev(self, index: int, dev: hostdev_conf.HostdevConfig) -> None:
        """An iSCSI LUN as ``scsi-generic`` on its ``iscsi`` node, at its drive address (else the first
        unit no SCSI disk or other LUN takes on controller 0), placed as its controller's model has a
        SCSI disk (qemu.scsi_address), as libvirt runs it."""
        node, props = hostdev_conf.iscsi_nodes(dev, index)
        address = hostdev_conf.iscsi_addresses(self.dom)[index]
        assert dev.iscsi is not None
        self.secret_objects(dev.iscsi, node, f"hostdev {index}")
        self.add(*_json_arg("-blockdev", props))
        self._scsi_bus(address[0])
        place = scsi_address.placement(self.dom, address, f"hostdev {index}")
        self.add(*_device("scsi-generic", {}, drive=node, id=dev.alias or f"hostdev{index}", **place))

    def vsock(self) -> None:
        if (sock := self.dom.devices.vsock) is None:
            return
        from pyvirt.conf import vsock

        place = _pci_placement(sock.address, self.q35)
        self.add(*_device("vhost-vsock-pci", {}, **vsock.device_props(sock, self.ctx.vsock_cid), **place))

    def filesystems(self) -> None:
        if not self.dom.devices.filesystems:
            return
        from pyvirt.conf import filesystem

        for index, share in enumerate(self.dom.devices.filesystems):
            if share.virtiofs is not None:
                self.virtiofs(share, index)
                continue
            self.add("-fsdev", filesystem.fsdev(share, index))
            place = _pci_placement(share.address, self.q35)
            self.add(*_device("virtio-9p-pci", {}, **filesystem.device_props(share, index), **place))

    def virtiofs(self, share: FilesystemConfig, index: int) -> None:
        from pyvirt.conf import virtiofs

        alias = share.alias or f"fs{index}"
        socket_path = share.socket or self.ctx.virtiofs_sockets.get(index)
        if socket_path is None:
            raise UnsupportedConfig(
                f"unsupported configuration: no virtiofsd serves filesystem '{share.target}'"
            )
        self.add("-chardev", virtiofs.chardev_spec(alias, socket_path))
        place = _pci_placement(share.address, self.q35)
        place.update(virtio_options.props(share.virtio))
        bootindex = self._boot_index(share.boot_order, "fs")
        self.add(
            *_device("vhost-user-fs-pci", place, **virtiofs.device_props(share, alias), bootindex=bootindex)
        )

    def chardevs(self) -> None:
        dom = self.dom
        for index, serial in enumerate(dom.devices.serials):
            chardev = f"charserial{index}"
            self.add("-chardev", _chardev_spec(serial, chardev, self.ctx.socket_fds))
            port = serial.target_port if serial.target_port is not None else index
            model = serial.target_model or "isa-serial"
            addr = serial.address
            isa = {
                "iobase": number(addr, "iobase") if addr is not None and "iobase" in addr.attrs else None,
                "irq": number(addr, "irq") if addr is not None and "irq" in addr.attrs else None,
            }
            if model == "isa-serial":
                self.add(*_device("isa-serial", {}, chardev=chardev, id=f"serial{index}", index=port, **isa))
            elif model == "pci-serial":
                place = _pci_placement(addr, self.q35)
                self.add(*_device("pci-serial", {}, chardev=chardev, id=f"serial{index}", **place))
            elif model == "isa-debugcon":  # QEMU's debug port (SeaBIOS and OVMF log to 0x402)
                self.add(
                    *_device("isa-debugcon", {}, chardev=chardev, id=f"serial{index}", iobase=isa["iobase"])
                )
            else:
                raise UnsupportedConfig(f"unsupported configuration: serial model '{model}'")
        for index, parallel in enumerate(dom.devices.parallels):
            chardev = f"charparallel{index}"
            self.add("-chardev", _chardev_spec(parallel, chardev, self.ctx.socket_fds))
            self.add("-device", f"isa-parallel,chardev={chardev},id=parallel{index}")
        for index, console in enumerate(dom.devices.consoles):
            if console.target_type in (None, "serial"):
                continue  # the console is the first serial port
            if console.target_type != "virtio":
                raise UnsupportedConfig(f"unsupported configuration: console type '{console.target_type}'")
            bus = self._virtio_serial_bus(_serial_controller(console))
            chardev = f"charconsole{index}"
            self.add("-chardev", _chardev_spec(console, chardev, self.ctx.socket_fds))
            self.add("-device", f"virtconsole,bus={bus}.0,chardev={chardev},id=console{index}")
        chardev_backends.require_display(
            dom.all_chardevs(), any(g.type == "spice" for g in dom.devices.graphics)
        )
        taken = {
            (_serial_controller(ch), number(ch.address, "port"))
            for ch in dom.devices.channels
            if ch.address is not None and ch.address.type == "virtio-serial" and "port" in ch.address.attrs
        }
        for index, channel in enumerate(dom.devices.channels):
            if channel.target_type == "guestfwd":
                self.add(
                    "-chardev",
                    _chardev_spec(
                        self._channel_source(index, channel), f"charchannel{index}", self.ctx.socket_fds
                    ),
                )
                self.add("-netdev", guestfwd.netdev(channel, f"charchannel{index}", f"channel{index}"))
                continue
            if channel.target_type != "virtio":
                raise UnsupportedConfig(f"unsupported configuration: channel type '{channel.target_type}'")
            controller = _serial_controller(channel)
            bus = self._virtio_serial_bus(controller)
            if channel.address is not None and "port" in channel.address.attrs:
                nr = number(channel.address, "port")
            else:  # libvirt's rule: the lowest port from 1 up that no channel names
                nr = next(n for n in range(1, 32) if (controller, n) not in taken)
                taken.add((controller, nr))
            chardev = f"charchannel{index}"
            if channel.type == "spicevmc":
                from pyvirt.conf import spicevmc

                spicevmc.require_spice(any(g.type == "spice" for g in dom.devices.graphics), "a channel")
                self.add("-chardev", spicevmc.chardev_spec("channel", chardev))
            else:
                self.add(
                    "-chardev",
                    _chardev_spec(self._channel_source(index, channel), chardev, self.ctx.socket_fds),
                )
            self.add(
                "-device",
                _opts(
                    "virtserialport",
                    bus=f"{bus}.0",
                    nr=nr,
                    chardev=chardev,
                    id=f"channel{index}",
                    name=channel.target_name,
                ),
            )

    def _channel_source(self, index: int, channel: CharDevConfig) -> CharDevConfig:
        if channel.type != "unix":
            return channel
        path = self.ctx.channel_paths.get(index, channel.source_path)
        return replace(channel, source_path=path, source_mode=channel.source_mode or "bind")

    def graphics(self) -> None:
        graphics = self.dom.devices.graphics
        if not graphics:
            self.add("-display", "none")
            return
        if len(graphics) > 1:
            raise UnsupportedConfig("unsupported configuration: only one graphics device is supported")
        gfx = graphics[0]
        if gfx.type == "spice":
            self.spice(gfx)
            return
        if gfx.type in ("sdl", "egl-headless"):
            from pyvirt.conf import graphics_local

            self.add(*graphics_local.display_args(gfx))
            if not self.dom.devices.videos:
                self.add("-device", DEFAULT_VIDEO)
            return
        if gfx.type != "vnc":
            raise UnsupportedConfig(f"unsupported configuration: graphics type '{gfx.type}'")
        if gfx.listen_none:
            spec = "none" + vnc_options.props(gfx.vnc) + ("," + "password=on" if gfx.passwd else "")
            self.add("-vnc", spec + self._display_audio(gfx))
            if not self.dom.devices.videos:
                self.add("-device", DEFAULT_VIDEO)
            return
        if gfx.listen_socket:
            spec = f"unix:{_escape(self._graphics_socket(gfx))}" + vnc_options.props(gfx.vnc)
            spec += ",password=on" if gfx.passwd else ""
            spec += self._display_audio(gfx)
            self.add("-vnc", spec)
            if not self.dom.devices.videos:
                self.add("-device", DEFAULT_VIDEO)
            return
        listen = gfx.listen or "127.0.0.1"
        host = f"[{listen}]" if ":" in listen else listen
        if gfx.autoport or gfx.port in (None, -1):
            spec = f"{host}:0,to=99"
        else:
            assert gfx.port is not None
            if gfx.port < 5900:
                raise UnsupportedConfig(f"unsupported configuration: vnc port {gfx.port} is below 5900")
            spec = f"{host}:{gfx.port - 5900}"
        spec += vnc_options.props(gfx.vnc)
        if gfx.passwd:
            spec += ",password=on"
        spec += self._display_audio(gfx)
        self.add("-vnc", spec)
        if not self.dom.devices.videos:
            self.add("-device", DEFAULT_VIDEO)

    def _display_audio(self, gfx: GraphicsConfig) -> str:
        """``,audiodev=`` of a VNC display: its ``<audio id>``, else the first ``<audio>``."""
        audios = self.dom.devices.audios
        if gfx.audio_id is not None:
            if gfx.audio_id not in {audio.id for audio in audios}:
                raise UnsupportedConfig(
                    f"unsupported configuration: graphics names no <audio id='{gfx.audio_id}'>"
                )
            return f",audiodev=audio{gfx.audio_id}"
        return f",audiodev=audio{audios[0].id}" if audios else ""

    def _graphics_socket(self, gfx: GraphicsConfig) -> str:
        path = gfx.socket or self.ctx.graphics_socket
        if not path:
            raise UnsupportedConfig(
                "unsupported configuration: graphics listen type 'socket' has no socket path"
            )
        return path

    def spice(self, gfx: GraphicsConfig) -> None:
        if gfx.audio_id is not None:  # SPICE's sound is its own audiodev of type 'spice'
            raise UnsupportedConfig("unsupported configuration: <audio id> of a SPICE display (only VNC's)")
        opts: dict[str, str | int | None] = {}
        if gfx.listen_none or (not gfx.autoport and gfx.port is None):
            opts["port"] = 0  # SPICE's 'no listener'
        elif gfx.listen_socket:
            opts["unix"] = "on"
            opts["addr"] = _escape(self._graphics_socket(gfx))
        else:
            port = self.ctx.graphics_port if gfx.autoport or gfx.port in (None, -1) else gfx.port
            if port is None:
                raise UnsupportedConfig("unsupported configuration: no port was chosen for the SPICE display")
            opts["port"] = port
            opts["addr"] = gfx.listen or "127.0.0.1"
        if not gfx.passwd:
            opts["disable-ticketing"] = "on"  # with a password, ticketing is on and it is set over QMP
        settings = gfx.spice
        opts["image-compression"] = settings.get(("image", "compression"))
        opts["jpeg-wan-compression"] = settings.get(("jpeg", "compression"))
        opts["zlib-glz-wan-compression"] = settings.get(("zlib", "compression"))
        opts["playback-compression"] = settings.get(("playback", "compression"))
        opts["streaming-video"] = settings.get(("streaming", "mode"))
        mouse = settings.get(("mouse", "mode"))
        opts["agent-mouse"] = None if mouse is None else ("on" if mouse == "client" else "off")
        if settings.get(("clipboard", "copypaste")) == "no":
            opts["disable-copy-paste"] = "on"
        if settings.get(("filetransfer", "enable")) == "no":
            opts["disable-agent-file-xfer"] = "on"
        if gfx.gl:
            from pyvirt.conf import graphics_local

            opts.update(graphics_local.spice_props(gfx))
        opts["seamless-migration"] = "on"
        self.add("-spice", _opts("", **opts))
        if not self.dom.devices.videos:
            self.add("-device", DEFAULT_VIDEO)

    def audio(self) -> None:
        from pyvirt.conf.audio import audiodev

        for audio in self.dom.devices.audios:
            self.add("-audiodev", audiodev(audio))

    def sounds(self) -> None:
        audios = self.dom.devices.audios
        for index, sound in enumerate(self.dom.devices.sounds):
            sound_id = sound.alias or f"sound{index}"
            audio_id = sound.audio_id if sound.audio_id is not None else (audios[0].id if audios else None)
            audiodev = None if audio_id is None else f"audio{audio_id}"
            place = _pci_placement(sound.address, self.q35)
            single = {"ac97": "AC97", "es1370": "ES1370", "sb16": "sb16"}.get(sound.model)
            if single is not None:  # a card without codecs (sb16 is an ISA card)
                self.add(*_device(single, place, id=sound_id, audiodev=audiodev))
                continue
            driver = "ich9-intel-hda" if sound.model == "ich9" else "intel-hda"
            self.add(*_device(driver, place, id=sound_id))
            for cad, codec in enumerate(sound.codecs or ["duplex"]):
                self.add(
                    *_device(
                        f"hda-{codec}",
                        {},
                        id=f"{sound_id}-codec{cad}",
                        bus=f"{sound_id}.0",
                        cad=cad,
                        audiodev=audiodev,
                    )
                )

    def inputs(self) -> None:
        for index, inp in enumerate(self.dom.devices.inputs):
            if inp.type == "evdev":
                from pyvirt.conf import input_linux

                self.add(*_json_arg("-object", input_linux.qemu_object(inp, inp.alias or f"input{index}")))
                continue
            virtio = virtio_options.props(inp.virtio, virtio=inp.bus == "virtio", what=f"input '{inp.type}'")
            if inp.bus == "ps2":
                if inp.type == "tablet":
                    raise UnsupportedConfig("unsupported configuration: a tablet cannot be on the ps2 bus")
                continue  # part of the machine's i8042
            if inp.type == "passthrough":
                place = _pci_placement(inp.address, self.q35)
                self.add(
                    *_device(
                        "virtio-input-host-pci", {**virtio, **place}, id=f"input{index}", evdev=inp.evdev
                    )
                )
                continue
            name = {"tablet": "tablet", "mouse": "mouse", "keyboard": "kbd"}[inp.type]
            if inp.bus == "usb":
                usb = self._usb_placement(inp.address, f"usb {inp.type}")
                self.add(*_device(f"usb-{name}", {}, id=f"input{index}", **usb))
            elif inp.bus == "virtio":
                vname = {"tablet": "tablet", "mouse": "mouse", "keyboard": "keyboard"}[inp.type]
                place = _pci_placement(inp.address, self.q35)
                self.add(*_device(f"virtio-{vname}-pci", {**place, **virtio}, id=f"input{index}"))
            else:
                raise UnsupportedConfig(f"unsupported configuration: input bus '{inp.bus}'")

    def redirdevs(self) -> None:
        if not self.dom.devices.redirdevs:
            return
        from pyvirt.conf import spicevmc

        spice = any(g.type == "spice" for g in self.dom.devices.graphics)
        for index, redir in enumerate(self.dom.devices.redirdevs):
            chardev = f"charredir{index}"
            if redir.source is not None:  # a usbredir peer on a socket
                self.add("-chardev", _chardev_spec(redir.source, chardev, self.ctx.socket_fds))
            else:
                spicevmc.require_spice(spice, "a redirdev")
                self.add("-chardev", spicevmc.chardev_spec("redirdev", chardev))
            usb = self._usb_placement(redir.address, "usb redirection")
            self.add(*_device("usb-redir", {}, chardev=chardev, id=redir.alias or f"redir{index}", **usb))

    def smartcards(self) -> None:
        """Each CCID controller (``usb-ccid``) and its card (conf.smartcard)."""
        devs = self.dom.devices
        if not devs.smartcards and not any(c.type == "ccid" for c in devs.controllers):
            return
        from pyvirt.conf import smartcard, spicevmc

        ctls = {c.index: c for c in self.dom.devices.controllers if c.type == "ccid"}
        for index in smartcard.ccid_indexes(self.dom):
            ctl = ctls.get(index)
            usb = self._usb_placement(ctl.address if ctl else None, "a smartcard reader (usb-ccid)")
            self.add(*_device("usb-ccid", {}, id=(ctl.alias if ctl else None) or f"ccid{index}", **usb))
        for index, card in enumerate(self.dom.devices.smartcards):
            driver, props = smartcard.device_props(card)
            ctl = ctls.get(ccid := smartcard.controller_of(card))
            bus = f"{(ctl.alias if ctl else None) or f'ccid{ccid}'}.0"
            if card.source is not None:
                chardev = f"charsmartcard{index}"
                if card.source.type == "spicevmc":
                    spice = any(g.type == "spice" for g in self.dom.devices.graphics)
                    spicevmc.require_spice(spice, "a smartcard")
                    self.add("-chardev", f"spicevmc,id={chardev},name=smartcard")
                else:
                    self.add("-chardev", _chardev_spec(card.source, chardev, self.ctx.socket_fds))
                props["chardev"] = chardev
            self.add(*_device(driver, {}, **props, id=card.alias or f"smartcard{index}", bus=bus))

    def videos(self) -> None:
        for index, video in enumerate(self.dom.devices.videos):
            if video.model == "none":
                continue
            if video.model == "ramfb":  # a framebuffer in guest RAM over fw_cfg: no PCI device
                self.add(*_device("ramfb", {}, id=f"video{index}"))
                continue
            driver = _VIDEO_DEVICES.get(video.model)
            if driver is None:
                raise UnsupportedConfig(f"unsupported configuration: video model '{video.model}'")
            if index > 0:
                driver = _SECONDARY_VIDEO.get(driver, "")
            if (
                video.accel3d == "yes"
            ):  # virgl: virtio-vga-gl, virtio-gpu-gl-pci (graphics_local.require_host)
                driver = {"virtio-vga": "virtio-vga-gl", "virtio-gpu-pci": "virtio-gpu-gl-pci"}[driver]
                if not driver:
                    raise UnsupportedConfig(
                        f"unsupported configuration: video model '{video.model}' can only be primary"
                    )
            extra: dict[str, str | int | None] = {
                **virtio_options.props(video.virtio, virtio=video.model == "virtio", what="a video device"),
                "acpi-index": video.acpi_index,
            }
            if video.model == "vga" and video.vram:  # (libvirt passes no size to cirrus: its 4 MiB)
                extra["vgamem_mb"] = max(1, video.vram // 1024)
            elif video.model == "bochs" and video.vram:
                extra["vgamem"] = video.vram * 1024
            elif video.model == "virtio":
                extra["max_outputs"] = video.heads
            elif video.model == "qxl":  # libvirt's mapping of its KiB sizes onto qxl's properties
                extra["ram_size"] = None if video.ram is None else video.ram * 1024
                extra["vram_size"] = None if video.vram is None else video.vram * 1024
                extra["vram64_size_mb"] = None if video.vram64 is None else video.vram64 // 1024
                extra["vgamem_mb"] = None if video.vgamem is None else video.vgamem // 1024
                extra["max_outputs"] = video.heads
            self.add(*_device(driver, _pci_placement(video.address, self.q35), id=f"video{index}", **extra))

    def watchdogs(self) -> None:
        dogs = self.dom.devices.watchdogs
        for index, dog in enumerate(dogs):
            dog_id = dog.alias or f"watchdog{index}"
            if dog.model == "i6300esb":
                self.add(*_device("i6300esb", _pci_placement(dog.address, self.q35), id=dog_id))
            elif dog.model == "ib700":
                self.add("-device", f"ib700,id={dog_id}")
            elif dog.model == "itco":
                if not self.q35:
                    raise UnsupportedConfig(
                        "unsupported configuration: the itco watchdog needs a q35 machine"
                    )
                self.add("-global", "ICH9-LPC.noreboot=off")  # the ICH9's own iTCO may now reset the guest
            else:
                raise UnsupportedConfig(f"unsupported configuration: watchdog model '{dog.model}'")
        if dogs:
            # dump: QEMU pauses, the daemon dumps and resumes (daemon.watchdog_dump)
            self.add("-watchdog-action", "pause" if dogs[0].action == "dump" else dogs[0].action)

    def misc_devices(self) -> None:
        dev = self.dom.devices
        if self.dom.genid is not None:
            from pyvirt.conf import genid

            self.add(*genid.device(self.dom.genid))
        self.sounds()
        self.videos()
        self.watchdogs()
        if dev.memballoon is not None and dev.memballoon.model == "virtio":
            balloon_id = dev.memballoon.alias or "balloon0"
            placement = _pci_placement(dev.memballoon.address, self.q35)
            placement.update(virtio_options.props(dev.memballoon.virtio))
            reporting = {"free-page-reporting": dev.memballoon.free_page_reporting}
            self.add(*_device("virtio-balloon-pci", placement, id=balloon_id, **reporting))
        for index, rng in enumerate(dev.rngs):
            obj = f"objrng{index}"
            if rng.backend_model == "builtin":  # QEMU's own getrandom() source
                self.add(*_json_arg("-object", {"qom-type": "rng-builtin", "id": obj}))
            elif rng.egd is not None:  # an EGD daemon on a character device
                chardev = f"charrng{index}"
                self.add("-chardev", _chardev_spec(rng.egd, chardev, self.ctx.socket_fds))
                self.add(*_json_arg("-object", {"qom-type": "rng-egd", "id": obj, "chardev": chardev}))
            else:
                self.add(
                    *_json_arg("-object", {"qom-type": "rng-random", "id": obj, "filename": rng.backend})
                )
            self.add(
                *_device(
                    "virtio-rng-pci",
                    {**_pci_placement(rng.address, self.q35), **virtio_options.props(rng.virtio)},
                    rng=obj,
                    id=f"rng{index}",
                    **{"max-bytes": rng.rate_bytes},
                    period=rng.rate_period,
                )
            )
        for index, panic in enumerate(dev.panics):
            if panic.model == "hyperv":
                continue  # a CPU flag (hv-crash)
            if panic.model == "pvpanic":  # libvirt's name for the PCI flavour
                self.add(*_device("pvpanic-pci", _pci_placement(panic.address, self.q35), id=f"panic{index}"))
                continue
            if panic.model != "isa":
                raise UnsupportedConfig(f"unsupported configuration: panic model '{panic.model}'")
            iobase = number(panic.address, "iobase", 0x505) if panic.address is not None else 0x505
            self.add("-device", f"pvpanic,ioport={iobase}")
        if (
            "vmcoreinfo" in self.dom.features
            and self.dom.feature_attrs.get("vmcoreinfo", {}).get("state") != "off"
        ):
            self.add("-device", "vmcoreinfo")


def storage_node(disk: DiskConfig, node: str, path: str | None) -> dict[str, object]:
    """The protocol node ``NODE-storage`` of a disk whose file is ``path`` (``/dev/fdset/N`` when the
    daemon opened it for a running QEMU), or its NBD server."""
    storage: dict[str, object] = {
        "driver": "host_device" if disk.type == "block" else "file",
        "filename": path,
        "node-name": f"{node}-storage",
        "auto-read-only": True,
        "discard": "unmap" if disk.discard == "unmap" else "ignore",
    }
    if disk.type == "dir":  # a host directory as a FAT image QEMU makes up, read-only as libvirt runs it
        storage = {
            "driver": "vvfat",
            "dir": path,
            "floppy": disk.device == "floppy",
            "rw": False,
            "node-name": f"{node}-storage",
            "auto-read-only": True,
            "discard": "unmap" if disk.discard == "unmap" else "ignore",
        }
    if disk.source_host is not None:  # type='network', protocol 'nbd'
        transport, where, port = disk.source_host
        server = {"type": "unix", "path": where} if transport == "unix" else {
            "type": "inet", "host": where, "port": port,
        }  # fmt: skip
        storage = {
            "driver": "nbd",
            "server": server,
            "export": disk.source_name,
            "node-name": f"{node}-storage",
        }
        storage = {k: v for k, v in storage.items() if v is not None}
        storage.update(nbd_tls.storage_props(disk, node))
        storage.update({"auto-read-only": True, "discard": "unmap" if disk.discard == "unmap" else "ignore"})
    if disk.reservations is not None:
        storage["pr-manager"] = disk_reservations.object_id(disk.reservations, node)
    if disk.net is not None:  # type='network' on the other protocols (conf.network_disk)
        storage = {**network_disk.storage_props(disk.net, node), "node-name": f"{node}-storage"}
        storage.update({"auto-read-only": True, "discard": "unmap" if disk.discard == "unmap" else "ignore"})
    cache = _cache_options(disk)
    if cache is not None:
        storage["cache"] = cache
    if disk.io in ("native", "io_uring"):
        storage["aio"] = disk.io
    return storage


def format_node(disk: DiskConfig, node: str, **extra: object) -> dict[str, object]:
    """The format node ``NODE-format`` above ``NODE-storage`` (``extra``: e.g. an explicit backing)."""
    fmt: dict[str, object] = {
        "node-name": f"{node}-format",
        "read-only": disk.readonly or disk.device == "cdrom" or disk.type == "dir",
        "driver": "raw" if disk.driver_type == "fat" else disk.driver_type,  # vvfat's image is raw
        "file": f"{node}-storage",
    }
    if disk.encryption is not None:  # the secret object disk_secret() adds before the nodes
        if disk.driver_type == "raw":  # a raw LUKS volume: QEMU's luks format driver
            fmt.update({"driver": "luks", "key-secret": disk_secret_id(node)})
        else:
            fmt["encrypt"] = {"format": "luks", "key-secret": disk_secret_id(node)}
    if disk.layers.metadata_cache is not None:
        fmt["cache-size"] = disk.layers.metadata_cache
    if disk.discard == "unmap":
        fmt["discard"] = "unmap"
    if (zeroes := disk_tuning.detect_zeroes(disk)) is not None:
        fmt["detect-zeroes"] = zeroes
    cache = _cache_options(disk)
    if cache is not None:
        fmt["cache"] = cache
    fmt.update(extra)
    return fmt


def disk_secret_id(node: str) -> str:
    """The id of the secret object of the disk whose nodes are named ``node``-*."""
    return f"{node}-encryption-secret0"


def _cache_options(disk: DiskConfig) -> dict[str, bool] | None:
    direct, no_flush = _cache_mode(disk.cache)
    return {"direct": direct, "no-flush": no_flush} if direct or no_flush else None


def disk_device_id(dom: Domain, index: int) -> str:
    """The QEMU device id of disk ``index``: its alias, or libvirt's name for its bus and address."""
    disk = dom.devices.disks[index]
    if disk.alias:
        return disk.alias
    if disk.target_bus == "virtio":
        return f"virtio-disk{_target_number(disk.target_dev)}"
    if disk.target_bus == "usb":
        return f"usb-disk{_target_number(disk.target_dev)}"
    controller, bus, target, unit = drive_address(dom, index)
    if disk.target_bus == "fdc":
        return f"fdc0-0-{unit}"
    if disk.target_bus == "sata":
        return f"sata{controller}-{bus}-{unit}"
    if disk.target_bus == "ide":
        return f"ide{controller}-{bus}-{unit}"
    return scsi_address.device_id(dom, (controller, bus, target, unit))


def _ranges(cpus: frozenset[int]) -> list[str]:
    """{0, 1, 2, 5} → ["0-2", "5"] (QEMU's -numa cpus= takes one range each)."""
    out: list[str] = []
    for cpu in sorted(cpus):
        if out and int(out[-1].split("-")[-1]) == cpu - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        else:
            out.append(str(cpu))
    return out


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


def _target_number(target: str) -> int:
    """vda → 0, sdb → 1, hdc → 2, vdaa → 26."""
    value = 0
    for char in target[2:] or "a":
        if not "a" <= char <= "z":
            raise UnsupportedConfig(f"unsupported configuration: disk target '{target}'")
        value = value * 26 + (ord(char) - ord("a") + 1)
    return value - 1


def _usb_id(index: int) -> str:
    """libvirt's alias of USB controller ``index``: its bus is ``<id>.0``."""
    return "usb" if index == 0 else f"usb{index}"


def _serial_controller(dev: CharDevConfig) -> int:
    addr = dev.address
    return number(addr, "controller") if addr is not None and addr.type == "virtio-serial" else 0


def _chardev_spec(dev: CharDevConfig, chardev_id: str, socket_fds: Mapping[str, int] | None = None) -> str:
    return _backend_spec(dev, chardev_id, socket_fds or {}) + chardev_options.spec_tail(dev)


def _backend_spec(dev: CharDevConfig, chardev_id: str, socket_fds: Mapping[str, int]) -> str:
    if dev.type in chardev_backends.TYPES:
        return chardev_backends.spec(dev, chardev_id)
    if dev.type == "pty":
        return f"pty,id={chardev_id}"
    if dev.type == "null":
        return f"null,id={chardev_id}"
    if dev.type == "file":
        if not dev.source_path:
            raise UnsupportedConfig(f"unsupported configuration: {dev.kind} of type 'file' needs a path")
        append = dev.source_extra.get("append")
        return f"file,id={chardev_id},path={_escape(dev.source_path)}" + (
            f",append={append}" if append else ""
        )
    if dev.type == "unix":
        if not dev.source_path:
            raise UnsupportedConfig(f"unsupported configuration: {dev.kind} of type 'unix' needs a path")
        server = dev.source_mode != "connect"
        tail = ",server=on,wait=off" if server else ""
        if server and (fd := socket_fds.get(dev.source_path)) is not None:
            return f"socket,id={chardev_id},fd={fd}{tail}"
        return f"socket,id={chardev_id},path={_escape(dev.source_path)}{tail}"
    raise UnsupportedConfig(f"unsupported configuration: {dev.kind} type '{dev.type}'")


def build_argv(dom: Domain, ctx: RuntimeContext) -> list[str]:
    """The QEMU command line for ``dom``."""
    if dom.os.type != "hvm":
        raise UnsupportedConfig(f"unsupported configuration: os type '{dom.os.type}'")
    if dom.os.arch not in ("x86_64", "i686"):
        raise UnsupportedConfig(f"unsupported configuration: architecture '{dom.os.arch}'")
    return _Builder(dom, ctx).build()

"""The domain model: dataclasses mirroring libvirt's ``<domain>`` XML.

Only what the QEMU driver can honour is modelled; the XML parser refuses the rest by name. Sizes are
kept in KiB, as libvirt stores them. Nothing here does I/O.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvirt.conf.disk_layers import DiskLayers

if TYPE_CHECKING:
    from pyvirt.conf.disk_encryption import DiskEncryption
    from pyvirt.conf.disk_reservations import Reservations
    from pyvirt.conf.filesystem import FilesystemConfig
    from pyvirt.conf.hostdev import HostdevConfig
    from pyvirt.conf.iommu import IOMMUConfig
    from pyvirt.conf.memory_backing import MemoryBacking, NumaTune
    from pyvirt.conf.memory_devices import MemoryDeviceConfig
    from pyvirt.conf.net_ethernet import EthernetConfig
    from pyvirt.conf.network_disk import NetworkSource
    from pyvirt.conf.numa_hmat import Cache, Interconnect
    from pyvirt.conf.qemu_ns import QemuNamespace
    from pyvirt.conf.smartcard import SmartcardConfig
    from pyvirt.conf.spicevmc import RedirdevConfig
    from pyvirt.conf.tpm import TPMConfig
    from pyvirt.conf.vsock import VsockConfig


@dataclass
class PCIAddress:
    """A device's ``<address type='pci' .../>`` (also drive/virtio-serial/usb addresses, kept as attrs)."""

    type: str = "pci"
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Loader:
    path: str  # "" when firmware='efi' autoselects it
    readonly: bool = True
    type: str = "pflash"  # "pflash" or "rom"
    secure: bool | None = None
    format: str | None = None  # "raw" (the only format pyvirt runs), as written
    stateless: bool | None = None  # yes: no NVRAM (only the code flash)


@dataclass
class OSConfig:
    type: str = "hvm"
    arch: str = "x86_64"
    machine: str | None = None  # filled in by post-parse defaults ("pc" alias resolved by the driver)
    boot: list[str] = field(default_factory=list)  # "hd", "cdrom", "network", "fd" in order
    bootmenu: bool | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    loader: Loader | None = None
    nvram: str | None = None
    firmware: str | None = None  # os firmware='efi' autoselection
    bootmenu_timeout: int | None = None  # milliseconds
    nvram_template: str | None = None
    nvram_type: str | None = None  # <nvram type='file'><source file/>: libvirt's other form of the path
    # <nvram type='network'><source protocol=...>: the NVRAM on a server, as a network disk's source
    nvram_source: DiskConfig | None = None
    nvram_format: str | None = None  # <nvram format>: "raw", as written
    nvram_template_format: str | None = None  # <nvram templateFormat>: "raw", as written
    firmware_features: dict[str, bool] = field(default_factory=dict)  # <firmware><feature name enabled>


@dataclass
class CPUFeature:
    name: str
    policy: str = "require"


@dataclass
class NUMACell:
    """``<cpu><numa><cell id cpus memory/>``: a guest NUMA node with its vCPUs and memory (KiB)."""

    id: int
    cpus: str  # a CPU set, as written ("" for a node without CPUs)
    memory_kib: int
    mem_access: str | None = None  # shared | private: the cell's backend's share
    discard: bool | None = None  # the cell's file backend's discard-data
    caches: list[Cache] = field(default_factory=list)  # HMAT (pyvirt.conf.numa_hmat)


@dataclass
class CPUConfig:
    mode: str = "custom"  # host-passthrough | host-model | custom | maximum
    match: str | None = None
    check: str | None = None
    migratable: bool | None = None
    model: str | None = None
    fallback: str | None = None
    sockets: int | None = None
    dies: int | None = None
    clusters: int | None = None  # only 1: QEMU 7.2's x86 machines have no clusters
    cores: int | None = None
    threads: int | None = None
    features: list[CPUFeature] = field(default_factory=list)
    numa: list[NUMACell] = field(default_factory=list)
    interconnects: list[Interconnect] = field(default_factory=list)  # HMAT (pyvirt.conf.numa_hmat)


@dataclass
class CPUTune:
    """``<cputune>``: pinning, applied as thread affinity (vCPU threads found over QMP)."""

    vcpupin: dict[int, str] = field(default_factory=dict)  # vCPU number → CPU set as written
    emulatorpin: str | None = None  # CPU set of every thread that is not a vCPU
    # The domain cgroup's CPU controller (qemu/cgtune.py): weight, and bandwidth in µs per period.
    shares: int | None = None
    global_period: int | None = None
    global_quota: int | None = None  # -1: unlimited

    def empty(self) -> bool:
        return not self.vcpupin and self.emulatorpin is None and self.cgroup_fields() == {}

    def cgroup_fields(self) -> dict[str, int]:
        """schedinfo's names of the cgroup values set."""
        values = {
            "cpu_shares": self.shares,
            "global_period": self.global_period,
            "global_quota": self.global_quota,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class MemTune:
    """``<memtune>``: the domain cgroup's memory limits in KiB (qemu/cgtune.py); None is unlimited."""

    hard_limit: int | None = None
    soft_limit: int | None = None
    swap_hard_limit: int | None = None


@dataclass
class Timer:
    name: str
    tickpolicy: str | None = None
    present: bool | None = None
    track: str | None = None  # rtc: guest | wall | realtime (conf.clock)
    frequency: int | None = None  # tsc, Hz
    mode: str | None = None  # tsc: auto | native | emulate | paravirt | smpsafe


@dataclass
class ClockConfig:
    offset: str = "utc"  # utc | localtime | absolute | timezone | variable (conf.clock)
    timers: list[Timer] = field(default_factory=list)
    start: int | None = None  # absolute: seconds since the epoch
    timezone: str | None = None  # timezone: an IANA name
    adjustment: int | None = None  # variable: seconds from the basis
    basis: str | None = None  # variable: utc | localtime


@dataclass
class BackingLayer:
    """One image under a disk's source, in a ``<backingStore>`` (conf.backing_chain)."""

    source: str
    format: str = "raw"  # qcow2, raw, ... (libvirt's format names)
    type: str = "file"  # file | block | network (source: the image's name on its server)
    metadata_cache: int | None = None  # <format><metadata_cache>: its qcow2 node's cache-size (bytes)
    remote: DiskConfig | None = None  # type='network': the server, as a network disk's <source>


@dataclass
class DiskConfig:
    type: str = "file"  # file | block | volume | network | dir (vvfat) | vhostuser (conf.vhostuser_disk)
    device: str = "disk"  # disk | cdrom | floppy | lun (a host SCSI device passed through, scsi-block)
    driver_name: str = "qemu"
    driver_type: str = "raw"  # conf.domain_xml.DISK_FORMATS
    cache: str | None = None  # none | writeback | writethrough | directsync | unsafe
    discard: str | None = None  # unmap | ignore
    io: str | None = None  # native | threads | io_uring
    iothread: int | None = None  # <driver iothread='N'>: the virtio disk's I/O runs in iothread N
    iotune: dict[str, int | str] = field(default_factory=dict)  # <iotune>: conf.iotune's names
    source: str | None = None  # file path or block device path
    source_pool: str | None = None  # type='volume'
    # <source startupPolicy>: what a start does when the source is missing: mandatory (refuse), requisite
    # (refuse a boot, empty the drive of a restore or migration), optional (empty the cdrom or floppy,
    # leave a hard disk out), as libvirt (daemon/launch.check_disks)
    startup_policy: str | None = None
    source_volume: str | None = None
    source_protocol: str | None = None  # type='network': nbd
    source_name: str | None = None  # the NBD export
    source_tls: str | None = None  # NBD: tls='yes'/'no' (conf.nbd_tls)
    net: NetworkSource | None = None  # type='network' on the protocols other than NBD (conf.network_disk)
    reservations: Reservations | None = None  # <source><reservations> of a LUN (conf.disk_reservations)
    vhostuser: CharDevConfig | None = None  # type='vhostuser': the backend's socket (source is its path)
    # <disk snapshot='no|internal|external|manual'>: the disk's part in a snapshot that does not name
    # it (conf.snapshot_disks), as libvirt takes it
    snapshot: str | None = None
    source_tls_hostname: str | None = None  # NBD over TLS: the name the server's certificate carries
    # type='network': the server, (transport, host name or socket path, port); tcp or unix
    source_host: tuple[str, str, str | None] | None = None
    target_dev: str = ""
    target_bus: str = "virtio"  # virtio | sata | scsi | ide | usb | fdc; "" from the parser when absent
    # <target tray='open'> of a cdrom or floppy: the tray's state as libvirt records it (events change it
    # on a running domain); a start does nothing with it, as libvirt's does not: the medium is inserted.
    tray: str | None = None
    readonly: bool = False
    shareable: bool = False
    boot_order: int | None = None
    serial: str | None = None
    address: PCIAddress | None = None
    acpi_index: int | None = None  # <acpi index> (conf.acpi_index)
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None
    # The images under the source, nearest first (None: not known, as for a shut-off domain; []: the
    # source stands alone): the running chain, or in a definition the user's <backingStore>.
    backing: list[BackingLayer] | None = None
    # A user-given chain, used as given (conf.backing_chain): "closed" (ends with <backingStore/>) or
    # "open" (what is under its last layer is read from that image); None: read from the images.
    backing_given: str | None = None
    encryption: DiskEncryption | None = None  # <encryption format='luks'>: the image's passphrase secret
    tuning: dict[str, str] = field(default_factory=dict)  # device tuning as written (conf.disk_tuning)
    # copy_on_read, <metadata_cache>, <transient/> (conf.disk_layers)
    layers: DiskLayers = field(default_factory=DiskLayers)


@dataclass
class ControllerConfig:
    type: str  # pci | usb | sata | scsi | virtio-serial | ide | fdc
    index: int = 0
    model: str | None = None
    ports: int | None = None
    address: PCIAddress | None = None
    # "model.name", "target.chassis", "target.port", "target.chassisNr", "target.busNr", "target.hotplug",
    # "master.startport" (USB companions) and "vectors" (virtio-serial), as written in the XML.
    extra: dict[str, str] = field(default_factory=dict)
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None


@dataclass
class InterfaceConfig:
    type: str = "network"  # network | bridge | user | vdpa | vhostuser | server | client | mcast | udp
    mac: str | None = None  # filled by post-parse defaults (52:54:00:xx:xx:xx)
    source_network: str | None = None
    source_bridge: str | None = None
    source_dev: str | None = None  # vdpa: the host's /dev/vhost-vdpa-N (conf.net_vdpa)
    model: str = "virtio"  # virtio | e1000 | e1000e | rtl8139
    target_dev: str | None = None  # tap name, set while running
    link_state: str | None = None  # up | down
    boot_order: int | None = None
    address: PCIAddress | None = None
    acpi_index: int | None = None  # <acpi index> (conf.acpi_index)
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None
    # <bandwidth>: direction (inbound | outbound) → average/peak (KiB/s), burst (KiB); conf.bandwidth
    bandwidth: dict[str, dict[str, int]] = field(default_factory=dict)
    driver: dict[str, str] = field(default_factory=dict)  # <driver name txmode ...> (conf.net_driver)
    socket: dict[str, str] = field(default_factory=dict)  # vhostuser, server... <source> (conf.net_sockets)
    ethernet: EthernetConfig | None = None  # type='ethernet': managed, scripts, host IPs (conf.net_ethernet)


@dataclass
class CharDevConfig:
    """A ``<serial>``, ``<console>`` or ``<channel>``."""

    kind: str  # serial | console | channel | parallel
    type: str = "pty"  # pty | unix | file | null | tcp | udp | dev | vc (conf.chardev_backends)
    source_path: str | None = None  # pty path while running, socket or file path
    source_mode: str | None = None  # bind | connect (unix)
    target_type: str | None = None  # isa-serial | serial | virtio (channel/console)
    target_port: int | None = None
    target_name: str | None = None  # channel target name e.g. org.qemu.guest_agent.0
    target_address: str | None = None  # a guestfwd channel's guest-side IPv4 address (conf.guestfwd)
    target_model: str | None = None  # <model name='isa-serial'/>
    source_extra: dict[str, str] = field(default_factory=dict)  # tcp/udp sources; file's "append"
    address: PCIAddress | None = None
    alias: str | None = None


@dataclass
class GraphicsConfig:
    type: str = "vnc"  # vnc | spice
    port: int | None = None  # -1 with autoport
    autoport: bool = True
    listen: str = "127.0.0.1"  # also when the XML gives none; always written out, so the config says it
    passwd: str | None = None
    socket: str | None = None  # <listen type='socket' socket=...>: a UNIX socket instead of a TCP port
    listen_socket: bool = False  # <listen type='socket'> (the path is chosen at start when not given)
    listen_none: bool = False  # <listen type='none'>: no network or socket listener (QMP can add one)
    # SPICE's settings as written: (element, attribute) → value, e.g. ("image", "compression") → "auto_glz"
    spice: dict[tuple[str, str], str] = field(default_factory=dict)
    audio_id: int | None = None  # <audio id='N'/> inside <graphics>: the display's sound
    vnc: dict[str, str] = field(default_factory=dict)  # sharePolicy, powerControl... (conf.vnc_options)
    local: dict[str, str] = field(
        default_factory=dict
    )  # sdl's display, xauth, fullscreen (conf.graphics_local)
    gl: dict[str, str] = field(default_factory=dict)  # <gl enable rendernode> (conf.graphics_local)
    passwd_valid_to: str | None = None  # passwdValidTo, as written (UTC)
    connected: str | None = None  # SPICE: keep | disconnect | fail


@dataclass
class VideoConfig:
    model: str = "virtio"  # vga | cirrus | virtio | qxl | bochs | none
    vram: int | None = None  # KiB, as all the sizes here
    ram: int | None = None  # qxl
    vram64: int | None = None  # qxl
    vgamem: int | None = None  # qxl
    heads: int | None = None
    primary: bool | None = None
    accel3d: str | None = (
        None  # <acceleration accel3d/>: 'yes' is virgl (virtio-vga-gl), needing a GL display
    )
    address: PCIAddress | None = None
    acpi_index: int | None = None  # <acpi index> (conf.acpi_index)
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None


@dataclass
class InputConfig:
    type: str  # mouse | keyboard | tablet | passthrough | evdev
    bus: str = "ps2"  # ps2 | usb | virtio; "" for evdev
    evdev: str | None = None  # passthrough, evdev: the host's /dev/input/eventN
    evdev_options: dict[str, str] = field(default_factory=dict)  # evdev: grab, grabToggle, repeat
    address: PCIAddress | None = None
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None


@dataclass
class MemballoonConfig:
    model: str = "virtio"  # virtio | none
    stats_period: int | None = None
    free_page_reporting: str | None = None  # on | off: virtio-balloon's free-page-reporting
    address: PCIAddress | None = None
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None


@dataclass
class RNGConfig:
    model: str = "virtio"
    backend_model: str = "random"  # random | builtin | egd
    backend: str = "/dev/urandom"
    egd: CharDevConfig | None = None  # egd: the character device an EGD daemon answers on
    rate_bytes: int | None = None
    rate_period: int | None = None
    address: PCIAddress | None = None
    virtio: dict[str, str] = field(default_factory=dict)  # <driver> virtio options (conf.virtio_options)
    alias: str | None = None


@dataclass
class PanicConfig:
    model: str = "isa"  # isa (pvpanic) | pvpanic
    address: PCIAddress | None = None
    alias: str | None = None


@dataclass
class AudioConfig:
    """``<audio id='1' type='none'/>``, which libvirt >= 7.2 writes into every x86 guest's config."""

    id: int = 1
    type: str = "none"  # none | spice | alsa | oss | pulseaudio | sdl | jack | file (pyvirt.conf.audio)
    options: dict[str, str] = field(default_factory=dict)  # the backend's attributes, as written
    streams: dict[str, dict[str, str]] = field(default_factory=dict)  # input/output → attributes


@dataclass
class SoundConfig:
    """``<sound model='ich9'>``: an emulated sound card, its HDA codecs, and the ``<audio>`` it plays to."""

    model: str = "ich9"  # ich9 | ich6 | ac97 | es1370 | sb16
    codecs: list[str] = field(default_factory=list)  # HDA codecs: duplex | micro | output
    audio_id: int | None = None  # <audio id='N'/> inside <sound>
    address: PCIAddress | None = None
    alias: str | None = None


@dataclass
class WatchdogConfig:
    """``<watchdog model='itco' action='reset'/>``, implicit on q35 from libvirt 9.1."""

    model: str = "itco"  # itco | i6300esb | ib700
    action: str = "reset"  # reset | shutdown | poweroff | pause | none | inject-nmi
    address: PCIAddress | None = None
    alias: str | None = None


@dataclass
class Devices:
    emulator: str | None = None
    disks: list[DiskConfig] = field(default_factory=list)
    controllers: list[ControllerConfig] = field(default_factory=list)
    interfaces: list[InterfaceConfig] = field(default_factory=list)
    serials: list[CharDevConfig] = field(default_factory=list)
    parallels: list[CharDevConfig] = field(default_factory=list)
    consoles: list[CharDevConfig] = field(default_factory=list)
    channels: list[CharDevConfig] = field(default_factory=list)
    graphics: list[GraphicsConfig] = field(default_factory=list)
    videos: list[VideoConfig] = field(default_factory=list)
    inputs: list[InputConfig] = field(default_factory=list)
    memballoon: MemballoonConfig | None = None
    rngs: list[RNGConfig] = field(default_factory=list)
    panics: list[PanicConfig] = field(default_factory=list)
    audios: list[AudioConfig] = field(default_factory=list)
    sounds: list[SoundConfig] = field(default_factory=list)
    watchdogs: list[WatchdogConfig] = field(default_factory=list)
    redirdevs: list[RedirdevConfig] = field(default_factory=list)  # USB redirection (pyvirt.conf.spicevmc)
    smartcards: list[SmartcardConfig] = field(default_factory=list)  # pyvirt.conf.smartcard
    iommu: IOMMUConfig | None = None  # pyvirt.conf.iommu
    filesystems: list[FilesystemConfig] = field(default_factory=list)  # virtio-9p (pyvirt.conf.filesystem)
    vsock: VsockConfig | None = None  # pyvirt.conf.vsock
    tpm: TPMConfig | None = None  # pyvirt.conf.tpm
    hostdevs: list[HostdevConfig] = field(default_factory=list)  # pyvirt.conf.hostdev
    memory: list[MemoryDeviceConfig] = field(default_factory=list)  # pyvirt.conf.memory_devices


@dataclass
class Domain:
    """One ``<domain>``."""

    name: str
    type: str = "kvm"  # kvm | qemu
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    uuid_given: bool = field(default=False, compare=False, repr=False)  # the document had a <uuid>
    genid: str | None = None  # <genid>: the VM generation GUID (pyvirt.conf.genid)
    title: str | None = None
    description: str | None = None
    metadata: str | None = None  # inner XML of <metadata>, kept verbatim
    qemu_ns: QemuNamespace | None = None  # xmlns:qemu's elements (pyvirt.conf.qemu_ns)
    memory_kib: int = 1024 * 1024
    current_memory_kib: int | None = None
    max_memory_kib: int | None = None  # <maxMemory>: the hotplug space (pyvirt.conf.memory_devices)
    max_memory_slots: int | None = None  # <maxMemory slots>
    memory_source: str | None = None  # <memoryBacking><source type>: file | anonymous | memfd
    memory_access: str | None = None  # <memoryBacking><access mode>: shared | private
    memory_backing: MemoryBacking | None = None  # the rest of <memoryBacking> (pyvirt.conf.memory_backing)
    numatune: NumaTune | None = None  # <numatune> (pyvirt.conf.memory_backing)
    vcpus: int = 1  # the maximum (<vcpu>'s text)
    vcpu_placement: str | None = None
    vcpu_current: int | None = None  # vCPUs online at start (<vcpu current>); the rest can be added
    vcpu_cpuset: str | None = None  # host CPUs every QEMU thread may run on, as written
    cputune: CPUTune | None = None
    memtune: MemTune | None = None
    iothreads: int | None = None  # <iothreads>: QEMU I/O threads, ids 1..N unless <iothreadids> names them
    iothread_ids: list[int] = field(default_factory=list)  # <iothreadids><iothread id>
    iothread_pools: dict[int, dict[str, int]] = field(default_factory=dict)  # conf.iothread_pools
    os: OSConfig = field(default_factory=OSConfig)
    features: list[str] = field(default_factory=list)  # acpi, apic, pae, ... in document order
    feature_attrs: dict[str, dict[str, str]] = field(default_factory=dict)  # e.g. vmport state=off
    hyperv: dict[str, dict[str, str]] = field(default_factory=dict)  # <hyperv> children: name → attrs
    cpu: CPUConfig | None = None
    clock: ClockConfig | None = None
    on_poweroff: str = "destroy"  # destroy | restart | preserve
    on_reboot: str = "restart"  # destroy | restart | preserve
    on_crash: str = "destroy"  # destroy | restart | preserve
    pm_suspend_to_mem: bool | None = None
    pm_suspend_to_disk: bool | None = None
    resource_partition: str | None = None  # <resource><partition>/machine</partition></resource>
    devices: Devices = field(default_factory=Devices)
    # Runtime-only; written in live XML (dumpxml of a running domain), never in the config file.
    id: int | None = None

    @property
    def online_vcpus(self) -> int:
        return self.vcpu_current if self.vcpu_current is not None else self.vcpus

    @property
    def current_kib(self) -> int:
        return self.current_memory_kib if self.current_memory_kib is not None else self.memory_kib

    def all_chardevs(self) -> list[CharDevConfig]:
        return [*self.devices.serials, *self.devices.consoles, *self.devices.channels]

"""The request and response bodies of every API action, as TypedDicts (JSON objects on the wire).

The table (:mod:`pyvirt.api.table`) names these types by string; the daemon checks each request body
against its type before the handler runs (:mod:`pyvirt.api.validate`), and the OpenAPI document's
schemas are generated from them. A field marked ``NotRequired`` may be left out; ``X | None`` may be
``null``. The client imports this module only for type checking, never at run time.
"""

# No ``from __future__ import annotations``: Python 3.11's TypedDict sees ``NotRequired`` only in
# evaluated annotations.
from typing import Any, Literal, NotRequired, TypedDict

# Common


class Empty(TypedDict):
    """No fields: the reply of an action that has nothing to report but success."""


class XmlDocument(TypedDict):
    """An XML document (domain, network, pool or volume definition; host capabilities)."""

    xml: str


class DefineRequest(TypedDict):
    """Define an object from its XML; with ``start``, create it running (transient)."""

    xml: str
    start: NotRequired[bool]


class NativeConfigRequest(TypedDict):
    """A domain XML and the native format to give it in (``qemu-argv``, as virsh's domxml-to-native)."""

    format: str
    xml: str


class NativeConfig(TypedDict):
    """A domain's native configuration: QEMU's argv, and the same as one shell-quoted line."""

    argv: list[str]
    text: str


class AutostartRequest(TypedDict):
    """Mark (``enabled: true``) or unmark an object as started with the daemon."""

    enabled: bool


class Removed(TypedDict):
    """The name of the object an action removed."""

    name: str


# Host


class OpenAPIDocument(TypedDict):
    """The OpenAPI 3.1 document of this API (see pyvirt.api.openapi)."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


class Version(TypedDict):
    pyvirt: str
    api: int
    hypervisor: str
    hypervisor_version: str
    hypervisor_version_number: int
    library_version_number: int


class NodeInfo(TypedDict):
    model: str
    cpus: int
    mhz: int
    nodes: int
    sockets: int
    cores: int
    threads: int
    memory_kib: int


class Hostname(TypedDict):
    hostname: str


class FreeCell(TypedDict):
    cell: int
    free_kib: int


class MaxVcpus(TypedDict):
    max: int


class HostCheck(TypedDict):
    name: str
    status: Literal["PASS", "WARN", "FAIL"]
    detail: str


class HostValidation(TypedDict):
    checks: list[HostCheck]


class Event(TypedDict):
    """One line of the event stream (``host.events``)."""

    # agent: (dis)connected; block-job: a disk's job ready or ended (event: completed, failed,
    # canceled, ready; detail: TYPE:TARGET:PATH, TYPE pull, copy, commit or active_commit)
    kind: Literal["domain", "agent", "block-job", "network", "pool", "volume", "snapshot"]
    name: str  # POOL/VOLUME for a volume, DOMAIN/SNAPSHOT for a snapshot
    event: str  # defined, undefined, started, stopped, suspended, resumed, shutdown, crashed, created...
    detail: str
    time: float  # seconds since the epoch


# Domains


class DomainSummary(TypedDict):
    name: str
    uuid: str
    id: int | None  # set while running
    state: str  # virsh's words: running, paused, in shutdown, shut off, crashed, pmsuspended
    reason: str
    persistent: bool
    autostart: bool
    managed_save: bool  # a managed save image waits for the next start


class DomainInfo(DomainSummary):
    os_type: str
    vcpus: int
    max_memory_kib: int
    used_memory_kib: int
    cpu_time_ns: int
    title: str | None
    security_model: str  # "dac" when QEMU runs as its own user, "none" when it keeps the daemon's
    security_label: str | None  # libvirt's DAC label "+UID:+GID" of a running domain
    messages: list[str]  # virsh's "Messages:" of a running domain: its taints (pyvirt.conf.qemu_ns)


class DiskSummary(TypedDict):
    type: str
    device: str
    target: str
    source: str | None  # a path, or POOL/VOLUME for a volume disk


class InterfaceSummary(TypedDict):
    interface: str | None  # the tap, while running
    type: str
    source: str | None
    model: str
    mac: str | None


class VncDisplay(TypedDict):
    listen: str
    display: int
    port: int


class DomainDevices(TypedDict):
    disks: list[DiskSummary]
    interfaces: list[InterfaceSummary]
    vnc: VncDisplay | None


class DomainDefineRequest(TypedDict):
    """Define a domain from its XML; with ``start``, create it running (transient), ``paused`` if asked,
    and with ``autodestroy`` destroyed when the connection that made it closes."""

    xml: str
    start: NotRequired[bool]
    paused: NotRequired[bool]
    autodestroy: NotRequired[bool]


class DomainStartRequest(TypedDict):
    """Start; with ``autodestroy`` the domain is destroyed when the connection that started it closes.
    A domain with a managed save resumes from it (read with O_DIRECT with ``bypass_cache``) unless
    ``force_boot``, which discards it and boots afresh."""

    paused: NotRequired[bool]
    autodestroy: NotRequired[bool]
    force_boot: NotRequired[bool]
    bypass_cache: NotRequired[bool]


class DomainDestroyRequest(TypedDict):
    """destroy; ``remove_logs`` deletes the domain's QEMU log and its rotated copies once it stopped."""

    graceful: NotRequired[bool]
    remove_logs: NotRequired[bool]


class SaveRequest(TypedDict):
    """save: the domain's state into ``file`` (an absolute path on the daemon's host); ``xml`` replaces
    the domain XML kept in the image (compatible with the running one); ``running``/``paused`` set the
    state a restore gives it (default: the current one); ``bypass_cache`` writes with O_DIRECT."""

    file: str
    xml: NotRequired[str]
    running: NotRequired[bool]
    paused: NotRequired[bool]
    bypass_cache: NotRequired[bool]


class ManagedSaveRequest(TypedDict):
    """managedsave: as save, into the domain's managed save image, which the next start resumes."""

    running: NotRequired[bool]
    paused: NotRequired[bool]
    bypass_cache: NotRequired[bool]


class RestoreRequest(TypedDict):
    """restore: start the domain saved in ``file``, with ``xml`` instead of the image's (compatible),
    ``running``/``paused`` overriding the state saved; ``bypass_cache`` reads with O_DIRECT."""

    file: str
    xml: NotRequired[str]
    running: NotRequired[bool]
    paused: NotRequired[bool]
    bypass_cache: NotRequired[bool]


class SaveImageDefineRequest(TypedDict):
    """Replace the domain XML of a managed save image (compatible with the one it holds)."""

    xml: str
    running: NotRequired[bool]
    paused: NotRequired[bool]


class SaveImageFileDefineRequest(TypedDict):
    """save-image-define: replace the domain XML of the save image ``file``."""

    file: str
    xml: str
    running: NotRequired[bool]
    paused: NotRequired[bool]


class ManagedSaveRemoved(TypedDict):
    removed: bool  # False: there was no managed save image


class DomainUndefined(TypedDict):
    name: str
    removed: list[str]  # the storage removed with ``remove_storage``


class BandwidthRates(TypedDict):
    """One direction of a NIC's <bandwidth>: rates in KiB/s, burst in KiB (average 0 clears it)."""

    average: NotRequired[int]
    peak: NotRequired[int]
    burst: NotRequired[int]
    floor: NotRequired[int]


class AttachInterfaceRequest(TypedDict):
    """attach-interface: ``live``/``config`` as virsh's scope flags (neither: the current state)."""

    type: Literal["network", "bridge", "user"]
    source: NotRequired[str]  # the network or bridge; not for ``user``
    mac: NotRequired[str]
    model: NotRequired[str]
    target: NotRequired[str]  # the tap's name (default: vnetN); kept in the definition with ``config``
    inbound: NotRequired[BandwidthRates]  # <bandwidth>, as domiftune sets it
    outbound: NotRequired[BandwidthRates]
    live: NotRequired[bool]
    config: NotRequired[bool]


class AttachedInterface(TypedDict):
    mac: str
    target: str | None  # the tap, when attached live


class DeviceRequest(TypedDict):
    """attach-device, detach-device, update-device: one device element (``<disk>``, ``<interface>``,
    ...) and virsh's scope flags, ``live``/``config`` (neither: the current state); ``force``
    (update-device) opens a cdrom's tray the guest keeps locked."""

    xml: str
    live: NotRequired[bool]
    config: NotRequired[bool]
    force: NotRequired[bool]


class DeviceChange(TypedDict):
    kind: str  # the device's element: disk, interface, controller, ...
    alias: str | None  # its device id in the running domain, when plugged or unplugged live


class LinkStateRequest(TypedDict):
    """domif-setlink: the running domain's NIC, or with ``config`` (or a domain not running) the
    definition's, read at the next start."""

    state: Literal["up", "down"]
    config: NotRequired[bool]


class NodedevInfo(TypedDict):
    """A host's node device as nodedev-list and nodedev-info show it (pyvirt.qemu.node_devices)."""

    name: str  # libvirt's name: pci_0000_00_1f_2, net_eth0_MAC, block_sda_SERIAL, computer...
    parent: str  # "" for computer
    caps: list[str]  # the capabilities nodedev-list --cap matches (pci, net, storage, mdev_types...)
    active: bool
    persistent: bool
    autostart: bool


NodedevList = list[NodedevInfo]


class NodedevDetachRequest(TypedDict):
    """nodedev-detach: ``driver`` is virsh's --driver (the assignment backend: ``vfio``, the one there is)."""

    driver: NotRequired[str]


class BlockCommitRequest(TypedDict):
    """blockcommit: ``top`` and ``base`` name images of the disk's chain by path (defaults: the disk's
    source with ``active``, the bottom of the chain; ``shallow``: the image under ``top``);
    ``bandwidth`` in bytes/s; ``delete`` removes the committed images once the job completed."""

    base: NotRequired[str]
    top: NotRequired[str]
    active: NotRequired[bool]
    shallow: NotRequired[bool]
    bandwidth: NotRequired[int]
    keep_relative: NotRequired[bool]
    delete: NotRequired[bool]


class BlockPullRequest(TypedDict):
    """blockpull: copy the backing data (down to ``base``, excluded) into the disk's source."""

    base: NotRequired[str]
    bandwidth: NotRequired[int]
    keep_relative: NotRequired[bool]


class BlockCopyRequest(TypedDict):
    """blockcopy: mirror the disk to ``dest`` (created unless ``reuse_external``; ``format`` default: the
    disk's, or the probed one of a reused file); ``shallow`` copies the top image only, over the same
    backing chain; ``synchronous_writes`` makes guest writes reach the copy before they complete."""

    dest: str
    format: NotRequired[Literal["raw", "qcow2"]]
    blockdev: NotRequired[bool]
    shallow: NotRequired[bool]
    reuse_external: NotRequired[bool]
    bandwidth: NotRequired[int]
    granularity: NotRequired[int]
    buf_size: NotRequired[int]
    synchronous_writes: NotRequired[bool]


class BlockJobInfo(TypedDict):
    """A disk's block job (``state`` running or ready) or how its last one ended (completed, failed,
    canceled); ``type`` None: the disk never had one while this QEMU runs. ``cur`` of ``end`` bytes."""

    disk: str
    type: Literal["pull", "copy", "commit", "active_commit"] | None
    state: Literal["running", "ready", "completed", "failed", "canceled"] | None
    bandwidth: NotRequired[int]  # bytes/s, 0: no limit
    cur: NotRequired[int]
    end: NotRequired[int]
    error: NotRequired[str | None]


class BlockJobAbortRequest(TypedDict):
    """blockjob --abort/--pivot; ``wait`` false: return at once (virsh's --async)."""

    pivot: NotRequired[bool]
    wait: NotRequired[bool]


class BlockJobSpeedRequest(TypedDict):
    bandwidth: int  # bytes/s, 0: no limit


class BlockResizeRequest(TypedDict):
    size: int  # bytes, rounded up to 512


class BlockInfo(TypedDict):
    """domblkinfo, in bytes: the guest's size, the host's bytes in use, the file's or device's size."""

    disk: str
    capacity: int
    allocation: int
    physical: int


class BlockError(TypedDict):
    disk: str
    error: Literal["no space", "unspecified error"]


class InterfaceAddress(TypedDict):
    name: str | None
    mac: str
    protocol: str
    address: str  # ADDRESS/PREFIX


class CloneRequest(TypedDict):
    """pyvirt clone: domain ``name`` from the template or shut-off domain ``original`` of ``pool``.

    ``linked`` defaults to true from a template, false from a domain; ``memory`` and ``disk_size`` are
    bytes; ``network`` is a network's name, ``user`` or ``none`` (default: ``default`` if defined, else
    ``user``; a domain's own NICs for a domain); ``ssh_keys`` go to ``user``'s authorized_keys.
    """

    original: str
    name: str
    linked: NotRequired[bool]
    vcpus: NotRequired[int]
    memory: NotRequired[int]
    disk_size: NotRequired[int]
    network: NotRequired[str]
    hostname: NotRequired[str]
    ssh_keys: NotRequired[list[str]]
    user: NotRequired[str]
    user_data: NotRequired[str]
    pool: NotRequired[str]


class CloneResult(TypedDict):
    """What a clone made: its volumes (disks, then the cloud-init seed), MACs, and the steps taken."""

    name: str
    uuid: str
    original: str
    kind: Literal["template", "domain"]
    linked: bool
    disks: list[str]
    seed: str
    macs: list[str]
    seconds: float
    steps: list[str]


class LaunchRequest(TypedDict):
    """pyvirt launch: domain ``name`` from template ``template`` of ``pool``, started.

    A linked clone (a qcow2 overlay) unless ``full``; ``memory`` and ``disk_size`` are bytes (default:
    the template's, else 1 GiB and the template's size); ``network`` as in :class:`CloneRequest`;
    ``ssh_keys`` go to ``user``'s authorized_keys, ``password`` is set for ``user`` (``root`` when no
    keys are given).
    """

    template: str
    name: str
    full: NotRequired[bool]
    vcpus: NotRequired[int]
    memory: NotRequired[int]
    disk_size: NotRequired[int]
    network: NotRequired[str]
    hostname: NotRequired[str]
    ssh_keys: NotRequired[list[str]]
    user: NotRequired[str]
    user_data: NotRequired[str]
    password: NotRequired[str]
    pool: NotRequired[str]


class LaunchResult(CloneResult):
    """What a launch made (as a clone's result) and the domain's state (``running``)."""

    state: str


# Statistics and resources of domains


class DomainStats(TypedDict):
    """One domain's statistics, libvirt's field names (``state.state``, ``block.0.rd.bytes``...) in
    libvirt's order."""

    name: str
    fields: dict[str, int | str]


class CpuTimes(TypedDict):
    """Nanoseconds one host CPU spent on a domain: on all of its QEMU, and on its vCPUs alone."""

    cpu_time: int
    vcpu_time: int


class PerCpuStats(TypedDict):
    """cpu-stats' per-CPU figures: how many CPUs the host lists, and each one's times (index: CPU)."""

    host_cpus: int
    cpus: list[CpuTimes]


class MemoryStats(TypedDict):
    """dommemstat's tags (actual, swap_in, ..., rss) in libvirt's order and units (KiB or counts)."""

    stats: dict[str, int]


class ScopedValueRequest(TypedDict):
    """A number for the running domain (``live``), its definition (``config``), or neither: the
    current one (the running domain while it runs, else the definition)."""

    value: int
    live: NotRequired[bool]
    config: NotRequired[bool]


class SetMemoryRequest(TypedDict):
    """setmem/setmaxmem: ``kib`` for the running domain (``live``), its definition (``config``) or,
    neither given, the current one; ``maximum``: ``<memory>`` (setmaxmem, config only)."""

    kib: int
    maximum: NotRequired[bool]
    live: NotRequired[bool]
    config: NotRequired[bool]


class SetVcpusRequest(TypedDict):
    """setvcpus: ``count`` vCPUs online (live: by hot-plug), or with ``maximum`` the definition's
    maximum; scope as :class:`SetMemoryRequest`."""

    count: int
    maximum: NotRequired[bool]
    live: NotRequired[bool]
    config: NotRequired[bool]


class PinRequest(TypedDict):
    """vcpupin (``vcpu``) or emulatorpin (no ``vcpu``): a libvirt CPU list (``0-3,^2``; ``r``: all)."""

    cpulist: str
    vcpu: NotRequired[int]
    live: NotRequired[bool]
    config: NotRequired[bool]


class VcpuState(TypedDict):
    vcpu: int
    cpu: int | None  # the host CPU it last ran on (running domain)
    state: str | None  # "running" (running domain)
    time_ns: int | None
    affinity: list[int]


class VcpuInfo(TypedDict):
    """vCPU counts (None: not running, or transient), each vCPU, the emulator threads' affinity."""

    maximum_config: int | None
    current_config: int | None
    maximum_live: int | None
    current_live: int | None
    host_cpus: int
    vcpus: list[VcpuState]
    emulator: list[int]


Suboptions = dict[str, str]


class InstallRequest(TypedDict):
    """pyvirt install: virt-install 4.1's options, each complex one as its ``key=value`` suboptions
    (``{"path": "/x.qcow2", "size": "8"}``; a bare first value under the option's first key: ``path``,
    ``memory``, ``vcpus``, ``model`` (cpu, video, watchdog), ``type`` (network, graphics, serial,
    console, channel, controller, rng, tpm), ``location``, ``name`` (os_variant)). ``cloud_init``'s
    ``user-data``, ``meta-data``, ``network-config``, ``root-password-file`` and ``*-ssh-key`` carry
    the files' contents. ``dry_run``: build and check only, nothing is made (``--print-xml``,
    ``--dry-run``). A ``disk`` whose path is an OVA/OVF, with ``import_install``: its disks converted
    into the pool, its CPUs, memory, firmware, buses and NICs the defaults of the options not given."""

    name: NotRequired[str]
    memory: NotRequired[Suboptions]
    vcpus: NotRequired[Suboptions]
    cpu: NotRequired[Suboptions]
    machine: NotRequired[str]
    arch: NotRequired[str]
    virt_type: NotRequired[str]
    os_variant: NotRequired[Suboptions]
    disk: NotRequired[list[Suboptions]]
    cdrom: NotRequired[str]
    location: NotRequired[Suboptions]
    extra_args: NotRequired[str]
    initrd_inject: NotRequired[list[str]]
    import_install: NotRequired[bool]
    boot: NotRequired[Suboptions]
    network: NotRequired[list[Suboptions]]
    graphics: NotRequired[list[Suboptions]]
    video: NotRequired[list[Suboptions]]
    console: NotRequired[list[Suboptions]]
    serial: NotRequired[list[Suboptions]]
    channel: NotRequired[list[Suboptions]]
    rng: NotRequired[list[Suboptions]]
    watchdog: NotRequired[list[Suboptions]]
    controller: NotRequired[list[Suboptions]]
    tpm: NotRequired[list[Suboptions]]
    cloud_init: NotRequired[Suboptions]
    noreboot: NotRequired[bool]
    transient: NotRequired[bool]
    autostart: NotRequired[bool]
    check: NotRequired[Suboptions]
    dry_run: NotRequired[bool]


class InstallResult(TypedDict):
    """What an install made: ``xml`` is the install-time document then the final one (just the final
    one for an install with no phase of its own); ``created``: the files made (disks, the kernel and
    initrd copies, the seed); ``root_password``: cloud-init's generated password, shown once;
    ``notes``: what virt-install would add that pyvirt does not run."""

    name: str
    uuid: str
    os: str
    xml: list[str]
    dry_run: bool
    started: bool
    created: list[str]
    notes: list[str]
    root_password: NotRequired[str]


class IoTuneRequest(TypedDict):
    """blkdeviotune's limits (virsh's names; bytes or operations per second, lengths in seconds);
    those left out keep their value, a kind given replaces its total/read/write limits whole."""

    total_bytes_sec: NotRequired[int]
    read_bytes_sec: NotRequired[int]
    write_bytes_sec: NotRequired[int]
    total_iops_sec: NotRequired[int]
    read_iops_sec: NotRequired[int]
    write_iops_sec: NotRequired[int]
    total_bytes_sec_max: NotRequired[int]
    read_bytes_sec_max: NotRequired[int]
    write_bytes_sec_max: NotRequired[int]
    total_iops_sec_max: NotRequired[int]
    read_iops_sec_max: NotRequired[int]
    write_iops_sec_max: NotRequired[int]
    size_iops_sec: NotRequired[int]
    group_name: NotRequired[str]
    total_bytes_sec_max_length: NotRequired[int]
    read_bytes_sec_max_length: NotRequired[int]
    write_bytes_sec_max_length: NotRequired[int]
    total_iops_sec_max_length: NotRequired[int]
    read_iops_sec_max_length: NotRequired[int]
    write_iops_sec_max_length: NotRequired[int]
    live: NotRequired[bool]
    config: NotRequired[bool]


class IfTuneRequest(TypedDict):
    """domiftune: a direction given replaces that direction, one left out is kept."""

    inbound: NotRequired[BandwidthRates]
    outbound: NotRequired[BandwidthRates]
    live: NotRequired[bool]
    config: NotRequired[bool]


class MemtuneRequest(TypedDict):
    """memtune's limits in KiB (9007199254740991: unlimited); those left out keep their value."""

    hard_limit: NotRequired[int]
    soft_limit: NotRequired[int]
    swap_hard_limit: NotRequired[int]
    live: NotRequired[bool]
    config: NotRequired[bool]


class SchedinfoRequest(TypedDict):
    """schedinfo's cgroup parameters (global_quota -1: unlimited); those left out keep their value."""

    cpu_shares: NotRequired[int]
    global_period: NotRequired[int]
    global_quota: NotRequired[int]
    live: NotRequired[bool]
    config: NotRequired[bool]


class IOThread(TypedDict):
    id: int
    affinity: list[int]


# Networks


class NetworkStatus(TypedDict):
    name: str
    uuid: str
    active: bool
    autostart: bool
    persistent: bool
    bridge: str | None


class Lease(TypedDict):
    expiry: int  # seconds since the epoch; 0 for an infinite lease
    mac: str | None
    protocol: str
    ip: str
    prefix: int
    hostname: str | None
    clientid: str | None
    iaid: str | None
    interface: str | None


# Secrets


class SecretInfo(TypedDict):
    """A secret as secret-list shows it (its value is never part of it)."""

    uuid: str
    ephemeral: bool
    private: bool
    description: str | None
    usage_type: str | None  # volume, ceph, iscsi, tls or vtpm; None: unused
    usage_id: str | None  # the volume's path, or the usage's name or target
    has_value: bool


class SecretValue(TypedDict):
    """A secret's value, base64-encoded."""

    value: str


class SecretRef(TypedDict):
    uuid: str


# Storage


class PoolDefineRequest(TypedDict):
    """Define a pool; with ``start``, create it running (transient), its folder made first with ``build``."""

    xml: str
    start: NotRequired[bool]
    build: NotRequired[bool]


class PoolStatus(TypedDict):
    name: str
    uuid: str
    type: str
    path: str
    active: bool
    state: str
    persistent: bool
    autostart: bool
    capacity: int | None
    allocation: int | None
    available: int | None
    volumes: int | None


class VolumeRef(TypedDict):
    pool: str
    name: str


class VolumeInfo(TypedDict):
    name: str
    path: str
    key: str
    type: str
    format: str
    capacity: int
    allocation: int
    physical: int
    backing: str | None
    backing_format: str | None


class VolumeCreateRequest(TypedDict):
    """vol-create; with ``input``, vol-create-from: the new volume holds a copy of that volume."""

    xml: str
    prealloc_metadata: NotRequired[bool]
    input: NotRequired[VolumeRef]
    reflink: NotRequired[bool]  # with input: share the input's blocks (FICLONE; raw to raw)


class VolumeCloneRequest(TypedDict):
    """vol-clone; ``reflink``: share the blocks (FICLONE), an error where the file system cannot."""

    name: str
    prealloc_metadata: NotRequired[bool]
    reflink: NotRequired[bool]


class ResizeRequest(TypedDict):
    """vol-resize: ``capacity`` in bytes, or added (removed with ``shrink``) when ``delta``."""

    capacity: int
    delta: NotRequired[bool]
    shrink: NotRequired[bool]
    allocate: NotRequired[bool]


class WipeRequest(TypedDict):
    algorithm: NotRequired[str]  # zero (the default), or one of scrub's patterns


# Lists: the body of the listing actions.

# The guest agent


class DomainShutdownRequest(TypedDict):
    """How to shut down or reboot: a comma-separated list of acpi and agent, tried in order."""

    mode: NotRequired[str]


class AgentCommandRequest(TypedDict):
    """One guest agent command as JSON text; timeout in seconds (-1 default, -2 block, 0 no wait)."""

    command: str
    timeout: NotRequired[int]


class AgentCommandReply(TypedDict):
    """The agent's whole reply as JSON text (empty when the command was not waited for)."""

    reply: str


class GuestInfo(TypedDict):
    """libvirt's typed parameters of guestinfo (``user.count``, ``os.id``, ``fs.0.mountpoint``...)."""

    params: dict[str, Any]


class FSInfo(TypedDict):
    mountpoint: str
    name: str
    fstype: str
    targets: list[str]  # the domain's disks (vda...) the file system is on


class FSFreezeRequest(TypedDict):
    mountpoints: NotRequired[list[str]]


class FSCount(TypedDict):
    """How many file systems were frozen or thawed."""

    count: int


class FSTrimRequest(TypedDict):
    minimum: NotRequired[int]
    mountpoint: NotRequired[str]


class UserPasswordRequest(TypedDict):
    password: str
    encrypted: NotRequired[bool]


class SSHKeys(TypedDict):
    keys: list[str]


class SSHKeysRequest(TypedDict):
    """Keys to add (``reset``: replacing all, which with no keys empties the file), or to ``remove``."""

    keys: list[str]
    reset: NotRequired[bool]
    remove: NotRequired[bool]


class DomainTime(TypedDict):
    seconds: int
    nseconds: int


class SetTimeRequest(TypedDict):
    """The time to set (seconds since the epoch), or ``sync``: the guest reads its RTC."""

    seconds: NotRequired[int]
    nseconds: NotRequired[int]
    sync: NotRequired[bool]


class PMSuspendRequest(TypedDict):
    target: Literal["mem", "disk", "hybrid"]
    duration: NotRequired[int]


# Screen, keyboard, monitor and jobs


class Screenshot(TypedDict):
    mime: str  # image/png
    data: str  # base64


class SendKeyRequest(TypedDict):
    """Keys pressed together: numbers (decimal or 0x hex) or names (linux: KEY_A, win32: VK_A)."""

    keycodes: list[str]
    codeset: NotRequired[str]  # linux (default), xt, atset1, usb, win32, qnum, rfb
    holdtime: NotRequired[int]  # milliseconds; 0: QEMU's default


class MonitorCommandRequest(TypedDict):
    command: str  # QMP JSON text, or with hmp a human monitor command line
    hmp: NotRequired[bool]


class MonitorCommandReply(TypedDict):
    """QMP's reply as JSON text ({"return": ...} or {"error": ...}); HMP's output as it is."""

    reply: str


class JobInfo(TypedDict):
    type: str  # None, Unbounded
    operation: str  # "", Save, Outgoing migration, Restore, Snapshot
    time_elapsed_ms: NotRequired[int]
    data_processed: NotRequired[int]
    data_remaining: NotRequired[int]
    data_total: NotRequired[int]
    # virDomainGetJobStats' parameters (time_elapsed, downtime, data_total, memory_constant...), libvirt's
    # names, order and units (ms, bytes, pages, bytes/s)
    stats: NotRequired[dict[str, int]]


DomainList = list[DomainSummary]
IoTune = dict[str, int | str]  # blkdeviotune's fields, virsh's names and order
IOThreadList = list[IOThread]
Tunables = dict[str, int]  # memtune's (KiB) or schedinfo's parameters, libvirt's names
HostCounters = dict[str, int]  # nodecpustats (ns), nodememstats (KiB): libvirt's field names
FreeCellList = list[FreeCell]
NameList = list[str]
# Prometheus' text exposition format (a text/plain reply, not JSON).
MetricsText = str
InterfaceAddressList = list[InterfaceAddress]
BlockErrorList = list[BlockError]
FSInfoList = list[FSInfo]
NetworkList = list[NetworkStatus]
LeaseList = list[Lease]
DomainStatsList = list[DomainStats]
PoolList = list[PoolStatus]
VolumeList = list[VolumeInfo]
SecretList = list[SecretInfo]


# Snapshots


class SnapshotCreateRequest(TypedDict):
    """snapshot-create: domainsnapshot XML and virsh's flags. ``redefine`` (with ``current``) only
    (re)defines metadata. Every way pyvirt takes a snapshot is all-or-nothing (``atomic`` always holds)
    and the XML is always checked strictly (``validate``)."""

    xml: str
    redefine: NotRequired[bool]
    current: NotRequired[bool]
    no_metadata: NotRequired[bool]
    halt: NotRequired[bool]
    disk_only: NotRequired[bool]
    reuse_external: NotRequired[bool]
    quiesce: NotRequired[bool]
    atomic: NotRequired[bool]
    live: NotRequired[bool]
    validate: NotRequired[bool]


class SnapshotInfo(TypedDict):
    """snapshot-info, and one row of snapshot-list."""

    name: str
    domain: str
    description: str | None
    parent: str | None
    state: str  # running, paused, shutoff, disk-snapshot
    creation_time: int  # seconds since the epoch
    location: Literal["internal", "external"]
    memory: Literal["internal", "external", "no"]
    current: bool
    children: int
    descendants: int
    metadata: bool


SnapshotList = list[SnapshotInfo]


class SnapshotRevertRequest(TypedDict):
    running: NotRequired[bool]
    paused: NotRequired[bool]
    force: NotRequired[bool]
    reset_nvram: NotRequired[bool]


class SnapshotDeleted(TypedDict):
    """The snapshots deleted, children first."""

    deleted: list[str]

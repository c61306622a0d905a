"""Every action of pyvirtd's API, declared once: the single source of routing, client, docs and OpenAPI.

An action is named ``noun.verb`` (``domain.start``) and has:

- ``method`` and ``path``: the HTTP route; ``{name}`` segments are path parameters (a domain or network
  by name, id or UUID; ``{pool}``, ``{vol}``, an interface's ``{mac}`` or ``{device}``);
- ``request``/``response``: names of types in :mod:`pyvirt.api.types` (``None``: no request body);
- ``query``: query parameters, name to ``bool``, ``int`` (non-negative) or ``str``; ``str!`` is required;
- ``mutating``: changes the host or a guest (refused on a read-only connection);
- ``secret``: returns secrets or guest data, so is refused on a read-only connection too; ``True``, or
  the name of the boolean query parameter that asks for them (``security_info``);
- ``stream``: ``None`` for a JSON reply, else the kind of stream the connection is upgraded to
  (``console``, ``events``, ``upload``, ``download``);
- ``errors``: the error codes (:mod:`pyvirt.errors`) the action itself may return; every action may
  also return ``invalid-argument`` (a malformed request) and ``internal``, a mutating or secret one
  ``access-denied`` (see :func:`error_codes`);
- ``summary``: one line for the docs.

To add an action: add its entry here (and its types to :mod:`pyvirt.api.types`), then bind a handler
to its name in the daemon (pyvirtd refuses to start while an action has no handler) and a method to
the client. This module is on the CLI's start-up path: it imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping


class Action:
    """One API action (see the module docstring for the fields)."""

    __slots__ = (
        "errors",
        "method",
        "mutating",
        "name",
        "path",
        "query",
        "request",
        "response",
        "secret",
        "stream",
        "summary",
    )

    def __init__(
        self,
        name: str,
        method: str,
        path: str,
        summary: str,
        *,
        response: str | None,
        request: str | None = None,
        query: Mapping[str, str] | None = None,
        mutating: bool = False,
        secret: bool | str = False,
        stream: str | None = None,
        errors: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.method = method
        self.path = path
        self.summary = summary
        self.request = request
        self.response = response
        self.query: Mapping[str, str] = query or {}
        self.mutating = mutating
        self.secret = secret
        self.stream = stream
        self.errors = errors

    def __repr__(self) -> str:
        return f"<Action {self.name}: {self.method} {self.path}>"

    @property
    def path_params(self) -> list[str]:
        """The names of the path's ``{parameters}``, in order."""
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def refused_readonly(self, query: Mapping[str, str]) -> bool:
        """Whether a read-only connection may not make this call with ``query``."""
        if self.mutating or self.secret is True:
            return True
        return bool(self.secret) and query.get(str(self.secret), "") in TRUE_WORDS


API_VERSION = 1  # the ``/v1`` of every path

TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("", "0", "false", "no")
QUERY_TYPES = ("bool", "int", "str", "str!")
STREAMS = ("console", "events", "upload", "download")

_LOOKUP = ("not-found",)
_DEFINE = ("xml-error", "unsupported-config", "already-exists", "invalid-state", "operation-failed")
_DOMAIN_RUN = ("not-found", "invalid-state", "operation-failed")
_AGENT = ("not-found", "invalid-state", "operation-failed", "unsupported-config")
_VOLUME = ("not-found", "invalid-state", "operation-failed", "image-error")

ACTIONS: tuple[Action, ...] = (
    # Host
    Action(
        "api.openapi",
        "GET",
        "/v1/openapi.json",
        "this API's OpenAPI 3.1 document",
        response="OpenAPIDocument",
    ),
    Action("host.version", "GET", "/v1/version", "daemon, QEMU and API versions", response="Version"),
    Action("host.nodeinfo", "GET", "/v1/host/nodeinfo", "the host's CPUs and memory", response="NodeInfo"),
    Action(
        "host.capabilities", "GET", "/v1/host/capabilities", "the capabilities XML", response="XmlDocument"
    ),
    Action("host.hostname", "GET", "/v1/host/hostname", "the host's name", response="Hostname"),
    Action(
        "host.validate", "GET", "/v1/host/validate", "virt-host-validate's checks", response="HostValidation"
    ),
    Action(
        "host.domxml_to_native",
        "POST",
        "/v1/host/domxml-to-native",
        "domxml-to-native: the QEMU command line a domain XML would start with on this host",
        request="NativeConfigRequest",
        response="NativeConfig",
        mutating=True,  # changes nothing, but libvirt too refuses it read-only (connect:write)
        errors=("xml-error", "unsupported-config", "operation-failed", "not-found"),
    ),
    Action(
        "host.events",
        "GET",
        "/v1/events",
        "lifecycle events of domains, networks, pools and volumes",
        response=None,
        stream="events",
    ),
    Action(
        "host.cpustats",
        "GET",
        "/v1/host/cpustats",
        "nodecpustats: the host's user, system, idle and iowait time (ns), of one CPU if given",
        response="HostCounters",
        query={"cpu": "str"},
    ),
    Action(
        "host.memstats",
        "GET",
        "/v1/host/memstats",
        "nodememstats: the host's total, free, buffers and cached memory (KiB), or a NUMA cell's",
        response="HostCounters",
        query={"cell": "str"},
    ),
    Action(
        "host.freecells",
        "GET",
        "/v1/host/freecells",
        "freecell: each NUMA cell's free memory",
        response="FreeCellList",
    ),
    Action(
        "host.maxvcpus",
        "GET",
        "/v1/host/maxvcpus",
        "maxvcpus: the most vCPUs a domain of this type (qemu or kvm) may have",
        response="MaxVcpus",
        query={"type": "str"},
    ),
    Action(
        "host.cpu_models",
        "GET",
        "/v1/host/cpu-models",
        "cpu-models: the CPU models QEMU offers for an architecture",
        response="NameList",
        query={"arch": "str!"},
        errors=("invalid-argument",),
    ),
    Action(
        "host.sysinfo", "GET", "/v1/host/sysinfo", "sysinfo: the host's SMBIOS data", response="XmlDocument"
    ),
    Action(
        "host.domcapabilities",
        "GET",
        "/v1/host/domcapabilities",
        "domcapabilities: what a domain of this type, emulator, arch and machine may have",
        response="XmlDocument",
        query={"virttype": "str", "emulator": "str", "arch": "str", "machine": "str"},
        errors=("operation-failed",),
    ),
    Action(
        "nodedev.list",
        "GET",
        "/v1/nodedevs",
        "nodedev-list: the host's node devices (PCI, USB, net, storage, SCSI, mdev) as libvirt's udev "
        "backend names them; cap: a comma-separated list of capabilities to match",
        response="NodedevList",
        query={"cap": "str"},
    ),
    Action(
        "nodedev.info",
        "GET",
        "/v1/nodedevs/{device}",
        "nodedev-info: a node device's name, parent and state",
        response="NodedevInfo",
        errors=("not-found",),
    ),
    Action(
        "nodedev.dumpxml",
        "GET",
        "/v1/nodedevs/{device}/xml",
        "nodedev-dumpxml: a node device's XML as libvirt 9.0 writes it",
        response="XmlDocument",
        errors=("not-found",),
    ),
    Action(
        "nodedev.detach",
        "POST",
        "/v1/nodedevs/{device}/detach",
        "nodedev-detach: a host PCI device (pci_DDDD_BB_SS_F) off its driver, onto vfio-pci",
        request="NodedevDetachRequest",
        response="Empty",
        mutating=True,
        errors=("not-found", "invalid-state", "operation-failed", "unsupported-config"),
    ),
    Action(
        "nodedev.reattach",
        "POST",
        "/v1/nodedevs/{device}/reattach",
        "nodedev-reattach: a host PCI device off vfio-pci, back to its own driver",
        response="Empty",
        mutating=True,
        errors=("not-found", "invalid-state", "operation-failed"),
    ),
    Action(
        "nodedev.reset",
        "POST",
        "/v1/nodedevs/{device}/reset",
        "nodedev-reset: the kernel's reset of a host PCI device no domain holds",
        response="Empty",
        mutating=True,
        errors=("not-found", "invalid-state", "operation-failed"),
    ),
    Action(
        "host.metrics",
        "GET",
        "/v1/metrics",
        "Prometheus metrics (text exposition format) of the host, domains, networks, pools and this "
        "API; also served at /metrics",
        response="MetricsText",
    ),
    # Domains
    Action("domain.list", "GET", "/v1/domains", "every domain's summary", response="DomainList"),
    Action(
        "domain.define",
        "POST",
        "/v1/domains",
        "define a domain from XML; with start, create it running (transient), with autodestroy "
        "destroyed when the connection closes",
        request="DomainDefineRequest",
        response="DomainSummary",
        mutating=True,
        errors=(*_DEFINE, "not-found"),
    ),
    Action(
        "domain.info",
        "GET",
        "/v1/domains/{name}",
        "dominfo",
        response="DomainInfo",
        errors=_LOOKUP,
    ),
    Action(
        "domain.xml",
        "GET",
        "/v1/domains/{name}/xml",
        "dumpxml: the live definition, or the persistent one with inactive; migratable drops the "
        "runtime-only state",
        response="XmlDocument",
        query={"inactive": "bool", "security_info": "bool", "migratable": "bool"},
        secret="security_info",
        errors=_LOOKUP,
    ),
    Action(
        "domain.devices",
        "GET",
        "/v1/domains/{name}/devices",
        "disks, interfaces and VNC display (of the persistent definition with inactive)",
        response="DomainDevices",
        query={"inactive": "bool"},
        errors=_LOOKUP,
    ),
    Action(
        "domain.undefine",
        "DELETE",
        "/v1/domains/{name}",
        "undefine, and with remove_storage delete its disk images; a domain with an NVRAM file needs "
        "nvram (delete it) or keep_nvram, a shut-off one with snapshots snapshots_metadata, one with a "
        "managed save image managed_save (delete it); an emulated TPM's state goes unless keep_tpm "
        "(with persistent_state='yes' it stays unless tpm)",
        response="DomainUndefined",
        query={
            "remove_storage": "bool",
            "nvram": "bool",
            "keep_nvram": "bool",
            "tpm": "bool",
            "keep_tpm": "bool",
            "snapshots_metadata": "bool",
            "managed_save": "bool",
        },
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.start",
        "POST",
        "/v1/domains/{name}/start",
        "start a defined domain, paused if asked; with autodestroy, destroyed when the connection closes; "
        "from its managed save if it has one, unless force_boot",
        request="DomainStartRequest",
        response="DomainSummary",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    # Save and restore (pyvirt.daemon.saves)
    Action(
        "domain.save",
        "POST",
        "/v1/domains/{name}/save",
        "save: the running or paused domain's state into a file, then stop it (shut off, saved)",
        request="SaveRequest",
        response="DomainSummary",
        mutating=True,
        errors=(*_DOMAIN_RUN, "xml-error", "unsupported-config"),
    ),
    Action(
        "domain.managed_save",
        "POST",
        "/v1/domains/{name}/managed-save",
        "managedsave: save into the domain's managed save image, which the next start resumes",
        request="ManagedSaveRequest",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.managed_save_remove",
        "DELETE",
        "/v1/domains/{name}/managed-save",
        "managedsave-remove: discard the managed save image (removed: false if there was none)",
        response="ManagedSaveRemoved",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.managed_save_xml",
        "GET",
        "/v1/domains/{name}/managed-save/xml",
        "managedsave-dumpxml: the domain XML kept in the managed save image",
        response="XmlDocument",
        query={"security_info": "bool"},
        secret="security_info",
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.managed_save_define",
        "POST",
        "/v1/domains/{name}/managed-save/xml",
        "managedsave-define: replace the domain XML of the managed save image (a compatible one)",
        request="SaveImageDefineRequest",
        response="Empty",
        mutating=True,
        errors=(*_DOMAIN_RUN, "xml-error", "unsupported-config"),
    ),
    Action(
        "saveimage.restore",
        "POST",
        "/v1/save-images/restore",
        "restore: start the domain saved in a file (the defined domain of its name and UUID, or a "
        "transient one)",
        request="RestoreRequest",
        response="DomainSummary",
        mutating=True,
        errors=(*_DOMAIN_RUN, "already-exists", "xml-error", "unsupported-config"),
    ),
    Action(
        "saveimage.xml",
        "GET",
        "/v1/save-images/xml",
        "save-image-dumpxml: the domain XML kept in a save image",
        response="XmlDocument",
        query={"file": "str!", "security_info": "bool"},
        secret="security_info",
        errors=("operation-failed",),
    ),
    Action(
        "saveimage.define",
        "POST",
        "/v1/save-images/xml",
        "save-image-define: replace the domain XML kept in a save image (a compatible one)",
        request="SaveImageFileDefineRequest",
        response="Empty",
        mutating=True,
        errors=("operation-failed", "xml-error", "unsupported-config"),
    ),
    Action(
        "domain.shutdown",
        "POST",
        "/v1/domains/{name}/shutdown",
        "ask the guest to power off: mode is a comma-separated list of acpi and agent, tried in order "
        "(default: the guest agent when it is connected, then ACPI)",
        request="DomainShutdownRequest",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.reboot",
        "POST",
        "/v1/domains/{name}/reboot",
        "ask the guest to reboot: mode as shutdown's",
        request="DomainShutdownRequest",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.reset",
        "POST",
        "/v1/domains/{name}/reset",
        "reset the machine at once",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.destroy",
        "POST",
        "/v1/domains/{name}/destroy",
        "stop QEMU (SIGTERM with graceful, else SIGKILL after a grace period); remove_logs deletes "
        "its log files",
        request="DomainDestroyRequest",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.suspend",
        "POST",
        "/v1/domains/{name}/suspend",
        "pause the vCPUs",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.resume",
        "POST",
        "/v1/domains/{name}/resume",
        "resume paused vCPUs",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.autostart",
        "POST",
        "/v1/domains/{name}/autostart",
        "start the domain with the daemon, or not",
        request="AutostartRequest",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.console",
        "GET",
        "/v1/domains/{name}/console",
        "the serial console, both ways (force takes it over, history replays recent output; devname "
        "names a pty serial, console or channel by libvirt's names: serial0, serial1, channel0...); never "
        "shared: a second session needs force",
        response=None,
        query={"force": "bool", "history": "bool", "devname": "str"},
        mutating=True,
        stream="console",
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.attach_interface",
        "POST",
        "/v1/domains/{name}/interfaces",
        "attach-interface: hot-plug a NIC and/or add it to the definition",
        request="AttachInterfaceRequest",
        response="AttachedInterface",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.detach_interface",
        "DELETE",
        "/v1/domains/{name}/interfaces/{mac}",
        "detach-interface: unplug the NIC with this MAC and/or remove it from the definition",
        response="Empty",
        query={"live": "bool", "config": "bool"},
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_link",
        "POST",
        "/v1/domains/{name}/interfaces/{device}/link",
        "domif-setlink: a NIC's link (by MAC or tap) up or down, live or in the definition (config)",
        request="LinkStateRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.attach_device",
        "POST",
        "/v1/domains/{name}/devices",
        "attach-device: plug a device (disk, interface, virtio-scsi controller) into the running "
        "domain and/or add any device to the definition",
        request="DeviceRequest",
        response="DeviceChange",
        mutating=True,
        errors=(*_DOMAIN_RUN, "xml-error", "unsupported-config"),
    ),
    Action(
        "domain.detach_device",
        "POST",
        "/v1/domains/{name}/devices/detach",
        "detach-device: unplug the device the XML names (a disk by target, an interface by MAC) "
        "and/or remove it from the definition; a live removal waits for the guest",
        request="DeviceRequest",
        response="DeviceChange",
        mutating=True,
        errors=(*_DOMAIN_RUN, "xml-error", "unsupported-config"),
    ),
    Action(
        "domain.update_device",
        "POST",
        "/v1/domains/{name}/devices/update",
        "update-device: change a device in place (a cdrom's medium, a NIC's link, a display's "
        "password while running; anything in the definition)",
        request="DeviceRequest",
        response="Empty",
        mutating=True,
        errors=(*_DOMAIN_RUN, "xml-error", "unsupported-config"),
    ),
    Action(
        "domain.detach_device_alias",
        "DELETE",
        "/v1/domains/{name}/devices/{alias}",
        "detach-device-alias: remove the device with this alias (live: the request is sent to the "
        "guest, not waited for)",
        response="Empty",
        query={"live": "bool", "config": "bool"},
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.clone",
        "POST",
        "/v1/clones",
        "pyvirt clone: a new domain from a template or a shut-off domain, disks linked or copied, "
        "a cloud-init seed, a new identity",
        request="CloneRequest",
        response="CloneResult",
        mutating=True,
        errors=("not-found", "already-exists", "invalid-state", "operation-failed", "image-error"),
    ),
    Action(
        "domain.launch",
        "POST",
        "/v1/launches",
        "pyvirt launch: a running domain from a template in one call (linked clone, cloud-init seed, "
        "start); undone if the start fails",
        request="LaunchRequest",
        response="LaunchResult",
        mutating=True,
        errors=("not-found", "already-exists", "invalid-state", "operation-failed", "image-error"),
    ),
    Action(
        "domain.install",
        "POST",
        "/v1/installs",
        "pyvirt install: a new domain with virt-install 4.1's options and OS defaults (osinfo-db); its "
        "disks, installer kernel and cloud-init seed made, defined, and its install started",
        request="InstallRequest",
        response="InstallResult",
        mutating=True,
        errors=("not-found", "already-exists", "invalid-state", "operation-failed", "unsupported-config"),
    ),
    Action(
        "domain.ifaddr",
        "GET",
        "/v1/domains/{name}/ifaddr",
        "domifaddr: the running domain's addresses, from the networks' DHCP leases (source lease, the "
        "default), the host's ARP table (source arp) or the guest agent (source agent)",
        response="InterfaceAddressList",
        query={"source": "str"},
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    # Statistics and resources of domains
    Action(
        "domain.stats",
        "GET",
        "/v1/domainstats",
        "domstats in one request: the statistics groups asked (comma-separated: state, cpu-total, "
        "balloon, vcpu, interface, block; all by default) of the domains named (comma-separated names, "
        "ids or UUIDs), or of every domain passing every filter (active, inactive, persistent, "
        "transient, running, paused, shutoff, other)",
        response="DomainStatsList",
        query={"domains": "str", "groups": "str", "filters": "str"},
        errors=_LOOKUP,
    ),
    Action(
        "domain.cpu_stats",
        "GET",
        "/v1/domains/{name}/cpustats",
        "cpu-stats' per-CPU figures: the time each host CPU spent on the running domain's QEMU "
        "(cpu_time) and on its vCPUs (vcpu_time), from cgroup v1's cpuacct (a host with cgroup v2 alone "
        "keeps none); count: only how many CPUs the host lists",
        response="PerCpuStats",
        query={"count": "bool"},
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.memstats",
        "GET",
        "/v1/domains/{name}/memstats",
        "dommemstat: the balloon's size, the guest's memory statistics and QEMU's resident set",
        response="MemoryStats",
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.memstats_period",
        "POST",
        "/v1/domains/{name}/memstats/period",
        "dommemstat --period: how often the guest reports its memory statistics (0: never), live "
        "and/or in the definition (config)",
        request="ScopedValueRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    # The guest agent (org.qemu.guest_agent.0 channel)
    Action(
        "domain.agent_command",
        "POST",
        "/v1/domains/{name}/agent/command",
        "qemu-agent-command: one raw guest agent command (JSON text), its whole reply as JSON text; "
        "timeout in seconds, -1 the default, -2 waits as long as it takes, 0 does not wait",
        request="AgentCommandRequest",
        response="AgentCommandReply",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.guestinfo",
        "GET",
        "/v1/domains/{name}/guestinfo",
        "guestinfo: what the guest agent reports, as libvirt's typed parameters; types is a comma list of "
        "user, os, timezone, hostname, filesystem, disk, interface (default: all the agent supports)",
        response="GuestInfo",
        query={"types": "str"},
        secret=True,
        errors=_AGENT,
    ),
    Action(
        "domain.fsinfo",
        "GET",
        "/v1/domains/{name}/fsinfo",
        "domfsinfo: the guest's mounted file systems and the domain's disks they are on",
        response="FSInfoList",
        secret=True,
        errors=_AGENT,
    ),
    Action(
        "domain.fsfreeze",
        "POST",
        "/v1/domains/{name}/fsfreeze",
        "domfsfreeze: freeze the guest's file systems (those at mountpoints, or all)",
        request="FSFreezeRequest",
        response="FSCount",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.fsthaw",
        "POST",
        "/v1/domains/{name}/fsthaw",
        "domfsthaw: thaw the guest's frozen file systems",
        request="FSFreezeRequest",
        response="FSCount",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.fstrim",
        "POST",
        "/v1/domains/{name}/fstrim",
        "domfstrim: discard the unused blocks of the guest's file systems (ranges of at least minimum bytes)",
        request="FSTrimRequest",
        response="Empty",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.set_user_password",
        "POST",
        "/v1/domains/{name}/users/{user}/password",
        "set-user-password: a guest user's password, plain or already encrypted (crypt(3) form)",
        request="UserPasswordRequest",
        response="Empty",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.sshkeys",
        "GET",
        "/v1/domains/{name}/users/{user}/sshkeys",
        "get-user-sshkeys: a guest user's authorized SSH keys",
        response="SSHKeys",
        secret=True,
        errors=_AGENT,
    ),
    Action(
        "domain.set_sshkeys",
        "POST",
        "/v1/domains/{name}/users/{user}/sshkeys",
        "set-user-sshkeys: add keys to a guest user's authorized keys (reset: replace them all; remove: "
        "remove these)",
        request="SSHKeysRequest",
        response="Empty",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.hostname",
        "GET",
        "/v1/domains/{name}/hostname",
        "domhostname: the guest's host name, from the agent (source agent, the default) or a DHCP lease "
        "(source lease)",
        response="Hostname",
        query={"source": "str"},
        errors=_AGENT,
    ),
    Action(
        "domain.time",
        "GET",
        "/v1/domains/{name}/time",
        "domtime: the guest's clock, from the guest agent",
        response="DomainTime",
        errors=_AGENT,
    ),
    Action(
        "domain.set_time",
        "POST",
        "/v1/domains/{name}/time",
        "domtime: set the guest's clock to seconds (and nseconds), or with sync from its RTC",
        request="SetTimeRequest",
        response="Empty",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.pmsuspend",
        "POST",
        "/v1/domains/{name}/pmsuspend",
        "dompmsuspend: the guest suspends itself (target mem, disk or hybrid) through its agent",
        request="PMSuspendRequest",
        response="DomainSummary",
        mutating=True,
        errors=_AGENT,
    ),
    Action(
        "domain.pmwakeup",
        "POST",
        "/v1/domains/{name}/pmwakeup",
        "dompmwakeup: wake a guest suspended to memory",
        response="DomainSummary",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_memory",
        "POST",
        "/v1/domains/{name}/memory",
        "setmem: the balloon's target (live) and/or <currentMemory> (config); with maximum, setmaxmem: "
        "<memory> (config only)",
        request="SetMemoryRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.vcpus",
        "GET",
        "/v1/domains/{name}/vcpus",
        "vcpucount and vcpuinfo: the vCPU counts, each vCPU's host CPU, time and affinity, and the "
        "emulator threads' affinity; with config, of the definition",
        response="VcpuInfo",
        query={"config": "bool"},
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_vcpus",
        "POST",
        "/v1/domains/{name}/vcpus",
        "setvcpus: the vCPUs online, live by hot-plug (up to the maximum) and/or in the definition; "
        "with maximum, the definition's maximum",
        request="SetVcpusRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.pin",
        "POST",
        "/v1/domains/{name}/pin",
        "vcpupin (vcpu given) or emulatorpin: the host CPUs the thread(s) may run on, live and/or in "
        "<cputune>; cpulist 'r' resets to every host CPU",
        request="PinRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    # Screen, keyboard, monitor and jobs
    Action(
        "domain.screenshot",
        "GET",
        "/v1/domains/{name}/screenshot",
        "screenshot: the screen (number screen, counted over the video devices' heads) as a PNG image, "
        "base64 in data",
        response="Screenshot",
        query={"screen": "int"},
        secret=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.send_key",
        "POST",
        "/v1/domains/{name}/keys",
        "send-key: press keycodes together (numbers, or names in the linux and win32 codesets) for "
        "holdtime ms",
        request="SendKeyRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.monitor_command",
        "POST",
        "/v1/domains/{name}/monitor/command",
        "qemu-monitor-command: one QMP command (JSON text) or, with hmp, a human monitor command; the "
        "reply as text",
        request="MonitorCommandRequest",
        response="MonitorCommandReply",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.inject_nmi",
        "POST",
        "/v1/domains/{name}/nmi",
        "inject-nmi: a non-maskable interrupt to the guest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.jobinfo",
        "GET",
        "/v1/domains/{name}/job",
        "domjobinfo: the domain's running job (type None when there is none)",
        response="JobInfo",
        errors=_LOOKUP,
    ),
    Action(
        "domain.jobabort",
        "POST",
        "/v1/domains/{name}/job/abort",
        "domjobabort: abort the running job (a migration or a save)",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    # Block jobs (daemon/blockjobs.py); {disk} is a disk's target or source path
    Action(
        "domain.blockcommit",
        "POST",
        "/v1/domains/{name}/disks/{disk}/commit",
        "blockcommit: start merging images of the disk's backing chain into a base below them",
        request="BlockCommitRequest",
        response="BlockJobInfo",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.blockpull",
        "POST",
        "/v1/domains/{name}/disks/{disk}/pull",
        "blockpull: start copying the backing images' data into the disk's source",
        request="BlockPullRequest",
        response="BlockJobInfo",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.blockcopy",
        "POST",
        "/v1/domains/{name}/disks/{disk}/copy",
        "blockcopy: start mirroring the disk to a new image (pivot to it with blockjob_abort pivot)",
        request="BlockCopyRequest",
        response="BlockJobInfo",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "domain.blockjob",
        "GET",
        "/v1/domains/{name}/disks/{disk}/job",
        "blockjob --info: the disk's block job and its progress, or how the last one ended",
        response="BlockJobInfo",
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.blockjob_abort",
        "POST",
        "/v1/domains/{name}/disks/{disk}/job/abort",
        "blockjob --abort/--pivot: end the disk's block job, switching to the new image with pivot",
        request="BlockJobAbortRequest",
        response="BlockJobInfo",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.blockjob_speed",
        "POST",
        "/v1/domains/{name}/disks/{disk}/job/speed",
        "blockjob --bandwidth: the block job's speed limit",
        request="BlockJobSpeedRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.blockresize",
        "POST",
        "/v1/domains/{name}/disks/{disk}/resize",
        "blockresize: the running disk's new size, seen by the guest at once",
        request="BlockResizeRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.blkinfo",
        "GET",
        "/v1/domains/{name}/disks/{disk}/info",
        "domblkinfo: capacity, allocation and physical size of the disk's image",
        response="BlockInfo",
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.blkerrors",
        "GET",
        "/v1/domains/{name}/disk-errors",
        "domblkerror: the disks whose I/O stopped on an error",
        response="BlockErrorList",
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.iotune",
        "GET",
        "/v1/domains/{name}/disks/{device}/iotune",
        "blkdeviotune: a disk's I/O limits (by target or source path; the definition's with config)",
        response="IoTune",
        query={"config": "bool"},
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_iotune",
        "POST",
        "/v1/domains/{name}/disks/{device}/iotune",
        "blkdeviotune: set a disk's I/O limits (QEMU's throttling, <iotune>); unset ones are kept",
        request="IoTuneRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.iftune",
        "GET",
        "/v1/domains/{name}/interfaces/{device}/iftune",
        "domiftune: a NIC's <bandwidth> (by MAC or tap): rates in KiB/s, bursts in KiB, 0 unlimited",
        response="Tunables",
        query={"config": "bool"},
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_iftune",
        "POST",
        "/v1/domains/{name}/interfaces/{device}/iftune",
        "domiftune: set a NIC's inbound/outbound limits (traffic control on its tap) and/or its <bandwidth>",
        request="IfTuneRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.memtune",
        "GET",
        "/v1/domains/{name}/memtune",
        "memtune: the memory limits (KiB; 9007199254740991 is unlimited) of the running domain's cgroup, "
        "or of the definition with config",
        response="Tunables",
        query={"config": "bool"},
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_memtune",
        "POST",
        "/v1/domains/{name}/memtune",
        "memtune: set memory limits on the running domain's cgroup and/or <memtune>; unset ones are kept",
        request="MemtuneRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.schedinfo",
        "GET",
        "/v1/domains/{name}/schedinfo",
        "schedinfo: cpu_shares, global_period, global_quota of the running domain's cgroup (or config)",
        response="Tunables",
        query={"config": "bool"},
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.set_schedinfo",
        "POST",
        "/v1/domains/{name}/schedinfo",
        "schedinfo --set: CPU weight and bandwidth on the running domain's cgroup and/or <cputune>",
        request="SchedinfoRequest",
        response="Empty",
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
    Action(
        "domain.iothreads",
        "GET",
        "/v1/domains/{name}/iothreads",
        "iothreadinfo: each I/O thread's id and CPU affinity (of the definition with config)",
        response="IOThreadList",
        query={"config": "bool"},
        errors=_DOMAIN_RUN,
    ),
    # Networks
    Action("network.list", "GET", "/v1/networks", "every network's status", response="NetworkList"),
    Action(
        "network.define",
        "POST",
        "/v1/networks",
        "define a network from XML; with start, create it running (transient)",
        request="DefineRequest",
        response="NetworkStatus",
        mutating=True,
        errors=_DEFINE,
    ),
    Action(
        "network.info", "GET", "/v1/networks/{name}", "net-info", response="NetworkStatus", errors=_LOOKUP
    ),
    Action(
        "network.xml",
        "GET",
        "/v1/networks/{name}/xml",
        "net-dumpxml: the live definition, or the persistent one with inactive",
        response="XmlDocument",
        query={"inactive": "bool"},
        errors=_LOOKUP,
    ),
    Action(
        "network.leases",
        "GET",
        "/v1/networks/{name}/leases",
        "net-dhcp-leases, of one MAC if given",
        response="LeaseList",
        query={"mac": "str"},
        errors=(*_LOOKUP, "invalid-state"),
    ),
    Action(
        "network.undefine",
        "DELETE",
        "/v1/networks/{name}",
        "net-undefine",
        response="Removed",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "network.start",
        "POST",
        "/v1/networks/{name}/start",
        "net-start: bridge, firewall rules and dnsmasq",
        response="NetworkStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "network.destroy",
        "POST",
        "/v1/networks/{name}/destroy",
        "net-destroy",
        response="NetworkStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "network.autostart",
        "POST",
        "/v1/networks/{name}/autostart",
        "start the network with the daemon, or not",
        request="AutostartRequest",
        response="NetworkStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    # Secrets
    Action(
        "secret.list",
        "GET",
        "/v1/secrets",
        "secret-list: every secret, without values",
        response="SecretList",
    ),
    Action(
        "secret.define",
        "POST",
        "/v1/secrets",
        "secret-define: define or redefine a secret from its XML (persistent unless ephemeral)",
        request="DefineRequest",
        response="SecretInfo",
        mutating=True,
        errors=("xml-error", "unsupported-config", "operation-failed"),
    ),
    Action(
        "secret.info", "GET", "/v1/secrets/{uuid}", "a secret, by UUID", response="SecretInfo", errors=_LOOKUP
    ),
    Action(
        "secret.xml",
        "GET",
        "/v1/secrets/{uuid}/xml",
        "secret-dumpxml: the secret's XML (never its value)",
        response="XmlDocument",
        errors=_LOOKUP,
    ),
    Action(
        "secret.set_value",
        "POST",
        "/v1/secrets/{uuid}/value",
        "secret-set-value: the secret's value, base64 in the request",
        request="SecretValue",
        response="Empty",
        mutating=True,
        errors=(*_LOOKUP, "operation-failed"),
    ),
    Action(
        "secret.get_value",
        "GET",
        "/v1/secrets/{uuid}/value",
        "secret-get-value: the secret's value, base64 (refused for a private secret)",
        response="SecretValue",
        secret=True,
        errors=_LOOKUP,
    ),
    Action(
        "secret.undefine",
        "DELETE",
        "/v1/secrets/{uuid}",
        "secret-undefine: the secret and its value",
        response="SecretRef",
        mutating=True,
        errors=(*_LOOKUP, "operation-failed"),
    ),
    # Storage pools
    Action("pool.list", "GET", "/v1/pools", "every pool's status", response="PoolList"),
    Action(
        "pool.define",
        "POST",
        "/v1/pools",
        "define a pool from XML; with start, create it running (transient), built first with build",
        request="PoolDefineRequest",
        response="PoolStatus",
        mutating=True,
        errors=_DEFINE,
    ),
    Action("pool.info", "GET", "/v1/pools/{pool}", "pool-info", response="PoolStatus", errors=_LOOKUP),
    Action(
        "pool.xml",
        "GET",
        "/v1/pools/{pool}/xml",
        "pool-dumpxml: the live definition, or the persistent one with inactive",
        response="XmlDocument",
        query={"inactive": "bool"},
        errors=_LOOKUP,
    ),
    Action(
        "pool.undefine",
        "DELETE",
        "/v1/pools/{pool}",
        "pool-undefine",
        response="Removed",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "pool.build",
        "POST",
        "/v1/pools/{pool}/build",
        "pool-build: make the pool's folder",
        response="PoolStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "pool.start",
        "POST",
        "/v1/pools/{pool}/start",
        "pool-start",
        response="PoolStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "pool.destroy",
        "POST",
        "/v1/pools/{pool}/destroy",
        "pool-destroy",
        response="PoolStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "pool.refresh",
        "POST",
        "/v1/pools/{pool}/refresh",
        "pool-refresh",
        response="PoolStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    Action(
        "pool.autostart",
        "POST",
        "/v1/pools/{pool}/autostart",
        "start the pool with the daemon, or not",
        request="AutostartRequest",
        response="PoolStatus",
        mutating=True,
        errors=(*_LOOKUP, "invalid-state", "operation-failed"),
    ),
    # Storage volumes
    Action(
        "volume.find",
        "GET",
        "/v1/volumes",
        "the pool and name of the volume with this key or path",
        response="VolumeRef",
        query={"path": "str!"},
        errors=_LOOKUP,
    ),
    Action(
        "volume.list",
        "GET",
        "/v1/pools/{pool}/volumes",
        "vol-list",
        response="VolumeList",
        errors=(*_LOOKUP, "invalid-state"),
    ),
    Action(
        "volume.create",
        "POST",
        "/v1/pools/{pool}/volumes",
        "vol-create from XML; with input, vol-create-from (a copy of that volume)",
        request="VolumeCreateRequest",
        response="VolumeInfo",
        mutating=True,
        errors=(*_VOLUME, "xml-error", "unsupported-config", "already-exists"),
    ),
    Action(
        "volume.info",
        "GET",
        "/v1/pools/{pool}/volumes/{vol}",
        "vol-info",
        response="VolumeInfo",
        errors=(*_LOOKUP, "invalid-state", "image-error"),
    ),
    Action(
        "volume.xml",
        "GET",
        "/v1/pools/{pool}/volumes/{vol}/xml",
        "vol-dumpxml",
        response="XmlDocument",
        errors=(*_LOOKUP, "invalid-state", "image-error"),
    ),
    Action(
        "volume.delete",
        "DELETE",
        "/v1/pools/{pool}/volumes/{vol}",
        "vol-delete (refused while a running domain uses it)",
        response="VolumeRef",
        mutating=True,
        errors=_VOLUME,
    ),
    Action(
        "volume.clone",
        "POST",
        "/v1/pools/{pool}/volumes/{vol}/clone",
        "vol-clone into the same pool",
        request="VolumeCloneRequest",
        response="VolumeInfo",
        mutating=True,
        errors=(*_VOLUME, "already-exists"),
    ),
    Action(
        "volume.resize",
        "POST",
        "/v1/pools/{pool}/volumes/{vol}/resize",
        "vol-resize",
        request="ResizeRequest",
        response="VolumeInfo",
        mutating=True,
        errors=_VOLUME,
    ),
    Action(
        "volume.wipe",
        "POST",
        "/v1/pools/{pool}/volumes/{vol}/wipe",
        "vol-wipe with an algorithm (zero by default)",
        request="WipeRequest",
        response="VolumeInfo",
        mutating=True,
        errors=_VOLUME,
    ),
    Action(
        "volume.upload",
        "GET",
        "/v1/pools/{pool}/volumes/{vol}/upload",
        "vol-upload: content streamed in, at offset, at most length bytes (0: to the end)",
        response=None,
        query={"offset": "int", "length": "int"},
        mutating=True,
        stream="upload",
        errors=_VOLUME,
    ),
    Action(
        "volume.download",
        "GET",
        "/v1/pools/{pool}/volumes/{vol}/download",
        "vol-download: content streamed out, holes skipped with sparse",
        response=None,
        query={"offset": "int", "length": "int", "sparse": "bool"},
        secret=True,
        stream="download",
        errors=_VOLUME,
    ),
    # Snapshots
    Action(
        "snapshot.list",
        "GET",
        "/v1/domains/{name}/snapshots",
        "snapshot-list: the domain's snapshots, filtered as virsh's flags say (from: the children of "
        "that snapshot, current: of the current one; descendants: all below it)",
        response="SnapshotList",
        query={
            "roots": "bool",
            "leaves": "bool",
            "no_leaves": "bool",
            "from": "str",
            "current": "bool",
            "descendants": "bool",
            "inactive": "bool",
            "active": "bool",
            "disk_only": "bool",
            "internal": "bool",
            "external": "bool",
            "metadata": "bool",
            "no_metadata": "bool",
            "topological": "bool",
        },
        errors=_LOOKUP,
    ),
    Action(
        "snapshot.create",
        "POST",
        "/v1/domains/{name}/snapshots",
        "snapshot-create: take a snapshot described by domainsnapshot XML (internal with the memory "
        "of a running domain, of the disks of a shut-off one, or external disk-only overlays); with "
        "redefine, (re)define its metadata only",
        request="SnapshotCreateRequest",
        response="SnapshotInfo",
        mutating=True,
        errors=(*_DOMAIN_RUN, "xml-error", "unsupported-config"),
    ),
    Action(
        "snapshot.info",
        "GET",
        "/v1/domains/{name}/snapshots/{snapshot}",
        "snapshot-info",
        response="SnapshotInfo",
        errors=_LOOKUP,
    ),
    Action(
        "snapshot.xml",
        "GET",
        "/v1/domains/{name}/snapshots/{snapshot}/xml",
        "snapshot-dumpxml (the domain's passwords only with security_info)",
        response="XmlDocument",
        query={"security_info": "bool"},
        secret="security_info",
        errors=_LOOKUP,
    ),
    Action(
        "snapshot.current",
        "GET",
        "/v1/domains/{name}/current-snapshot",
        "snapshot-current: the current snapshot",
        response="SnapshotInfo",
        errors=_LOOKUP,
    ),
    Action(
        "snapshot.set_current",
        "POST",
        "/v1/domains/{name}/snapshots/{snapshot}/current",
        "snapshot-current --snapshotname: make this snapshot the current one",
        response="SnapshotInfo",
        mutating=True,
        errors=_LOOKUP,
    ),
    Action(
        "snapshot.revert",
        "POST",
        "/v1/domains/{name}/snapshots/{snapshot}/revert",
        "snapshot-revert: the domain back to the snapshot's state (running or paused as it was, or as "
        "asked); force restarts a QEMU whose definition changed since",
        request="SnapshotRevertRequest",
        response="DomainSummary",
        mutating=True,
        errors=(*_DOMAIN_RUN, "unsupported-config"),
    ),
    Action(
        "snapshot.delete",
        "DELETE",
        "/v1/domains/{name}/snapshots/{snapshot}",
        "snapshot-delete: with children its descendants too, with children_only them alone; metadata "
        "forgets the snapshots but leaves their state in the images",
        response="SnapshotDeleted",
        query={"children": "bool", "children_only": "bool", "metadata": "bool"},
        mutating=True,
        errors=_DOMAIN_RUN,
    ),
)

BY_NAME: dict[str, Action] = {action.name: action for action in ACTIONS}

#: Responses that are not JSON: the type's name → the reply's Content-Type.
TEXT_RESPONSES = {"MetricsText": "text/plain; version=0.0.4; charset=utf-8"}
#: Paths an action is also served at, outside /v1 (where a tool looks for it: Prometheus' /metrics).
ALIASES = {"host.metrics": "/metrics"}


def error_codes(action: Action) -> list[str]:
    """Every error code ``action`` may return: its own, and those of any request."""
    codes = ["invalid-argument", *action.errors]
    if action.mutating or action.secret:
        codes.append("access-denied")
    codes.append("internal")
    return list(dict.fromkeys(codes))

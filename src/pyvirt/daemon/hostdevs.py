"""Host devices given to a domain's QEMU (``<hostdev>`` of type pci, usb and mdev), as libvirt 9.0's
virhostdev.c and qemu_hostdev.c give them, at start and by hot-plug.

At start, before anything changes (:func:`check`), each device is looked up and judged: a PCI device
must exist, have an IOMMU group (VFIO passes whole groups) whose other endpoints are on ``vfio-pci`` or
no driver (or are this domain's own hostdevs), and, with ``managed='no'``, be on ``vfio-pci`` already;
a mediated device must exist and have its group; a USB device is found by vendor and product (and bus
and device when given) in sysfs, and its bus and device are written into the running definition, as
libvirt's are. VFIO needs ``/dev/vfio/vfio``. A device another domain holds is refused by name, and
so is a group another domain's device is in (the kernel gives a group to one QEMU).

Then (:func:`prepare`, after the confinement's): a managed PCI device is detached from its host
driver to ``vfio-pci`` (the driver it had kept in the run record, and reattached to at stop, or when
the start fails); QEMU's user gets the group nodes ``/dev/vfio/GROUP`` and the USB nodes
``/dev/bus/usb/BBB/DDD`` (qemu/ownership.py, given back at stop), and QEMU's locked-memory limit
(RLIMIT_MEMLOCK) is raised as libvirt raises it for VFIO (and vDPA interfaces): the guest's memory
plus 1 GiB, or the ``<memtune><hard_limit>`` when one is set (``<memoryBacking><locked/>``: no limit).

Hot-plug (:func:`plug`) takes the same steps for one device and ``device_add``s it (QEMU 7.2's
``vfio-pci`` takes no descriptor: it opens the nodes handed over), raising a running QEMU's memlock
limit with prlimit; its removal, once QEMU says it is gone (:func:`unplugged`), reattaches the device,
gives its nodes back and, when the last VFIO device a plug raised the limit for is gone, lowers it
back (libvirt's way).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import resource
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from pyvirt.conf import hostdev as hostdev_conf
from pyvirt.conf import memory_backing
from pyvirt.conf.hostdev import HostdevConfig
from pyvirt.errors import InvalidState, OperationFailed, PyvirtError, UnsupportedConfig
from pyvirt.qemu import ownership
from pyvirt.qemu.host_devices import GROUP_DRIVERS, VFIO_DRIVER, HostDevices
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess, RunRecord

log = logging.getLogger(__name__)

GIB_KIB = 1024 * 1024


@dataclass
class Claim:
    """One host device a running domain holds; kept in its run record (``hostdevs``)."""

    type: str  # pci | usb | mdev
    name: str  # 0000:06:12.5 | 001:002 (bus:device) | the mdev's UUID
    alias: str = ""  # its device id in QEMU
    managed: bool = False
    group: str | None = None  # pci, mdev: the IOMMU group
    driver: str | None = None  # pci: the host driver it had before the start
    bound: bool = False  # pci: moved to vfio-pci for this run (reattached at stop)
    nodes: list[str] = field(default_factory=list)  # the device nodes handed to QEMU's user

    @property
    def label(self) -> str:
        kind = {"pci": "PCI device", "usb": "USB device", "mdev": "mediated device"}[self.type]
        return f"{kind} {self.name}"


class HostdevState:
    """The daemon's host devices: where they are (``host``, a test's tree in unit tests) and which
    running (or starting) domain holds each device and each IOMMU group."""

    def __init__(self, host: HostDevices | None = None) -> None:
        self.host = host or HostDevices()
        self.holders: dict[str, str] = {}  # "pci:NAME" / "usb:B:D" / "mdev:UUID" / "group:N" → domain

    def adopt(self, record: RunRecord) -> None:
        """A domain left running by an earlier daemon still holds its devices."""
        for claim in claims_of(record):
            for key in _keys(claim):
                self.holders[key] = record.name

    def refuse_held(self, claim: Claim, name: str) -> None:
        """Refused by name: another domain than ``name`` holds the device of ``claim`` or its group."""
        for key in _keys(claim):
            other = self.holders.get(key)
            if other is not None and other != name:
                what = (
                    claim.label if key == _keys(claim)[0] else f"IOMMU group {claim.group} of {claim.label}"
                )
                raise InvalidState(
                    f"Requested operation is not valid: {what} is in use by driver QEMU, domain {other}"
                )

    def take(self, claims: list[Claim], name: str) -> None:
        """Mark ``claims`` as held by ``name`` (refused if another domain took one meanwhile)."""
        for claim in claims:
            self.refuse_held(claim, name)
        for claim in claims:
            for key in _keys(claim):
                self.holders[key] = name

    def drop(self, claims: list[Claim], name: str, keep: list[Claim] | None = None) -> None:
        """Forget what ``name`` held of ``claims`` (not the groups its ``keep`` claims still use)."""
        kept = {key for claim in keep or [] for key in _keys(claim)}
        for claim in claims:
            for key in _keys(claim):
                if key not in kept and self.holders.get(key) == name:
                    del self.holders[key]


def _keys(claim: Claim) -> list[str]:
    device = f"{claim.type}:{claim.name}"
    return [device, f"group:{claim.group}"] if claim.group is not None else [device]


def claims_of(record: RunRecord) -> list[Claim]:
    return [Claim(**data) for data in record.hostdevs]


def passed(dom: Domain) -> list[HostdevConfig]:
    """The hostdevs this module hands over (not iSCSI LUNs: nothing of the host's)."""
    return [dev for dev in dom.devices.hostdevs if dev.iscsi is None]


def needs_vfio(dom: Domain) -> bool:
    return any(dev.type in ("pci", "mdev") for dev in passed(dom))


# ----------------------------------------------------------------------------------------- checks


def check(state: HostdevState, name: str, dom: Domain) -> list[Claim]:
    """The devices ``dom`` takes, each judged as the module docstring says; nothing changes on the host
    (a USB device's bus and device go into ``dom``). Refused by name when one cannot be given."""
    host = state.host
    devs = passed(dom)
    if not devs:
        _check_memlock(dom)  # vDPA interfaces want it too
        return []
    own_pci = {hostdev_conf.host_name(dev) for dev in devs if dev.type == "pci"}
    claims: list[Claim] = []
    for index, dev in enumerate(dom.devices.hostdevs):
        if dev.iscsi is not None:
            continue
        if dev.type == "pci":
            claim = _check_pci(host, dev, own_pci)
        elif dev.type == "mdev":
            claim = _check_mdev(host, dev)
        else:
            claim = _check_usb(host, dev)
        claim.alias = dev.alias or f"hostdev{index}"
        state.refuse_held(claim, name)
        if any((c.type, c.name) == (claim.type, claim.name) for c in claims):
            raise UnsupportedConfig(f"unsupported configuration: {claim.label} is given to the domain twice")
        claims.append(claim)
    _check_memlock(dom)
    return claims


def _check_pci(host: HostDevices, dev: HostdevConfig, own: set[str]) -> Claim:
    name = hostdev_conf.host_name(dev)
    if not host.pci_exists(name):
        raise UnsupportedConfig(f"unsupported configuration: host PCI device {name} does not exist")
    if not host.vfio_container().exists():
        raise UnsupportedConfig(
            f"unsupported configuration: host PCI device {name}: no VFIO on this host "
            f"({host.vfio_container()} is missing: load the vfio-pci module)"
        )
    group = host.pci_group(name)
    if group is None:
        raise UnsupportedConfig(
            f"unsupported configuration: host PCI device {name} has no IOMMU group: the host's IOMMU "
            "is off (intel_iommu=on or amd_iommu=on on the kernel command line)"
        )
    managed = dev.managed is not False  # libvirt's default: managed
    driver = host.pci_driver(name)
    if not managed and driver != VFIO_DRIVER:
        on = repr(driver) if driver else "no driver"
        raise UnsupportedConfig(
            f"unsupported configuration: host PCI device {name} is on {on}, not on {VFIO_DRIVER}: with "
            "managed='no' it must be detached first (virsh nodedev-detach)"
        )
    for member in host.group_devices(group):
        if member == name or member in own or host.pci_is_bridge(member):
            continue
        other = host.pci_driver(member)
        if other is not None and other not in GROUP_DRIVERS:
            raise UnsupportedConfig(
                f"unsupported configuration: PCI device {member}, in IOMMU group {group} with host PCI "
                f"device {name}, is on driver '{other}': every endpoint of the group must be on "
                f"{VFIO_DRIVER} or on no driver (detach it with virsh nodedev-detach, or give it to the "
                "domain too)"
            )
    return Claim("pci", name, managed=managed, group=group, driver=driver)


def _check_mdev(host: HostDevices, dev: HostdevConfig) -> Claim:
    uuid = dev.uuid or ""
    if not host.mdev_dir(uuid).is_dir():
        raise UnsupportedConfig(f"unsupported configuration: mediated device {uuid} does not exist")
    if not host.vfio_container().exists():
        raise UnsupportedConfig(
            f"unsupported configuration: mediated device {uuid}: no VFIO on this host "
            f"({host.vfio_container()} is missing)"
        )
    group = host.mdev_group(uuid)
    if group is None:
        raise UnsupportedConfig(f"unsupported configuration: mediated device {uuid} has no IOMMU group")
    return Claim("mdev", uuid, group=group)


def _check_usb(host: HostDevices, dev: HostdevConfig) -> Claim:
    bus, device = dev.source.get("bus"), dev.source.get("device")
    if dev.vendor is None:
        assert bus is not None and device is not None
        if not host.usb_node(bus, device).exists():
            raise UnsupportedConfig(
                f"unsupported configuration: host USB device {host.usb_node(bus, device)} does not exist"
            )
    else:
        found = host.find_usb(dev.vendor, dev.product, bus, device)
        bus, device = found.bus, found.device
        if not host.usb_node(bus, device).exists():
            raise OperationFailed(
                f"operation failed: USB device {found.vendor:04x}:{found.product:04x} has no device node "
                f"{host.usb_node(bus, device)}"
            )
        dev.source = {"bus": bus, "device": device}  # into the running definition, as libvirt's
    return Claim("usb", f"{bus:03d}:{device:03d}", nodes=[str(host.usb_node(bus, device))])


def _check_memlock(dom: Domain) -> None:
    want = memlock_bytes(dom)
    ceiling = memlock_ceiling()
    if want is not None and ceiling is not None and ceiling < want:
        what = "<hostdev>: VFIO" if needs_vfio(dom) else "<interface type='vdpa'>: vDPA"
        raise UnsupportedConfig(
            f"unsupported configuration: {what} needs QEMU's locked-memory limit at {want >> 10} KiB, and "
            f"this host does not let pyvirtd raise it (RLIMIT_MEMLOCK {ceiling >> 10} KiB, and no "
            "CAP_SYS_RESOURCE)"
        )


def memlock_ceiling() -> int | None:
    """The highest RLIMIT_MEMLOCK the daemon can give QEMU; None: any."""
    if memory_backing.can_lift_memlock():
        return None
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return None if hard == resource.RLIM_INFINITY else hard


def memlock_bytes(dom: Domain) -> int | None:
    """QEMU's RLIMIT_MEMLOCK for ``dom``'s VFIO devices and vDPA interfaces (both pin all guest memory
    for DMA), as libvirt 9.0 sets it (x86): the ``<memtune><hard_limit>`` if set, else all of the
    guest's memory plus 1 GiB (for the MMIO regions); None when no device needs it, or when
    ``<locked/>`` lifts the limit altogether."""
    vdpa = any(nic.type == "vdpa" for nic in dom.devices.interfaces)
    if not (needs_vfio(dom) or vdpa) or memory_backing.of(dom).locked:
        return None
    if dom.memtune is not None and dom.memtune.hard_limit is not None:
        return dom.memtune.hard_limit * 1024
    return (dom.memory_kib + GIB_KIB) * 1024


# -------------------------------------------------------------------------------------- the start


async def prepare(
    reg: DomainRegistry, dom: Domain, record: RunRecord, claims: list[Claim], revert: Revert
) -> None:
    """Hand ``claims`` (from :func:`check`) to the domain's QEMU: the devices marked as held, managed
    PCI devices moved to vfio-pci, the device nodes handed to QEMU's user, the memlock limit in
    ``record``. Each step is undone through ``revert`` if the start fails."""
    if (limit := memlock_bytes(dom)) is not None:
        record.memlock_bytes = limit
    if not claims:
        return
    state, name = reg.hostdevs, dom.name
    state.take(claims, name)
    revert.add(lambda: state.drop(claims, name), f"let go of the host devices of {name}")
    record.hostdevs = []
    await _attach(reg, record, claims, revert)
    for dev, claim in zip(passed(dom), claims, strict=True):
        dev.alias = claim.alias


async def _attach(reg: DomainRegistry, record: RunRecord, claims: list[Claim], revert: Revert) -> None:
    """Detach managed PCI devices to vfio-pci and hand the nodes of ``claims`` over, in ``record``."""
    host = reg.hostdevs.host
    for claim in claims:
        if claim.type == "pci" and claim.managed and claim.driver != VFIO_DRIVER:
            revert.add(partial(host.reattach, claim.name, claim.driver), f"reattach {claim.label}")
            await asyncio.to_thread(host.bind_vfio, claim.name)  # a driver's unbind may take a while
            claim.bound = True
        if claim.group is not None:
            node = host.group_node(claim.group)
            if not node.exists():
                raise OperationFailed(
                    f"operation failed: {claim.label}: its VFIO group node {node} is missing"
                )
            claim.nodes = [str(node)]
        record.hostdevs.append(asdict(claim))
    ident = reg.confinement.ident
    if ident is None:
        return
    container = host.vfio_container()
    if any(c.group is not None for c in claims) and not ownership.allowed(
        os.stat(container), ident, ownership.R | ownership.W
    ):
        raise UnsupportedConfig(
            f"unsupported configuration: {container} is not readable and writable by QEMU's user "
            f"'{ident.user}' (mode {os.stat(container).st_mode & 0o777:o}; a stock host has it 666)"
        )
    files = sorted({node for claim in claims for node in claim.nodes})
    taken = reg.confinement.hand_over(record.name, record, [(node, True) for node in files], "device node")
    opened = [path for path in files if path not in record.access]
    for path in opened:  # what QEMU may open (qemu/landlock.py), as the start's other device nodes
        record.access[path] = "rw"
    revert.add(lambda: reg.confinement.give_back(record, taken), "give back the device nodes")
    revert.add(lambda: [record.access.pop(path, None) for path in opened], "forget the device nodes")


def release(reg: DomainRegistry, record: RunRecord) -> None:
    """The domain's QEMU has exited: its managed PCI devices go back to their host drivers, and the
    devices are free again (their nodes are given back with the domain's other files)."""
    claims = claims_of(record)
    for claim in claims:
        if claim.bound:
            reg.hostdevs.host.reattach(claim.name, claim.driver)
    reg.hostdevs.drop(claims, record.name)
    record.hostdevs = []


# ---------------------------------------------------------------------------------------- hot-plug


async def plug(reg: DomainRegistry, obj: DomainObject, trial: Domain) -> str:
    """Plug the last hostdev of ``trial`` (the running definition with it, checked, its address given)
    into ``obj``'s QEMU (``obj.lock`` held); returns its device id."""
    from pyvirt.qemu.hotplug import pci_placement

    live, proc = obj.live, obj.proc
    assert live is not None and proc is not None
    dev = trial.devices.hostdevs[-1]
    if dev.iscsi is not None:
        raise UnsupportedConfig(
            "unsupported configuration: an iSCSI <hostdev> cannot be attached to a running domain yet "
            "(use --config for the next start)"
        )
    if dev.type == "usb" and not any(c.type == "usb" and c.model != "none" for c in live.devices.controllers):
        raise UnsupportedConfig(
            "unsupported configuration: a USB <hostdev> needs a USB controller, which the running domain "
            "does not have"
        )
    own = claims_of(proc.record)
    used = {c.alias for c in own} | {d.alias for d in live.devices.hostdevs if d.alias}
    alias = dev.alias or next(f"hostdev{n}" for n in range(len(used) + 1) if f"hostdev{n}" not in used)
    if alias in used:
        raise OperationFailed(f"operation failed: device alias '{alias}' is already used by the domain")
    dev.alias = alias
    alone = copy.deepcopy(trial)
    alone.devices.hostdevs = [dev]
    state = reg.hostdevs
    claims = check(state, obj.name, alone)  # a group the domain holds already it may use again
    claim = claims[0]
    if any((c.type, c.name) == (claim.type, claim.name) for c in own):
        raise InvalidState(f"Requested operation is not valid: {claim.label} is already given to the domain")
    index = len(live.devices.hostdevs)
    driver, props = hostdev_conf.device_props(dev, index)
    if dev.type == "usb":
        place: dict[str, str] = {"bus": "usb.0"}
        if dev.address is not None and "port" in dev.address.attrs:
            place["port"] = dev.address.attrs["port"]
    else:
        place = pci_placement(dev.address, live)
    args = {"driver": driver, **place, **{k: v for k, v in props.items() if v is not None}}
    with Revert() as revert:
        state.take(claims, obj.name)
        revert.add(lambda: state.drop(claims, obj.name, keep=own), f"let go of {claim.label}")
        before = len(proc.record.hostdevs)
        revert.add(lambda: proc.record.hostdevs.__delitem__(slice(before, None)), "forget the claim")
        await _attach(reg, proc.record, claims, revert)
        _raise_memlock(proc, trial, revert)
        await proc.monitor.execute("device_add", args)
        revert.success()
    live.devices.hostdevs.append(dev)
    reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "device-added", alias)
    return alias


def _raise_memlock(proc: QemuProcess, dom: Domain, revert: Revert) -> None:
    """A running QEMU's locked-memory limit raised for a VFIO device plugged in (libvirt's prlimit)."""
    want = memlock_bytes(dom)
    if want is None or proc.record.memlock_bytes >= want or proc.record.memlock:
        return
    try:
        before = get_memlock(proc.pid)
        set_memlock(proc.pid, (want, want))
    except OSError as err:
        raise OperationFailed(
            f"operation failed: cannot raise the locked-memory limit of QEMU (pid {proc.pid}) to "
            f"{want >> 10} KiB for VFIO: {err.strerror}"
        ) from err
    old = proc.record.memlock_bytes
    proc.record.memlock_bytes = want
    if proc.record.memlock_before is None:
        proc.record.memlock_before = list(before)

    def lower() -> None:
        proc.record.memlock_bytes = old
        proc.record.memlock_before = None if old == 0 else proc.record.memlock_before
        set_memlock(proc.pid, before)

    revert.add(lower, "lower QEMU's locked-memory limit")


def get_memlock(pid: int) -> tuple[int, int]:
    return resource.prlimit(pid, resource.RLIMIT_MEMLOCK)


def set_memlock(pid: int, limits: tuple[int, int]) -> None:
    resource.prlimit(pid, resource.RLIMIT_MEMLOCK, limits)


def same_device(a: HostdevConfig, b: HostdevConfig) -> bool:
    """Whether ``a`` and ``b`` name the same host device (libvirt matches a hostdev by its source)."""
    if a.type != b.type or a.iscsi is not None or b.iscsi is not None:
        return False
    if a.type == "usb":  # what both name must match, and they must name something alike
        by_id = a.vendor is not None and b.vendor is not None
        by_bus = bool(a.source) and bool(b.source)
        if by_id and (a.vendor, a.product) != (b.vendor, b.product):
            return False
        return (by_id or by_bus) and (not by_bus or a.source == b.source)
    return hostdev_conf.host_name(a) == hostdev_conf.host_name(b)


def find(live: Domain, dev: HostdevConfig) -> str:
    """The device id of the plugged hostdev ``dev`` names: by alias, else by its host device."""
    for plugged in passed(live):
        if plugged.alias and (
            plugged.alias == dev.alias or (dev.alias is None and same_device(plugged, dev))
        ):
            return plugged.alias
    raise OperationFailed("operation failed: matching <hostdev> device not found in the running domain")


async def unplugged(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, dev_id: str) -> None:
    """QEMU's DEVICE_DELETED of a hostdev (``obj.lock`` held): the device goes back to the host, its
    nodes are given back (a group node another of its devices uses stays), its live entry goes."""
    live = obj.live
    if live is None:
        return
    index = next((i for i, d in enumerate(live.devices.hostdevs) if d.alias == dev_id), None)
    if index is None:
        return
    del live.devices.hostdevs[index]
    claims = claims_of(proc.record)
    gone = [c for c in claims if c.alias == dev_id]
    kept = [c for c in claims if c.alias != dev_id]
    proc.record.hostdevs = [asdict(c) for c in kept]
    still = {node for c in kept for node in c.nodes}
    for claim in gone:
        if claim.bound:
            reg.hostdevs.host.reattach(claim.name, claim.driver)
        try:
            reg.confinement.give_back(proc.record, [n for n in claim.nodes if n not in still])
        except PyvirtError as err:
            log.warning("domain %s: giving back the nodes of %s: %s", obj.name, claim.label, err)
    reg.hostdevs.drop(gone, obj.name, keep=kept)
    before = proc.record.memlock_before
    if before is not None and not any(c.group is not None for c in kept):  # the last VFIO device a
        try:  # plug raised the limit for: back to what it was, as libvirt
            set_memlock(proc.pid, (before[0], before[1]))
            proc.record.memlock_bytes, proc.record.memlock_before = 0, None
        except OSError as err:
            log.warning("domain %s: lowering QEMU's locked-memory limit: %s", obj.name, err.strerror)
    reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "device-removed", dev_id)


def refuse_migration(dom: Domain) -> None:
    """A save (and a memory snapshot) is a migration to a file: refused for a domain with VFIO devices,
    whose state QEMU cannot save (libvirt's words; USB devices may be saved)."""
    for dev in passed(dom):
        if dev.type in ("pci", "mdev"):
            raise InvalidState(
                "Requested operation is not valid: cannot migrate a domain with "
                f"<hostdev mode='subsystem' type='{dev.type}'>"
            )

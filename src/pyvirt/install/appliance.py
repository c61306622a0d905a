"""``pyvirt install --import --disk APPLIANCE``: an OVA or OVF's machine turned into install options.

virt-install has no appliance import. ``virt-v2v -i ova`` has: it reads the same OVF facts (name,
memory, vCPUs, firmware, disks and their controllers, NICs, put on ``default`` unless mapped) and also
rewrites the guest for virtio devices, so it gives virtio buses; pyvirt does not touch the guest, so
it keeps the appliance's buses and NIC models instead. pyvirt reads the package with its one OVF
reader, :mod:`pyvirt.guest.ovf` (as ``template import`` does), and rewrites the request before it is
planned (:func:`rewrite`):

- the appliance's ``--disk`` becomes one disk per OVF disk, each a new image (``NAME.qcow2``,
  ``NAME-1.qcow2``... in the pool its ``pool=`` names, else the default pool) that the daemon
  converts out of the package through the image library (:func:`pyvirt.guest.ovf.convert_disks`);
- the OVF's CPUs, memory, firmware, disk buses and NICs become the defaults of ``--vcpus``,
  ``--memory``, ``--boot uefi``, each disk's ``bus=`` and ``--network`` (one NIC per OVF adapter, on
  the network of the OVF's name when the host has one, else on ``default``); the machine is the one a
  template made from the appliance gets (:attr:`pyvirt.guest.hardware.Hardware.machine`: q35 for EFI,
  the ``pc`` machine for BIOS; IDE disks become SATA on q35).

Options given on the command line win, as they do over the OS's defaults in virt-install: a
``--network`` replaces all the OVF's NICs, ``--machine`` its machine, and the suboptions of the
appliance's ``--disk`` (``bus= cache= discard= io= readonly= format=`` (qcow2 or raw) ``pool=``)
apply to every disk made from it (``boot.order=`` to the first). ``size=``, ``vol=``,
``backing_store=``, ``target=``, ``sparse=no`` and ``device=`` other than disk are refused by name.
What the appliance had and the domain will not (a sound card, a CD drive...) is said in the notes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.errors import InvalidArgument, UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.guest.ovf import Appliance, OvfDisk
    from pyvirt.install.build import Host

_KEPT = ("cache", "discard", "io", "readonly")
_REFUSED = {
    "size": "the OVF gives each disk's capacity",
    "vol": "vol= names an existing volume, and the appliance's disks are made anew",
    "backing_store": "the appliance's disks are converted whole",
    "target": "the appliance may hold several disks; their targets follow the bus",
}


@dataclass(frozen=True)
class NewDisk:
    """One disk of the appliance, to convert to ``path``."""

    source: OvfDisk
    path: str
    pool: str | None  # the pool ``path`` is a volume of, when it is in one
    format: str  # qcow2 or raw
    capacity: int


@dataclass
class Imported:
    """The request rewritten (``body``) and what the daemon converts before it defines the domain."""

    body: dict[str, Any]
    appliance: Appliance
    disks: list[NewDisk] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def appliance_paths(body: dict[str, Any], host: Host) -> list[str]:
    """The ``--disk path=`` of the request that are OVA/OVF packages (the daemon probed them)."""
    return [
        str(sub["path"])
        for sub in body.get("disk") or []
        if sub.get("path") and host.formats.get(str(sub["path"])) == "appliance"
    ]


def rewrite(body: dict[str, Any], host: Host, app: Appliance) -> Imported:
    """The request with the appliance ``app`` (its ``--disk``) mapped; see the module docstring."""
    if not body.get("import_install"):
        raise InvalidArgument(
            f"--disk {app.path}: an OVA/OVF appliance is installed with --import (it holds the guest's "
            "disks and machine)"
        )
    if not app.disks:
        raise InvalidArgument(f"--disk {app.path}: the appliance has no disk")
    out = dict(body)
    result = Imported(out, app)
    result.notes += [f"not carried over from the appliance: {note}" for note in app.notes]
    name = out.get("name") or _default_name(app.name, host.domains)
    out["name"] = name
    hardware = app.hardware()
    if "memory" not in out and app.memory:
        out["memory"] = {"memory": f"{app.memory / (1 << 20):.10g}"}
    if "vcpus" not in out and app.vcpus:
        out["vcpus"] = {"vcpus": str(app.vcpus)}
    boot = dict(out.get("boot") or {})
    if hardware.firmware == "efi" and "uefi" not in boot and "kernel" not in boot:
        if not host.uefi:
            raise UnsupportedConfig(
                f"--disk {app.path}: the appliance boots with EFI firmware, and this host has no UEFI "
                "firmware for x86_64 (Debian: ovmf)"
            )
        boot["uefi"] = "on"
        out["boot"] = boot
    machine = out.get("machine") or ("q35" if hardware.machine == "q35" else host.pc_machine)
    out["machine"] = machine
    q35 = machine == "q35" or str(machine).startswith("pc-q35")
    if "network" not in out:
        out["network"] = _networks(app, host, result.notes)
    subs: list[dict[str, str]] = []
    used: set[str] = set()
    for sub in out.get("disk") or []:
        if sub.get("path") != app.path:
            subs.append(sub)
            continue
        if result.disks:
            raise InvalidArgument(f"--disk {app.path}: the appliance is given twice")
        subs += _disks(app, dict(sub), name, host, q35, used, result)
    out["disk"] = subs
    for disk in result.disks:  # the plan takes them as existing images, as they will be
        host.existing[disk.path] = disk.capacity
        host.formats[disk.path] = disk.format
    return result


def _default_name(wanted: str, taken: list[str]) -> str:
    """The appliance's name as a domain name (another character than a letter, digit, ``-``, ``_``
    or ``.`` becomes ``-``), made unique as virt-install makes its names: ``-2``, ``-3``..."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", wanted).strip("-.") or "appliance"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _networks(app: Appliance, host: Host, notes: list[str]) -> list[dict[str, str]]:
    if not app.nics:
        return [{"type": "none"}]
    subs: list[dict[str, str]] = []
    for index, nic in enumerate(app.nics, 1):
        if nic.network and nic.network in host.networks:
            subs.append({"network": nic.network, "model": nic.model})
            continue
        if "default" in host.networks:
            subs.append({"network": "default", "model": nic.model})
            where = "the network default"
        else:
            subs.append({"type": "user", "model": nic.model})
            where = "user networking (the host has no network default)"
        if nic.network:
            notes.append(
                f"NIC {index}: the appliance's network {nic.network!r} is not one of this host's: on {where}"
            )
    return subs


def _disks(
    app: Appliance, sub: dict[str, str], name: str, host: Host, q35: bool, used: set[str], result: Imported
) -> list[dict[str, str]]:
    for key, why in _REFUSED.items():
        if key in sub:
            raise UnsupportedConfig(f"--disk {app.path},{key}=: not with an appliance ({why})")
    if sub.get("device", "disk") != "disk":
        raise UnsupportedConfig(f"--disk {app.path},device={sub['device']}: an appliance's disks are disks")
    if "sparse" in sub:
        from pyvirt.install import syntax

        if not syntax.boolean("disk", "sparse", sub["sparse"]):
            raise UnsupportedConfig(f"--disk {app.path},sparse=no: the appliance's disks are made sparse")
    fmt = sub.get("format", "qcow2")
    if fmt not in ("qcow2", "raw"):
        raise UnsupportedConfig(f"--disk {app.path},format={fmt}: the disks are converted to qcow2 or raw")
    pool = sub.get("pool")
    if pool is not None and pool not in host.pools:
        raise InvalidArgument(f"--disk {app.path},pool={pool}: no storage pool of that name")
    pool_name = pool or ("default" if "default" in host.pools else None)
    folder = host.pools[pool_name].path if pool_name else host.default_pool_path
    out: list[dict[str, str]] = []
    for index, disk in enumerate(app.disks):
        path = _free_path(folder, name, fmt, host, used)
        bus = sub.get("bus") or disk.bus
        if bus == "ide" and q35:
            bus = "sata"
            result.notes.append(f"disk {disk.disk_id}: IDE becomes SATA (the q35 machine has no IDE)")
        new = {"path": path, "bus": bus, **{k: sub[k] for k in _KEPT if k in sub}}
        if index == 0 and "boot.order" in sub:
            new["boot.order"] = sub["boot.order"]
        out.append(new)
        result.disks.append(NewDisk(disk, path, pool_name, fmt, disk.capacity))
    return out


def _free_path(folder: str, name: str, fmt: str, host: Host, used: set[str]) -> str:
    """``folder/NAME.FMT``, else ``NAME-1.FMT``... (virt-install's naming of new disks)."""
    candidate, n = f"{name}.{fmt}", 0
    while (
        os.path.join(folder, candidate) in host.existing
        or candidate in used
        or os.path.lexists(os.path.join(folder, candidate))
    ):
        n += 1
        candidate = f"{name}-{n}.{fmt}"
    used.add(candidate)
    return os.path.join(folder, candidate)


def convert(imported: Imported) -> list[Path]:
    """Convert the appliance's disks to the paths :func:`rewrite` chose (the caller removes them if a
    later step fails); the manifest's digests are checked as the disks are read."""
    from pyvirt.guest.ovf import convert_disks

    return convert_disks(
        imported.appliance,
        targets=[(Path(d.path), d.format) for d in imported.disks],
    )

"""The block nodes of a running domain's disks: which nodes each disk has, and the files behind the
ones plugged while it runs.

QEMU runs unprivileged and Landlock-confined to the files it was started with, so a disk that joins
later (hot-plugged, or a medium inserted into a cdrom) is opened here, by the daemon: each image of
its backing chain, handed over as an fdset (``add-fd``), then one ``blockdev-add`` per layer from the
base up, each format node naming its backing node, the storage and format nodes named as the command
line names them (``pyvirt-N-storage`` under ``pyvirt-N-format``). The files are handed to the QEMU
user in the run record (:meth:`Confinement.hand_over`), so they are given back at the latest when the
domain stops; an unplug deletes the nodes, drops the fdsets and gives the files back at once. A
given ``<backingStore>`` chain (conf.backing_chain) is plugged as given, with each layer's
``<metadata_cache>``. A network disk's source and a given layer on a server (QEMU connects to them
itself) get their credentials and cookies as secret objects and their NBD TLS client credentials
object, as at start, added over QMP before the nodes and deleted after them.

The run record keeps, per disk target, the node prefixes (:attr:`RunRecord.blockdevs`), its fdsets
and the files handed over; the disks a domain was started with are recorded by :func:`record_disks`
when it starts (node ``pyvirt-N`` for its N-th disk, QEMU device id as the live alias).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pyvirt.conf.domain import BackingLayer, DiskConfig, Domain
from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.qemu.command import disk_device_id
from pyvirt.qemu.hotplug import disk_nodes

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.monitor import Monitor
    from pyvirt.qemu.process import QemuProcess, RunRecord

log = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[None]]


def has_media(disk: DiskConfig) -> bool:
    return bool(disk.source or disk.source_volume or disk.source_host or disk.net)


def record_disks(live: Domain, record: RunRecord) -> None:
    """Name the block nodes and device of each disk ``live`` was started with (once per start)."""
    if record.blockdevs:
        return
    for index, disk in enumerate(live.devices.disks):
        disk.alias = disk.alias or disk_device_id(live, index)
        record.blockdevs[disk.target_dev] = [f"pyvirt-{index + 1}"] if has_media(disk) else []
        if has_media(disk):  # the disk's root node by target, for block jobs (indexes shift)
            record.blockroots.setdefault(disk.target_dev, f"pyvirt-{index + 1}-format")
    record.node_counter = max(record.node_counter, len(live.devices.disks))


def _new_prefixes(record: RunRecord, count: int) -> list[str]:
    first = record.node_counter + 1
    record.node_counter += count
    return [f"pyvirt-{n}" for n in range(first, first + count)]


def disk_path(reg: DomainRegistry, disk: DiskConfig) -> str | None:
    """The file or block device behind ``disk`` (a volume's path from its pool); None for NBD."""
    if disk.type == "volume":
        if reg.storage is None or not disk.source_pool or not disk.source_volume:
            raise UnsupportedConfig("unsupported configuration: storage pools are not available")
        return reg.storage.volume_path(disk.source_pool, disk.source_volume)
    return disk.source


def check_source(path: str) -> None:
    if not os.path.exists(path):
        raise OperationFailed(f"Cannot access storage file '{path}': No such file or directory")


def backing_chain(path: str, fmt: str, passphrase: bytes | None = None) -> list[tuple[str, str]]:
    """(path, format) of ``path`` and each image below it, top first (``passphrase``: a LUKS qcow2's)."""
    if fmt not in ("qcow2", "qed", "vmdk", "vhdx", "vdi", "vpc"):
        return [(path, fmt)]
    from pyvirt.image.opener import open_image

    try:
        with open_image(
            path, fmt=fmt, readonly=True, force_share=True, allow_backing_outside=True, passphrase=passphrase
        ) as img:
            return [(str(layer.path), layer.format or fmt) for layer in img.chain()]
    except Exception as err:
        raise OperationFailed(f"cannot open disk image '{path}' as {fmt}: {err}") from err


def given_chain(path: str, disk: DiskConfig) -> list[tuple[str, str]]:
    """(path, format) of ``path`` and of each layer of ``disk``'s given chain (conf.backing_chain),
    with what an open chain's last layer names below it when that layer is a local file; a layer on a
    server has no path ("": QEMU connects to it)."""
    from pyvirt.conf.backing_chain import OPEN

    assert disk.backing is not None
    chain = [(path, disk.driver_type)]
    for layer in disk.backing:
        if layer.remote is None:
            check_source(layer.source)
        chain.append(("" if layer.remote is not None else layer.source, layer.format))
    if disk.backing and disk.backing_given == OPEN and disk.backing[-1].remote is None:
        chain += backing_chain(chain[-1][0], chain[-1][1])[1:]
    return chain


def _servers(disk: DiskConfig, prefixes: list[str]) -> list[tuple[str, DiskConfig]]:
    """The sources of ``disk`` on servers that QEMU connects to itself, each with the node-name prefix
    its secret and TLS objects are named after: a network disk's own source (its top prefix), then the
    layers of its given chain (conf.backing_chain) on servers (a prefix per layer when plugged; a disk
    it started with has one prefix and its layers are named under it, NODE-bN)."""
    from pyvirt.conf.backing_chain import remotes

    out = [(prefixes[0], disk)] if disk.type == "network" and prefixes else []
    if len(prefixes) > 1:
        layers = (disk.backing or []) if disk.backing_given is not None else []
        out += [
            (prefixes[d], layer.remote) for d, layer in enumerate(layers, start=1) if layer.remote is not None
        ]
    elif prefixes:
        out += remotes(disk, prefixes[0])
    return out


def _server_objects(prefix: str, source: DiskConfig) -> list[str]:
    """The ids of the secret and TLS objects that ``source`` (on a server, its nodes ``prefix``-*) has:
    its password or key, its cookies, its NBD TLS client credentials."""
    from pyvirt.conf import nbd_tls, network_disk

    out = network_disk.secret_ids(source.net, prefix) if source.net is not None else []
    return out + ([nbd_tls.creds_id(prefix)] if nbd_tls.uses_tls(source) else [])


async def _plug_servers(
    reg: DomainRegistry, obj: DomainObject, disk: DiskConfig, prefixes: list[str]
) -> Undo:
    """What ``disk``'s sources on servers (:func:`_servers`: its own, its given chain's layers) need
    before their nodes, as at start: the secret objects of their credentials and cookies, then the NBD
    TLS client credentials objects (whose files QEMU may read only if it started with NBD TLS in use:
    it is confined to them). Returns the undo (the objects deleted, newest first)."""
    from pyvirt.conf import nbd_tls
    from pyvirt.daemon.disk_secrets import plug_values, source_values

    assert obj.proc is not None
    monitor, values = obj.proc.monitor, {}
    tls: list[str] = []
    for prefix, source in _servers(disk, prefixes):
        if source.net is not None:
            values.update(source_values(reg, source.net, prefix))
        if nbd_tls.uses_tls(source):
            tls.append(prefix)
    directory = str(reg.layout.pki_dir / "qemu")
    if tls and f"{directory}/{nbd_tls.FILES[-1]}" not in obj.proc.record.access:
        raise UnsupportedConfig(
            f"unsupported configuration: hot-plugging disk '{disk.target_dev}' over NBD TLS (its source or "
            "a layer of its backing store): QEMU may read the NBD TLS client credentials only when the "
            "domain started with an NBD disk over TLS"
        )
    undo_secrets = await plug_values(reg, obj, values)
    added: list[str] = []

    async def undo() -> None:
        for ident in reversed(added):
            with contextlib.suppress(OperationFailed):
                await monitor.execute("object-del", {"id": ident})
        await undo_secrets()

    try:
        for prefix in tls:
            await monitor.execute("object-add", nbd_tls.creds_object(prefix, directory))
            added.append(nbd_tls.creds_id(prefix))
    except BaseException:
        await undo()
        raise
    return undo


async def _hand_fd(monitor: Monitor, path: str, writable: bool, opaque: str) -> str:
    """Open ``path`` and pass it to QEMU as a new fdset (O_RDWR and O_RDONLY members for a writable
    file: QEMU picks the one whose mode matches each open, a reopen read-only included)."""
    modes = (os.O_RDWR, os.O_RDONLY) if writable else (os.O_RDONLY,)
    fdset: str | None = None
    for mode in modes:
        try:
            fd = os.open(path, mode | os.O_CLOEXEC)
        except OSError as err:
            if fdset is not None:
                await monitor.remove_fdset(fdset)
            raise OperationFailed(f"Cannot access storage file '{path}': {err.strerror}") from err
        try:
            number = None if fdset is None else int(fdset.rsplit("/", 1)[1])
            fdset = await monitor.add_fd(fd, opaque, number)
        except BaseException:
            if fdset is not None:
                await monitor.remove_fdset(fdset)
            raise
        finally:
            os.close(fd)
    assert fdset is not None
    return fdset


async def _undo_all(steps: list[Undo]) -> None:
    for undo in reversed(steps):
        try:
            await undo()
        except Exception:
            log.exception("while undoing a failed hot-plug")


async def plug_nodes(reg: DomainRegistry, obj: DomainObject, disk: DiskConfig) -> str:
    """Open ``disk``'s files, hand them to ``obj``'s QEMU and add its block nodes (``obj.lock`` held);
    returns the top format node. Recorded under the disk's target; on failure nothing is left."""
    proc = obj.proc
    assert proc is not None
    record, monitor = proc.record, proc.monitor
    writable = not (disk.readonly or disk.device == "cdrom")
    if disk.type == "network":
        chain: list[tuple[str, str]] = [("", disk.driver_type)]
        if disk.backing_given is not None and disk.backing:
            chain = await asyncio.to_thread(given_chain, "", disk)
    else:
        path = disk_path(reg, disk)
        assert path is not None
        check_source(path)
        passphrase = None
        if disk.encryption is not None:
            from pyvirt.daemon.disk_secrets import passphrase_of

            passphrase = passphrase_of(reg.secrets, disk.encryption)
        if disk.backing_given is not None and disk.backing is not None:
            chain = await asyncio.to_thread(given_chain, path, disk)
        else:
            chain = await asyncio.to_thread(backing_chain, path, disk.driver_type, passphrase)
        chain[0] = (path, disk.driver_type)
    files = [(path, writable and depth == 0) for depth, (path, _fmt) in enumerate(chain) if path]
    steps: list[Undo] = []
    try:
        handed = reg.confinement.hand_over(obj.name, record, files)

        async def give_back() -> None:
            reg.confinement.give_back(record, handed)

        steps.append(give_back)
        fdsets: list[str] = []
        layers: list[tuple[str, str]] = []
        for depth, (path, fmt) in enumerate(chain):
            if not path:
                layers.append(("", fmt))
                continue
            fdset = await _hand_fd(monitor, path, writable and depth == 0, f"{obj.name}:{disk.target_dev}")
            fdsets.append(fdset)
            steps.append(lambda fdset=fdset: monitor.remove_fdset(fdset))  # type: ignore[misc]
            layers.append((fdset, fmt))
        prefixes = _new_prefixes(record, len(chain))
        if disk.encryption is not None:  # its passphrase, as a secret object the format node names
            from pyvirt.daemon import disk_secrets

            steps.append(await disk_secrets.plug_secret(reg, obj, disk, prefixes[0]))
        if _servers(disk, prefixes):  # its own source and its given chain's layers on servers
            steps.append(await _plug_servers(reg, obj, disk, prefixes))
        for args in disk_nodes(disk, prefixes, layers):
            await monitor.execute("blockdev-add", args)
            steps.append(lambda node=args["node-name"]: _del_node(monitor, node))  # type: ignore[misc]
    except BaseException:
        await _undo_all(steps)
        raise
    if disk.type != "network" or disk.backing_given is not None:  # the live <backingStore> chain
        given = disk.backing if disk.backing_given is not None and disk.backing is not None else []
        read = chain[1 + len(given) :]  # below an open given chain: what its last layer names
        disk.backing = [*given, *(BackingLayer(p, fmt, path_kind(p)) for p, fmt in read)]
    record.blockdevs[disk.target_dev] = prefixes
    record.blockroots[disk.target_dev] = f"{prefixes[0]}-format"
    record.fdsets[disk.target_dev] = fdsets
    record.disk_files[disk.target_dev] = [path for path, _ in files]
    return f"{prefixes[0]}-format"


async def _chain_below(monitor: Monitor, root: str) -> tuple[list[str], set[str] | None]:
    """The named nodes of ``root``'s chain from its topmost overlay down, each format node then its
    file node, and
    every node name QEMU has; ``([], None)`` when QEMU does not show its block graph."""
    try:
        graph = await monitor.execute("x-debug-query-block-graph")
    except OperationFailed:
        return [], None
    names = {int(n["id"]): str(n["name"]) for n in graph["nodes"]}
    edges = {(int(e["parent"]), str(e["name"])): int(e["child"]) for e in graph["edges"]}
    ids = {name: node for node, name in names.items()}
    parents = {child: parent for (parent, role), child in edges.items() if role == "backing"}
    current = ids.get(root)
    while current in parents:  # an external snapshot's overlay over the recorded root
        current = parents[current]
    out: list[str] = []
    while current is not None:
        out.append(names[current])
        file_id = edges.get((current, "file"))
        if file_id is not None:
            out.append(names[file_id])
        current = edges.get((current, "backing"))
    return [name for name in out if name and not name.startswith("#")], set(names.values())


async def release_fdsets(monitor: Monitor, paths: list[str]) -> None:
    """Drop the fdsets block jobs handed over for ``paths`` (opaque ``pyvirt:PATH``: see
    :mod:`pyvirt.daemon.blockjobs`); their nodes are gone."""
    wanted = {f"pyvirt:{p}" for p in paths}
    with contextlib.suppress(OperationFailed):
        for fdset in await monitor.execute("query-fdsets"):
            if any(fd.get("opaque") in wanted for fd in fdset.get("fds", [])):
                await monitor.remove_fdset(f"/dev/fdset/{fdset['fdset-id']}")


def path_kind(path: str) -> str:
    """``block`` for a block device, else ``file`` (a disk's or backing layer's type)."""
    return "block" if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode) else "file"


async def _drop_server_objects(monitor: Monitor, disk: DiskConfig, prefixes: list[str]) -> None:
    """Delete the secret and TLS objects of ``disk``'s sources on servers (:func:`_servers`), added by
    :func:`_plug_servers` or given on the command line (gone already: nothing to do)."""
    for prefix, source in _servers(disk, prefixes):
        for ident in _server_objects(prefix, source):
            with contextlib.suppress(OperationFailed):
                await monitor.execute("object-del", {"id": ident})


async def _del_node(monitor: Monitor, node: str) -> None:
    await monitor.execute("blockdev-del", {"node-name": node})


async def unplug_nodes(
    reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, disk: DiskConfig, keep: list[DiskConfig]
) -> None:
    """Delete the block nodes of ``disk`` (no longer attached to a device), drop its fdsets and give
    back the files that none of the disks in ``keep`` uses (``obj.lock`` held). Failures are logged:
    the device is already gone from the guest."""
    record, monitor = proc.record, proc.monitor
    target = disk.target_dev
    prefixes = record.blockdevs.pop(target, [])
    nodes = [f"{prefix}-{role}" for prefix in prefixes for role in ("format", "storage")]
    root = record.blockroots.pop(target, None)
    present: set[str] | None = None
    if root is not None:  # a block job may have put nodes of its own under (or as) the root
        below, present = await _chain_below(monitor, root)
        nodes = [*below, *(n for n in nodes if n not in below)] if below else [root, *nodes]
    for node in dict.fromkeys(nodes):
        if present is not None and node not in present:
            continue  # a block job removed it already
        try:
            await monitor.execute("blockdev-del", {"node-name": node})
        except OperationFailed as err:
            log.warning("domain %s: removing block node %s of %s: %s", obj.name, node, target, err)
    if disk.encryption is not None and prefixes:
        from pyvirt.daemon.disk_secrets import drop_secret

        await drop_secret(monitor, prefixes[0])
    await _drop_server_objects(monitor, disk, prefixes)  # its sources' secret and TLS objects
    for fdset in record.fdsets.pop(target, []):
        await monitor.remove_fdset(fdset)
    layers = [disk.source or "", *(layer.source for layer in disk.backing or [] if layer.remote is None)]
    await release_fdsets(monitor, [path for path in layers if path])
    files = record.disk_files.pop(target, None)
    if files is not None:  # and the files block jobs handed over since the plug
        files = list(dict.fromkeys([*files, *(path for path in layers if path)]))
    if files is None:  # a disk it was started with: its file and backing chain, as handed over then
        path = disk_path(reg, disk) if disk.type != "network" and has_media(disk) else None
        files = []
        if disk.backing_given is not None:  # its given chain's files (conf.backing_chain)
            files = [layer for layer in [path or "", *layers[1:]] if layer]
        elif path is not None:
            with contextlib.suppress(OperationFailed):
                chain = await asyncio.to_thread(backing_chain, path, disk.driver_type)
                files = [layer for layer, _ in chain]
    used: set[str] = set()
    for other in keep:
        used.update(record.disk_files.get(other.target_dev, []))
        if other.source:
            used.add(other.source)
    reg.confinement.give_back(record, [path for path in files if path not in used])


def disk_in_use(reg: DomainRegistry, obj: DomainObject, disk: DiskConfig, path: str) -> None:
    """Refuse a disk whose file another running domain (or another disk of this one) uses, unless
    both sides share it read-only or as ``<shareable/>`` (what libvirt's disk leases refuse)."""
    real = os.path.realpath(path)

    def shared(d: DiskConfig) -> bool:
        return d.readonly or d.shareable or d.device == "cdrom"

    for other in reg.all():
        dom = other.live if other.active else None
        if dom is None:
            continue
        for used in dom.devices.disks:
            if other is obj and used.target_dev == disk.target_dev:
                continue
            source = used.source if used.type in ("file", "block") else None
            if source is None and used.type == "volume" and reg.storage is not None and used.source_pool:
                with contextlib.suppress(Exception):
                    source = disk_path(reg, used)
            if source is None or os.path.realpath(source) != real:
                continue
            if shared(disk) and shared(used):
                continue
            whose = f"disk '{used.target_dev}' of " + (
                "this domain" if other is obj else f"running domain '{other.name}'"
            )
            raise OperationFailed(
                f"resource busy: '{path}' is in use by {whose}; two disks may "
                "share a file only when both are <shareable/> or read-only"
            )


def device_id(entry: dict[str, Any]) -> str:
    """The device id of a ``query-block`` entry (virtio's is inside a QOM path)."""
    qdev = str(entry.get("qdev") or "")
    prefix = "/machine/peripheral/"
    return qdev[len(prefix) :].split("/", 1)[0] if qdev.startswith(prefix) else qdev


def device_tops(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Device id → the node its device reads (``query-block``'s entries)."""
    return {
        device_id(e): str(e["inserted"]["node-name"])
        for e in entries
        if (e.get("inserted") or {}).get("node-name")
    }

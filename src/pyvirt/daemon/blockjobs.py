"""Block jobs of running domains (virsh blockcommit, blockpull, blockcopy, blockjob), blockresize,
domblkinfo and domblkerror.

The jobs are QEMU's: ``block-commit``, ``block-stream`` and ``blockdev-mirror``, one at a time per
disk, each started with ``auto-dismiss`` off so that a job that ends while no daemon listens stays
listed (``query-jobs``) until a daemon has applied its outcome and dismissed it. Their QMP events
(``BLOCK_JOB_READY``, ``BLOCK_JOB_COMPLETED``, ``BLOCK_JOB_CANCELLED``) are applied under the
domain's lock like every other event (:mod:`pyvirt.daemon.qmpevents`); what each job is and how it
ended is kept in the run record, so a restarted daemon finds a running job again and finishes it.

QEMU is confined to the files it was started with (:mod:`pyvirt.qemu.landlock`) and opened the
backing files read-only, by path. A commit writes into a backing file, so before the first job on a
disk its backing chain is opened again by the daemon and handed over by descriptor (an fdset holding
one read-write descriptor of each file): explicit nodes replace the ones QEMU opened
from the image headers (``blockdev-add`` then ``blockdev-reopen`` of the disk's top node). A copy's
target is created by the daemon (the image library) and handed over the same way.

When a job changes the chain, the live definition's ``<source>`` and ``<backingStore>`` follow (and
the persistent ``<source>`` when the disk's top image changed), and so does the record of the files
handed to QEMU: dropped layers are given back, a base that becomes the top is handed over writable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pyvirt.conf import backing_chain
from pyvirt.conf.domain import BackingLayer, DiskConfig, Domain
from pyvirt.daemon import blockdevs, lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, PyvirtError, UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.daemon.http import Request
    from pyvirt.qemu.monitor import Monitor
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

#: virsh's names of the job types (``blockjob --info``) and their raw ones (``--raw``).
TYPE_NAMES = {
    "pull": "Block Pull",
    "copy": "Block Copy",
    "commit": "Block Commit",
    "active_commit": "Active Block Commit",
}
ACTIVE_STATES = ("running", "ready")
FINISHED_STATES = ("completed", "failed", "canceled")
BACKING_FORMATS = ("qcow2",)  # the disk formats pyvirt runs that have backing files
JOB_STATES = lifecycle.HOTPLUGGABLE


@dataclass
class Job:
    """One block job on one disk, as kept in the run record."""

    id: str  # QEMU's job id
    type: str  # pull | copy | commit | active_commit
    target: str
    state: str = "running"  # running | ready | completed | failed | canceled
    top: int = 0  # chain positions (0: the disk's source) of the commit's top and the base
    base: int | None = None
    nodes: list[list[str]] = field(default_factory=list)  # per layer: [format node, file node]
    dest: dict[str, Any] | None = None  # a copy's target: path, format, type, node, file_node, shallow
    bandwidth: int = 0  # bytes/s, 0: unlimited
    delete: bool = False  # commit --delete: remove the committed images once done
    ending: str | None = None  # "pivot" or "abort" once asked
    error: str | None = None
    relative: str | None = None  # the backing name written into the image above the removed layers
    path: str = ""  # the disk's source when the job started (the path its events name)

    def public(self) -> dict[str, Any]:
        return {
            "disk": self.target,
            "type": self.type,
            "state": self.state,
            "bandwidth": self.bandwidth,
            "error": self.error,
        }


_waiters: dict[tuple[int, str], list[asyncio.Future[str]]] = {}


# Disks and their chains


def find_disk(dom: Domain, key: str, reg: DomainRegistry | None = None) -> tuple[int, DiskConfig]:
    """The disk ``key`` names: its target (``vda``) or its source's path (with ``reg``, a pool
    volume's path too), as virsh takes either."""
    for index, disk in enumerate(dom.devices.disks):
        if key == disk.target_dev or (disk.source is not None and key == disk.source):
            return index, disk
    if reg is not None and os.path.isabs(key):
        for index, disk in enumerate(dom.devices.disks):
            if disk.type == "volume" and disk.source_volume and _volume_path(reg, disk) == key:
                return index, disk
    for index, disk in enumerate(dom.devices.disks):
        if any(layer.source == key for layer in disk.backing or []):
            return index, disk
    raise InvalidArgument(f"invalid argument: disk '{key}' not found in domain")


def _not_encrypted(disk: DiskConfig, verb: str) -> None:
    if disk.encryption is not None:
        raise UnsupportedConfig(
            f"unsupported configuration: {verb} of the encrypted disk '{disk.target_dev}' (<encryption>) "
            "is not supported: its new images would not be encrypted"
        )


def _volume_path(reg: DomainRegistry, disk: DiskConfig) -> str | None:
    with contextlib.suppress(PyvirtError):
        return blockdevs.disk_path(reg, disk)
    return None


def layers(reg: DomainRegistry, disk: DiskConfig) -> list[BackingLayer]:
    """The disk's images, its source first; a pool volume's by the path its pool gives it (where
    QEMU opened it), as libvirt runs block jobs on a volume's file."""
    if any(layer.type == "network" for layer in disk.backing or []):
        raise UnsupportedConfig(
            f"unsupported configuration: block jobs on disk '{disk.target_dev}', whose backing chain "
            "has an image on a server (only local images are opened by the daemon)"
        )
    if disk.type == "volume" and disk.source_volume:
        path = blockdevs.disk_path(reg, disk)
        assert path is not None
        return [BackingLayer(path, disk.driver_type, blockdevs.path_kind(path)), *(disk.backing or [])]
    if disk.type not in ("file", "block") or disk.source is None:
        raise UnsupportedConfig(
            f"unsupported configuration: block jobs on disk '{disk.target_dev}' of type '{disk.type}' "
            "(only file, block and volume disks with a source)"
        )
    return [BackingLayer(disk.source, disk.driver_type, disk.type), *(disk.backing or [])]


def read_chain(path: str, fmt: str) -> list[BackingLayer]:
    """The backing files under image ``path``, nearest first, read by the image library."""
    from pyvirt.image.info import image_info

    chain: list[BackingLayer] = []
    info = image_info(path, fmt=fmt, backing_chain=True)
    below = info.get("backing-image")
    while isinstance(below, dict):
        name = str(below.get("filename"))
        kind = "block" if os.path.exists(name) and stat.S_ISBLK(os.stat(name).st_mode) else "file"
        chain.append(BackingLayer(name, str(below.get("format", "raw")), kind))
        below = below.get("backing-image")
    return chain


def fill_chains(dom: Domain, disk_paths: dict[int, str]) -> None:
    """Fill the backing chain of each qcow2 disk of ``dom`` about to start (its live ``<backingStore>``);
    one that cannot be read stays unknown, for QEMU to report in its own words. A given chain stays as
    given (an open one gets what is under its last layer); a missing layer of it is refused."""
    for index, disk in enumerate(dom.devices.disks):
        path = disk_paths.get(index, disk.source)
        if disk.backing_given is not None and disk.backing is not None:
            _check_given(disk, path)
            if (
                disk.backing
                and disk.backing_given == backing_chain.OPEN
                and disk.backing[-1].type != "network"
            ):
                last = disk.backing[-1]
                with contextlib.suppress(Exception):  # QEMU opens (and reports) the rest itself
                    disk.backing = [*disk.backing, *read_chain(last.source, last.format)]
            continue
        if (
            path is None
            or disk.type not in ("file", "block", "volume")
            or disk.driver_type not in BACKING_FORMATS
        ):
            continue
        try:
            disk.backing = read_chain(path, disk.driver_type)
        except Exception as err:
            log.debug("cannot read the backing chain of %s: %s", path, err)
            disk.backing = None


def _check_given(disk: DiskConfig, path: str | None) -> None:
    for layer in disk.backing or []:
        if layer.type != "network" and not os.path.exists(layer.source):
            raise OperationFailed(
                f"Cannot access backing file '{layer.source}' of storage file '{path}': "
                "No such file or directory"
            )


def _locate(chain: list[BackingLayer], path: str, target: str) -> int:
    real = os.path.realpath(path)
    for index, layer in enumerate(chain):
        if path == layer.source or real == os.path.realpath(layer.source):
            return index
    raise InvalidArgument(f"invalid argument: could not find image '{path}' in chain for '{target}'")


def _root(obj: DomainObject, index: int, disk: DiskConfig) -> str:
    """The disk's top node as recorded: the command line's, or the one a block job or a hot-plug made."""
    assert obj.proc is not None
    return obj.proc.record.blockroots.get(disk.target_dev, f"pyvirt-{index + 1}-format")


async def _top(obj: DomainObject, index: int, disk: DiskConfig) -> str:
    """The node the disk's device reads: the recorded root, unless an external snapshot has put an
    overlay over it since (``blockdev-snapshot``)."""
    assert obj.proc is not None
    found = blockdevs.device_tops(await obj.proc.monitor.execute("query-block")).get(disk.alias or "")
    return found or _root(obj, index, disk)


async def _graph(mon: Monitor) -> tuple[dict[str, int], dict[int, str], dict[tuple[int, str], int]]:
    graph = await mon.execute("x-debug-query-block-graph")
    ids = {str(n["name"]): int(n["id"]) for n in graph["nodes"] if n["type"] == "block-driver"}
    names = {int(n["id"]): str(n["name"]) for n in graph["nodes"]}
    edges = {(int(e["parent"]), str(e["name"])): int(e["child"]) for e in graph["edges"]}
    return ids, names, edges


async def _chain_nodes(mon: Monitor, root: str) -> list[list[str]]:
    """[format node, file node] of each layer under (and of) ``root``, from QEMU's block graph."""
    ids, names, edges = await _graph(mon)
    if root not in ids:
        raise OperationFailed(f"operation failed: QEMU has no block node '{root}'")
    out: list[list[str]] = []
    current: int | None = ids[root]
    while current is not None:
        file_id = edges.get((current, "file"))
        out.append([names[current], names[file_id] if file_id is not None else ""])
        current = edges.get((current, "backing"))
    return out


async def _fdset(mon: Monitor, path: str) -> tuple[str, bool]:
    """Hand ``path`` to QEMU as an fdset of one descriptor, read-write unless the file cannot be
    written; returns its path and whether it is writable. One descriptor only: QEMU's file-locking
    (OFD locks) would see a second open file of the set, once used, as another user of the image."""
    try:
        try:
            fd, writable = os.open(path, os.O_RDWR | os.O_CLOEXEC), True
        except PermissionError:
            fd, writable = os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
        except OSError as err:
            if err.errno != errno.EROFS:
                raise
            fd, writable = os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    except OSError as err:
        raise OperationFailed(f"Cannot access storage file '{path}': {err.strerror}") from err
    try:
        return await mon.add_fd(fd, f"pyvirt:{path}"), writable
    finally:
        os.close(fd)


def _node_name(target: str, kind: str) -> str:
    return f"pv-{target[:8]}-{secrets.token_hex(3)}-{kind}"  # QEMU allows 31 characters


def _file_options(
    layer: BackingLayer, filename: str, node: str, disk: DiskConfig, *, writable: bool
) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "driver": "host_device" if layer.type == "block" else "file",
        "filename": filename,
        "node-name": node,
        "read-only": not writable,  # opened once, as the fdset's one descriptor is (see _fdset)
        "discard": "unmap" if disk.discard == "unmap" else "ignore",
    }
    opts.update(_cache(disk))
    return opts


def _cache(disk: DiskConfig) -> dict[str, Any]:
    from pyvirt.qemu.command import _cache_mode

    direct, no_flush = _cache_mode(disk.cache)
    return {"cache": {"direct": direct, "no-flush": no_flush}} if direct or no_flush else {}


def _format_options(
    fmt: str, node: str, file_node: str, disk: DiskConfig, *, readonly: bool, backing: str | None
) -> dict[str, Any]:
    opts: dict[str, Any] = {"driver": fmt, "node-name": node, "file": file_node, "read-only": readonly}
    if fmt in BACKING_FORMATS:
        opts["backing"] = backing
    if disk.discard == "unmap":
        opts["discard"] = "unmap"
    opts.update(_cache(disk))
    return opts


async def _own_chain(
    obj: DomainObject, index: int, disk: DiskConfig, chain: list[BackingLayer]
) -> list[list[str]]:
    """The nodes of the disk's ``chain``, its backing files first opened again by the daemon (see the
    module's docstring) when QEMU opened them by path, or read-only (a hot-plugged disk's);
    ``obj.lock`` held."""
    assert obj.proc is not None
    mon = obj.proc.monitor
    root = await _top(obj, index, disk)
    nodes = await _chain_nodes(mon, root)
    if len(nodes) != len(chain):
        raise OperationFailed(
            f"operation failed: the backing chain of disk '{disk.target_dev}' in QEMU ({len(nodes)} images) "
            f"is not the domain's ({len(chain)} images)"
        )
    named = {str(n["node-name"]): n for n in await mon.execute("query-named-block-nodes", {"flat": True})}
    ro_nodes = {name for name, node in named.items() if node.get("ro")}
    # (a given <backingStore>'s layers have names of their own, but QEMU opened them by path)
    by_fd = {name for name, node in named.items() if str(node.get("file", "")).startswith("/dev/fdset/")}
    if all(not fmt.startswith("#") and file not in ro_nodes and file in by_fd for fmt, file in nodes[1:]):
        return nodes  # the daemon's own nodes, over files it handed over writable
    undo = _Undo()
    added: list[list[str]] = []
    try:
        below: str | None = None
        for layer in reversed(chain[1:]):
            fdset, writable = await _fdset(mon, layer.source)
            undo.add(lambda path=layer.source: blockdevs.release_fdsets(mon, [path]))  # type: ignore[misc]
            file_node, fmt_node = _node_name(disk.target_dev, "s"), _node_name(disk.target_dev, "f")
            await mon.execute("blockdev-add", _file_options(layer, fdset, file_node, disk, writable=writable))
            undo.add(lambda node=file_node: _blockdev_del(mon, [node]))  # type: ignore[misc]
            opts = _format_options(layer.format, fmt_node, file_node, disk, readonly=True, backing=below)
            await mon.execute("blockdev-add", opts)
            undo.add(lambda node=fmt_node: _blockdev_del(mon, [node]))  # type: ignore[misc]
            added.insert(0, [fmt_node, file_node])
            below = fmt_node
        readonly = disk.readonly or disk.device == "cdrom"
        top = _format_options(disk.driver_type, root, nodes[0][1], disk, readonly=readonly, backing=below)
        await mon.execute("blockdev-reopen", {"options": [top]})
    except BaseException:
        await undo.run()
        raise
    await _blockdev_del(mon, [name for pair in nodes[1:] for name in pair])  # a hot-plug's own, if any
    return [nodes[0], *added]


class _Undo:
    """The undo steps (plain or async callables) of a multi-step start, run newest first on failure."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], object]] = []

    def add(self, step: Callable[[], object]) -> None:
        self.steps.append(step)

    async def run(self) -> None:
        steps, self.steps = self.steps, []
        for step in reversed(steps):
            try:
                result = step()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("while undoing a failed block job start")


async def _blockdev_del(mon: Monitor, names: list[str]) -> None:
    for name in names:
        if name and not name.startswith("#"):
            with contextlib.suppress(OperationFailed):
                await mon.execute("blockdev-del", {"node-name": name})


def _backing_name(overlay: str, base: str, relative: bool) -> str:
    return os.path.relpath(base, os.path.dirname(overlay)) if relative else base


def _idle(obj: DomainObject, target: str) -> None:
    assert obj.proc is not None
    job = obj.proc.record.blockjobs.get(target)
    if job is not None and job["state"] in ACTIVE_STATES:
        raise InvalidState(f"Requested operation is not valid: disk '{target}' already in active block job")


def _running(obj: DomainObject) -> tuple[QemuProcess, Domain]:
    assert obj.proc is not None and obj.live is not None
    return obj.proc, obj.live


def _start(reg: DomainRegistry, obj: DomainObject, job: Job, path: str) -> dict[str, Any]:
    proc, _live = _running(obj)
    job.path = path
    proc.record.blockjobs[job.target] = asdict(job)
    reg.save_run_state(obj)
    log.info("domain %s: %s job %s started on %s", obj.name, job.type, job.id, job.target)
    return job.public()


# Starting jobs


async def commit(
    reg: DomainRegistry,
    key: str,
    disk_key: str,
    *,
    base: str | None = None,
    top: str | None = None,
    active: bool = False,
    shallow: bool = False,
    bandwidth: int = 0,
    keep_relative: bool = False,
    delete: bool = False,
) -> dict[str, Any]:
    """blockcommit: merge the images from ``top`` (default: the source) down into ``base`` (default:
    the bottom of the chain; with ``shallow`` the image right under ``top``)."""
    obj = reg.lookup(key)
    async with guard(obj, JOB_STATES):
        proc, live = _running(obj)
        index, disk = find_disk(live, disk_key, reg)
        _not_encrypted(disk, "blockcommit")
        target = disk.target_dev
        _idle(obj, target)
        chain = layers(reg, disk)
        top_i = _locate(chain, top, target) if top else 0
        if top_i + 1 >= len(chain):
            raise InvalidArgument(
                f"invalid argument: top '{chain[top_i].source}' in chain for '{target}' has no backing file"
            )
        if shallow:
            base_i = top_i + 1
            if base and _locate(chain, base, target) != base_i:
                raise InvalidArgument(
                    f"invalid argument: base '{base}' is not immediately below '{chain[top_i].source}' "
                    f"in chain for '{target}'"
                )
        elif base:
            base_i = _locate(chain, base, target)
            if base_i <= top_i:
                raise InvalidArgument(
                    f"invalid argument: could not find image '{base}' beneath '{chain[top_i].source}' "
                    f"in chain for '{target}'"
                )
        else:
            base_i = len(chain) - 1
        if top_i == 0 and not active:
            raise InvalidArgument(f"invalid argument: commit of '{target}' active layer requires active flag")
        if active and top_i != 0:
            raise InvalidArgument(
                f"invalid argument: active commit requested but '{chain[top_i].source}' is not active"
            )
        nodes = await _own_chain(obj, index, disk, chain)
        job = Job(
            id=f"commit-{target}",
            type="active_commit" if top_i == 0 else "commit",
            target=target,
            top=top_i,
            base=base_i,
            nodes=nodes,
            bandwidth=bandwidth,
            delete=delete,
        )
        args: dict[str, Any] = {
            "job-id": job.id,
            "device": nodes[0][0],
            "base-node": nodes[base_i][0],
            "auto-dismiss": False,
        }
        if bandwidth:
            args["speed"] = bandwidth
        if top_i:
            args["top-node"] = nodes[top_i][0]
            job.relative = _backing_name(chain[top_i - 1].source, chain[base_i].source, keep_relative)
            args["backing-file"] = job.relative
        await proc.monitor.execute("block-commit", args)
        return _start(reg, obj, job, chain[0].source)


async def pull(
    reg: DomainRegistry,
    key: str,
    disk_key: str,
    *,
    base: str | None = None,
    bandwidth: int = 0,
    keep_relative: bool = False,
) -> dict[str, Any]:
    """blockpull: copy the backing images' data (down to ``base``, excluded) into the source."""
    obj = reg.lookup(key)
    async with guard(obj, JOB_STATES):
        proc, live = _running(obj)
        index, disk = find_disk(live, disk_key, reg)
        _not_encrypted(disk, "blockpull")
        target = disk.target_dev
        _idle(obj, target)
        chain = layers(reg, disk)
        if len(chain) < 2:
            raise InvalidArgument(f"invalid argument: disk '{target}' has no backing file to pull from")
        base_i: int | None = None
        if base:
            base_i = _locate(chain, base, target)
            if base_i == 0:
                raise InvalidArgument(
                    f"invalid argument: could not find image '{base}' beneath '{chain[0].source}' "
                    f"in chain for '{target}'"
                )
        if keep_relative and base_i is None:
            raise InvalidArgument(
                "invalid argument: --keep-relative needs --base (a pull to the bottom leaves no backing file)"
            )
        nodes = await _own_chain(obj, index, disk, chain)
        job = Job(
            id=f"pull-{target}", type="pull", target=target, base=base_i, nodes=nodes, bandwidth=bandwidth
        )
        args: dict[str, Any] = {"job-id": job.id, "device": nodes[0][0], "auto-dismiss": False}
        if bandwidth:
            args["speed"] = bandwidth
        if base_i is not None:
            args["base-node"] = nodes[base_i][0]
            job.relative = _backing_name(chain[0].source, chain[base_i].source, keep_relative)
            args["backing-file"] = job.relative
        await proc.monitor.execute("block-stream", args)
        return _start(reg, obj, job, chain[0].source)


async def copy(
    reg: DomainRegistry,
    key: str,
    disk_key: str,
    *,
    dest: str,
    fmt: str | None = None,
    blockdev: bool = False,
    shallow: bool = False,
    reuse_external: bool = False,
    bandwidth: int = 0,
    granularity: int | None = None,
    buf_size: int | None = None,
    synchronous_writes: bool = False,
) -> dict[str, Any]:
    """blockcopy: mirror the disk to ``dest`` (created here unless ``reuse_external``); the job gets
    ready once both match, and a pivot then makes the copy the disk."""
    obj = reg.lookup(key)
    if not os.path.isabs(dest):
        raise InvalidArgument(f"invalid argument: destination '{dest}' must be an absolute path")
    if granularity is not None and (
        granularity < 512 or granularity > 64 << 20 or granularity & (granularity - 1)
    ):
        raise InvalidArgument("invalid argument: granularity must be a power of 2 between 512 and 64 MiB")
    async with guard(obj, JOB_STATES):
        proc, live = _running(obj)
        index, disk = find_disk(live, disk_key, reg)
        _not_encrypted(disk, "blockcopy")
        target = disk.target_dev
        _idle(obj, target)
        chain = layers(reg, disk)
        if any(dest in (layer.source, os.path.realpath(layer.source)) for layer in chain):
            raise InvalidArgument(f"invalid argument: '{dest}' is an image of disk '{target}'")
        shallow = shallow and len(chain) > 1
        exists = os.path.exists(dest)
        is_block = exists and stat.S_ISBLK(os.stat(dest).st_mode)
        if blockdev and not is_block:
            raise InvalidArgument(f"invalid argument: '{dest}' is not a block device (--blockdev)")
        if not blockdev and is_block:
            raise InvalidArgument(f"invalid argument: '{dest}' is a block device: copy to it with --blockdev")
        if reuse_external or blockdev:
            if not exists:
                raise OperationFailed(f"Cannot access storage file '{dest}': No such file or directory")
        elif exists:
            raise UnsupportedConfig(
                f"unsupported configuration: external destination file for disk {target} already exists "
                f"and is not a block device: {dest}"
            )
        fmt = fmt or (
            await asyncio.to_thread(_probe, dest) if reuse_external and not blockdev else disk.driver_type
        )
        if fmt not in ("raw", "qcow2"):
            raise UnsupportedConfig(f"unsupported configuration: destination format '{fmt}' (raw or qcow2)")
        if shallow and fmt not in BACKING_FORMATS:
            raise InvalidArgument(
                f"invalid argument: a shallow copy needs a format with backing files, not '{fmt}'"
            )
        nodes = await _own_chain(obj, index, disk, chain)
        undo = _Undo()
        mon = proc.monitor
        try:
            if not exists:
                await asyncio.to_thread(_create_copy, dest, fmt, chain, shallow)
                undo.add(lambda: os.unlink(dest))
            reg.confinement.hand_over_more(proc.record, dest, writable=True, what="storage file")
            undo.add(lambda: reg.confinement.give_back(proc.record, [dest]))
            fdset, writable = await _fdset(mon, dest)
            undo.add(lambda: blockdevs.release_fdsets(mon, [dest]))
            if not writable:
                raise OperationFailed(f"Cannot access storage file '{dest}': it cannot be written")
            layer = BackingLayer(dest, fmt, "block" if blockdev else "file")
            file_node, fmt_node = _node_name(target, "s"), _node_name(target, "f")
            await mon.execute("blockdev-add", _file_options(layer, fdset, file_node, disk, writable=True))
            undo.add(lambda: _blockdev_del(mon, [file_node]))
            below = nodes[1][0] if shallow else None
            await mon.execute(
                "blockdev-add", _format_options(fmt, fmt_node, file_node, disk, readonly=False, backing=below)
            )
            undo.add(lambda: _blockdev_del(mon, [fmt_node]))
            job = Job(
                id=f"copy-{target}",
                type="copy",
                target=target,
                nodes=nodes,
                bandwidth=bandwidth,
                dest={
                    "path": dest,
                    "format": fmt,
                    "type": layer.type,
                    "node": fmt_node,
                    "file_node": file_node,
                    "shallow": shallow,
                    "created": not exists,
                },
            )
            args: dict[str, Any] = {
                "job-id": job.id,
                "device": nodes[0][0],
                "target": fmt_node,
                "sync": "top" if shallow else "full",
                "auto-dismiss": False,
            }
            if bandwidth:
                args["speed"] = bandwidth
            if granularity:
                args["granularity"] = granularity
            if buf_size:
                args["buf-size"] = buf_size
            if synchronous_writes:
                args["copy-mode"] = "write-blocking"
            await mon.execute("blockdev-mirror", args)
        except BaseException:
            await undo.run()
            raise
        return _start(reg, obj, job, chain[0].source)


def _probe(path: str) -> str:
    from pyvirt.image.info import image_info

    return str(image_info(path)["format"])


def _create_copy(dest: str, fmt: str, chain: list[BackingLayer], shallow: bool) -> None:
    from pyvirt.image.create import create_image
    from pyvirt.image.info import image_info

    size = int(image_info(chain[0].source, fmt=chain[0].format)["virtual-size"])
    old = os.umask(0o077)
    try:
        if shallow:
            create_image(dest, fmt, size, backing=chain[1].source, backing_fmt=chain[1].format)
        else:
            create_image(dest, fmt, size)
    finally:
        os.umask(old)


# Managing jobs


def _job(reg: DomainRegistry, obj: DomainObject, disk_key: str) -> tuple[int, DiskConfig, Job | None]:
    proc, live = _running(obj)
    index, disk = find_disk(live, disk_key, reg)
    data = proc.record.blockjobs.get(disk.target_dev)
    return index, disk, Job(**data) if data is not None else None


async def info(reg: DomainRegistry, key: str, disk_key: str) -> dict[str, Any]:
    """blockjob --info: the disk's job with its progress, or how the last one ended."""
    obj = reg.lookup(key)
    async with guard(obj, lifecycle.ACTIVE):
        proc, _live = _running(obj)
        _index, disk, job = _job(reg, obj, disk_key)
        out: dict[str, Any] = {"disk": disk.target_dev, "type": None, "state": None}
        if job is None:
            return out
        out.update(job.public())
        out.update({"cur": 0, "end": 0})
        if job.state in ACTIVE_STATES:
            for entry in await proc.monitor.execute("query-block-jobs"):
                if entry.get("device") == job.id:
                    out.update({"cur": int(entry["offset"]), "end": int(entry["len"])})
                    out["bandwidth"] = int(entry.get("speed", 0))
        return out


async def set_speed(reg: DomainRegistry, key: str, disk_key: str, bandwidth: int) -> None:
    """blockjob --bandwidth: the running job's speed limit in bytes/s (0: none)."""
    obj = reg.lookup(key)
    async with guard(obj, JOB_STATES):
        proc, _live = _running(obj)
        _index, disk, job = _job(reg, obj, disk_key)
        if job is None or job.state not in ACTIVE_STATES:
            raise InvalidArgument(
                f"invalid argument: disk {disk.target_dev} does not have an active block job"
            )
        await proc.monitor.execute("block-job-set-speed", {"device": job.id, "speed": bandwidth})
        job.bandwidth = bandwidth
        proc.record.blockjobs[job.target] = asdict(job)
        reg.save_run_state(obj)


async def abort(
    reg: DomainRegistry, key: str, disk_key: str, *, pivot: bool = False, wait: bool = True
) -> dict[str, Any]:
    """blockjob --abort / --pivot: end the disk's job; a pivot (a ready copy or active commit)
    switches the disk to the new image. With ``wait``, returns once the job has ended."""
    obj = reg.lookup(key)
    async with guard(obj, JOB_STATES):
        proc, _live = _running(obj)
        _index, disk, job = _job(reg, obj, disk_key)
        if job is None or job.state not in ACTIVE_STATES:
            raise InvalidArgument(
                f"invalid argument: disk {disk.target_dev} does not have an active block job"
            )
        if pivot:
            if job.type not in ("copy", "active_commit"):
                raise InvalidState(
                    f"Requested operation is not valid: pivot of disk '{job.target}' "
                    "requires an active copy job"
                )
            if job.state != "ready":
                raise InvalidState(
                    f"Requested operation is not valid: disk '{job.target}' not ready for pivot yet"
                )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if job.ending is None:
            if pivot:
                await proc.monitor.execute("job-complete", {"id": job.id})
            else:
                await proc.monitor.execute("block-job-cancel", {"device": job.id})
            job.ending = "pivot" if pivot else "abort"
            proc.record.blockjobs[job.target] = asdict(job)
            reg.save_run_state(obj)
        _waiters.setdefault((id(obj), job.id), []).append(future)
    if not wait:
        return {"disk": job.target, "type": job.type, "state": job.state}
    state = await future
    result = Job(**_running(obj)[0].record.blockjobs[job.target]) if obj.proc is not None else job
    if state == "failed":
        raise OperationFailed(f"operation failed: block job on disk '{job.target}' failed: {result.error}")
    return result.public()


# Events and their outcome


async def on_event(
    reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, event: str, data: dict[str, Any]
) -> None:
    """A BLOCK_JOB_* event of ``obj``'s QEMU (``obj.lock`` held)."""
    job_id = str(data.get("device", ""))
    record = proc.record
    found = next(
        (Job(**j) for j in record.blockjobs.values() if j["id"] == job_id and j["state"] in ACTIVE_STATES),
        None,
    )
    if found is None:
        return
    job = found
    if event == "BLOCK_JOB_READY":
        job.state = "ready"
        record.blockjobs[job.target] = asdict(job)
        reg.save_run_state(obj)
        _publish(reg, obj, job, "ready")
    elif event in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
        error = data.get("error")
        if error:
            status = "failed"
        elif event == "BLOCK_JOB_CANCELLED" or (
            job.type in ("copy", "active_commit") and job.ending != "pivot"
        ):
            status = "canceled"
        else:
            status = "completed"
        await finish(reg, obj, proc, job, status, str(error) if error else None)


async def finish(
    reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, job: Job, status: str, error: str | None
) -> None:
    """Apply how ``job`` ended to the definitions, the files handed over and QEMU's nodes, dismiss it."""
    mon = proc.monitor
    live = obj.live
    disk = next((d for d in live.devices.disks if d.target_dev == job.target), None) if live else None
    dropped: list[str] = []
    try:
        if disk is not None and status == "completed":
            dropped = await _apply_chain(reg, obj, proc, job, disk)
        elif job.dest is not None:
            await _blockdev_del(mon, [job.dest["node"], job.dest["file_node"]])
            await blockdevs.release_fdsets(mon, [job.dest["path"]])
            reg.confinement.give_back(proc.record, [job.dest["path"]])
    except PyvirtError as err:
        log.error("domain %s: applying the end of block job %s: %s", obj.name, job.id, err)
    with contextlib.suppress(OperationFailed):
        await mon.execute("job-dismiss", {"id": job.id})
    if job.delete and status == "completed":
        for path in dropped:
            try:
                os.unlink(path)
            except OSError as err:
                log.warning("domain %s: cannot delete committed image %s: %s", obj.name, path, err.strerror)
    job.state, job.error = status, error
    proc.record.blockjobs[job.target] = asdict(job)
    reg.save_run_state(obj)
    log.info("domain %s: block job %s %s%s", obj.name, job.id, status, f": {error}" if error else "")
    _publish(reg, obj, job, status)
    for future in _waiters.pop((id(obj), job.id), []):
        if not future.done():
            future.set_result(status)


async def _apply_chain(
    reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, job: Job, disk: DiskConfig
) -> list[str]:
    """The chain after a completed job; returns the paths it no longer has."""
    chain = layers(reg, disk)
    nodes = job.nodes
    new_root: str | None = None
    base = job.base
    if job.type == "pull":
        keep = [chain[0], *(chain[base:] if base is not None else [])]
        gone_nodes = nodes[1:base] if base is not None else nodes[1:]
    elif job.type == "commit":
        assert base is not None
        keep = chain[: job.top] + chain[base:]
        gone_nodes = nodes[job.top : base]
    elif job.type == "active_commit":
        assert base is not None
        keep = chain[base:]
        gone_nodes = nodes[:base]
        new_root = nodes[base][0]
    else:
        assert job.dest is not None
        top = BackingLayer(job.dest["path"], job.dest["format"], job.dest["type"])
        keep = [top, *(chain[1:] if job.dest["shallow"] else [])]
        gone_nodes = nodes[:1] if job.dest["shallow"] else nodes
        new_root = job.dest["node"]
    kept = {layer.source for layer in keep}
    dropped = [layer.source for layer in chain if layer.source not in kept]
    source_changed = keep[0].source != chain[0].source
    if source_changed:  # a pool volume stays the disk's source while it stays its top image (libvirt's)
        _set_source(disk, keep[0])
    disk.backing = keep[1:]
    if new_root is not None:
        proc.record.blockroots[disk.target_dev] = new_root
    if source_changed:
        reg.confinement.hand_over_more(proc.record, keep[0].source, writable=True, what="storage file")
    for saved in obj.config.devices.disks if obj.config is not None else []:
        if saved.target_dev != disk.target_dev:
            continue
        given = saved.backing_given is not None and bool(dropped)
        if given:  # the definition's given chain (conf.backing_chain) is now the running one
            saved.backing, saved.backing_given = list(keep[1:]), backing_chain.CLOSED
        if source_changed:
            _set_source(saved, keep[0])
        if (given or source_changed) and obj.config is not None:
            reg.write_config(obj.config)
    mon = proc.monitor
    await _blockdev_del(mon, [name for pair in gone_nodes for name in pair])
    await blockdevs.release_fdsets(mon, dropped)
    reg.confinement.give_back(proc.record, dropped)
    return dropped


def _set_source(disk: DiskConfig, top: BackingLayer) -> None:
    disk.source, disk.driver_type, disk.type = top.source, top.format, top.type
    disk.source_pool = disk.source_volume = None


def _publish(reg: DomainRegistry, obj: DomainObject, job: Job, status: str) -> None:
    """virsh's block-job (by path) and block-job-2 (by target) events, as one of kind block-job."""
    reg.events.publish("block-job", obj.name, status, f"{job.type}:{job.target}:{job.path}")


async def reattach(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess) -> None:
    """A daemon re-adopted ``obj``'s QEMU (``obj.lock`` held): find its block jobs again, and apply
    those that ended while no daemon listened."""
    running = [Job(**j) for j in proc.record.blockjobs.values() if j["state"] in ACTIVE_STATES]
    if not running:
        return
    try:
        listed = {str(j["id"]): j for j in await proc.monitor.execute("query-jobs")}
    except OperationFailed as err:
        log.warning("domain %s: cannot list its block jobs: %s", obj.name, err)
        return
    for job in running:
        entry = listed.get(job.id)
        if entry is None:
            await finish(reg, obj, proc, job, "failed", "the job vanished while the daemon was away")
        elif entry.get("status") == "concluded":
            error = entry.get("error")
            ready_type = job.type in ("copy", "active_commit")
            status = (
                "failed" if error else ("canceled" if ready_type and job.ending != "pivot" else "completed")
            )
            await finish(reg, obj, proc, job, status, str(error) if error else None)
        elif entry.get("status") == "ready" and job.state != "ready":
            job.state = "ready"
            proc.record.blockjobs[job.target] = asdict(job)
            reg.save_run_state(obj)
        log.info("domain %s: block job %s found again (%s)", obj.name, job.id, entry and entry.get("status"))


# Sizes and errors


async def resize(reg: DomainRegistry, key: str, disk_key: str, size: int) -> None:
    """blockresize: the disk's new size in bytes (rounded up to 512), as the guest sees it."""
    obj = reg.lookup(key)
    async with guard(obj, JOB_STATES):
        proc, live = _running(obj)
        index, disk = find_disk(live, disk_key, reg)
        if disk.source is None and disk.type != "network" and disk.source_volume is None:
            raise InvalidArgument(f"invalid argument: disk '{disk.target_dev}' has no media to resize")
        if disk.readonly or disk.device == "cdrom":
            raise InvalidArgument(f"invalid argument: disk '{disk.target_dev}' is read-only")
        size = (size + 511) // 512 * 512
        await proc.monitor.execute("block_resize", {"node-name": await _top(obj, index, disk), "size": size})


async def block_info(reg: DomainRegistry, key: str, disk_key: str) -> dict[str, Any]:
    """domblkinfo: capacity (the guest's size), allocation (bytes in use on the host) and physical
    size (the file's length, or the device's size) of the disk's top image."""
    obj = reg.lookup(key)
    async with guard(obj, lifecycle.ANY):
        dom = obj.current
        _index, disk = find_disk(dom, disk_key, reg)
        path, fmt = disk.source, disk.driver_type
        if disk.type == "volume" and disk.source_pool and disk.source_volume and reg.storage is not None:
            path = reg.storage.volume_path(disk.source_pool, disk.source_volume)
        target = disk.target_dev
    if path is None:
        return {"disk": target, "capacity": 0, "allocation": 0, "physical": 0}
    return await asyncio.to_thread(_sizes, target, path, fmt)


def _sizes(target: str, path: str, fmt: str) -> dict[str, Any]:
    from pyvirt.image.errors import ImageError
    from pyvirt.image.info import image_info

    try:
        st = os.stat(path)
        if stat.S_ISBLK(st.st_mode):
            with open(path, "rb") as fh:
                length = fh.seek(0, os.SEEK_END)
            physical = allocation = length
        else:
            physical, allocation = st.st_size, st.st_blocks * 512
        capacity = int(image_info(path, fmt=fmt)["virtual-size"])
    except (OSError, ImageError) as err:
        raise OperationFailed(f"Cannot access storage file '{path}': {err}") from err
    return {"disk": target, "capacity": capacity, "allocation": allocation, "physical": physical}


async def errors(reg: DomainRegistry, key: str) -> list[dict[str, str]]:
    """domblkerror: the disks whose I/O stopped on an error, and which."""
    obj = reg.lookup(key)
    async with guard(obj, lifecycle.ACTIVE):
        proc, live = _running(obj)
        entries = await proc.monitor.execute("query-block")
        targets = {d.alias: d.target_dev for d in live.devices.disks if d.alias}
        roots = {_root(obj, i, d): d.target_dev for i, d in enumerate(live.devices.disks)}
        out: list[dict[str, str]] = []
        for entry in entries:
            status = entry.get("io-status", "ok")
            node = (entry.get("inserted") or {}).get("node-name")
            target = targets.get(blockdevs.device_id(entry)) or roots.get(str(node))
            if status != "ok" and target is not None:
                out.append(
                    {"disk": target, "error": "no space" if status == "nospace" else "unspecified error"}
                )
        return out


# The API's handlers


def handlers(reg: DomainRegistry) -> dict[str, Callable[[Request], Awaitable[Any]]]:
    """This module's actions of the API table, bound to ``reg``."""

    async def blockcommit(req: Request) -> dict[str, Any]:
        body: types.BlockCommitRequest = req.data
        return await commit(
            reg,
            req.params["name"],
            req.params["disk"],
            base=body.get("base"),
            top=body.get("top"),
            active=body.get("active", False),
            shallow=body.get("shallow", False),
            bandwidth=body.get("bandwidth", 0),
            keep_relative=body.get("keep_relative", False),
            delete=body.get("delete", False),
        )

    async def blockpull(req: Request) -> dict[str, Any]:
        body: types.BlockPullRequest = req.data
        return await pull(
            reg,
            req.params["name"],
            req.params["disk"],
            base=body.get("base"),
            bandwidth=body.get("bandwidth", 0),
            keep_relative=body.get("keep_relative", False),
        )

    async def blockcopy(req: Request) -> dict[str, Any]:
        body: types.BlockCopyRequest = req.data
        return await copy(
            reg,
            req.params["name"],
            req.params["disk"],
            dest=body["dest"],
            fmt=body.get("format"),
            blockdev=body.get("blockdev", False),
            shallow=body.get("shallow", False),
            reuse_external=body.get("reuse_external", False),
            bandwidth=body.get("bandwidth", 0),
            granularity=body.get("granularity"),
            buf_size=body.get("buf_size"),
            synchronous_writes=body.get("synchronous_writes", False),
        )

    async def blockjob(req: Request) -> dict[str, Any]:
        return await info(reg, req.params["name"], req.params["disk"])

    async def blockjob_abort(req: Request) -> dict[str, Any]:
        body: types.BlockJobAbortRequest = req.data
        return await abort(
            reg,
            req.params["name"],
            req.params["disk"],
            pivot=body.get("pivot", False),
            wait=body.get("wait", True),
        )

    async def blockjob_speed(req: Request) -> dict[str, Any]:
        body: types.BlockJobSpeedRequest = req.data
        await set_speed(reg, req.params["name"], req.params["disk"], body["bandwidth"])
        return {}

    async def blockresize(req: Request) -> dict[str, Any]:
        body: types.BlockResizeRequest = req.data
        await resize(reg, req.params["name"], req.params["disk"], body["size"])
        return {}

    async def blkinfo(req: Request) -> dict[str, Any]:
        return await block_info(reg, req.params["name"], req.params["disk"])

    async def blkerrors(req: Request) -> list[dict[str, str]]:
        return await errors(reg, req.params["name"])

    return {
        "domain.blockcommit": blockcommit,
        "domain.blockpull": blockpull,
        "domain.blockcopy": blockcopy,
        "domain.blockjob": blockjob,
        "domain.blockjob_abort": blockjob_abort,
        "domain.blockjob_speed": blockjob_speed,
        "domain.blockresize": blockresize,
        "domain.blkinfo": blkinfo,
        "domain.blkerrors": blkerrors,
    }

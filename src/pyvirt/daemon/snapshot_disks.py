"""The disk (and memory) work of snapshots, on a running QEMU over QMP or on shut-off images with
pyvirt's image library.

Running: internal snapshots are QEMU's ``snapshot-save``/``snapshot-load``/``snapshot-delete`` jobs
on the disks' top nodes; an external snapshot creates each qcow2 overlay here (the daemon owns the
files), hands it to the confined QEMU by descriptor, adds it with ``blockdev-add`` and makes it the
active layer with ``blockdev-snapshot``, all disks in one ``transaction``; deleting one commits the
overlay back into its base with an active ``block-commit``. Shut off: the same through the image
library (qcow2 internal snapshots, overlay creation, commit). Each function leaves nothing behind if
it fails part way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from pyvirt.conf.domain import DiskConfig
from pyvirt.daemon import blockdevs
from pyvirt.errors import ImageError, OperationFailed
from pyvirt.qemu.jobs import run_job
from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)


async def _nodes_of(proc: QemuProcess, indices: list[int], disks: list[DiskConfig]) -> list[str]:
    """The node each disk's device reads (its active layer), for the disks at ``indices`` of the
    running definition ``disks``: found by the device's id (a block job, a hot-plug or an external
    snapshot changes the node, and a hot-plugged disk's node numbers need not follow the disks' order),
    else the root the daemon recorded for the disk's target."""
    tops = blockdevs.device_tops(await proc.monitor.execute("query-block"))
    out = []
    for i in indices:
        disk = disks[i] if 0 <= i < len(disks) else None
        node = (tops.get(disk.alias) if disk and disk.alias else None) or (
            proc.record.blockroots.get(disk.target_dev) if disk else None
        )
        if not node:
            raise OperationFailed(f"operation failed: cannot find the block node of disk #{i + 1} in QEMU")
        out.append(node)
    return out


# Internal snapshots of a running domain


async def save_internal(proc: QemuProcess, name: str, indices: list[int], disks: list[DiskConfig]) -> None:
    """``snapshot-save``: the disks' state and the VM state (in the first disk) under tag ``name``."""
    devices = await _nodes_of(proc, indices, disks)
    await run_job(
        proc.monitor,
        "snapshot-save",
        {"tag": name, "vmstate": devices[0], "devices": devices},
        exited=proc.exited,
        kind="snapshot-save",
    )


async def load_internal(proc: QemuProcess, name: str, indices: list[int], disks: list[DiskConfig]) -> None:
    devices = await _nodes_of(proc, indices, disks)
    await run_job(
        proc.monitor,
        "snapshot-load",
        {"tag": name, "vmstate": devices[0], "devices": devices},
        exited=proc.exited,
        kind="snapshot-load",
    )


async def delete_internal_live(
    proc: QemuProcess, name: str, indices: list[int], disks: list[DiskConfig]
) -> None:
    devices = await _nodes_of(proc, indices, disks)
    await run_job(
        proc.monitor,
        "snapshot-delete",
        {"tag": name, "devices": devices},
        exited=proc.exited,
        kind="snapshot-delete",
    )


# Internal snapshots of shut-off images


def create_internal_offline(name: str, paths: list[str]) -> None:
    """A qcow2 internal snapshot ``name`` in every image of ``paths``; all or none."""
    from pyvirt.image.qcow2 import snapshot as qsnap

    done: list[str] = []
    try:
        for path in paths:
            with _open_qcow2(path) as img:
                qsnap.create_snapshot(img, name)
            done.append(path)
    except BaseException:
        for path in done:
            try:
                with _open_qcow2(path) as img:
                    qsnap.delete_snapshot(img, name)
            except Exception as err:
                log.error("removing snapshot %s from %s after a failure: %s", name, path, err)
        raise


def apply_internal_offline(name: str, paths: list[str]) -> None:
    from pyvirt.image.qcow2 import snapshot as qsnap

    for path in paths:  # checked first: a snapshot missing in one image changes none of them
        with _open_qcow2(path, readonly=True) as img:
            qsnap.find(qsnap.read_snapshots(img), name)
    for path in paths:
        with _open_qcow2(path) as img:
            qsnap.apply_snapshot(img, name)


def delete_internal_offline(name: str, paths: list[str]) -> None:
    from pyvirt.image.qcow2 import snapshot as qsnap

    for path in paths:
        with _open_qcow2(path) as img:
            try:
                qsnap.find(qsnap.read_snapshots(img), name)
            except ImageError:
                log.warning("image %s has no internal snapshot %s any more", path, name)
                continue
            qsnap.delete_snapshot(img, name)


@contextlib.contextmanager
def _open_qcow2(path: str, *, readonly: bool = False):  # type: ignore[no-untyped-def]
    from pyvirt.image.opener import open_image
    from pyvirt.image.qcow2.image import Qcow2Image

    try:
        img = open_image(path, fmt="qcow2", readonly=readonly, backing=False)
    except ImageError as err:
        raise OperationFailed(f"operation failed: {err}") from err
    with img:
        if not isinstance(img, Qcow2Image):
            raise OperationFailed(f"operation failed: '{path}' is not a qcow2 image")
        yield img


# External (overlay) snapshots


def make_overlay(path: str, base: str, base_fmt: str, *, target: str, reuse: bool) -> bool:
    """Create the qcow2 overlay ``path`` over ``base``; returns whether it was created (not reused)."""
    from pyvirt.image.opener import open_image
    from pyvirt.image.qcow2.create import create_qcow2

    if reuse:
        if not os.path.isfile(path):
            raise OperationFailed(
                f"operation failed: external snapshot file for disk {target} does not exist: {path} "
                "(--reuse-external needs it made beforehand)"
            )
        return False
    if os.path.lexists(path):
        raise OperationFailed(
            f"operation failed: external snapshot file for disk {target} already exists and is not a "
            f"block device: {path}"
        )
    try:
        with open_image(base, fmt=base_fmt, readonly=True, backing=False, force_share=True) as img:
            size = img.size
        create_qcow2(path, size, backing=base, backing_fmt=base_fmt)
    except ImageError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise OperationFailed(
            f"operation failed: creating the overlay {path} of disk {target}: {err}"
        ) from err
    return True


async def _free_suffix(proc: QemuProcess) -> int:
    taken = {str(n.get("node-name", "")) for n in await proc.monitor.execute("query-named-block-nodes")}
    n = 1
    while any(name.endswith(f"-o{n}-format") for name in taken):
        n += 1
    return n


Undo = Callable[[], Awaitable[None]]


async def snapshot_external_live(
    proc: QemuProcess, overlays: list[tuple[int, str]], name: str, disks: list[DiskConfig]
) -> None:
    """Make each ``(disk index, overlay path)`` (made by :func:`make_overlay`) the disk's active layer,
    every disk in one transaction. On failure the nodes added are removed again."""
    monitor = proc.monitor
    nodes = await _nodes_of(proc, [i for i, _ in overlays], disks)
    suffix = await _free_suffix(proc)
    undo: list[Undo] = []
    actions = []
    try:
        for (index, path), top in zip(overlays, nodes, strict=True):
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fdset = await monitor.add_fd(fd, f"snapshot {name} of disk #{index + 1}")
            finally:
                os.close(fd)
            undo.append(lambda fdset=fdset: monitor.remove_fdset(fdset))  # type: ignore[misc]
            storage, fmt = f"pyvirt-{index + 1}-o{suffix}-storage", f"pyvirt-{index + 1}-o{suffix}-format"
            await monitor.execute(
                "blockdev-add",
                {"driver": "file", "filename": fdset, "node-name": storage, "discard": "unmap"},
            )
            undo.append(lambda node=storage: _blockdev_del(proc, node))  # type: ignore[misc]
            await monitor.execute(
                "blockdev-add", {"driver": "qcow2", "node-name": fmt, "file": storage, "backing": None}
            )
            undo.append(lambda node=fmt: _blockdev_del(proc, node))  # type: ignore[misc]
            actions.append({"type": "blockdev-snapshot", "data": {"node": top, "overlay": fmt}})
        await monitor.execute("transaction", {"actions": actions})
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(OperationFailed):
                await step()
        raise


async def _blockdev_del(proc: QemuProcess, node: str) -> None:
    await proc.monitor.execute("blockdev-del", {"node-name": node})


async def _children(proc: QemuProcess, node: str) -> dict[str, str]:
    """The child nodes of ``node`` by role (``backing``, ``file``), from QEMU's block graph."""
    graph = await proc.monitor.execute("x-debug-query-block-graph")
    ids = {n["id"]: str(n.get("name") or "") for n in graph["nodes"]}
    mine = [i for i, name in ids.items() if name == node]
    return {str(e["name"]): ids[e["child"]] for e in graph["edges"] if e["parent"] in mine}


async def writable_base(proc: QemuProcess, parent: str, node: str, path: str) -> None:
    """Let QEMU write ``node`` (the backing node of ``parent``), whose image ``path`` it opened
    read-only as a backing file.

    A confined QEMU cannot open the file again for writing by its path, which is what a commit into
    it does. So the node's file is given again on an fdset holding one read-write descriptor (QEMU
    picks a set's descriptor by access mode, and a second open file of the image would be another
    user to its locks): a new file node, read-write, under the still read-only format node, which
    the commit reopens for writing. A node we named gets the new file node as its file
    (``blockdev-reopen``); one QEMU opened by itself from an image's header ("#block…", which cannot
    be reopened) is replaced under ``parent`` by a new node of ours."""
    monitor = proc.monitor
    infos = {str(n.get("node-name")): n for n in await monitor.execute("query-named-block-nodes")}
    children = await _children(proc, node)
    file = infos.get(children.get("file", ""), {})
    handed = str(file.get("file", "")).startswith("/dev/fdset/") and not file.get("ro")
    if handed and not node.startswith("#"):
        return  # its file is already one we handed over read-write
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise OperationFailed(f"operation failed: cannot open {path} for writing: {err.strerror}") from err
    try:
        fdset = await monitor.add_fd(fd, f"backing file {path}")
    finally:
        os.close(fd)
    n = 1
    while f"pyvirt-rw{n}" in infos or f"pyvirt-rw{n}-format" in infos:
        n += 1
    new_file = f"pyvirt-rw{n}"
    await monitor.execute(
        "blockdev-add",
        {
            "driver": "file",
            "filename": fdset,
            "node-name": new_file,
            "read-only": False,
            "discard": "unmap",
        },
    )
    added = [new_file]
    try:
        options: dict[str, object] = {"driver": str(infos[node]["drv"]), "file": new_file, "read-only": True}
        if "backing" in children:
            options["backing"] = children["backing"]
        elif options["driver"] not in ("raw", "file"):
            options["backing"] = None
        if not node.startswith("#"):
            await monitor.execute("blockdev-reopen", {"options": [{**options, "node-name": node}]})
        else:
            if parent.startswith("#"):
                raise OperationFailed(
                    f"operation failed: cannot make {path} writable for QEMU: the image above it was opened "
                    "by QEMU itself (restart the domain first)"
                )
            replacement = f"pyvirt-rw{n}-format"
            await monitor.execute("blockdev-add", {**options, "node-name": replacement})
            added.append(replacement)
            above = await _children(proc, parent)
            reopen: dict[str, object] = {
                "driver": str(infos[parent]["drv"]),
                "node-name": parent,
                "file": above["file"],
                "backing": replacement,
                "read-only": bool(infos[parent].get("ro", False)),
            }
            await monitor.execute("blockdev-reopen", {"options": [reopen]})
    except BaseException:
        for name in reversed(added):
            with contextlib.suppress(OperationFailed):
                await _blockdev_del(proc, name)
        raise
    old = children.get("file", "")
    if not node.startswith("#") and old and not old.startswith("#"):
        with contextlib.suppress(OperationFailed):
            await _blockdev_del(proc, old)


async def commit_active_live(proc: QemuProcess, index: int, base_path: str, disks: list[DiskConfig]) -> None:
    """Commit disk ``index``'s active layer into its backing node, the image ``base_path`` (an
    active ``block-commit``, completed once ready), then drop the committed layer's nodes."""
    top = (await _nodes_of(proc, [index], disks))[0]
    children = await _children(proc, top)
    base = children.get("backing")
    if not base:
        raise OperationFailed(f"operation failed: disk #{index + 1} has no backing image to commit into")
    await writable_base(proc, top, base, base_path)
    base = (await _children(proc, top))["backing"]  # a replacement of ours, if QEMU had opened it
    await run_job(
        proc.monitor,
        "block-commit",
        {"device": top, "base-node": base, "auto-dismiss": False},
        exited=proc.exited,
        kind="commit",
        complete_when_ready=True,
    )
    await _drop(proc, top)


def file_chain(path: str, fmt: str) -> list[str]:
    """The image files of ``path``'s backing chain, ``path`` first (read from the headers)."""
    from pyvirt.image.opener import open_image

    try:
        with open_image(path, fmt=fmt, readonly=True, force_share=True, allow_backing_outside=True) as img:
            return [str(layer.path) for layer in img.chain()]
    except ImageError as err:
        raise OperationFailed(f"operation failed: reading the backing chain of {path}: {err}") from err


async def commit_intermediate_live(
    proc: QemuProcess, index: int, depth: int, base_path: str, disks: list[DiskConfig]
) -> None:
    """Commit the image ``depth`` layers below disk ``index``'s active layer into the one below it
    (a ``block-commit`` that ends by itself); QEMU points the layer above at ``base_path``."""
    node = (await _nodes_of(proc, [index], disks))[0]
    chain = [node]
    for _ in range(depth + 1):
        below = (await _children(proc, chain[-1])).get("backing")
        if not below:
            raise OperationFailed(f"operation failed: disk #{index + 1}'s chain is shorter than its images'")
        chain.append(below)
    await writable_base(proc, chain[depth], chain[depth + 1], base_path)
    chain[depth + 1] = (await _children(proc, chain[depth]))["backing"]
    await run_job(
        proc.monitor,
        "block-commit",
        {
            "device": node,
            "top-node": chain[depth],
            "base-node": chain[depth + 1],
            "backing-file": base_path,
            "auto-dismiss": False,
        },
        exited=proc.exited,
        kind="commit",
    )
    await _drop(proc, chain[depth])


async def _drop(proc: QemuProcess, node: str) -> None:
    """Delete a node QEMU no longer uses, and its file node: left in place, it would still be a
    parent of its backing node, which then is no root node for the next block job."""
    children = await _children(proc, node)
    for name in (node, children.get("file", "")):
        if name and not name.startswith("#"):  # "#block…": QEMU's own, gone with their parent
            with contextlib.suppress(OperationFailed):
                await _blockdev_del(proc, name)


def merge_offline(overlay: str, base: str, base_fmt: str, above: list[str]) -> None:
    """Commit ``overlay`` (not in use) into ``base``, then make ``base`` the backing file of every
    image in ``above`` (those built on ``overlay``), as qemu-img rebase -u."""
    from pyvirt.image.rebase import rebase

    commit_offline(overlay)
    for path in above:
        try:
            rebase(path, base, base_fmt, fmt="qcow2", unsafe=True)
        except ImageError as err:
            raise OperationFailed(f"operation failed: rebasing {path} onto {base}: {err}") from err


def commit_offline(overlay: str) -> None:
    """Commit ``overlay`` into its backing file (the image library's ``commit``)."""
    from pyvirt.image.commit import commit

    try:
        commit(overlay, fmt="qcow2", drop=True)
    except ImageError as err:
        raise OperationFailed(f"operation failed: committing {overlay}: {err}") from err


async def in_thread(func: Callable[..., object], *args: object) -> None:
    await asyncio.to_thread(func, *args)

"""``<transient/>`` disks (conf.disk_layers) as libvirt 9.0 runs them: the guest's writes go to a qcow2
overlay the daemon makes over the disk's image when the domain starts (``IMAGE.TRANSIENT-DOMAIN``,
libvirt's name for it), while QEMU is still paused, and makes the disk's active layer as an external
snapshot does (the file handed over by descriptor, ``blockdev-snapshot``). With ``shareBacking='yes'``
the overlay is made before QEMU starts, and QEMU opens it above the image, read-only so that other
domains may share it, from its command line. The overlay is deleted when
the domain stops, however it stops, and the image is as it was. An overlay already there (a start that
another daemon left) is refused by name, as libvirt refuses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from pyvirt.daemon import blockdevs
from pyvirt.daemon.snapshot_disks import make_overlay, snapshot_external_live
from pyvirt.errors import UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.qemu.process import QemuProcess, RunRecord

log = logging.getLogger(__name__)


def check_start(dom: Domain, *, incoming: bool) -> None:
    """A restore or an incoming migration is refused: its disk state would go to the image itself."""
    if incoming and any(disk.layers.transient for disk in dom.devices.disks):
        raise UnsupportedConfig(
            "unsupported configuration: a domain with <transient/> disks cannot be restored or migrated "
            "(their overlays are made only by a fresh start)"
        )


def overlay_path(image: str, domain: str) -> str:
    return f"{image}.TRANSIENT-{domain}"


def make_shared_overlays(dom: Domain, disk_paths: dict[int, str], record: RunRecord) -> dict[int, str]:
    """The overlays of ``shareBacking='yes'`` disks, made before QEMU starts (it opens them, and the
    images read-only, from its command line): disk index → overlay, kept in ``record`` for the stop."""
    out: dict[int, str] = {}
    try:
        for index, disk in enumerate(dom.devices.disks):
            if disk.layers.share_backing:
                image = disk_paths.get(index, disk.source)
                assert image is not None
                path = overlay_path(image, dom.name)
                make_overlay(path, image, disk.driver_type, target=disk.target_dev, reuse=False)
                record.transient.append(path)
                out[index] = path
    except BaseException:
        remove(record)
        raise
    return out


async def add_overlays(reg: DomainRegistry, dom: Domain, proc: QemuProcess) -> None:
    """Make each transient disk of ``dom`` (just started, paused) write to an overlay of its own (those
    sharing their image have theirs already, from :func:`make_shared_overlays`)."""
    overlays: list[tuple[int, str]] = []
    try:
        for index, disk in enumerate(dom.devices.disks):
            if not disk.layers.transient or disk.layers.share_backing:
                continue
            image = blockdevs.disk_path(reg, disk)
            assert image is not None
            path = overlay_path(image, dom.name)
            target = disk.target_dev
            await asyncio.to_thread(make_overlay, path, image, disk.driver_type, target=target, reuse=False)
            proc.record.transient.append(path)
            overlays.append((index, path))
        if overlays:
            await snapshot_external_live(proc, overlays, "transient", dom.devices.disks)
    except BaseException:
        remove(proc.record)
        raise


def remove(record: RunRecord) -> None:
    """Delete the overlays of ``record``'s transient disks (the domain has stopped)."""
    for path in record.transient:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("cannot delete the transient overlay %s: %s", path, err)
    record.transient = []

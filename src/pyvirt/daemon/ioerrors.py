"""Disk I/O errors of a running domain: QEMU's ``BLOCK_IO_ERROR`` as libvirt's io-error events.

QEMU sends one ``BLOCK_IO_ERROR`` per failed request, naming the device (empty for the anonymous
block backends of ``-blockdev`` disks) and the node its device reads. What libvirt makes of it is
kept: the disk's source path and alias, the action as libvirt names it (QEMU's ``stop`` is
``pause``, ``ignore`` is ``none``) and the reason (``enospc`` when the host's storage is full, else
empty). The pause itself is QEMU's (a disk's write-error policy is ``enospc`` by default: stop on a
full host file system, report other errors); its ``STOP`` moves the domain to ``paused (I/O error)``
(:mod:`pyvirt.daemon.qmpevents`), and domblkerror reads the disk's I/O status from ``query-block``.
"""

from __future__ import annotations

import json
import logging
import weakref
from typing import TYPE_CHECKING, Any

from pyvirt.daemon import blockdevs
from pyvirt.errors import PyvirtError

if TYPE_CHECKING:
    from pyvirt.conf.domain import DiskConfig
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

#: QEMU's actions on an I/O error, in libvirt's words (virDomainEventIOErrorAction).
ACTIONS = {"stop": "pause", "report": "report", "ignore": "none"}
# What each QEMU's errors have already put in the log: (alias, action, reason).
_logged: weakref.WeakKeyDictionary[QemuProcess, set[tuple[str, str, str]]] = weakref.WeakKeyDictionary()


async def _disk(obj: DomainObject, proc: QemuProcess, device: str, node: str) -> DiskConfig | None:
    """The live disk an event names: by its device id, else by the node its device reads."""
    assert obj.live is not None
    disks = obj.live.devices.disks
    by_alias = {d.alias: d for d in disks if d.alias}
    if device in by_alias:
        return by_alias[device]
    roots = {root: target for target, root in proc.record.blockroots.items()}
    if node not in roots:  # an overlay an external snapshot put over the recorded root
        tops = blockdevs.device_tops(await proc.monitor.execute("query-block"))
        found = next((alias for alias, top in tops.items() if top == node), None)
        return by_alias.get(found) if found else None
    return next((d for d in disks if d.target_dev == roots[node]), None)


async def on_event(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, data: dict[str, Any]) -> None:
    """A ``BLOCK_IO_ERROR`` of ``obj``'s QEMU (``obj.lock`` held): published as an io-error event
    whose detail (JSON) carries the path, the alias, the action and the reason."""
    disk = await _disk(obj, proc, str(data.get("device") or ""), str(data.get("node-name") or ""))
    path = ""
    if disk is not None:
        try:
            path = blockdevs.disk_path(reg, disk) or disk.source_name or ""
        except PyvirtError:
            path = disk.source or ""
    action = ACTIONS.get(str(data.get("action", "")), "none")
    reason = "enospc" if data.get("nospace") else ""
    alias = disk.alias or "" if disk is not None else ""
    said = _logged.setdefault(proc, set())
    if (alias, action, reason) not in said:  # QEMU sends one event per failed request: say it once
        said.add((alias, action, reason))
        log.warning(
            "domain %s: I/O error on %s (%s): %s, %s",
            obj.name,
            path or "an unknown disk",
            alias,
            data.get("reason", ""),
            action,
        )
    detail = {"path": path, "alias": alias, "action": action, "reason": reason}
    reg.events.publish("domain", obj.name, "io-error", json.dumps(detail))

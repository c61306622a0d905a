"""Domain snapshots: the ``snapshot.*`` actions, their metadata, and create / revert / delete.

Metadata is kept as libvirt keeps it: one ``domainsnapshot`` XML file per snapshot under
``/etc/pyvirt/qemu/snapshot/DOMAIN/NAME.xml`` (below ``PYVIRT_ROOT``), the current one marked with
``<active>1</active>``. Every change runs under the domain's lock (:func:`~pyvirt.daemon.lifecycle.guard`);
while QEMU works on a snapshot the domain is in the lifecycle's SNAPSHOTTING state, shown by
``domstate --reason`` as ``paused (creating snapshot)`` (or running, for a disk-only snapshot).

Kinds of snapshot, as libvirt names them:

- internal, of a running domain (disks and memory inside the qcow2 images): QEMU's snapshot jobs;
- internal, of a shut-off domain (disks only): the image library's qcow2 snapshots;
- external, disk-only: a new qcow2 overlay per disk becomes its active layer, running
  (``blockdev-snapshot``) or not; the domain's ``<source>`` follows it, persistently too. Reverting
  restarts the domain from a fresh overlay over the snapshot's image; deleting commits the overlay
  back into its base;
- external with memory (``--memspec``): the same overlays, and the RAM and device state of the
  running domain in a file of the save format (:mod:`pyvirt.daemon.snapshot_memory`), the guest
  paused meanwhile unless ``--live``. Reverting starts QEMU on fresh overlays and loads that state;
  deleting removes the file too (libvirt 9.0 can do neither).

The disk and QEMU work is in :mod:`pyvirt.daemon.snapshot_disks`; what goes where is settled first
(:mod:`pyvirt.conf.snapshot_disks`), so a bad request changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.conf import backing_chain
from pyvirt.conf import snapshot_tree as tree
from pyvirt.conf.domain import BackingLayer, DiskConfig, Domain
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.conf.snapshot_disks import align_disks
from pyvirt.conf.snapshot_xml import DomainSnapshot, check_name, format_snapshot, parse_snapshot
from pyvirt.daemon import hostdevs, launch, lifecycle, snapshot_memory
from pyvirt.daemon import snapshot_disks as disks
from pyvirt.daemon.lifecycle import DomainState, Paused, Running, Shutoff, guard
from pyvirt.errors import InvalidArgument, InvalidState, NotFound, OperationFailed, UnsupportedConfig
from pyvirt.paths import Layout
from pyvirt.store import atomic_write

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

S = DomainState
#: States a snapshot may be taken, reverted or deleted in: no job running, no guest half-way down.
STABLE = frozenset({S.SHUTOFF, S.RUNNING, S.PAUSED})


def snapshot_dir(layout: Layout, domain: str) -> Path:
    return layout.qemu_config_dir / "snapshot" / domain


class SnapshotStore:
    """The snapshot metadata of one domain, in memory and in its directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.snaps: dict[str, DomainSnapshot] = {}
        for path in sorted(directory.glob("*.xml")) if directory.is_dir() else ():
            try:
                snap = parse_snapshot(path.read_text(), redefine=True)
            except Exception as err:
                log.error("ignoring snapshot metadata %s: %s", path, err)
                continue
            if snap.name != path.stem:
                log.error("ignoring %s: it holds snapshot '%s'", path, snap.name)
                continue
            self.snaps[path.stem] = snap

    @property
    def current(self) -> str | None:
        return next((name for name, snap in self.snaps.items() if snap.current), None)

    def get(self, name: str) -> DomainSnapshot:
        snap = self.snaps.get(name)
        if snap is None:
            raise tree.snapshot_not_found(name)
        return snap

    def write(self, snap: DomainSnapshot) -> None:
        assert snap.name is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / f"{snap.name}.xml", format_snapshot(snap, stored=True).encode())
        self.snaps[snap.name] = snap

    def set_current(self, name: str | None) -> None:
        for other, snap in self.snaps.items():
            if snap.current != (other == name):
                snap.current = other == name
                self.write(snap)

    def remove(self, name: str) -> None:
        """Forget ``name``: its children move up to its parent, and so does being current."""
        snap = self.snaps.pop(name)
        for child in self.snaps.values():
            if child.parent == name:
                child.parent = snap.parent
                self.write(child)
        if snap.current and snap.parent in self.snaps:
            self.set_current(snap.parent)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{name}.xml").unlink()

    def remove_all(self) -> None:
        self.snaps.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class SnapshotAPI:
    """The ``snapshot.*`` actions of one daemon."""

    def __init__(self, layout: Layout, events: EventBus) -> None:
        self.layout = layout
        self.events = events
        self._reg: DomainRegistry | None = None
        self._stores: dict[str, SnapshotStore] = {}

    async def startup(self, domains: DomainRegistry) -> None:
        self._reg = domains
        domains.snapshot_hook = self

    @property
    def reg(self) -> DomainRegistry:
        assert self._reg is not None, "SnapshotAPI used before startup"
        return self._reg

    def handlers(self) -> Handlers:
        return {
            "snapshot.list": self.list_snapshots,
            "snapshot.create": self.create_handler,
            "snapshot.info": self.info_handler,
            "snapshot.xml": self.xml_handler,
            "snapshot.current": self.current_handler,
            "snapshot.set_current": self.set_current_handler,
            "snapshot.revert": self.revert_handler,
            "snapshot.delete": self.delete_handler,
        }

    def store(self, domain: str) -> SnapshotStore:
        found = self._stores.get(domain)
        if found is None:
            found = self._stores[domain] = SnapshotStore(snapshot_dir(self.layout, domain))
        return found

    # The registry's hook: undefine

    def check_undefine(self, obj: DomainObject, remove_metadata: bool) -> None:
        """libvirt's rule: a shut-off domain with snapshots is undefined only with their metadata."""
        count = len(self.store(obj.name).snaps)
        if count and not obj.active and not remove_metadata:
            raise InvalidState(
                f"Requested operation is not valid: cannot delete inactive domain with {count} snapshots"
            )

    def undefined(self, obj: DomainObject, remove_metadata: bool) -> None:
        if remove_metadata and not obj.active:
            self.store(obj.name).remove_all()
            self._stores.pop(obj.name, None)

    # Queries

    def info(
        self, domain: str, snap: DomainSnapshot, counts: dict[str, tuple[int, int]] | None = None
    ) -> dict[str, Any]:
        """``snap`` as the API shows it; ``counts``: :func:`~pyvirt.conf.snapshot_tree.family_counts`
        of the domain's snapshots, when several are shown."""
        store = self.store(domain)
        assert snap.name is not None
        if counts is None or snap.name not in counts:
            counts = {
                snap.name: (
                    len(tree.children(store.snaps, snap.name)),
                    len(tree.descendants(store.snaps, snap.name)),
                )
            }
        return {
            "name": snap.name,
            "domain": domain,
            "description": snap.description,
            "parent": snap.parent,
            "state": snap.state or "",
            "creation_time": snap.creation_time or 0,
            "location": snap.location,
            "memory": snap.memory or "no",
            "current": snap.name in store.snaps and snap.current,
            "children": counts[snap.name][0],
            "descendants": counts[snap.name][1],
            "metadata": snap.name in store.snaps,
        }

    async def list_snapshots(self, req: Request) -> list[dict[str, Any]]:
        obj = self.reg.lookup(req.params["name"])
        store = self.store(obj.name)
        args = req.args
        if args["metadata"] and args["no_metadata"]:
            raise InvalidArgument("--metadata and --no-metadata are mutually exclusive")
        if args["no_metadata"]:
            return []  # every snapshot pyvirt knows of has metadata
        start = args["from"] or None
        if args["current"]:
            if start is not None:
                raise InvalidArgument("--current and --from are mutually exclusive")
            start = store.current
            if start is None:
                raise NotFound("Domain snapshot not found: the domain does not have a current snapshot")
        f = tree.ListFilter(
            roots=args["roots"],
            leaves=args["leaves"],
            no_leaves=args["no_leaves"],
            start=start,
            descendants=args["descendants"],
            inactive=args["inactive"],
            active=args["active"],
            disk_only=args["disk_only"],
            internal=args["internal"],
            external=args["external"],
            topological=args["topological"],
        )
        counts = tree.family_counts(store.snaps)
        return [self.info(obj.name, store.snaps[n], counts) for n in tree.select(store.snaps, f)]

    def _snap(self, req: Request) -> tuple[DomainObject, DomainSnapshot]:
        obj = self.reg.lookup(req.params["name"])
        return obj, self.store(obj.name).get(req.params["snapshot"])

    async def info_handler(self, req: Request) -> dict[str, Any]:
        obj, snap = self._snap(req)
        return self.info(obj.name, snap)

    async def xml_handler(self, req: Request) -> dict[str, Any]:
        _obj, snap = self._snap(req)
        text = format_snapshot(snap)
        if snap.domain_xml and not req.args["security_info"]:
            dom = load_domain_xml(snap.domain_xml)
            embedded = format_domain(dom, secure=False)
            text = format_snapshot(dataclasses.replace(snap, domain_xml=embedded))
        return {"xml": text}

    async def current_handler(self, req: Request) -> dict[str, Any]:
        obj = self.reg.lookup(req.params["name"])
        store = self.store(obj.name)
        if store.current is None:
            raise NotFound("Domain snapshot not found: the domain does not have a current snapshot")
        return self.info(obj.name, store.snaps[store.current])

    async def set_current_handler(self, req: Request) -> dict[str, Any]:
        obj = self.reg.lookup(req.params["name"])
        async with guard(obj, lifecycle.ANY):
            store = self.store(obj.name)
            snap = store.get(req.params["snapshot"])
            store.set_current(snap.name)
            return self.info(obj.name, snap)

    # Create

    async def create_handler(self, req: Request) -> dict[str, Any]:
        body: types.SnapshotCreateRequest = req.data
        return await self.create(req.params["name"], body)

    async def create(self, key: str, body: types.SnapshotCreateRequest) -> dict[str, Any]:
        obj = self.reg.lookup(key)
        redefine = body.get("redefine", False)
        snap = parse_snapshot(body["xml"], redefine=redefine)
        if redefine:
            for flag in ("no_metadata", "halt", "disk_only", "reuse_external", "quiesce", "atomic", "live"):
                if body.get(flag):
                    raise InvalidArgument(f"field '{flag}' cannot be used when redefining snapshot metadata")
            return await self._redefine(obj, snap, body.get("current", False))
        if body.get("current"):
            raise InvalidArgument("field 'current' (--current) needs 'redefine' (--redefine)")
        if body.get("quiesce"):
            raise UnsupportedConfig(
                "unsupported configuration: quiescing the guest's file systems (--quiesce) is not supported"
            )
        # 'atomic': every way pyvirt takes a snapshot is all-or-nothing, so it always holds.
        # 'validate': the XML is always checked strictly.
        async with guard(obj, STABLE):
            store = self.store(obj.name)
            snap.name = check_name(snap.name or str(int(time.time())))
            if snap.name in store.snaps:
                raise OperationFailed(f"operation failed: domain moment {snap.name} already exists")
            dom = obj.current
            active = obj.active
            align_disks(snap, dom, active=active, disk_only=body.get("disk_only", False))
            if snap.memory == "external" and not snap.memory_file:
                raise InvalidArgument("an external memory state needs its file (--memspec file=PATH)")
            if snap.memory == "external":
                assert snap.memory_file is not None
                snapshot_memory.check_new(snap.memory_file)
            if body.get("live") and snap.memory != "external":
                raise UnsupportedConfig(
                    "unsupported configuration: live snapshot creation is supported only during full "
                    "system snapshots with an external memory state"
                )
            disk_only = active and snap.memory == "no"
            external_off = not active and snap.location == "external"
            snap.state = "disk-snapshot" if disk_only or external_off else obj.state.value
            snap.creation_time = int(time.time())
            snap.domain_xml = format_domain(dom)
            snap.parent = store.current
            if snap.location == "internal":
                await self._create_internal(obj, snap)
            else:
                await self._create_external(
                    obj, snap, reuse=body.get("reuse_external", False), live=body.get("live", False)
                )
            if body.get("halt") and obj.active:
                await self._stop(obj)
            if not body.get("no_metadata"):
                snap.current = True  # written current at once: set_current then rewrites only the old one
                store.write(snap)
                store.set_current(snap.name)
            self.events.publish("snapshot", f"{obj.name}/{snap.name}", "created", snap.location)
            return self.info(obj.name, snap)

    async def _create_internal(self, obj: DomainObject, snap: DomainSnapshot) -> None:
        assert snap.name is not None
        indices = [i for i, d in enumerate(snap.disks) if d.snapshot == "internal"]
        proc = obj.proc
        if proc is None:
            paths = [_source(obj.current, i) for i in indices]
            await asyncio.to_thread(disks.create_internal_offline, snap.name, paths)
            return
        was = (obj.state, obj.reason)
        self.reg.transition(obj, S.SNAPSHOTTING, Paused.SNAPSHOT)
        try:
            if was[0] is S.RUNNING:
                await proc.monitor.stop()
            await disks.save_internal(proc, snap.name, indices, obj.current.devices.disks)
        finally:
            await self._back_from_job(obj, proc, was)

    async def _back_from_job(
        self, obj: DomainObject, proc: QemuProcess, was: tuple[DomainState, lifecycle.Reason]
    ) -> None:
        """After a job: the domain runs again if it ran before (unless its QEMU is gone)."""
        if proc is None or obj.proc is not proc or not proc.alive():
            return
        if was[0] is S.RUNNING:
            await proc.monitor.cont()
        self.reg.transition(obj, *was)

    async def _create_external(
        self, obj: DomainObject, snap: DomainSnapshot, *, reuse: bool, live: bool
    ) -> None:
        """New overlays for the external disks and, for a running domain, its memory state into
        ``snap.memory_file`` first (the guest paused meanwhile unless ``live``; the disks then switch
        while it does not run, so they match the memory)."""
        assert snap.name is not None
        dom = obj.current
        overlays = [(i, d.source) for i, d in enumerate(snap.disks) if d.snapshot == "external" and d.source]
        memory = snap.memory_file if snap.memory == "external" else None
        if memory is not None and obj.live is not None:
            hostdevs.refuse_migration(obj.live)
        for index, _path in overlays:
            if (encrypted := dom.devices.disks[index]).encryption is not None:
                raise UnsupportedConfig(
                    f"unsupported configuration: an external snapshot of the encrypted disk "
                    f"'{encrypted.target_dev}' (<encryption>) is not supported; take an internal one"
                )
        made: list[str] = []
        try:
            for index, path in overlays:
                disk = dom.devices.disks[index]
                assert disk.source is not None
                if await asyncio.to_thread(
                    disks.make_overlay,
                    path,
                    disk.source,
                    disk.driver_type,
                    target=disk.target_dev,
                    reuse=reuse,
                ):
                    made.append(path)
            proc = obj.proc
            if proc is not None:
                was = (obj.state, obj.reason)
                pause = memory is not None and not live
                self.reg.transition(obj, S.SNAPSHOTTING, Paused.SNAPSHOT if pause else obj.reason)
                try:
                    if memory is not None:
                        if pause and was[0] is S.RUNNING:
                            await proc.monitor.stop()
                        xml = format_domain(obj.current)
                        await snapshot_memory.save_memory(proc, xml, was[0] is S.RUNNING, memory)
                        made.append(memory)
                    if overlays:
                        await disks.snapshot_external_live(
                            proc, overlays, snap.name, obj.current.devices.disks
                        )
                finally:
                    if memory is not None:
                        await self._back_from_job(obj, proc, was)
                    elif obj.proc is proc and proc.alive():
                        self.reg.transition(obj, *was)
        except BaseException:
            for path in made:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            raise
        self._move_sources(obj, {dom.devices.disks[i].source or "": (p, "qcow2") for i, p in overlays})

    def _move_sources(self, obj: DomainObject, moves: dict[str, tuple[str, str]]) -> None:
        """Disks whose source is a key of ``moves`` now use (path, format), live and persistently."""
        for dom in (obj.live if obj.active else None, obj.config):
            if dom is None:
                continue
            for disk in dom.devices.disks:
                if disk.type == "file" and disk.source in moves:
                    if dom is obj.live:  # the running chain (<backingStore>) follows, for block jobs
                        disk.backing = _moved_chain(disk, *moves[disk.source])
                    else:  # a given chain (conf.backing_chain) follows
                        backing_chain.moved(disk, moves[disk.source][0])
                    disk.source, disk.driver_type = moves[disk.source]
        if obj.config is not None:
            self.reg.write_config(obj.config)
        self.reg.save_run_state(obj)

    async def _stop(self, obj: DomainObject) -> None:
        """End the domain's QEMU (its lock held): shut off, "from snapshot"."""
        proc = obj.proc
        assert proc is not None
        if obj.config is None:
            raise InvalidState("Requested operation is not valid: transient domain needs to remain running")
        obj.stop_reason = Shutoff.FROM_SNAPSHOT
        await proc.terminate(graceful=False)
        if obj.proc is proc:
            self.reg._stopped(obj, proc)

    async def _redefine(self, obj: DomainObject, snap: DomainSnapshot, current: bool) -> dict[str, Any]:
        if snap.name is None:
            raise InvalidArgument("a redefined snapshot needs its <name>")
        async with guard(obj, lifecycle.ANY):
            store = self.store(obj.name)
            old = store.snaps.get(snap.name)
            if snap.parent is not None:
                if snap.parent not in store.snaps:
                    raise tree.snapshot_not_found(snap.parent)
                if snap.parent == snap.name or snap.parent in tree.descendants(store.snaps, snap.name):
                    raise InvalidArgument(f"snapshot '{snap.parent}' cannot be the parent of '{snap.name}'")
            if old is not None:
                snap.state = snap.state or old.state
                snap.creation_time = snap.creation_time or old.creation_time
                snap.memory = snap.memory or old.memory
                snap.memory_file = snap.memory_file or old.memory_file
                snap.disks = snap.disks or old.disks
                snap.domain_xml = snap.domain_xml or old.domain_xml
                snap.current = old.current
            if snap.state is None:
                raise InvalidArgument(f"a redefined snapshot needs its <state> ('{snap.name}' has none)")
            if snap.domain_xml is not None:
                load_domain_xml(snap.domain_xml)  # a broken definition is refused now, not at revert
            else:
                snap.domain_xml = format_domain(obj.config or obj.current)
            snap.creation_time = snap.creation_time or int(time.time())
            if snap.memory is None:
                snap.memory = "internal" if snap.state in ("running", "paused") else "no"
            store.write(snap)
            if current:
                store.set_current(snap.name)
            self.events.publish("snapshot", f"{obj.name}/{snap.name}", "redefined")
            return self.info(obj.name, snap)

    # Revert

    async def revert_handler(self, req: Request) -> dict[str, Any]:
        body: types.SnapshotRevertRequest = req.data
        if body.get("running") and body.get("paused"):
            raise InvalidArgument("--running and --paused are mutually exclusive")
        obj = self.reg.lookup(req.params["name"])
        async with guard(obj, STABLE):
            snap = self.store(obj.name).get(req.params["snapshot"])
            await self._revert(obj, snap, body)
            self.store(obj.name).set_current(snap.name)
            self.events.publish("snapshot", f"{obj.name}/{snap.name}", "reverted")
        return obj.summary()

    async def _revert(
        self, obj: DomainObject, snap: DomainSnapshot, body: types.SnapshotRevertRequest
    ) -> None:
        assert snap.name is not None
        if snap.memory == "external" and not (snap.memory_file and os.path.isfile(snap.memory_file)):
            raise OperationFailed(
                f"operation failed: the memory state file '{snap.memory_file}' of snapshot '{snap.name}' "
                "is gone"
            )
        snapdom = load_domain_xml(snap.domain_xml) if snap.domain_xml else copy.deepcopy(obj.current)
        if body.get("reset_nvram"):
            nvram = self.reg.nvram_path(snapdom)
            if nvram is not None and obj.active:
                raise InvalidState("Requested operation is not valid: --reset-nvram needs the domain to stop")
        if snap.memory == "internal" and snap.state in ("running", "paused"):
            await self._revert_full(obj, snap, snapdom, body)
            return
        if obj.active:
            await self._stop(obj)
        internal = [i for i, d in enumerate(snap.disks) if d.snapshot == "internal"]
        if internal:
            paths = [_source(snapdom, i) for i in internal]
            await asyncio.to_thread(disks.apply_internal_offline, snap.name, paths)
        external = [(i, d) for i, d in enumerate(snap.disks) if d.snapshot == "external" and d.source]
        for index, spec in external:
            assert spec.source is not None
            disk = snapdom.devices.disks[index]
            assert disk.source is not None
            path = self._fresh_overlay_path(obj.name, snap, spec.source)
            with contextlib.suppress(FileNotFoundError):
                if path == spec.source:
                    os.unlink(path)
            await asyncio.to_thread(
                disks.make_overlay, path, disk.source, disk.driver_type, target=disk.target_dev, reuse=False
            )
            backing_chain.moved(disk, path)
            disk.source, disk.driver_type = path, "qcow2"
        self._reset_nvram(snapdom, body)
        obj.config = snapdom
        self.reg.write_config(snapdom)
        if snap.memory == "external":
            assert snap.memory_file is not None
            run = (snap.state == "running" or body.get("running", False)) and not body.get("paused", False)
            await snapshot_memory.restore_memory(
                self.reg, obj, copy.deepcopy(snapdom), snap.memory_file, paused=not run
            )
            if run:
                self.reg.transition(obj, S.RUNNING, Running.FROM_SNAPSHOT, ("started", "from snapshot"))
            else:
                self.reg.transition(obj, S.PAUSED, Paused.FROM_SNAPSHOT, ("suspended", "from snapshot"))
        elif body.get("running") or body.get("paused"):
            await launch.start_qemu(self.reg, obj, copy.deepcopy(snapdom), paused=body.get("paused", False))

    def _reset_nvram(self, dom: Domain, body: types.SnapshotRevertRequest) -> None:
        nvram = self.reg.nvram_path(dom) if body.get("reset_nvram") else None
        if nvram is not None:
            with contextlib.suppress(FileNotFoundError):
                nvram.unlink()  # made again from its template at the next start

    def _fresh_overlay_path(self, domain: str, snap: DomainSnapshot, overlay: str) -> str:
        """Where the reverted disk's new overlay goes: the snapshot's own overlay file when nothing
        else builds on it (its content is the state being discarded), else a new file beside it."""
        bases: set[str] = set()
        for other in self.store(domain).snaps.values():
            if other is not snap and other.domain_xml:
                bases.update(d.source for d in load_domain_xml(other.domain_xml).devices.disks if d.source)
        if overlay not in bases:
            return overlay
        n = 1
        while os.path.lexists(f"{overlay}-{n}") or f"{overlay}-{n}" in bases:
            n += 1
        return f"{overlay}-{n}"

    async def _revert_full(
        self, obj: DomainObject, snap: DomainSnapshot, snapdom: Domain, body: types.SnapshotRevertRequest
    ) -> None:
        """Back to a snapshot with its memory: loaded into the running QEMU when the definition still
        matches, else into a QEMU started for it (a running one ended first, with --force)."""
        assert snap.name is not None
        indices = [i for i, d in enumerate(snap.disks) if d.snapshot == "internal"]
        proc = obj.proc
        if proc is not None and not _same_definition(obj.current, snapdom):
            if not body.get("force"):
                raise InvalidState(
                    "Requested operation is not valid: revert requires force: the domain's definition "
                    "changed since the snapshot; QEMU must be restarted (--force)"
                )
            await self._stop(obj)
            proc = None
        started = False
        if proc is None:
            self._reset_nvram(snapdom, body)
            if obj.config is not None:
                obj.config = snapdom
                self.reg.write_config(snapdom)
            await launch.start_qemu(self.reg, obj, copy.deepcopy(snapdom), paused=True)
            started = True
            proc = obj.proc
            assert proc is not None
        was = (obj.state, obj.reason)
        self.reg.transition(obj, S.SNAPSHOTTING, Paused.FROM_SNAPSHOT)
        try:
            if was[0] is S.RUNNING:
                await proc.monitor.stop()
            await disks.load_internal(proc, snap.name, indices, obj.current.devices.disks)
        except BaseException:
            if started and obj.proc is proc:
                await self._stop(obj)
            else:
                await self._back_from_job(obj, proc, was)
            raise
        run = (snap.state == "running" or body.get("running", False)) and not body.get("paused", False)
        if run:
            await proc.monitor.cont()
            self.reg.transition(obj, S.RUNNING, Running.FROM_SNAPSHOT, ("started", "from snapshot"))
        else:
            self.reg.transition(obj, S.PAUSED, Paused.FROM_SNAPSHOT, ("suspended", "from snapshot"))

    # Delete

    async def delete_handler(self, req: Request) -> dict[str, Any]:
        args = req.args
        if args["children"] and args["children_only"]:
            raise InvalidArgument("--children and --children-only are mutually exclusive")
        obj = self.reg.lookup(req.params["name"])
        async with guard(obj, STABLE):
            store = self.store(obj.name)
            name = store.get(req.params["snapshot"]).name
            assert name is not None
            below = tree.descendants(store.snaps, name) if args["children"] or args["children_only"] else []
            order = list(reversed(below)) + ([] if args["children_only"] else [name])
            if not args["metadata"]:
                for target in order:
                    self._check_discard(obj, store, store.snaps[target], set(order))
            deleted = []
            for target in order:
                if not args["metadata"]:
                    await self._discard(obj, store.snaps[target])
                store.remove(target)
                deleted.append(target)
                self.events.publish("snapshot", f"{obj.name}/{target}", "deleted")
            return {"deleted": deleted}

    def _disk_chain(self, obj: DomainObject, target: str) -> list[str]:
        """The image files of the domain's disk ``target`` now, its active layer first."""
        current = next((d for d in obj.current.devices.disks if d.target_dev == target), None)
        if (
            current is None
            or not current.source
            or current.type != "file"
            or not os.path.exists(current.source)
        ):
            return []
        return disks.file_chain(current.source, current.driver_type)

    def _check_discard(
        self, obj: DomainObject, store: SnapshotStore, snap: DomainSnapshot, going: set[str]
    ) -> None:
        """Refuse, before anything is done, to delete an external snapshot whose overlay cannot be
        merged into its base without changing what another snapshot or the domain sees."""
        assert snap.name is not None
        snapdom = load_domain_xml(snap.domain_xml) if snap.domain_xml else obj.current
        for index, spec in enumerate(snap.disks):
            if spec.snapshot != "external" or not spec.source:
                continue
            overlay, base = spec.source, snapdom.devices.disks[index].source
            chain = self._disk_chain(obj, spec.name)
            users = self._built_on(store, overlay, going)
            if overlay not in chain and not users:
                continue  # nothing builds on it any more: the file just goes
            why = None
            needing = self._built_on(store, base or "", going | {snap.name})
            if needing:
                why = f"snapshot '{needing[0].name}' needs its base image {base} as it is"
            elif base in chain and overlay not in chain:
                why = f"the domain's disk {spec.name} is built on its base image {base}"
            elif obj.active and overlay not in chain:
                why = f"snapshot '{users[0].name}' is built on it and the running domain does not use it"
            if why:
                raise OperationFailed(
                    f"operation failed: cannot delete snapshot '{snap.name}': its overlay {overlay} cannot "
                    f"be merged: {why}"
                )

    @staticmethod
    def _built_on(store: SnapshotStore, image: str, going: set[str]) -> list[DomainSnapshot]:
        """The snapshots (other than those in ``going``) taken while a disk's image was ``image``."""
        out = []
        for other in store.snaps.values():
            if other.name in going or not other.domain_xml:
                continue
            if any(d.source == image for d in load_domain_xml(other.domain_xml).devices.disks):
                out.append(other)
        return out

    async def _discard(self, obj: DomainObject, snap: DomainSnapshot) -> None:
        """Remove ``snap``'s state from the images: internal snapshots deleted; an external overlay
        committed into its base when it is the active layer, merged into it when something still
        builds on it, removed when nothing does."""
        assert snap.name is not None
        snapdom = load_domain_xml(snap.domain_xml) if snap.domain_xml else obj.current
        internal = [i for i, d in enumerate(snap.disks) if d.snapshot == "internal"]
        if internal:
            proc = obj.proc
            current = obj.current.devices.disks
            live = [
                i
                for i in internal
                if proc is not None and i < len(current) and current[i].source == _source(snapdom, i)
            ]
            offline = [i for i in internal if i not in live]
            if live:
                assert proc is not None
                await disks.delete_internal_live(proc, snap.name, live, current)
            if offline:
                await asyncio.to_thread(
                    disks.delete_internal_offline, snap.name, [_source(snapdom, i) for i in offline]
                )
        if snap.memory == "external" and snap.memory_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(snap.memory_file)
        store = self.store(obj.name)
        for index, spec in enumerate(snap.disks):
            if spec.snapshot != "external" or not spec.source:
                continue
            base = snapdom.devices.disks[index]
            assert base.source is not None
            overlay = spec.source
            chain = await asyncio.to_thread(self._disk_chain, obj, spec.name)
            users = self._built_on(store, overlay, {snap.name})
            if chain and chain[0] == overlay:
                if obj.proc is not None:
                    await disks.commit_active_live(
                        obj.proc, _index_of(obj.current, spec.name), base.source, obj.current.devices.disks
                    )
                else:
                    await asyncio.to_thread(disks.commit_offline, overlay)
                self._move_sources(obj, {overlay: (base.source, base.driver_type)})
            elif overlay in chain or users:
                await self._merge(obj, spec.name, overlay, (base.source, base.driver_type), users, chain)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(overlay)

    async def _merge(
        self,
        obj: DomainObject,
        target: str,
        overlay: str,
        base: tuple[str, str],
        users: list[DomainSnapshot],
        chain: list[str],
    ) -> None:
        """Merge ``overlay`` (not the active layer) into its base: the images built on it (the users'
        overlays, the layer above it in the domain's chain) then build on the base, and the users'
        metadata says so."""
        above = {
            d.source
            for user in users
            for d in user.disks
            if d.name == target and d.snapshot == "external" and d.source and os.path.exists(d.source)
        }
        if overlay in chain:
            above.add(chain[chain.index(overlay) - 1])
        if obj.proc is not None:  # overlay in chain: _check_discard saw to it
            depth = chain.index(overlay)
            await disks.commit_intermediate_live(
                obj.proc, _index_of(obj.current, target), depth, base[0], obj.current.devices.disks
            )
            live = obj.current.devices.disks[_index_of(obj.current, target)]
            live.backing = [layer for layer in live.backing or [] if layer.source != overlay]
            idle = sorted(path for path in above if path not in chain)
            if idle:
                await asyncio.to_thread(_rebase_all, idle, *base)
        else:
            await asyncio.to_thread(disks.merge_offline, overlay, base[0], base[1], sorted(above))
        store = self.store(obj.name)
        for user in users:
            assert user.domain_xml is not None
            dom = load_domain_xml(user.domain_xml)
            for disk in dom.devices.disks:
                if disk.source == overlay:
                    backing_chain.moved(disk, base[0])
                    disk.source, disk.driver_type = base
            user.domain_xml = format_domain(dom)
            store.write(user)


def _moved_chain(disk: DiskConfig, path: str, fmt: str) -> list[BackingLayer]:
    """The backing chain of running ``disk`` once ``path`` is its top: the layers below ``path``
    when it was in the chain (an overlay committed), else the old top over the old chain (``path``
    a new overlay)."""
    chain = [BackingLayer(disk.source or "", disk.driver_type, disk.type), *(disk.backing or [])]
    below = next((i + 1 for i, layer in enumerate(chain) if layer.source == path), None)
    return chain[below:] if below is not None else chain


def _rebase_all(paths: list[str], base: str, base_fmt: str) -> None:
    from pyvirt.image.rebase import rebase

    for path in paths:
        rebase(path, base, base_fmt, fmt="qcow2", unsafe=True)


def _source(dom: Domain, index: int) -> str:
    source = dom.devices.disks[index].source
    if source is None:
        raise OperationFailed(f"operation failed: disk #{index + 1} has no source")
    return source


def _index_of(dom: Domain, target: str) -> int:
    for index, disk in enumerate(dom.devices.disks):
        if disk.target_dev == target:
            return index
    raise OperationFailed(f"operation failed: the domain has no disk '{target}' any more")


def _same_definition(current: Domain, snapdom: Domain) -> bool:
    """Whether the running definition is still the snapshot's (then its memory fits this QEMU)."""
    try:
        now = load_domain_xml(format_domain(current))
    except Exception:
        return False
    return format_domain(now) == format_domain(snapdom)

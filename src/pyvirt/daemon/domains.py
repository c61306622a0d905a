"""The domain registry: definitions, run state, per-domain locks, and the lifecycle operations.

Each domain has its own ``asyncio.Lock``: a slow start of one domain never holds up another. A
registry-wide lock guards only name/UUID uniqueness during define and undefine. Every operation checks
the domain's state with :func:`~pyvirt.daemon.lifecycle.guard`, inside that lock; every change of
state goes through :meth:`DomainRegistry.transition`, which checks it against the lifecycle's table,
publishes the event and saves the run state. QMP events are applied under the same lock
(:mod:`pyvirt.daemon.qmpevents`). The QEMU process exit (seen through a pidfd) is the one place where a
domain becomes inactive; ``destroy`` ends the process before it takes the lock, so whatever holds the
lock waiting on that QEMU lets go, and a destroy always gets through. Nothing waits on a guest while
holding the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pyvirt.conf import backing_chain, qemu_ns
from pyvirt.conf.domain import Domain
from pyvirt.conf.domain_xml import format_domain, load_domain_xml, parse_domain
from pyvirt.daemon import blockjobs, chardev_sockets, guest_memory, hostdevs, launch, lifecycle, tpm, virtiofs
from pyvirt.daemon.confinement import Confinement
from pyvirt.daemon.console import ConsoleRelay, drop_relay
from pyvirt.daemon.events import EventBus
from pyvirt.daemon.lifecycle import (
    DomainState,
    Paused,
    PMSuspended,
    Reason,
    Running,
    Shutdown,
    Shutoff,
    check_transition,
    guard,
)
from pyvirt.daemon.qmpevents import PAUSED_STATUS, event_handler, on_shutdown
from pyvirt.errors import (
    AlreadyExists,
    InvalidState,
    NotFound,
    OperationFailed,
    PyvirtError,
)
from pyvirt.paths import Layout
from pyvirt.qemu import firmware
from pyvirt.qemu.monitor import cpu_time_ns
from pyvirt.qemu.process import QemuProcess, RunRecord, append_log, kill_and_wait, pid_is_qemu_of, qemus_of
from pyvirt.store import atomic_symlink, atomic_write, remove

if TYPE_CHECKING:
    from pyvirt.daemon.networks import NetworkHook
    from pyvirt.daemon.secrets import SecretStore
    from pyvirt.daemon.snapshots import SnapshotAPI
    from pyvirt.daemon.storage import StorageHook

log = logging.getLogger(__name__)

S = DomainState
Waiter = tuple[str, Callable[[dict[str, Any]], bool], "asyncio.Future[dict[str, Any]]"]


@dataclass(eq=False)
class DomainObject:
    config: Domain | None  # the persistent definition; None for a transient domain
    live: Domain | None = None  # the running definition (with pty paths, taps, id)
    state: DomainState = DomainState.SHUTOFF
    reason: Reason = Shutoff.UNKNOWN
    autostart: bool = False
    proc: QemuProcess | None = None
    console: ConsoleRelay | None = None
    # the other pty character devices a client opened by name (console --devname serial1, ...)
    device_relays: dict[str, ConsoleRelay] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    fake_reboot: bool = False
    stop_reason: Shutoff | None = None  # why the next QEMU exit happens (shutdown, destroyed, crashed)
    watcher: asyncio.Task[None] | None = None
    waiters: list[Waiter] = field(default_factory=list)
    generation: int = 0  # counts QEMU starts: events of an earlier QEMU are dropped
    # device id -> the removal the guest was asked for (device_del) and has not finished
    removals: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    managed_save: bool = False  # a managed save image waits for the next start (pyvirt.daemon.saves)
    # the running definition last written to the run directory, and for which QEMU (see save_run_state)
    run_xml: tuple[QemuProcess, str] | None = None

    @property
    def current(self) -> Domain:
        dom = self.live or self.config
        assert dom is not None
        return dom

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def uuid(self) -> str:
        return self.current.uuid

    @property
    def active(self) -> bool:
        return self.proc is not None

    @property
    def persistent(self) -> bool:
        return self.config is not None

    @property
    def id(self) -> int | None:
        return self.live.id if self.live is not None and self.active else None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "id": self.id,
            "state": self.state.virsh(self.reason),
            "reason": str(self.reason),
            "persistent": self.persistent,
            "autostart": self.autostart,
            "managed_save": self.managed_save,
        }


class Spawner(Protocol):
    """Starts a domain's QEMU (:meth:`QemuProcess.spawn`; tests pass a scripted stand-in)."""

    async def __call__(
        self,
        *,
        argv_for_fd: Callable[[int], list[str]],
        record: RunRecord,
        log_path: Path,
        on_event: Callable[[str, dict[str, Any]], Awaitable[None]],
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> QemuProcess: ...


class DomainRegistry:
    """All domains of one daemon."""

    def __init__(
        self,
        layout: Layout,
        events: EventBus,
        *,
        accel_check: Callable[[], tuple[bool, str]],
        networks: NetworkHook | None = None,
        storage: StorageHook | None = None,
        spawn: Spawner = QemuProcess.spawn,
        confinement: Confinement | None = None,
    ) -> None:
        self.layout = layout
        self.confinement = confinement or Confinement(None, None, "")
        self.spawn = spawn
        self.events = events
        self.accel_check = accel_check
        self.networks = networks
        self.storage = storage
        self._domains: dict[str, DomainObject] = {}
        self._registry_lock = asyncio.Lock()
        self.next_id = 1  # the id of the next domain started (virsh's domid)
        self.snapshot_hook: SnapshotAPI | None = None  # set by the snapshot API at start-up
        self.secrets: SecretStore | None = None  # set by the secret API at start-up (encrypted disks)
        self.hostdevs = hostdevs.HostdevState()  # the host devices running domains hold

    # Lookup

    def all(self) -> list[DomainObject]:
        return list(self._domains.values())

    def lookup(self, key: str) -> DomainObject:
        """By name, then by id, then by UUID (virsh's order)."""
        obj = self._domains.get(key)
        if obj is not None:
            return obj
        if key.isdigit():
            for obj in self._domains.values():
                if obj.id == int(key):
                    return obj
        lowered = key.lower()
        for obj in self._domains.values():
            if obj.uuid == lowered:
                return obj
        raise NotFound(f"Domain not found: no domain with matching name '{key}'")

    # Loading at daemon start

    def load_configs(self) -> None:
        for path in sorted(self.layout.qemu_config_dir.glob("*.xml")):
            try:
                dom = load_domain_xml(path.read_text())
            except Exception as err:
                log.error("ignoring %s: %s", path, err)
                continue
            if dom.name != path.stem:
                log.error("ignoring %s: it defines domain '%s'", path, dom.name)
                continue
            autostart = (self.layout.autostart_dir / path.name).is_symlink()
            managed_save = self.layout.managed_save(dom.name).exists()
            self._domains[dom.name] = DomainObject(config=dom, autostart=autostart, managed_save=managed_save)

    async def reattach_all(self) -> None:
        """Adopt every QEMU an earlier daemon left running; clean up after the ones that are gone."""
        records: list[RunRecord] = []
        for record_path in sorted(self.layout.qemu_run_dir.glob("*.json")):
            try:
                records.append(RunRecord.load(record_path))
            except (OSError, ValueError, TypeError) as err:
                log.error("ignoring run record %s: %s", record_path, err)
                continue
            self.confinement.adopt(records[-1])  # before any is given back: files they share stay held
            self.hostdevs.adopt(records[-1])
        for record in records:
            obj = self._domains.get(record.name)
            live_path = self.layout.qemu_run_dir / f"{record.name}.xml"
            live: Domain | None
            try:
                live = parse_domain(live_path.read_text(), live=True)
            except Exception as err:
                if record.pid:  # pid 0: recorded before the spawn, so no live XML yet
                    log.error("run record of %s has no usable live XML (%s)", record.name, err)
                live = obj.config if obj is not None else None
            if live is None:
                if not pid_is_qemu_of(record.pid, record.uuid):
                    hostdevs.release(self, record)
                    self.confinement.release_record(record)
                self.remove_run_files(record.name)
                continue
            if obj is None:
                obj = DomainObject(config=None)
                self._domains[record.name] = obj
            async with obj.lock:
                await self._reattach_locked(obj, record, live)
            if record.autodestroy and obj.active:
                log.info(
                    "domain %s: destroyed, its autodestroy client is gone with the old daemon", record.name
                )
                with contextlib.suppress(PyvirtError):
                    await self.destroy(record.name)
        await self._end_unowned_qemus()

    async def _end_unowned_qemus(self, only: str | None = None) -> None:
        """Kill every QEMU of this layout (of domain ``only``, if given) that no domain owns now: one an
        earlier daemon spawned and died before recording (a start it did not finish, which its client
        saw fail), or one whose monitor no longer answers. Left running it would be unmanaged, and the
        next start of its domain would run a second QEMU on the same disks. libvirt ends such QEMUs too."""
        owned = {obj.proc.pid for obj in self._domains.values() if obj.proc is not None}
        for pid, name in qemus_of(self.layout.qemu_run_dir).items():
            if pid in owned or (only is not None and name != only):
                continue
            log.warning(
                "killing QEMU (pid %d) of domain %s: no record of it, its start did not finish", pid, name
            )
            await asyncio.to_thread(kill_and_wait, pid)
            obj = self._domains.get(name)
            if obj is None or not obj.active:
                self.remove_run_files(name)

    async def _reattach_locked(self, obj: DomainObject, record: RunRecord, live: Domain) -> None:
        obj.generation += 1
        proc = await QemuProcess.reattach(record, event_handler(self, obj, obj.generation))
        if proc is None:
            log.info("domain %s stopped while the daemon was away", record.name)
            # Before its resources go: an unrecorded QEMU of a start that did not finish still holds its
            # cgroup, whose removal would wait for it in vain.
            await self._end_unowned_qemus(only=record.name)
            obj.live = None
            self._release_resources(live, record)
            self.remove_run_files(record.name)
            obj.state, obj.reason = S.SHUTOFF, Shutoff.UNKNOWN
            if obj.config is None:
                del self._domains[record.name]
            return
        live.id = record.id
        backing_chain.mark_given(live, record.given_chains)
        obj.live = live
        obj.proc = proc
        self.next_id = max(self.next_id, record.id + 1)
        try:
            running, status = await proc.monitor.status()
        except OperationFailed:
            running, status = True, "running"
        # Not a transition: the state QEMU is in is a fact, whatever the record said.
        obj.state, obj.reason = self._state_from_qemu(running, status, record)
        launch.open_console(obj)
        self.watch_exit(obj, proc)
        tpm.rewatch(self, obj, self.layout.qemu_run_dir / f"{record.name}.channels")
        virtiofs.rewatch(self, obj, record)
        log.info("re-attached to domain %s (pid %d)", record.name, record.pid)
        await blockjobs.reattach(self, obj, proc)
        if status != "shutdown":
            return
        # The guest powered off while no daemon was there to act on it, or before QEMU quit.
        with contextlib.suppress(OperationFailed):
            if obj.state is S.SHUTDOWN:
                obj.stop_reason = Shutoff.SHUTDOWN
                await proc.monitor.quit()
            else:
                await on_shutdown(self, obj, proc, "guest-shutdown")

    @staticmethod
    def _state_from_qemu(running: bool, status: str, record: RunRecord) -> tuple[DomainState, Reason]:
        """The domain's state from QEMU's run state; the reason from the record when it still holds."""

        def recorded(state: DomainState, family: type[Reason], default: Reason) -> Reason:
            if record.state != state.value:
                return default
            try:
                return family(record.reason)
            except ValueError:
                return default

        if status == "suspended":
            return S.PMSUSPENDED, PMSuspended.UNKNOWN
        if running:
            return S.RUNNING, recorded(S.RUNNING, Running, Running.UNPAUSED)
        if status == "guest-panicked":
            return S.CRASHED, lifecycle.Crashed.PANICKED
        if status == "shutdown" and record.state == S.SHUTDOWN.value:
            return S.SHUTDOWN, Shutdown.USER
        return S.PAUSED, recorded(S.PAUSED, Paused, PAUSED_STATUS.get(status, Paused.UNKNOWN))

    async def autostart_all(self) -> None:
        tasks = [
            self.start(obj.name, autostart=True)
            for obj in self.all()
            if obj.autostart and obj.persistent and not obj.active
        ]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("autostart failed: %s", result)

    # Definitions

    async def define(self, xml: str) -> tuple[DomainObject, bool]:
        """Define or redefine a persistent domain; returns (object, was_new)."""
        dom = load_domain_xml(xml)
        firmware.fill_domain(copy.deepcopy(dom))  # an unsatisfiable firmware request fails now, not at start
        async with self._registry_lock:
            existing = self._domains.get(dom.name)
            self._check_unique(dom, existing)
            if existing is not None:
                if existing.uuid != dom.uuid and dom.uuid_given:
                    raise AlreadyExists(
                        f"operation failed: domain '{dom.name}' already exists with uuid {existing.uuid}"
                    )
                dom.uuid = existing.uuid
            self.write_config(dom)
            if existing is None:
                obj = DomainObject(config=dom)
                self._domains[dom.name] = obj
                self.events.publish("domain", dom.name, "defined", "added")
                return obj, True
            existing.config = dom
            self.events.publish("domain", dom.name, "defined", "updated")
            return existing, False

    def _check_unique(self, dom: Domain, existing: DomainObject | None) -> None:
        for other in self._domains.values():
            if other is existing:
                continue
            if other.uuid == dom.uuid:
                raise AlreadyExists(
                    f"operation failed: domain '{other.name}' already exists with uuid {dom.uuid}"
                )

    def write_config(self, dom: Domain) -> None:
        text = format_domain(dom)
        atomic_write(self.layout.domain_xml(dom.name), text.encode())

    async def undefine(
        self,
        key: str,
        *,
        remove_storage: bool = False,
        nvram: str | None = None,
        tpm_flag: str | None = None,
        snapshots_metadata: bool = False,
        managed_save: bool = False,
    ) -> tuple[str, list[str]]:
        """Undefine; ``nvram`` says what becomes of an existing NVRAM file: ``delete`` or ``keep`` (None:
        refuse, as libvirt does); ``snapshots_metadata`` removes the snapshots' metadata of a shut-off
        domain that has any (refused without it); a managed save image is removed with
        ``managed_save``, else refused."""
        obj = self.lookup(key)
        removed: list[str] = []
        async with guard(obj, lifecycle.ANY), self._registry_lock:
            if obj.config is None:
                raise InvalidState(
                    f"Requested operation is not valid: cannot undefine transient domain '{obj.name}'"
                )
            name = obj.name
            nvram_path = self.nvram_path(obj.config)
            if nvram_path is not None and not nvram_path.exists():
                nvram_path = None
            if nvram_path is not None and nvram is None:
                raise InvalidState(
                    "Requested operation is not valid: cannot undefine domain with nvram "
                    f"({nvram_path}): use --nvram to delete it or --keep-nvram to keep it"
                )
            if self.snapshot_hook is not None:
                self.snapshot_hook.check_undefine(obj, snapshots_metadata)
            saved = self.layout.managed_save(name)
            if saved.exists() and not managed_save:
                raise InvalidState(
                    "Requested operation is not valid: Refusing to undefine while domain managed save "
                    "image exists"
                )
            if remove_storage:
                if obj.active:
                    raise InvalidState(
                        f"Requested operation is not valid: cannot remove storage of running domain '{name}'"
                    )
                for disk in obj.config.devices.disks:
                    if disk.device != "disk" or disk.readonly:
                        continue
                    path = disk.source if disk.type == "file" else None
                    if disk.type == "volume" and self.storage and disk.source_pool and disk.source_volume:
                        with contextlib.suppress(PyvirtError):
                            path = self.storage.volume_path(disk.source_pool, disk.source_volume)
                    if path:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
                            removed.append(path)
            remove(saved)
            obj.managed_save = False
            remove(self.layout.autostart_dir / f"{name}.xml")
            remove(self.layout.domain_xml(name))
            if nvram_path is not None and nvram == "delete":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(nvram_path)
            if not obj.active and not tpm.keep_at_undefine(obj.config, tpm_flag):
                tpm.remove_state(self.layout, obj.config)  # a running one's: when it stops, as libvirt
            obj.autostart = False
            if self.snapshot_hook is not None:
                self.snapshot_hook.undefined(obj, snapshots_metadata)
            if obj.active:
                obj.config = None  # becomes transient until it stops
            else:
                del self._domains[name]
            self.events.publish("domain", name, "undefined", "removed")
            return name, removed

    async def set_autostart(self, key: str, enabled: bool) -> DomainObject:
        obj = self.lookup(key)
        async with guard(obj, lifecycle.ANY):
            if obj.config is None:
                raise InvalidState(
                    "Requested operation is not valid: cannot set autostart for transient domain"
                )
            link = self.layout.autostart_dir / f"{obj.name}.xml"
            if enabled:
                atomic_symlink(f"../{obj.name}.xml", link)
            else:
                remove(link)
            obj.autostart = enabled
        return obj

    def dumpxml(
        self, key: str, *, inactive: bool = False, secure: bool = False, migratable: bool = False
    ) -> str:
        """Domain XML; passwords only with ``secure`` (virsh dumpxml --security-info); ``migratable``:
        the current definition (the running one while it runs) without its runtime-only state (id,
        aliases, pty paths, generated tap names), as another host would define it."""
        obj = self.lookup(key)
        if inactive and obj.config is not None:
            return format_domain(obj.config, secure=secure)
        if migratable:
            return format_domain(obj.current, secure=secure)
        if obj.active and obj.live is not None:
            return format_domain(obj.live, live=True, secure=secure)
        return format_domain(obj.current, secure=secure)

    # Lifecycle

    async def create(self, xml: str, *, paused: bool = False) -> DomainObject:
        """Start a transient domain (virsh create)."""
        dom = load_domain_xml(xml)
        async with self._registry_lock:
            existing = self._domains.get(dom.name)
            if existing is not None:
                if existing.active:
                    raise AlreadyExists(f"operation failed: domain '{dom.name}' is already active")
                if existing.uuid != dom.uuid and dom.uuid_given:
                    raise AlreadyExists(
                        f"operation failed: domain '{dom.name}' already exists with uuid {existing.uuid}"
                    )
                obj = existing
            else:
                self._check_unique(dom, None)
                obj = DomainObject(config=None)
                obj.live = dom
                self._domains[dom.name] = obj
        try:
            async with guard(obj, lifecycle.INACTIVE):
                await launch.start_qemu(self, obj, dom, paused=paused)
        except BaseException:
            if obj.config is None and not obj.active:
                self._domains.pop(dom.name, None)
            raise
        return obj

    async def start(
        self,
        key: str,
        *,
        paused: bool = False,
        autostart: bool = False,
        force_boot: bool = False,
        bypass_cache: bool = False,
    ) -> DomainObject:
        """Start a defined domain: from its managed save if it has one (``force_boot`` discards it
        instead; ``bypass_cache`` reads it with O_DIRECT), else with a fresh boot."""
        from pyvirt.daemon import saves

        obj = self.lookup(key)
        async with guard(obj, lifecycle.INACTIVE):
            if obj.config is None:
                raise InvalidState(f"Requested operation is not valid: domain '{obj.name}' is transient")
            if await saves.start_managed(
                self, obj, paused=paused, force_boot=force_boot, bypass_cache=bypass_cache
            ):
                return obj
            await launch.start_qemu(self, obj, copy.deepcopy(obj.config), paused=paused, autostart=autostart)
        return obj

    async def restore_target(self, dom: Domain) -> tuple[DomainObject, bool]:
        """The domain a restore of ``dom`` starts: the one with its name and UUID, or a new transient
        one (then True). A domain with the name or the UUID but not both is refused."""
        async with self._registry_lock:
            existing = self._domains.get(dom.name)
            if existing is not None:
                if existing.uuid != dom.uuid:
                    raise AlreadyExists(
                        f"operation failed: domain '{dom.name}' already exists with uuid {existing.uuid}"
                    )
                return existing, False
            self._check_unique(dom, None)
            obj = DomainObject(config=None)
            obj.live = dom
            self._domains[dom.name] = obj
            return obj, True

    def forget(self, obj: DomainObject) -> None:
        """Drop a transient domain that never ran (a restore into it failed)."""
        if obj.config is None and not obj.active and self._domains.get(obj.name) is obj:
            del self._domains[obj.name]

    def nvram_path(self, dom: Domain) -> Path | None:
        pflash = dom.os.loader is not None and dom.os.loader.type == "pflash"
        if not pflash and dom.os.firmware != "efi":
            return None
        if dom.os.loader is not None and dom.os.loader.stateless:
            return None
        if dom.os.nvram_source is not None:  # on a server (<nvram type='network'>): no file here
            return None
        if dom.os.nvram:
            return Path(dom.os.nvram)
        return self.layout.state_dir / "qemu/nvram" / f"{dom.name}_VARS.fd"

    def remove_logs(self, name: str) -> None:
        """Delete the QEMU log of domain ``name`` and its rotated copies (destroy --remove-logs)."""
        current = self.layout.domain_log(name)
        for path in (current, *current.parent.glob(f"{current.name}.*")):
            if path == current or path.suffix[1:].isdigit():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def save_run_state(self, obj: DomainObject) -> None:
        if obj.proc is None or obj.live is None:
            return
        run_dir = self.layout.qemu_run_dir
        obj.proc.record.state, obj.proc.record.reason = obj.state.value, str(obj.reason)
        obj.proc.record.given_chains = backing_chain.given_of(obj.live)
        xml = format_domain(obj.live, live=True)
        # A change of state alone (a pause around a snapshot or a save, suspend, resume) leaves the
        # running definition as it was: the file already holds it, and a rename over it is not free.
        if obj.run_xml is None or obj.run_xml[0] is not obj.proc or obj.run_xml[1] != xml:
            atomic_write(run_dir / f"{obj.name}.xml", xml.encode(), durable=False)
            obj.run_xml = (obj.proc, xml)
        obj.proc.record.save(run_dir / f"{obj.name}.json")

    def remove_run_files(self, name: str) -> None:
        run_dir = self.layout.qemu_run_dir
        obj = self._domains.get(name)
        if obj is not None:
            obj.run_xml = None
        for suffix in (".json", ".xml", ".monitor", ".pid"):
            with contextlib.suppress(FileNotFoundError):
                (run_dir / f"{name}{suffix}").unlink()
        tpm.stop(run_dir / f"{name}.channels")  # swtpm ends with QEMU: this waits for it
        shutil.rmtree(run_dir / f"{name}.channels", ignore_errors=True)
        guest_memory.cleanup(name)

    def _release_resources(self, live: Domain, record: RunRecord | None = None) -> None:
        if record is not None:
            from pyvirt.daemon import pr_helper, transient_disks

            transient_disks.remove(record)
            pr_helper.release(record)
            virtiofs.stop(record)
            hostdevs.release(self, record)
            self.confinement.release_record(record)
            chardev_sockets.remove(record.sockets)
        from pyvirt.daemon import ethernet

        ethernet.run_downscripts(live)
        taps = set(record.taps) if record else set()
        taps.update(i.target_dev for i in live.devices.interfaces if i.target_dev and i.type != "user")
        taps -= ethernet.unmanaged_taps(live)  # the user's, left as they are
        if self.networks is not None:
            for tap in taps:
                try:
                    self.networks.unplug_tap(tap)
                except Exception as err:
                    log.warning("removing tap %s: %s", tap, err)

    def watch_exit(self, obj: DomainObject, proc: QemuProcess) -> None:
        """Mark ``obj`` inactive once ``proc`` exits (whoever ended it)."""

        async def watch() -> None:
            await proc.exited
            async with obj.lock:
                if obj.proc is not proc:
                    return
                unexpected = obj.stop_reason is None  # nobody asked: killed, or QEMU failed
                self._stopped(obj, proc)
            if unexpected:
                await self._on_qemu_crash(obj)

        obj.watcher = asyncio.get_running_loop().create_task(watch())

    async def _on_qemu_crash(self, obj: DomainObject) -> None:
        """A QEMU died unasked (now ``shut off (crashed)``): ``on_crash='restart'`` starts the domain
        again. ``destroy`` and ``preserve`` leave it shut off: there is no process left to preserve."""
        config = obj.config
        if config is None or config.on_crash != "restart" or self._domains.get(config.name) is not obj:
            if obj.config is None and obj.current.on_crash == "restart":
                log.warning("domain %s crashed; a transient domain is not restarted", obj.name)
            return
        log.warning("the QEMU of domain %s died; restarting it (on_crash='restart')", obj.name)
        try:
            await self.start(config.name)
        except PyvirtError as err:
            log.error("restarting crashed domain %s: %s", config.name, err)

    def _stopped(self, obj: DomainObject, proc: QemuProcess) -> None:
        """The QEMU of ``obj`` is gone: release everything and mark it inactive (``obj.lock`` held)."""
        reason = obj.stop_reason or Shutoff.CRASHED
        drop_relay(obj.console)
        obj.console = None
        for relay in obj.device_relays.values():
            drop_relay(relay)
        obj.device_relays.clear()
        asyncio.get_running_loop().create_task(proc.monitor.close())
        if obj.live is not None:
            self._release_resources(obj.live, proc.record)
        self.remove_run_files(obj.name)
        append_log(self.layout.domain_log(obj.name), f"shutting down, reason={reason}")
        name = obj.name
        obj.proc = None
        if obj.config is not None:
            obj.live = None  # a transient domain keeps its last definition for the caller's reply
        obj.fake_reboot = False
        obj.stop_reason = None
        for removal in obj.removals.values():
            if not removal.done():
                removal.set_exception(InvalidState("Requested operation is not valid: domain is not running"))
                removal.exception()  # retrieved here: nobody may be waiting for it any more
        obj.removals.clear()
        self.transition(obj, S.SHUTOFF, reason, ("stopped", str(reason)))
        if obj.config is None:
            self._domains.pop(name, None)
            if obj.live is not None and not tpm.keep_at_undefine(obj.live, None):
                tpm.remove_state(self.layout, obj.live)

    def transition(
        self, obj: DomainObject, state: DomainState, reason: Reason, *events: tuple[str, str]
    ) -> None:
        """Move ``obj`` to ``state`` for ``reason``, publish ``events`` and save the run state.

        The one place a domain's state changes (besides re-adoption, which takes QEMU's word); the
        caller holds ``obj.lock``. A move the lifecycle's table does not allow raises TransitionError.
        """
        assert obj.lock.locked(), "a domain's state changes only under its lock"
        check_transition(obj.state, state, reason)
        log.debug("domain %s: %s (%s) -> %s (%s)", obj.name, obj.state.value, obj.reason, state.value, reason)
        obj.state, obj.reason = state, reason
        for event, detail in events:
            self.events.publish("domain", obj.name, event, detail)
        self.save_run_state(obj)

    def expect_event(
        self, obj: DomainObject, event: str, predicate: Callable[[dict[str, Any]], bool]
    ) -> asyncio.Future[dict[str, Any]]:
        """A future resolved once the next QMP ``event`` of ``obj`` whose data satisfies ``predicate``
        has been applied. Await it without holding ``obj.lock``: events are applied under it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        obj.waiters.append((event, predicate, future))
        return future

    def resolve_waiters(self, obj: DomainObject, event: str, data: dict[str, Any]) -> None:
        for waiter in list(obj.waiters):
            wanted, predicate, future = waiter
            if future.done():
                obj.waiters.remove(waiter)
            elif wanted == event and predicate(data):
                future.set_result(data)
                obj.waiters.remove(waiter)

    async def shutdown(self, key: str) -> DomainObject:
        async with guard(self.lookup(key), lifecycle.GUEST_REACHABLE) as obj:
            assert obj.proc is not None
            await obj.proc.monitor.system_powerdown()
        return obj

    async def reboot(self, key: str) -> DomainObject:
        async with guard(self.lookup(key), lifecycle.GUEST_REACHABLE) as obj:
            assert obj.proc is not None
            obj.fake_reboot = True
            await obj.proc.monitor.system_powerdown()
        return obj

    async def reset(self, key: str) -> DomainObject:
        async with guard(self.lookup(key), lifecycle.GUEST_REACHABLE) as obj:
            assert obj.proc is not None
            await obj.proc.monitor.system_reset()
        return obj

    async def destroy(self, key: str, *, graceful: bool = False) -> DomainObject:
        """End the domain's QEMU. The process is ended before the lock is taken: an operation that
        holds the lock waiting on this QEMU then fails and lets go, so a destroy always gets through."""
        obj = self.lookup(key)
        proc = obj.proc
        if proc is None:  # not running, or a start holds the lock: ask again once it is done
            async with guard(obj, lifecycle.ACTIVE):
                proc = obj.proc
        assert proc is not None
        first = obj.proc is proc and obj.stop_reason is not Shutoff.DESTROYED
        if first:
            obj.stop_reason = Shutoff.DESTROYED
        try:
            await proc.terminate(graceful=graceful)
        except TimeoutError as err:
            if first and obj.proc is proc:
                obj.stop_reason = None
            raise OperationFailed(
                f"Failed to terminate process {proc.pid} with SIGKILL: it did not exit"
            ) from err
        async with obj.lock:
            if not first:  # another destroy got there first: this one finds it stopped, as libvirt's
                raise lifecycle.refusal(S.SHUTOFF, Shutoff.DESTROYED, lifecycle.ACTIVE)
            if obj.proc is proc:
                self._stopped(obj, proc)
        return obj

    async def suspend(self, key: str) -> DomainObject:
        async with guard(self.lookup(key), lifecycle.SUSPENDABLE) as obj:
            assert obj.proc is not None
            if obj.state is S.PAUSED:
                return obj
            await obj.proc.monitor.stop()
            self.transition(obj, S.PAUSED, Paused.USER, ("suspended", "paused"))
        return obj

    async def resume(self, key: str) -> DomainObject:
        async with guard(self.lookup(key), lifecycle.RESUMABLE, refuse="domain is not paused") as obj:
            assert obj.proc is not None
            await obj.proc.monitor.cont()
            self.transition(obj, S.RUNNING, Running.UNPAUSED, ("resumed", "unpaused"))
        return obj

    # Queries

    def info(self, key: str) -> dict[str, Any]:
        obj = self.lookup(key)
        dom = obj.current
        out = obj.summary()
        out.update(
            {
                "os_type": dom.os.type,
                "vcpus": dom.online_vcpus,
                "max_memory_kib": dom.memory_kib,
                "used_memory_kib": dom.current_kib,
                "cpu_time_ns": cpu_time_ns(obj.proc.pid) if obj.proc else 0,
                "title": dom.title,
                "security_model": self.confinement.model,
                "security_label": self.confinement.label(obj.proc.record if obj.proc else None),
                "messages": qemu_ns.messages(dom) + (obj.proc.record.messages if obj.proc else [])
                if obj.active
                else [],
            }
        )
        return out

    def devices(self, key: str, *, inactive: bool = False) -> dict[str, Any]:
        """Disks, NICs and VNC display of the running definition, or with ``inactive`` of the persistent
        one (of the running one for a transient domain, as virsh)."""
        obj = self.lookup(key)
        dom = obj.config if inactive and obj.config is not None else obj.current
        running = obj.active and dom is obj.live
        disks = [
            {
                "type": d.type,
                "device": d.device,
                "target": d.target_dev,
                "source": d.source or (f"{d.source_pool}/{d.source_volume}" if d.source_volume else None),
            }
            for d in dom.devices.disks
        ]
        ifaces = [
            {
                "interface": i.target_dev,
                "type": i.type,
                "source": i.source_network or i.source_bridge,
                "model": i.model,
                "mac": i.mac,
            }
            for i in dom.devices.interfaces
        ]
        vnc = None
        if running and dom.devices.graphics and dom.devices.graphics[0].port:
            gfx = dom.devices.graphics[0]
            assert gfx.port is not None
            vnc = {"listen": gfx.listen, "display": gfx.port - 5900, "port": gfx.port}
        return {"disks": disks, "interfaces": ifaces, "vnc": vnc}

    def console(self, key: str, devname: str | None = None) -> ConsoleRelay:
        """The relay of the domain's console (its first serial port), or of the pty character device
        ``devname`` names (libvirt's names: serial0, console0, serial1, channel0, ...)."""
        obj = self.lookup(key)
        if not obj.active:
            raise InvalidState("Requested operation is not valid: domain is not running")
        devs = obj.current.devices
        first = {"serial0", "console0", *(d.alias for d in (devs.serials[:1] + devs.consoles[:1]) if d.alias)}
        if devname is not None and not (devname in first and devs.serials):
            return self._device_relay(obj, devname)
        if obj.console is None:
            raise OperationFailed(f"operation failed: cannot find a serial console for domain '{obj.name}'")
        return obj.console

    @staticmethod
    def _device_relay(obj: DomainObject, devname: str) -> ConsoleRelay:
        """The relay of the pty character device ``devname`` of running ``obj``, opened at first use."""
        relay = obj.device_relays.get(devname)
        if relay is not None:
            return relay
        devs = obj.current.devices
        named = {
            dev.alias or f"{dev.kind}{index}": dev
            for group in (devs.serials, devs.consoles, devs.channels)
            for index, dev in enumerate(group)
        }
        dev = named.get(devname)
        if dev is None:
            raise OperationFailed(f"operation failed: cannot find character device {devname}")
        if dev.type != "pty" or not dev.source_path:
            raise OperationFailed(f"operation failed: character device {devname} is not using a PTY")
        relay = ConsoleRelay(obj.name, dev.source_path)
        try:
            relay.open()
        except OSError as err:
            raise OperationFailed(
                f"operation failed: cannot open {dev.source_path} of {devname}: {err}"
            ) from err
        obj.device_relays[devname] = relay
        return relay

    async def shutdown_all(self) -> None:
        """Daemon exit: detach from every QEMU (they keep running) and close monitors."""
        for obj in self.all():
            if obj.watcher is not None:
                obj.watcher.cancel()
            drop_relay(obj.console)
            for relay in obj.device_relays.values():
                drop_relay(relay)
            if obj.proc is not None:
                await obj.proc.monitor.close()

"""save, restore and managed save: a domain's RAM and device state in a file, and back.

Saving pauses the guest, makes the domain SAVING, and has QEMU migrate to a file the daemon opened
(QEMU is confined and cannot open it: the descriptor is handed over with ``getfd``, the stream goes to
``migrate fd:NAME``); once the stream is complete the image header gets its final magic and QEMU quits,
leaving the domain ``shut off (saved)``. Restoring starts QEMU with ``-incoming defer`` and feeds it the
stream with ``migrate-incoming fd:NAME``, the domain RESTORING meanwhile. The image format (a header
and the domain XML before the stream) is :mod:`pyvirt.qemu.savefile`; with ``bypass_cache`` the stream
goes through :mod:`pyvirt.daemon.directio` (O_DIRECT). A managed save is a save into
``<state>/qemu/save/NAME.save`` that the next ``start`` restores (and removes).

Every check is made before anything changes: a restore reads and checks the image, its XML and the
domain it names before QEMU starts; a save that fails removes its file and the guest runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.daemon import directio, hostdevs, launch, lifecycle
from pyvirt.daemon.actions import DomainActions
from pyvirt.daemon.lifecycle import DomainState, Paused, Running, Shutoff, guard
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, UnsupportedConfig
from pyvirt.qemu import savefile
from pyvirt.qemu.savefile import SaveHeader, SaveImageError
from pyvirt.store import remove

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers
    from pyvirt.qemu.monitor import Monitor
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

S = DomainState
SAVABLE = frozenset({S.RUNNING, S.PAUSED})
FD_NAME = "pyvirt-state"
MAX_BANDWIDTH = 2**40  # bytes/s: no throttle (QEMU's default of 128 MiB/s is for live migration)


# Checks


def check_compatible(old: Domain, new: Domain) -> None:
    """Refuse a replacement XML that a saved state cannot be loaded into (libvirt's ABI check, for
    what pyvirt's QEMU command line is made of): identity, memory, vCPUs, machine, devices."""

    def same(what: str, a: object, b: object) -> None:
        if a != b:
            raise UnsupportedConfig(f"unsupported configuration: Target {what} {b} does not match source {a}")

    same("domain name", old.name, new.name)
    same("domain uuid", old.uuid, new.uuid)
    same("domain virt type", old.type, new.type)
    same("domain max memory", old.memory_kib, new.memory_kib)
    same("domain vCPUs max", old.vcpus, new.vcpus)
    same("domain machine type", old.os.machine, new.os.machine)
    same("domain architecture", old.os.arch, new.os.arch)
    same("domain disk count", len(old.devices.disks), len(new.devices.disks))
    for disk, other in zip(old.devices.disks, new.devices.disks, strict=True):
        same("disk device", disk.target_dev, other.target_dev)
        same(f"disk {disk.target_dev} bus", disk.target_bus, other.target_bus)
        same(f"disk {disk.target_dev} device type", disk.device, other.device)
    same("domain net card count", len(old.devices.interfaces), len(new.devices.interfaces))
    for nic, other_nic in zip(old.devices.interfaces, new.devices.interfaces, strict=True):
        same("network card mac", nic.mac, other_nic.mac)
        same("network card model", nic.model, other_nic.model)
    for kind in ("serials", "consoles", "channels", "controllers", "videos", "inputs", "graphics"):
        same(f"domain {kind[:-1]} count", len(getattr(old.devices, kind)), len(getattr(new.devices, kind)))


def image_domain(header: SaveHeader, path: str) -> Domain:
    """The domain the image at ``path`` was saved from, checked as a define would check it."""
    try:
        return load_domain_xml(header.xml)
    except Exception as err:  # PyvirtError for what the parser refuses; anything else is corruption too
        raise SaveImageError(
            f"operation failed: the domain XML in save image '{path}' is not valid: {err}"
        ) from err


def parse_new_xml(xml: str, header: SaveHeader, path: str) -> Domain:
    """A replacement XML for an image: valid, and compatible with the image's."""
    new = load_domain_xml(xml)
    check_compatible(image_domain(header, path), new)
    return new


def _absolute(path: str) -> str:
    if not os.path.isabs(path):
        raise InvalidArgument(f"invalid argument: the save image path '{path}' must be absolute")
    return os.path.normpath(path)


# The stream


async def _wait_migration(mon: Monitor) -> None:
    """Until QEMU's migration (either way) completes. (Its progress is domjobinfo's: query-migrate.)"""
    delay = 0.005
    while True:
        info = await mon.execute("query-migrate")
        status = str(info.get("status", ""))
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise OperationFailed(f"operation failed: migration {status}: {info.get('error-desc', status)}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def _migrate_out(proc: QemuProcess, fd: int, path: str, offset: int, bypass: bool) -> int:
    """QEMU's state into ``fd`` from ``offset``; returns the stream's length."""
    mon = proc.monitor
    await mon.execute("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH})
    copier: asyncio.Future[int] | None = None
    if bypass:
        directio.enable(fd, path)
        rd, wr = os.pipe2(os.O_CLOEXEC)
        try:
            await mon.get_fd(wr, FD_NAME)
        except BaseException:
            os.close(rd)
            raise
        finally:
            os.close(wr)
        copier = asyncio.ensure_future(asyncio.to_thread(directio.pipe_to_file, rd, fd, offset, path))
    else:
        os.lseek(fd, offset, os.SEEK_SET)
        await mon.get_fd(fd, FD_NAME)
    try:
        await mon.execute("migrate", {"uri": f"fd:{FD_NAME}"})
        await _wait_migration(mon)
    except BaseException:
        if copier is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(copier), 10)
        raise
    if copier is not None:
        return await copier  # QEMU closes its end once done: the copier sees EOF
    return os.fstat(fd).st_size - offset


def _create_image(path: str, header: SaveHeader) -> int:
    """Open ``path`` for a save (created or truncated, mode 0600) and write the PARTIAL header."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise OperationFailed(f"operation failed: cannot create save image '{path}': {err.strerror}") from err
    try:
        os.pwrite(fd, header.pack(), 0)
    except OSError as err:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise OperationFailed(f"operation failed: cannot write save image '{path}': {err.strerror}") from err
    return fd


def _complete_image(fd: int, header: SaveHeader) -> None:
    """The stream is on disk: make it durable, then give the header its final magic (durably too)."""
    os.fsync(fd)
    header.complete = True
    os.pwrite(fd, header.pack(), 0)
    os.fsync(fd)


# Save


async def save(
    reg: DomainRegistry,
    key: str,
    path: str,
    *,
    xml: str | None = None,
    running: bool | None = None,
    bypass_cache: bool = False,
    managed: bool = False,
) -> DomainObject:
    """Save the running or paused domain ``key`` into ``path`` and stop it (``shut off (saved)``).

    ``xml`` replaces the domain XML kept in the image (it must be compatible); ``running`` says
    whether a restore runs the domain or leaves it paused (None: as it is now)."""
    obj = reg.lookup(key)
    async with guard(obj, SAVABLE):
        proc, live = obj.proc, obj.live
        assert proc is not None and live is not None
        if managed and obj.config is None:
            raise InvalidState(
                "Requested operation is not valid: cannot do managed save for transient domain"
            )
        hostdevs.refuse_migration(live)
        image_dom = live
        if xml is not None:
            image_dom = load_domain_xml(xml)
            check_compatible(live, image_dom)
        was_running = obj.state is S.RUNNING
        header = SaveHeader(
            format_domain(image_dom, secure=True),
            was_running if running is None else running,
            complete=False,
        )
        if managed:
            await asyncio.to_thread(reg.layout.save_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        fd = await asyncio.to_thread(_create_image, path, header)
        previous = obj.reason
        try:
            if was_running:
                await proc.monitor.stop()
            reg.transition(obj, S.SAVING, Paused.SAVE)
            header.stream_len = await _migrate_out(proc, fd, path, header.stream_offset, bypass_cache)
            await asyncio.to_thread(_complete_image, fd, header)
        except BaseException:
            await asyncio.to_thread(_discard, fd, path)
            if obj.proc is proc and proc.alive():
                with contextlib.suppress(OperationFailed):
                    if was_running:
                        await proc.monitor.cont()
                        reg.transition(obj, S.RUNNING, Running.SAVE_CANCELED)
                    else:
                        assert isinstance(previous, Paused)
                        reg.transition(obj, S.PAUSED, previous)
            raise
        os.close(fd)
        if managed:
            obj.managed_save = True
        obj.stop_reason = Shutoff.SAVED
        await proc.monitor.quit()
    await wait_stopped(obj, proc)
    log.info("domain %s saved to %s (%d bytes of state)", obj.name, path, header.stream_len)
    return obj


def _discard(fd: int, path: str) -> None:
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def wait_stopped(obj: DomainObject, proc: QemuProcess) -> None:
    """Until ``proc`` has exited and the domain is marked shut off (by its exit watcher)."""
    try:
        await asyncio.wait_for(asyncio.shield(proc.exited), 30)
    except TimeoutError:
        log.warning("domain %s: QEMU did not quit after its save; killing it", obj.name)
        proc.kill()
        await asyncio.shield(proc.exited)
    watcher = obj.watcher
    if watcher is not None and obj.proc is proc:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(watcher)


# Restore


async def restore_into(
    reg: DomainRegistry,
    obj: DomainObject,
    dom: Domain,
    path: str,
    header: SaveHeader,
    *,
    paused: bool,
    bypass_cache: bool,
) -> None:
    """Start ``obj`` (its lock held, shut off) as ``dom`` from the state in ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise SaveImageError(f"operation failed: cannot open save image '{path}': {err.strerror}") from err
    log_path = reg.layout.domain_log(dom.name)

    async def incoming(proc: QemuProcess) -> None:
        mon = proc.monitor
        copier: asyncio.Future[None] | None = None
        if bypass_cache:
            directio.enable(fd, path)
            rd, wr = os.pipe2(os.O_CLOEXEC)
            try:
                await mon.get_fd(rd, FD_NAME)
            except BaseException:
                os.close(wr)
                raise
            finally:
                os.close(rd)
            copier = asyncio.ensure_future(
                asyncio.to_thread(directio.file_to_pipe, fd, header.stream_offset, header.stream_len, wr)
            )
        else:
            os.lseek(fd, header.stream_offset, os.SEEK_SET)
            await mon.get_fd(fd, FD_NAME)
        try:
            await mon.execute("migrate-incoming", {"uri": f"fd:{FD_NAME}"})
            await _wait_migration(mon)
        except OperationFailed as err:
            await asyncio.sleep(0)  # let a QEMU that exited be seen as gone
            if not proc.alive() or "lost the QEMU monitor" in str(err):
                raise OperationFailed(
                    f"operation failed: QEMU could not load the state saved in '{path}': "
                    f"{_qemu_error(log_path)}"
                ) from err
            raise
        finally:
            if copier is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(copier), 10)

    try:
        await launch.start_qemu(reg, obj, dom, paused=paused, incoming=incoming)
    finally:
        os.close(fd)


def _qemu_error(log_path: Path) -> str:
    """The last error QEMU wrote to its log (why an incoming migration failed)."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 4000))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return "QEMU exited"
    errors = [line.split(": ", 1)[-1] for line in lines if "qemu-system" in line or "error" in line.lower()]
    return "; ".join(errors[-3:]) or "QEMU exited"


async def restore(
    reg: DomainRegistry,
    path: str,
    *,
    xml: str | None = None,
    running: bool | None = None,
    bypass_cache: bool = False,
) -> DomainObject:
    """Start the domain saved in ``path``: the defined domain of that name and UUID, or a transient one."""
    header = await asyncio.to_thread(savefile.read, path)
    dom = parse_new_xml(xml, header, path) if xml is not None else image_domain(header, path)
    obj, created = await reg.restore_target(dom)
    try:
        async with guard(obj, lifecycle.INACTIVE):
            await restore_into(
                reg,
                obj,
                dom,
                path,
                header,
                paused=not (header.running if running is None else running),
                bypass_cache=bypass_cache,
            )
    except BaseException:
        if created and not obj.active:
            reg.forget(obj)
        raise
    return obj


async def start_managed(
    reg: DomainRegistry, obj: DomainObject, *, paused: bool, force_boot: bool, bypass_cache: bool
) -> bool:
    """Start ``obj`` (lock held, shut off) from its managed save if it has one; True if it did.

    ``force_boot`` discards the managed save (the caller boots afresh). An image whose save did not
    finish is discarded too (libvirt ignores it); any other fault in it fails the start."""
    path = reg.layout.managed_save(obj.name)
    if not path.exists():
        obj.managed_save = False
        return False
    if force_boot:
        await asyncio.to_thread(remove, path)
        obj.managed_save = False
        log.info("domain %s: managed save discarded (start --force-boot)", obj.name)
        return False
    try:
        header = await asyncio.to_thread(savefile.read, str(path))
    except SaveImageError as err:
        if "incomplete" not in str(err):
            raise
        log.warning("domain %s: ignoring incomplete managed save %s", obj.name, path)
        await asyncio.to_thread(remove, path)
        obj.managed_save = False
        return False
    dom = image_domain(header, str(path))
    if dom.uuid != obj.uuid or dom.name != obj.name:
        raise SaveImageError(
            f"operation failed: managed save image '{path}' holds domain '{dom.name}' ({dom.uuid}), "
            f"not '{obj.name}' ({obj.uuid})"
        )
    await restore_into(
        reg, obj, dom, str(path), header, paused=paused or not header.running, bypass_cache=bypass_cache
    )
    await asyncio.to_thread(remove, path)
    obj.managed_save = False
    return True


# Images at rest


def image_xml(path: str, *, secure: bool) -> str:
    """The domain XML in the image at ``path`` (passwords only with ``secure``)."""
    header = savefile.read(path)
    if secure:
        return header.xml
    return format_domain(image_domain(header, path), secure=False)


def define_image_xml(path: str, xml: str, running: bool | None) -> None:
    """Replace the XML of the image at ``path`` (compatible with the one it holds)."""
    header = savefile.read(path)
    new = parse_new_xml(xml, header, path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise SaveImageError(f"operation failed: cannot open save image '{path}': {err.strerror}") from err
    try:
        savefile.rewrite_xml(fd, path, format_domain(new, secure=True), running)
    finally:
        os.close(fd)


def _running_flag(body: dict[str, Any]) -> bool | None:
    if body.get("running") and body.get("paused"):
        raise InvalidArgument("Options --running and --paused are mutually exclusive")
    if body.get("running"):
        return True
    if body.get("paused"):
        return False
    return None


class SaveAPI(DomainActions):
    """The save, restore and managed save actions of one daemon's domain registry."""

    def handlers(self) -> Handlers:
        return {
            "domain.save": self.save,
            "domain.managed_save": self.managed_save,
            "domain.managed_save_remove": self.managed_save_remove,
            "domain.managed_save_xml": self.managed_save_xml,
            "domain.managed_save_define": self.managed_save_define,
            "saveimage.restore": self.restore,
            "saveimage.xml": self.image_xml,
            "saveimage.define": self.image_define,
        }

    async def save(self, req: Request) -> dict[str, Any]:
        body: types.SaveRequest = req.data
        obj = await save(
            self.domains,
            req.params["name"],
            _absolute(body["file"]),
            xml=body.get("xml"),
            running=_running_flag(dict(body)),
            bypass_cache=body.get("bypass_cache", False),
        )
        return obj.summary()

    async def managed_save(self, req: Request) -> dict[str, Any]:
        body: types.ManagedSaveRequest = req.data
        running = _running_flag(dict(body))
        obj = self.domains.lookup(req.params["name"])
        path = str(self.domains.layout.managed_save(obj.name))
        obj = await save(
            self.domains,
            req.params["name"],
            path,
            running=running,
            bypass_cache=body.get("bypass_cache", False),
            managed=True,
        )
        return obj.summary()

    def _managed_path(self, req: Request) -> tuple[DomainObject, str]:
        obj = self.domains.lookup(req.params["name"])
        path = self.domains.layout.managed_save(obj.name)
        if not path.exists():
            raise InvalidState("Requested operation is not valid: domain does not have managed save image")
        return obj, str(path)

    async def managed_save_remove(self, req: Request) -> dict[str, Any]:
        obj = self.domains.lookup(req.params["name"])
        async with guard(obj, lifecycle.ANY):
            path = self.domains.layout.managed_save(obj.name)
            existed = path.exists()
            await asyncio.to_thread(remove, path)
            obj.managed_save = False
        return {"removed": existed}

    async def managed_save_xml(self, req: Request) -> dict[str, Any]:
        _obj, path = self._managed_path(req)
        return {"xml": await asyncio.to_thread(image_xml, path, secure=req.args["security_info"])}

    async def managed_save_define(self, req: Request) -> dict[str, Any]:
        body: types.SaveImageDefineRequest = req.data
        running = _running_flag(dict(body))
        obj = self.domains.lookup(req.params["name"])
        async with guard(obj, lifecycle.INACTIVE):
            _obj, path = self._managed_path(req)
            await asyncio.to_thread(define_image_xml, path, body["xml"], running)
        return {}

    async def restore(self, req: Request) -> dict[str, Any]:
        body: types.RestoreRequest = req.data
        obj = await restore(
            self.domains,
            _absolute(body["file"]),
            xml=body.get("xml"),
            running=_running_flag(dict(body)),
            bypass_cache=body.get("bypass_cache", False),
        )
        return obj.summary()

    async def image_xml(self, req: Request) -> dict[str, Any]:
        path = _absolute(req.args["file"])
        return {"xml": await asyncio.to_thread(image_xml, path, secure=req.args["security_info"])}

    async def image_define(self, req: Request) -> dict[str, Any]:
        body: types.SaveImageFileDefineRequest = req.data
        running = _running_flag(dict(body))
        await asyncio.to_thread(define_image_xml, _absolute(body["file"]), body["xml"], running)
        return {}

"""``pyvirt install`` in the daemon: the ``domain.install`` action.

The daemon reads the request against osinfo-db and the host (its networks, pools, the files the disks
name, UEFI firmware, KVM), builds the XML (:mod:`pyvirt.install.build`) and, unless it is a dry run,
makes everything: new disks (in their pools through the storage driver, or as plain files), the
installer's kernel and initrd copied out of the tree, the cloud-init seed; then it defines the final
domain and starts the install-time XML as virt-install does (``createXML`` of the install XML, then
``defineXML`` of the final one: the running install keeps its media, the next start is the installed
system). When the install phase ends (the guest reboots into ``on_reboot`` destroy, or powers off), the
daemon starts the domain again with its final definition, unless ``noreboot`` (a destroyed or crashed
install is left off); a later start is an ordinary one. The watch lives in the daemon's memory: after a
daemon restart, an install phase that ends is not followed by the start of the installed system.
Everything made is removed again if a step fails (:class:`~pyvirt.revert.Revert`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.actions import DomainActions
from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.install import appliance, build, osinfo
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.daemon.clones import NetworkNames
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers
    from pyvirt.storage.driver import StorageDriver

log = logging.getLogger(__name__)

_REQUIRE_MESSAGE = (
    "--os-variant/--osinfo OS name is required, but no value was set or detected. Specifying an OS name "
    "is required for modern, performant, and secure virtual machine defaults: see `osinfo-query os` for "
    "the names; use --os-variant detect=on,name=OSNAME for a fallback when the media is not detected, "
    "a generic value such as linux2022, or --os-variant detect=on,require=off (or generic) for the "
    "old behaviour"
)


class InstallAPI(DomainActions):
    """The ``domain.install`` action, with one daemon's domains, storage and networks."""

    def __init__(self, storage: StorageDriver, events: EventBus, network_names: NetworkNames | None) -> None:
        self.storage = storage
        self.events = events
        self.network_names = network_names
        self._watches: set[asyncio.Task[None]] = set()

    def handlers(self) -> Handlers:
        return {"domain.install": self.handle}

    async def handle(self, req: Request) -> dict[str, Any]:
        body: dict[str, Any] = dict(req.data)
        return await self.install(body)

    # -- facts ---------------------------------------------------------------------------------
    async def _host(self, body: dict[str, Any]) -> build.Host:
        from pyvirt.qemu import firmware
        from pyvirt.qemu.command import DEFAULT_EMULATOR
        from pyvirt.qemu.host import qemu_version

        kvm, _ = self.domains.accel_check()
        networks = await self.network_names() if self.network_names is not None else []
        pools: dict[str, build.Pool] = {}
        for status in self.storage.list_pools():
            if status.active and status.path:
                pools[status.name] = build.Pool(status.name, str(status.path).rstrip("/"))
        default_path = pools["default"].path if "default" in pools else str(self.domains.layout.images_dir)
        existing: dict[str, int] = {}
        formats: dict[str, str] = {}

        def scan() -> tuple[str, bool]:
            paths = [d.get("path") for d in body.get("disk", []) if d.get("path")]
            paths += [d.get("backing_store") for d in body.get("disk", []) if d.get("backing_store")]
            for pool in pools.values():
                with contextlib.suppress(OSError):
                    paths += [os.path.join(pool.path, n) for n in os.listdir(pool.path)]
            for vol in (d.get("vol") for d in body.get("disk", []) if d.get("vol")):
                pool_name, _, vol_name = str(vol).partition("/")
                if pool_name in pools:
                    paths.append(os.path.join(pools[pool_name].path, vol_name))
            for path in paths:
                if path and (os.path.isfile(path) or (path.startswith("/dev/") and os.path.exists(path))):
                    existing[path] = _virtual_size(path)
                    formats[path] = _probe(path)
            version = qemu_version(DEFAULT_EMULATOR)
            major_minor = ".".join(version.split(".")[:2])
            uefi = any(
                "uefi" in fw.interfaces and any(arch == "x86_64" for arch, _ in fw.targets)
                for fw in firmware.load_descriptors()
            )
            return f"pc-i440fx-{major_minor}", uefi

        pc_machine, uefi = await asyncio.to_thread(scan)
        return build.Host(
            kvm=kvm,
            emulator=DEFAULT_EMULATOR,
            pc_machine=pc_machine,
            networks=networks,
            pools=pools,
            default_pool_path=default_path,
            domains=[obj.name for obj in self.domains.all()],
            boot_dir=str(self.domains.layout.state_dir / "boot"),
            uefi=uefi,
            tpm_emulator=all(shutil.which(tool) for tool in ("swtpm", "swtpm_setup")),
            existing=existing,
            formats=formats,
        )

    async def _os(self, body: dict[str, Any]) -> osinfo.OSFacts:
        sub: dict[str, str] = dict(body.get("os_variant") or {})
        allowed = ("name", "short-id", "id", "detect", "require")
        for key in sub:
            if key not in allowed:
                raise InvalidArgument(f"--os-variant {key}=: not supported (it takes {', '.join(allowed)})")
        name = sub.get("name") or sub.get("short-id")
        detect = sub.get("detect", "on" if not sub else "off")
        require = sub.get("require", "auto")
        if name == "detect":  # virt-install's old spelling
            name, detect = None, "on"
        if "id" in sub:
            return await asyncio.to_thread(osinfo.lookup_id, sub["id"])
        if name and detect != "on":
            return await asyncio.to_thread(osinfo.lookup, name)
        found: osinfo.OSFacts | None = None
        if detect == "on":
            found = await asyncio.to_thread(_detect, body)
        if found is not None:
            return found
        if name:
            return await asyncio.to_thread(osinfo.lookup, name)
        if require == "off":
            return osinfo.GENERIC
        raise InvalidArgument(_REQUIRE_MESSAGE)

    # -- the action ----------------------------------------------------------------------------
    async def install(self, body: dict[str, Any]) -> dict[str, Any]:
        facts = await self._os(body)
        host = await self._host(body)
        imported = await self._appliance(body, host)
        if imported is not None:
            body = imported.body
        plan = build.plan(body, facts, host)
        if imported is not None:
            plan.notes[:0] = imported.notes
        dry = bool(body.get("dry_run"))
        result: dict[str, Any] = {
            "name": plan.name,
            "uuid": plan.uuid,
            "os": facts.short_id,
            "xml": plan.documents,
            "dry_run": dry,
            "started": False,
            "created": [],
            "notes": plan.notes,
        }
        if dry:
            return result
        created: list[str] = []
        password: str | None = None
        with Revert() as revert:
            if imported is not None:
                created += await self._convert(imported, revert)
            for vol in plan.volumes:
                await asyncio.to_thread(self._create_volume, vol)
                revert.add(lambda path=vol.path: Path(path).unlink(missing_ok=True), f"remove {vol.path}")  # type: ignore[misc]
                created.append(vol.path)
            if plan.location:
                from pyvirt.install import media

                assert plan.kernel and plan.initrd and plan.kernel_dest and plan.initrd_dest
                Path(plan.kernel_dest).parent.mkdir(parents=True, exist_ok=True)
                found = media.Found(plan.kernel, plan.initrd, "given", "given")
                for dest in (plan.kernel_dest, plan.initrd_dest):
                    revert.add(lambda d=dest: Path(d).unlink(missing_ok=True), f"remove {dest}")  # type: ignore[misc]
                await asyncio.to_thread(
                    media.copy_out, plan.location, found, Path(plan.kernel_dest), Path(plan.initrd_dest)
                )
                for dest in (plan.kernel_dest, plan.initrd_dest):
                    os.chmod(dest, 0o644)
                created += [plan.kernel_dest, plan.initrd_dest]
            if plan.seed:
                from pyvirt.install import cloudinit

                documents, password = cloudinit.seed_documents(plan.cloud_init, plan.name)
                Path(plan.seed).parent.mkdir(parents=True, exist_ok=True)
                revert.add(lambda: Path(plan.seed or "").unlink(missing_ok=True), f"remove {plan.seed}")
                await asyncio.to_thread(cloudinit.write_seed, Path(plan.seed), documents)
                created.append(plan.seed)
            defined = False
            try:
                if not plan.transient:
                    await self.domains.define(plan.final)
                    defined = True
                await self.domains.create(plan.install or plan.final)
                result["started"] = True
                if plan.autostart and not plan.transient:
                    await self.domains.set_autostart(plan.name, True)
            except BaseException:
                if defined:
                    await self._undefine(plan.name)
                raise
            revert.success()
        result["created"] = created
        if password:
            result["root_password"] = password
        if plan.install and not plan.transient:
            self._watch(plan)
        return result

    async def _appliance(self, body: dict[str, Any], host: build.Host) -> appliance.Imported | None:
        """An OVA/OVF ``--disk`` read and mapped onto the request (:mod:`pyvirt.install.appliance`)."""
        paths = appliance.appliance_paths(body, host)
        if not paths:
            return None
        if len(set(paths)) > 1:
            raise InvalidArgument(f"--disk: {len(paths)} appliances ({', '.join(paths)}): give one")
        from pyvirt.guest.ovf import read_appliance

        app = await asyncio.to_thread(read_appliance, paths[0])
        return appliance.rewrite(body, host, app)

    async def _convert(self, imported: appliance.Imported, revert: Revert) -> list[str]:
        """The appliance's disks converted into their pool (removed again by ``revert``)."""
        for disk in imported.disks:
            revert.add(lambda p=disk.path: Path(p).unlink(missing_ok=True), f"remove {disk.path}")  # type: ignore[misc]
        await asyncio.to_thread(appliance.convert, imported)
        for disk in imported.disks:
            if disk.pool:
                volume = f"{disk.pool}/{os.path.basename(disk.path)}"
                self.events.publish("volume", volume, "created", "install")
        return [disk.path for disk in imported.disks]

    async def _undefine(self, name: str) -> None:
        with contextlib.suppress(Exception):
            await self.domains.undefine(name, nvram="delete")

    def _create_volume(self, vol: build.NewVolume) -> None:
        from pyvirt.conf.storage import BackingStore, VolumeDef

        if os.path.lexists(vol.path):
            raise InvalidArgument(f"--disk {vol.path}: a file of that name exists already")
        if vol.pool:
            volume = VolumeDef(name=vol.name, capacity=vol.capacity, format=vol.format)
            if not vol.sparse:
                volume.allocation = vol.capacity
            if vol.backing:
                volume.backing = BackingStore(vol.backing, vol.backing_format)
            self.storage.create_volume(vol.pool, volume)
            self.events.publish("volume", f"{vol.pool}/{vol.name}", "created", "install")
            return
        from pyvirt.image.create import create_image

        try:
            preallocation = None if vol.sparse else ("falloc" if vol.format == "raw" else "metadata")
            create_image(
                vol.path,
                vol.format,
                vol.capacity,
                backing=vol.backing,
                backing_fmt=vol.backing_format,
                preallocation=preallocation,
            )
        except OSError as err:
            raise OperationFailed(f"cannot create '{vol.path}': {err.strerror or err}") from err

    def _watch(self, plan: build.Plan) -> None:
        """After the install phase ends (the domain stops), start the final definition once."""

        async def watch() -> None:
            obj = self.domains.lookup(plan.name)
            while obj.active:
                await asyncio.sleep(0.2)
            for path in (plan.kernel_dest, plan.initrd_dest):
                if path:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            from pyvirt.daemon.lifecycle import Shutoff

            if plan.noreboot or obj.reason is not Shutoff.SHUTDOWN:
                return  # --noreboot, or the install was destroyed (or crashed): it is not restarted
            try:
                await self.domains.start(plan.name)
            except Exception as err:
                log.error("install of %s: starting the installed system failed: %s", plan.name, err)

        task = asyncio.get_running_loop().create_task(watch())
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)


def _virtual_size(path: str) -> int:
    try:
        from pyvirt.image.api import info

        return int(info(path)["virtual-size"])
    except Exception:
        with contextlib.suppress(OSError), open(path, "rb") as fh:
            return fh.seek(0, os.SEEK_END)
        return 0


def _probe(path: str) -> str:
    """The image format of ``path``, or ``appliance`` for an OVA/OVF (a package, not a disk)."""
    from pyvirt.guest.ovf import is_appliance
    from pyvirt.image.probe import probe_file

    try:
        return "appliance" if is_appliance(path) else probe_file(path)
    except Exception:
        return "raw"


def _detect(body: dict[str, Any]) -> osinfo.OSFacts | None:
    """The OS of the install media: a --cdrom ISO or a --location tree, as osinfo-db recognises them."""
    if body.get("cdrom"):
        return osinfo.detect_media(str(body["cdrom"]))
    location = (body.get("location") or {}).get("location")
    if location:
        if os.path.isfile(location):
            return osinfo.detect_media(location)
        return osinfo.detect_tree("file://" + os.path.abspath(location))
    return None

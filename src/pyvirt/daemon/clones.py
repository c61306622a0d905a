"""``pyvirt clone`` in the daemon: a new domain from a template or a shut-off domain, made by pyvirtd.

Running here rather than in the client makes a clone work over any connection (``qemu+ssh://``,
``qemu+tls://``) and puts it under the storage driver's busy marking: the originals' disks are marked
shared while they are read (many clones of one template run together; deleting, resizing or wiping it
waits for none of them and is refused meanwhile), the new volumes exclusively while they are made.
Everything is checked before anything is made (an existing domain or volume gives AlreadyExists); what
was made is removed again (:class:`~pyvirt.revert.Revert`) if a later step fails. Disk copies and the
seed ISO are written in worker threads; the KVM probe is the daemon's own. The pieces are in
:mod:`pyvirt.guest.clone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.actions import DomainActions
from pyvirt.errors import AlreadyExists, InvalidState, NotFound, OperationFailed
from pyvirt.guest import clone as parts
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.networks import NetworkAPI
    from pyvirt.daemon.routes import Handlers
    from pyvirt.storage.driver import StorageDriver

NetworkNames = Callable[[], Awaitable[list[str]]]


class CloneAPI(DomainActions):
    """The ``domain.clone`` action, with one daemon's domain registry, storage driver and networks."""

    def __init__(
        self, storage: StorageDriver, events: EventBus, network_names: NetworkNames | None = None
    ) -> None:
        self.storage = storage
        self.events = events
        self.network_names = network_names

    def handlers(self) -> Handlers:
        return {"domain.clone": self.handle}

    async def handle(self, req: Request) -> dict[str, Any]:
        body: types.CloneRequest = req.data
        opts = parts.CloneOptions(
            original=body["original"],
            name=body["name"],
            linked=body.get("linked"),
            vcpus=body.get("vcpus"),
            memory=body.get("memory"),
            disk_size=body.get("disk_size"),
            network=body.get("network"),
            hostname=body.get("hostname"),
            ssh_keys=tuple(body.get("ssh_keys", ())),
            user=body.get("user", parts.DEFAULT_USER),
            user_data=body.get("user_data"),
            pool=body.get("pool", "default"),
        )
        return (await self.clone(opts)).to_json()

    async def clone(self, opts: parts.CloneOptions) -> parts.CloneResult:
        """Make domain ``opts.name`` from template or domain ``opts.original``; see the module doc."""
        from pyvirt.guest.template import TemplateStore

        started = time.monotonic()
        hostname = parts.check_options(opts)
        steps: list[str] = []
        folder = self._pool_folder(opts.pool)
        if any(obj.name == opts.name for obj in self.domains.all()):
            raise AlreadyExists(
                f"domain {opts.name} exists already: choose another --name, or undefine it first "
                f"(pyvirt undefine --remove-all-storage {opts.name})"
            )
        store = TemplateStore(folder)
        base: Domain | None = None
        hardware = None
        cloud_init = ""
        if store.exists(opts.original):
            template = await asyncio.to_thread(store.get, opts.original)
            linked = True if opts.linked is None else opts.linked
            sources = [parts.Source(template.path, "qcow2", template.virtual_size)]
            for extra in template.extra_paths:
                sources.append(await asyncio.to_thread(parts.probe_source, extra))
            hardware = template.hardware
            cloud_init = template.cloud_init
        else:
            base, sources = await self._domain_sources(opts.original)
            linked = False if opts.linked is None else opts.linked
        parts.check_disk_size(opts, sources)
        names = parts.disk_names(opts.name, len(sources))
        seed = parts.seed_name(opts.name)
        # undefine --remove-all-storage keeps CD-ROMs: a seed no domain uses is a leftover of ours.
        leftover = os.path.lexists(folder / seed) and not self._in_use(folder / seed)
        for vol in names if leftover else [*names, seed]:
            if os.path.lexists(folder / vol):
                raise AlreadyExists(
                    f"volume {vol} exists already in pool {opts.pool}: nothing was created; choose another "
                    f"--name or delete the volume (pyvirt vol-delete {vol} --pool {opts.pool})"
                )
        uuid = str(uuidlib.uuid4())
        networks = await self.network_names() if self.network_names is not None else []
        nics = parts.interfaces(opts, base, networks)
        macs = [mac for _, _, mac in nics]
        with contextlib.ExitStack() as marks, Revert() as revert:
            for src in sources:
                marks.enter_context(self.storage.busy(src.path, f"being cloned to {opts.name}", shared=True))
            for vol in [*names, seed]:
                marks.enter_context(self.storage.busy(str(folder / vol), "being created"))
            if leftover:
                steps.append(f"Replacing {seed}, left by a domain of that name that is gone")
                (folder / seed).unlink(missing_ok=True)
            for index, (src, vol) in enumerate(zip(sources, names, strict=True)):
                size = max(src.size, opts.disk_size or 0) if index == 0 else src.size
                steps.append(f"Disk {vol}: {'overlay on' if linked else 'full copy of'} {src.path}")
                make = parts.overlay if linked else _full_copy
                with _creating(folder / vol):
                    await asyncio.to_thread(make, src, folder / vol, size)
                revert.add(lambda path=folder / vol: path.unlink(missing_ok=True), f"remove {vol}")  # type: ignore[misc]
            steps.append(f"Seed {seed}: cloud-init NoCloud, hostname {hostname}")
            with _creating(folder / seed):
                await asyncio.to_thread(
                    parts.write_seed,
                    folder / seed,
                    opts,
                    uuid,
                    hostname,
                    macs[0] if macs else None,
                    cloud_init,
                )
            revert.add(lambda: (folder / seed).unlink(missing_ok=True), f"remove {seed}")
            if base is None:
                kvm, _ = self.domains.accel_check()
                xml = parts.template_domain_xml(
                    opts, uuid, names, seed, nics, domain_type="kvm" if kvm else "qemu", hardware=hardware
                )
            else:
                xml = parts.domain_clone_xml(base, opts, uuid, names, seed, nics)
            await self.domains.define(xml)
            revert.success()
        for vol in [*names, seed]:
            self.events.publish("volume", f"{opts.pool}/{vol}", "created", "cloned")
        return parts.CloneResult(
            name=opts.name,
            uuid=uuid,
            original=opts.original,
            kind="template" if base is None else "domain",
            linked=linked,
            disks=names,
            seed=seed,
            macs=macs,
            seconds=round(time.monotonic() - started, 3),
            steps=steps,
        )

    def _pool_folder(self, pool: str) -> Path:
        obj = self.storage.lookup(pool)
        if not obj.active:
            raise InvalidState(f"pool {pool} is not active: start it first (pyvirt pool-start {pool})")
        return Path(obj.config.target_path)

    def _disk_paths(self, dom: Domain) -> list[str]:
        """The file paths of a definition's disks, volumes resolved through their pools."""
        paths = []
        for disk in dom.devices.disks:
            if disk.type == "volume" and disk.source_pool and disk.source_volume:
                with contextlib.suppress(NotFound):
                    paths.append(self.storage.volume_path(disk.source_pool, disk.source_volume))
            elif disk.source:
                paths.append(disk.source)
        return paths

    def _in_use(self, path: Path) -> bool:
        real = os.path.realpath(path)
        for obj in self.domains.all():
            for dom in (obj.config, obj.live):
                if dom is not None and any(os.path.realpath(p) == real for p in self._disk_paths(dom)):
                    return True
        return False

    async def _domain_sources(self, name: str) -> tuple[Domain, list[parts.Source]]:
        """The persistent definition of domain ``name`` and its disks; refused unless shut off."""
        from pyvirt.errors import InvalidArgument

        try:
            obj = self.domains.lookup(name)
        except NotFound as err:
            raise NotFound(
                f"no template or domain named {name} (see pyvirt template list and pyvirt list --all)"
            ) from err
        if obj.active or obj.config is None:
            raise InvalidState(
                f"domain {name} is running: a domain is cloned only while shut off, so that its disks are "
                f"consistent; shut it down first (pyvirt shutdown {name})"
            )
        base = obj.config
        sources = []
        for disk in base.devices.disks:
            if disk.device != "disk":
                continue
            path = disk.source
            if disk.type == "volume" and disk.source_pool and disk.source_volume:
                path = self.storage.volume_path(disk.source_pool, disk.source_volume)
            if not path:
                raise InvalidArgument(f"domain {name}: disk {disk.target_dev} has no source to clone")
            sources.append(await asyncio.to_thread(parts.probe_source, path, disk))
        if not sources:
            raise InvalidArgument(f"domain {name} has no disk to clone")
        return base, sources


def network_names(api: NetworkAPI) -> NetworkNames:
    """The names of the defined networks, asked on the network driver's thread."""

    async def names() -> list[str]:
        return await api.run(lambda: [status.name for status in api.driver.list()])

    return names


@contextlib.contextmanager
def _creating(path: Path) -> Iterator[None]:
    """A file system error making ``path`` (a full disk, say) as a pyvirt error naming it and the cause."""
    try:
        yield
    except OSError as err:
        raise OperationFailed(f"cannot create '{path}': {err.strerror or err}") from err


def _full_copy(src: parts.Source, dest: Path, size: int) -> None:
    parts.full_copy(src.path, src.format, dest, size)

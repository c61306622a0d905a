"""Storage routes: the daemon's side of ``pool-*`` and ``vol-*``, over the storage driver.

Driver calls that touch the disk run in worker threads (``asyncio.to_thread``); the driver is
thread-safe. Uploads and downloads are WebSocket streams whose messages :mod:`pyvirt.storage.stream`
describes, one chunk in memory at a time.

Its actions (``pool.*`` and ``volume.*``) are declared in :mod:`pyvirt.api.table`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any

from pyvirt.conf.disk_encryption import DiskEncryption
from pyvirt.conf.storage import format_volume, parse_volume
from pyvirt.errors import InvalidArgument, NotFound, PyvirtError, UnsupportedConfig
from pyvirt.storage import stream as frames
from pyvirt.storage.driver import StorageDriver

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.conf.storage import VolumeInfo
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request, Stream
    from pyvirt.daemon.routes import Handlers
    from pyvirt.paths import Layout

log = logging.getLogger(__name__)


class StorageHook:
    """The domain registry's view of the driver: ``<disk type='volume'>`` to a path."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    def volume_path(self, pool: str, volume: str) -> str:
        path = self.driver.volume_path(pool, volume)
        self.driver.check_not_busy([path])
        return path

    def volumes_in_use(self, paths: list[str]) -> None:
        """Refuse (InvalidState) when a domain is about to use a volume being created, resized or uploaded."""
        self.driver.check_not_busy(paths)


def _int_query(req: Request, name: str) -> int:
    text = req.query.get(name, "0") or "0"
    if not text.isdigit():
        raise InvalidArgument(f"'{name}' must be a non-negative integer, not '{text}'")
    return int(text)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class StorageAPI:
    def __init__(self, layout: Layout, events: EventBus, *, default_pool: bool = True) -> None:
        self.layout = layout
        self.events = events
        self.driver = StorageDriver(layout)
        self.driver.load()
        self.default_pool = default_pool
        self.domains: DomainRegistry | None = None

    def hook(self) -> StorageHook:
        return StorageHook(self.driver)

    async def startup(self, domains: DomainRegistry) -> None:
        self.domains = domains
        if self.default_pool:
            try:
                await asyncio.to_thread(self.driver.ensure_default)
            except PyvirtError as err:
                log.error("cannot set up the default storage pool: %s", err)

    async def autostart(self) -> None:
        await asyncio.to_thread(self.driver.autostart_all)

    def handlers(self) -> Handlers:
        return {
            "pool.list": self.list_pools,
            "pool.define": self.define,
            "pool.info": self.info,
            "pool.xml": self.dumpxml,
            "pool.undefine": self.undefine,
            "pool.build": self.build,
            "pool.start": self.start,
            "pool.destroy": self.destroy,
            "pool.refresh": self.refresh,
            "pool.autostart": self.set_autostart,
            "volume.find": self.find_volume,
            "volume.list": self.list_volumes,
            "volume.create": self.create_volume,
            "volume.info": self.volume_info,
            "volume.xml": self.volume_xml,
            "volume.delete": self.delete_volume,
            "volume.clone": self.clone_volume,
            "volume.resize": self.resize_volume,
            "volume.wipe": self.wipe_volume,
            "volume.upload": self.upload,
            "volume.download": self.download,
        }

    def _name(self, req: Request) -> str:
        return self.driver.lookup(req.params["pool"]).config.name

    def _in_use(self) -> dict[str, str]:
        """Every disk path of every running domain, with the domain's name."""
        out: dict[str, str] = {}
        if self.domains is None:
            return out
        for obj in self.domains.all():
            dom = obj.live
            if not obj.active or dom is None:
                continue
            for disk in dom.devices.disks:
                path = disk.source
                if disk.type == "volume" and disk.source_pool and disk.source_volume:
                    with contextlib.suppress(PyvirtError):
                        folder = self.driver.lookup(disk.source_pool).config.target_path
                        path = os.path.join(folder, disk.source_volume)
                if path:
                    out[path] = obj.name
        return out

    # Pools

    async def list_pools(self, req: Request) -> list[dict[str, Any]]:
        return [dataclasses.asdict(s) for s in await asyncio.to_thread(self.driver.list_pools)]

    async def define(self, req: Request) -> dict[str, Any]:
        body: types.PoolDefineRequest = req.data
        xml = body["xml"]
        if body.get("build") and not body.get("start"):
            raise InvalidArgument("field 'build' needs 'start': it builds a pool created running")
        if body.get("start"):
            build = body.get("build", False)
            status = await asyncio.to_thread(lambda: self.driver.create_xml(xml, build=build))
            self.events.publish("pool", status.name, "started", "created")
        else:
            status = await asyncio.to_thread(self.driver.define_xml, xml)
            self.events.publish("pool", status.name, "defined", "")
        return dataclasses.asdict(status)

    async def info(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        return dataclasses.asdict(await asyncio.to_thread(self.driver.status, name, count_volumes=True))

    async def dumpxml(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        return {"xml": await asyncio.to_thread(self.driver.dumpxml, name, inactive=req.args["inactive"])}

    async def undefine(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        await asyncio.to_thread(self.driver.undefine, name)
        self.events.publish("pool", name, "undefined", "")
        return {"name": name}

    async def build(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        await asyncio.to_thread(self.driver.build, name)
        return dataclasses.asdict(await asyncio.to_thread(self.driver.status, name))

    async def start(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        await asyncio.to_thread(self.driver.start, name)
        self.events.publish("pool", name, "started", "")
        return dataclasses.asdict(await asyncio.to_thread(self.driver.status, name))

    async def destroy(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        status = await asyncio.to_thread(self.driver.destroy, name)
        self.events.publish("pool", name, "stopped", "")
        return dataclasses.asdict(status)

    async def refresh(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        await asyncio.to_thread(self.driver.refresh, name)
        self.events.publish("pool", name, "refreshed", "")
        return dataclasses.asdict(await asyncio.to_thread(self.driver.status, name))

    async def set_autostart(self, req: Request) -> dict[str, Any]:
        body: types.AutostartRequest = req.data
        name = self._name(req)
        await asyncio.to_thread(self.driver.set_autostart, name, body["enabled"])
        return dataclasses.asdict(await asyncio.to_thread(self.driver.status, name))

    # Volumes

    async def find_volume(self, req: Request) -> dict[str, Any]:
        path: str = req.args["path"]
        pool, name = await asyncio.to_thread(self.driver.pool_of_path, path)
        return {"pool": pool, "name": name}

    async def list_volumes(self, req: Request) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.driver.list_volumes, self._name(req))

    async def create_volume(self, req: Request) -> dict[str, Any]:
        body: types.VolumeCreateRequest = req.data
        xml, prealloc = body["xml"], body.get("prealloc_metadata", False)
        source = body.get("input")
        if source is not None:
            return await self._create_volume_from(req, xml, source, prealloc, body.get("reflink", False))
        if body.get("reflink"):
            raise InvalidArgument("field 'reflink' needs 'input': only a copy can share its input's blocks")
        vol = parse_volume(xml)
        name = self._name(req)
        passphrase = None
        if vol.encryption is not None:
            from pyvirt.daemon.disk_secrets import passphrase_of

            passphrase = passphrase_of(self.domains.secrets if self.domains else None, vol.encryption)
        info = await asyncio.to_thread(
            lambda: self.driver.create_volume(name, vol, prealloc_metadata=prealloc, passphrase=passphrase)
        )
        self.events.publish("volume", f"{name}/{vol.name}", "created", "")
        return info

    async def _create_volume_from(
        self, req: Request, xml: str, source: types.VolumeRef, prealloc: bool, reflink: bool
    ) -> dict[str, Any]:
        name = self._name(req)
        input_info = await asyncio.to_thread(self.driver.volume, source["pool"], source["name"])
        vol = parse_volume(xml, require_capacity=False)
        passphrase = source_passphrase = None
        if vol.encryption is not None:  # as libvirt: the copy encrypted, an encrypted input read with its own
            from pyvirt.daemon.disk_secrets import passphrase_of

            passphrase = passphrase_of(self.domains.secrets if self.domains else None, vol.encryption)
            secret = self._volume_secret(input_info, "copy")
            source_passphrase = secret[1] if secret else None
        info = await asyncio.to_thread(
            lambda: self.driver.create_volume_from(
                name,
                vol,
                input_info,
                prealloc_metadata=prealloc,
                reflink=reflink,
                passphrase=passphrase,
                source_passphrase=source_passphrase,
            )
        )
        self.events.publish("volume", f"{name}/{vol.name}", "created", "copied")
        return info

    async def volume_info(self, req: Request) -> dict[str, Any]:
        return await asyncio.to_thread(self.driver.volume_info, self._name(req), req.params["vol"])

    async def volume_xml(self, req: Request) -> dict[str, Any]:
        info = await asyncio.to_thread(self.driver.volume, self._name(req), req.params["vol"])
        secrets = self.domains.secrets if self.domains else None
        made = self.driver.made_with(info.path)
        if info.encryption is not None and made is not None:  # as libvirt: the definition it was made by
            info.encryption_cipher = made.cipher
            info.encryption_secret = made.secret_uuid
        if info.encryption is not None and secrets is not None and not info.encryption_secret:
            with contextlib.suppress(NotFound):  # as libvirt after a refresh: by the volume's path
                info.encryption_secret = secrets.by_usage("volume", info.path).uuid
        return {"xml": format_volume(info)}

    async def delete_volume(self, req: Request) -> dict[str, Any]:
        name, vol = self._name(req), req.params["vol"]
        await asyncio.to_thread(self.driver.delete_volume, name, vol, in_use=self._in_use())
        self.events.publish("volume", f"{name}/{vol}", "deleted", "")
        return {"pool": name, "name": vol}

    async def clone_volume(self, req: Request) -> dict[str, Any]:
        body: types.VolumeCloneRequest = req.data
        new_name = body["name"]
        name = self._name(req)
        source = await asyncio.to_thread(self.driver.volume, name, req.params["vol"])
        secret = self._volume_secret(source, "clone")
        info = await asyncio.to_thread(
            self.driver.clone_volume,
            name,
            req.params["vol"],
            new_name,
            prealloc_metadata=body.get("prealloc_metadata", False),
            reflink=body.get("reflink", False),
            secret=secret,
        )
        self.events.publish("volume", f"{name}/{new_name}", "created", "cloned")
        return info

    async def resize_volume(self, req: Request) -> dict[str, Any]:
        body: types.ResizeRequest = req.data
        capacity = body["capacity"]
        if capacity < 0:
            raise InvalidArgument("field 'capacity' must be a non-negative integer (bytes)")
        name, in_use = self._name(req), self._in_use()
        volume = await asyncio.to_thread(self.driver.volume, name, req.params["vol"])
        secret = self._volume_secret(volume, "resize")  # a raw LUKS container's too, as libvirt
        info = await asyncio.to_thread(
            lambda: self.driver.resize_volume(
                name,
                req.params["vol"],
                capacity,
                delta=body.get("delta", False),
                shrink=body.get("shrink", False),
                allocate=body.get("allocate", False),
                in_use=in_use,
                passphrase=secret[1] if secret else None,
            )
        )
        self.events.publish("volume", f"{name}/{req.params['vol']}", "resized", "")
        return info

    def _volume_secret(self, info: VolumeInfo, action: str) -> tuple[DiskEncryption, bytes] | None:
        """An encrypted volume's secret, as libvirt finds it: the one it was made with (while remembered),
        else the one whose usage is its path; with its value. None for a volume that is not encrypted."""
        if info.encryption is None:
            return None
        if info.encryption != "luks":
            raise UnsupportedConfig(
                f"unsupported configuration: cannot {action} volume '{info.name}': its encryption "
                f"'{info.encryption}' is not LUKS"
            )
        from pyvirt.daemon.disk_secrets import passphrase_of

        made = self.driver.made_with(info.path)
        enc = made or DiskEncryption(secret_usage=info.path)
        secrets = self.domains.secrets if self.domains else None
        value = passphrase_of(secrets, enc)
        if enc.secret_uuid is None and secrets is not None:
            enc = DiskEncryption(secret_uuid=secrets.by_usage("volume", info.path).uuid)
        return enc, value

    async def wipe_volume(self, req: Request) -> dict[str, Any]:
        body: types.WipeRequest = req.data
        algorithm = body.get("algorithm", "zero")
        name, vol, in_use = self._name(req), req.params["vol"], self._in_use()
        info = await asyncio.to_thread(lambda: self.driver.wipe_volume(name, vol, algorithm, in_use=in_use))
        self.events.publish("volume", f"{name}/{vol}", "wiped", algorithm)
        return info

    async def upload(self, req: Request, stream: Stream) -> None:
        name, vol = self._name(req), req.params["vol"]
        offset, length = _int_query(req, "offset"), _int_query(req, "length")
        in_use = self._in_use()
        info, fd = await asyncio.to_thread(self.driver.open_volume, name, vol, write=True, in_use=in_use)
        try:
            with self.driver.busy(info.path, "being uploaded to"):
                self.driver.forget_encryption(info.path)  # its bytes are the client's now
                await stream.accept()
                if await self._receive(stream, fd, offset, length):
                    self.events.publish("volume", f"{name}/{vol}", "uploaded", "")
        finally:
            os.close(fd)

    async def _receive(self, stream: Stream, fd: int, offset: int, length: int) -> bool:
        """Write what the client sends; whether the upload completed."""
        limit = offset + length if length else None
        pos = offset
        try:
            while True:
                message = await stream.receive()
                if message is None:
                    log.warning("upload aborted by the client after %d bytes", pos - offset)
                    return False
                if isinstance(message, bytes):
                    if limit is not None and pos + len(message) > limit:
                        raise InvalidArgument(f"upload sends more than the {length} bytes asked for")
                    await asyncio.to_thread(_pwrite_all, fd, message, pos)
                    pos += len(message)
                    continue
                try:
                    kind, fields = frames.parse_control(message)
                except ValueError as err:
                    raise InvalidArgument(f"upload: {err}") from err
                if kind == frames.HOLE:
                    size = int(fields["length"])
                    if limit is not None and pos + size > limit:
                        raise InvalidArgument(f"upload sends more than the {length} bytes asked for")
                    file_size = os.fstat(fd).st_size
                    await asyncio.to_thread(frames.write_zeroes, fd, pos, size, file_size=file_size)
                    pos += size
                elif kind == frames.END:
                    break
                else:
                    log.warning("upload abandoned by the client after %d bytes: %s", pos - offset, fields)
                    return False
            await asyncio.to_thread(os.fsync, fd)
            await stream.send(frames.end_message(pos - offset))
            return True
        except PyvirtError as err:
            await stream.send(frames.error_message(err.code, err.message))
        except OSError as err:
            await stream.send(frames.error_message("operation-failed", f"write failed: {err}"))
        return False

    async def download(self, req: Request, stream: Stream) -> None:
        name, vol = self._name(req), req.params["vol"]
        offset, length = _int_query(req, "offset"), _int_query(req, "length")
        sparse = req.flag("sparse")
        _info, fd = await asyncio.to_thread(self.driver.open_volume, name, vol, write=False, in_use={})
        try:
            size = os.fstat(fd).st_size
            if offset > size:
                raise InvalidArgument(f"offset {offset} is past the end of the volume ({size} bytes)")
            end = min(size, offset + length) if length else size
            await stream.accept()
            try:
                for is_data, start, count in frames.extents(fd, offset, end, sparse=sparse):
                    if not is_data:
                        await stream.send(frames.hole_message(count))
                        continue
                    pos = start
                    while pos < start + count:
                        chunk = await asyncio.to_thread(
                            os.pread, fd, min(frames.CHUNK, start + count - pos), pos
                        )
                        if not chunk:
                            break
                        await stream.send(chunk)
                        pos += len(chunk)
                await stream.send(frames.end_message(end - offset))
            except OSError as err:
                await stream.send(frames.error_message("operation-failed", f"read failed: {err}"))
        finally:
            os.close(fd)

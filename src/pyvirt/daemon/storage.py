"""Storage routes: the daemon's side of ``pool-*`` and ``vol-*``, over the storage driver.

Driver calls that touch the disk run in worker threads (``asyncio.to_thread``); the driver is
thread-safe. Uploads and downloads are streams on an upgraded connection, framed by
:mod:`pyvirt.storage.stream`, one chunk in memory at a time.

==============  ==============================================  =========================================
GET             /v1/pools                                       every pool's status
POST            /v1/pools                                       ``{"xml"}`` define; ``{"xml", "start": true,
                                                                "build"}`` create (transient, started)
GET             /v1/pools/{pool}                                pool-info
GET             /v1/pools/{pool}/xml                            pool-dumpxml (``?inactive=1``)
DELETE          /v1/pools/{pool}                                pool-undefine
POST            /v1/pools/{pool}/{action}                       build start destroy refresh autostart
GET             /v1/pools/{pool}/volumes                        vol-list
POST            /v1/pools/{pool}/volumes                        ``{"xml", "prealloc_metadata"}`` create;
                                                                with ``"input": {"pool", "name"}``, the
                                                                content copied from that volume
GET             /v1/pools/{pool}/volumes/{vol}                  vol-info
GET             /v1/pools/{pool}/volumes/{vol}/xml              vol-dumpxml
DELETE          /v1/pools/{pool}/volumes/{vol}                  vol-delete
POST            /v1/pools/{pool}/volumes/{vol}/clone            ``{"name", "prealloc_metadata"}``
POST            /v1/pools/{pool}/volumes/{vol}/resize           ``{"capacity", "delta", "shrink"...}``
POST            /v1/pools/{pool}/volumes/{vol}/wipe             ``{"algorithm"}`` (default ``zero``)
GET+Upgrade     /v1/pools/{pool}/volumes/{vol}/upload           ``?offset=&length=`` framed stream in
GET+Upgrade     /v1/pools/{pool}/volumes/{vol}/download         ``?offset=&length=&sparse=1``, stream out
GET             /v1/volumes?path=PATH                           the pool and name of a volume key or path
==============  ==============================================  =========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any

from pyvirt.conf.storage import parse_volume
from pyvirt.daemon.http import error_payload, switch_protocols
from pyvirt.errors import InvalidArgument, PyvirtError
from pyvirt.storage import stream as frames
from pyvirt.storage.driver import StorageDriver

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request, Router, Stream
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

    def register(self, r: Router) -> None:
        r.add("GET", "/v1/pools", self.list_pools)
        r.add("POST", "/v1/pools", self.define, mutating=True)
        r.add("GET", "/v1/volumes", self.find_volume)
        r.add("GET", "/v1/pools/{pool}", self.info)
        r.add("GET", "/v1/pools/{pool}/xml", self.dumpxml)
        r.add("DELETE", "/v1/pools/{pool}", self.undefine, mutating=True)
        r.add("GET", "/v1/pools/{pool}/volumes", self.list_volumes)
        r.add("POST", "/v1/pools/{pool}/volumes", self.create_volume, mutating=True)
        r.add("GET", "/v1/pools/{pool}/volumes/{vol}", self.volume_info)
        r.add("GET", "/v1/pools/{pool}/volumes/{vol}/xml", self.volume_xml)
        r.add("DELETE", "/v1/pools/{pool}/volumes/{vol}", self.delete_volume, mutating=True)
        r.add("POST", "/v1/pools/{pool}/volumes/{vol}/clone", self.clone_volume, mutating=True)
        r.add("POST", "/v1/pools/{pool}/volumes/{vol}/resize", self.resize_volume, mutating=True)
        r.add("POST", "/v1/pools/{pool}/volumes/{vol}/wipe", self.wipe_volume, mutating=True)
        r.add("GET", "/v1/pools/{pool}/volumes/{vol}/upload", stream=self.upload, mutating=True)
        r.add("GET", "/v1/pools/{pool}/volumes/{vol}/download", stream=self.download)
        r.add("POST", "/v1/pools/{pool}/{action}", self.action, mutating=True)

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
        body = req.json()
        xml = body.get("xml")
        if not isinstance(xml, str):
            raise InvalidArgument("missing 'xml' in request")
        if body.get("start"):
            build = bool(body.get("build"))
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
        return {"xml": await asyncio.to_thread(self.driver.dumpxml, name, inactive=req.flag("inactive"))}

    async def undefine(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        await asyncio.to_thread(self.driver.undefine, name)
        self.events.publish("pool", name, "undefined", "")
        return {"name": name}

    async def action(self, req: Request) -> dict[str, Any]:
        name = self._name(req)
        action = req.params["action"]
        d = self.driver
        if action == "build":
            await asyncio.to_thread(d.build, name)
        elif action == "start":
            await asyncio.to_thread(d.start, name)
            self.events.publish("pool", name, "started", "")
        elif action == "destroy":
            status = await asyncio.to_thread(d.destroy, name)
            self.events.publish("pool", name, "stopped", "")
            return dataclasses.asdict(status)
        elif action == "refresh":
            await asyncio.to_thread(d.refresh, name)
        elif action == "autostart":
            enabled = bool(req.json().get("enabled", True))
            await asyncio.to_thread(d.set_autostart, name, enabled)
        else:
            raise InvalidArgument(f"unknown pool action '{action}'")
        return dataclasses.asdict(await asyncio.to_thread(d.status, name))

    # Volumes

    async def find_volume(self, req: Request) -> dict[str, Any]:
        path = req.query.get("path", "")
        if not path:
            raise InvalidArgument("missing 'path' in query")
        pool, name = await asyncio.to_thread(self.driver.pool_of_path, path)
        return {"pool": pool, "name": name}

    async def list_volumes(self, req: Request) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.driver.list_volumes, self._name(req))

    async def create_volume(self, req: Request) -> dict[str, Any]:
        body = req.json()
        xml = body.get("xml")
        if not isinstance(xml, str):
            raise InvalidArgument("missing 'xml' in request")
        source = body.get("input")
        if source is not None:
            return await self._create_volume_from(req, xml, source)
        vol = parse_volume(xml)
        name = self._name(req)
        info = await asyncio.to_thread(
            self.driver.create_volume, name, vol, prealloc_metadata=bool(body.get("prealloc_metadata"))
        )
        self.events.publish("volume", f"{name}/{vol.name}", "created", "")
        return info

    async def _create_volume_from(self, req: Request, xml: str, source: object) -> dict[str, Any]:
        if not (
            isinstance(source, dict)
            and isinstance(source.get("pool"), str)
            and isinstance(source.get("name"), str)
        ):
            raise InvalidArgument('\'input\' must be {"pool": POOL, "name": VOLUME}')
        name = self._name(req)
        input_info = await asyncio.to_thread(self.driver.volume, source["pool"], source["name"])
        vol = parse_volume(xml, require_capacity=False)
        prealloc = bool(req.json().get("prealloc_metadata"))
        info = await asyncio.to_thread(
            lambda: self.driver.create_volume_from(name, vol, input_info, prealloc_metadata=prealloc)
        )
        self.events.publish("volume", f"{name}/{vol.name}", "created", "copied")
        return info

    async def volume_info(self, req: Request) -> dict[str, Any]:
        return await asyncio.to_thread(self.driver.volume_info, self._name(req), req.params["vol"])

    async def volume_xml(self, req: Request) -> dict[str, Any]:
        return {"xml": await asyncio.to_thread(self.driver.volume_xml, self._name(req), req.params["vol"])}

    async def delete_volume(self, req: Request) -> dict[str, Any]:
        name, vol = self._name(req), req.params["vol"]
        await asyncio.to_thread(self.driver.delete_volume, name, vol, in_use=self._in_use())
        self.events.publish("volume", f"{name}/{vol}", "deleted", "")
        return {"pool": name, "name": vol}

    async def clone_volume(self, req: Request) -> dict[str, Any]:
        body = req.json()
        new_name = body.get("name")
        if not isinstance(new_name, str):
            raise InvalidArgument("missing 'name' in request")
        name = self._name(req)
        info = await asyncio.to_thread(
            self.driver.clone_volume,
            name,
            req.params["vol"],
            new_name,
            prealloc_metadata=bool(body.get("prealloc_metadata")),
        )
        self.events.publish("volume", f"{name}/{new_name}", "created", "cloned")
        return info

    async def resize_volume(self, req: Request) -> dict[str, Any]:
        body = req.json()
        capacity = body.get("capacity")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise InvalidArgument("'capacity' must be a non-negative integer (bytes)")
        name, in_use = self._name(req), self._in_use()
        return await asyncio.to_thread(
            lambda: self.driver.resize_volume(
                name,
                req.params["vol"],
                capacity,
                delta=bool(body.get("delta")),
                shrink=bool(body.get("shrink")),
                allocate=bool(body.get("allocate")),
                in_use=in_use,
            )
        )

    async def wipe_volume(self, req: Request) -> dict[str, Any]:
        algorithm = req.json().get("algorithm", "zero")
        if not isinstance(algorithm, str):
            raise InvalidArgument("'algorithm' must be a string")
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
                await switch_protocols(stream)
                await self._receive(stream, fd, offset, length)
        finally:
            os.close(fd)

    async def _receive(self, stream: Stream, fd: int, offset: int, length: int) -> None:
        reader, writer = stream.reader, stream.writer
        limit = offset + length if length else None
        pos = offset
        try:
            while True:
                kind, size = frames.HEADER.unpack(await reader.readexactly(frames.HEADER.size))
                if limit is not None and kind in (frames.DATA, frames.HOLE) and pos + size > limit:
                    raise InvalidArgument(f"upload sends more than the {length} bytes asked for")
                if kind == frames.DATA:
                    if size > frames.CHUNK:
                        raise InvalidArgument(f"upload frame of {size} bytes exceeds {frames.CHUNK}")
                    data = await reader.readexactly(size)
                    await asyncio.to_thread(_pwrite_all, fd, data, pos)
                    pos += size
                elif kind == frames.HOLE:
                    file_size = os.fstat(fd).st_size
                    await asyncio.to_thread(frames.write_zeroes, fd, pos, size, file_size=file_size)
                    pos += size
                elif kind == frames.END:
                    if size > frames.MAX_CONTROL:
                        raise InvalidArgument("upload end frame too large")
                    await reader.readexactly(size)
                    break
                else:
                    raise InvalidArgument(f"unknown upload frame kind {kind!r}")
            await asyncio.to_thread(os.fsync, fd)
            writer.write(frames.control(frames.END, {"bytes": pos - offset}))
        except asyncio.IncompleteReadError:
            log.warning("upload aborted by the client after %d bytes", pos - offset)
            return
        except PyvirtError as err:
            writer.write(frames.control(frames.ERROR, error_payload(err)))
        except OSError as err:
            writer.write(
                frames.control(
                    frames.ERROR, {"error": {"code": "operation-failed", "message": f"write failed: {err}"}}
                )
            )
        with contextlib.suppress(ConnectionError):
            await writer.drain()

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
            await switch_protocols(stream)
            writer = stream.writer
            try:
                for is_data, start, count in frames.extents(fd, offset, end, sparse=sparse):
                    if not is_data:
                        writer.write(frames.header(frames.HOLE, count))
                        continue
                    pos = start
                    while pos < start + count:
                        chunk = await asyncio.to_thread(
                            os.pread, fd, min(frames.CHUNK, start + count - pos), pos
                        )
                        if not chunk:
                            break
                        writer.write(frames.header(frames.DATA, len(chunk)) + chunk)
                        await writer.drain()
                        pos += len(chunk)
                writer.write(frames.control(frames.END, {"bytes": end - offset}))
            except OSError as err:
                payload = {"error": {"code": "operation-failed", "message": f"read failed: {err}"}}
                writer.write(frames.control(frames.ERROR, payload))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            os.close(fd)

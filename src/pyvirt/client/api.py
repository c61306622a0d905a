"""The Python API: ``pyvirt.open(uri)`` returns a :class:`Connection`.

Example::

    import pyvirt

    conn = pyvirt.open("qemu:///system")
    for dom in conn.list_domains():
        print(dom["name"], dom["state"])
    web = conn.domain("web01")
    web.start()
    print(web.info()["state"])        # "running"
    web.shutdown()

    lan = conn.network("default")
    print(lan.info()["active"], [lease["ip"] for lease in lan.leases()])
    pool = conn.pool("default")
    vol = pool.create_volume("web02.qcow2", 10 * 2**30, fmt="qcow2")
    print(vol.path())

The CLI is built on this module: every verb is one or two calls here.
"""

from __future__ import annotations

import os

from pyvirt.client.transport import Transport, connect_unix, quote
from pyvirt.uri import URI, default_uri, parse_uri

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.api import types
    from pyvirt.client.streams import EventStream
    from pyvirt.client.websocket import WebSocket


class Connection:
    """A connection to one pyvirtd."""

    def __init__(self, transport: Transport, uri: URI, readonly: bool = False) -> None:
        self.transport = transport
        self.uri = uri
        self.readonly = readonly

    @classmethod
    def open(cls, uri: str | None = None, *, readonly: bool = False) -> Connection:
        parsed = parse_uri(uri or default_uri())
        return cls(open_transport(parsed, readonly), parsed, readonly)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.transport.request(method, path, body)

    def stream(self, path: str) -> WebSocket:
        """A new connection to the same daemon, made a WebSocket at ``path`` (a stream endpoint)."""
        from pyvirt.client.websocket import WebSocket

        transport = open_transport(self.uri, self.readonly)
        try:
            return WebSocket(transport, path)
        except BaseException:
            transport.close()
            raise

    # Host

    def version(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/version"))

    def nodeinfo(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/host/nodeinfo"))

    def capabilities(self) -> str:
        return str(self.call("GET", "/v1/host/capabilities")["xml"])

    def hostname(self) -> str:
        return str(self.call("GET", "/v1/host/hostname")["hostname"])

    def validate_host(self) -> list[dict[str, str]]:
        return list(self.call("GET", "/v1/host/validate")["checks"])

    # Domains

    def list_domains(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/domains"))

    def define_xml(self, xml: str) -> Domain:
        summary = self.call("POST", "/v1/domains", {"xml": xml})
        return Domain(self, summary["name"])

    def create_xml(self, xml: str, *, paused: bool = False) -> Domain:
        summary = self.call("POST", "/v1/domains", {"xml": xml, "start": True, "paused": paused})
        return Domain(self, summary["name"])

    def domain(self, key: str) -> Domain:
        """A handle on a domain by name, id or UUID (resolved by the daemon at each call)."""
        return Domain(self, key)

    def clone(self, original: str, name: str, **options: Any) -> types.CloneResult:
        """``pyvirt clone``: domain ``name`` from the template or shut-off domain ``original``, made by
        the daemon. ``options`` are :class:`pyvirt.api.types.CloneRequest`'s (None: left out)."""
        body = {"original": original, "name": name, **{k: v for k, v in options.items() if v is not None}}
        result: types.CloneResult = self.call("POST", "/v1/clones", body)
        return result

    # Networks

    def list_networks(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/networks"))

    def define_network(self, xml: str) -> Network:
        return Network(self, self.call("POST", "/v1/networks", {"xml": xml})["name"])

    def create_network(self, xml: str) -> Network:
        return Network(self, self.call("POST", "/v1/networks", {"xml": xml, "start": True})["name"])

    def network(self, key: str) -> Network:
        return Network(self, key)

    # Storage

    def list_pools(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/pools"))

    def define_pool(self, xml: str) -> StoragePool:
        return StoragePool(self, self.call("POST", "/v1/pools", {"xml": xml})["name"])

    def create_pool(self, xml: str, *, build: bool = False) -> StoragePool:
        """Like ``pool-create``: a transient pool, started at once (its folder made first with ``build``)."""
        body = {"xml": xml, "start": True, "build": build}
        return StoragePool(self, self.call("POST", "/v1/pools", body)["name"])

    def pool(self, name: str) -> StoragePool:
        return StoragePool(self, name)

    def events(self) -> EventStream:
        """Lifecycle events of domains, networks, pools and volumes: iterate for dicts
        (``kind``, ``name``, ``event``, ``detail``, ``time``); close when done."""
        from pyvirt.client.streams import EventStream

        return EventStream(self.stream("/v1/events"))


class Domain:
    """A domain handle; every method is one API call."""

    def __init__(self, conn: Connection, key: str) -> None:
        self.conn = conn
        self.key = key

    @property
    def _path(self) -> str:
        return f"/v1/domains/{quote(self.key, safe='')}"

    def _action(self, action: str, body: Any = None) -> dict[str, Any]:
        return dict(self.conn.call("POST", f"{self._path}/{action}", body or {}))

    def info(self) -> dict[str, Any]:
        return dict(self.conn.call("GET", self._path))

    def xml(self, *, inactive: bool = False, security_info: bool = False) -> str:
        query = "&".join(q for q, on in (("inactive=1", inactive), ("security_info=1", security_info)) if on)
        return str(self.conn.call("GET", self._path + "/xml" + (f"?{query}" if query else ""))["xml"])

    def devices(self) -> dict[str, Any]:
        return dict(self.conn.call("GET", self._path + "/devices"))

    def start(self, *, paused: bool = False) -> dict[str, Any]:
        return self._action("start", {"paused": paused})

    def shutdown(self) -> dict[str, Any]:
        return self._action("shutdown")

    def reboot(self) -> dict[str, Any]:
        return self._action("reboot")

    def reset(self) -> dict[str, Any]:
        return self._action("reset")

    def destroy(self, *, graceful: bool = False) -> dict[str, Any]:
        return self._action("destroy", {"graceful": graceful})

    def suspend(self) -> dict[str, Any]:
        return self._action("suspend")

    def resume(self) -> dict[str, Any]:
        return self._action("resume")

    def set_autostart(self, enabled: bool) -> dict[str, Any]:
        return self._action("autostart", {"enabled": enabled})

    def undefine(self, *, remove_storage: bool = False) -> dict[str, Any]:
        suffix = "?remove_storage=1" if remove_storage else ""
        return dict(self.conn.call("DELETE", self._path + suffix))

    def console(self, *, force: bool = False, history: bool = False) -> WebSocket:
        """The serial console: binary messages both ways (``send`` keystrokes, ``receive`` output).

        ``force`` takes the console over from another client; ``history`` first sends the recent output.
        """
        query = "&".join(q for q, on in (("force=1", force), ("history=1", history)) if on)
        return self.conn.stream(self._path + "/console" + (f"?{query}" if query else ""))


def local_socket(mode: str, readonly: bool = False) -> str:
    """The daemon socket of ``mode``: pyvirt.paths' rule, in os.path terms (pathlib costs the CLI ~5 ms)."""
    root = os.environ.get("PYVIRT_ROOT")
    if root or mode == "system":
        run = os.path.join(root or "/", "run/pyvirt")
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        run = os.path.join(runtime, "pyvirt") if runtime else f"/tmp/pyvirt-{os.getuid()}"
    return os.path.join(run, "pyvirt-sock-ro" if readonly else "pyvirt-sock")


def open_transport(uri: URI, readonly: bool) -> Transport:
    if uri.transport == "unix":
        socket_path = uri.params.get("socket")
        if not socket_path:
            socket_path = local_socket(uri.mode, readonly)
        elif readonly and not socket_path.endswith("-ro"):
            socket_path += "-ro"  # read-only is the socket's property: never fall back to the main one
        return connect_unix(socket_path)
    from pyvirt.client import remote

    return remote.open_remote(uri, readonly)


class Network:
    """A virtual network handle."""

    def __init__(self, conn: Connection, key: str) -> None:
        self.conn = conn
        self.key = key

    @property
    def _path(self) -> str:
        return f"/v1/networks/{quote(self.key, safe='')}"

    def info(self) -> dict[str, Any]:
        return dict(self.conn.call("GET", self._path))

    def xml(self, *, inactive: bool = False) -> str:
        return str(self.conn.call("GET", self._path + ("/xml?inactive=1" if inactive else "/xml"))["xml"])

    def start(self) -> dict[str, Any]:
        return dict(self.conn.call("POST", self._path + "/start", {}))

    def destroy(self) -> dict[str, Any]:
        return dict(self.conn.call("POST", self._path + "/destroy", {}))

    def set_autostart(self, enabled: bool) -> dict[str, Any]:
        return dict(self.conn.call("POST", self._path + "/autostart", {"enabled": enabled}))

    def undefine(self) -> None:
        self.conn.call("DELETE", self._path)

    def leases(self, mac: str | None = None) -> list[dict[str, Any]]:
        return list(self.conn.call("GET", self._path + "/leases" + (f"?mac={quote(mac)}" if mac else "")))


class StoragePool:
    """A storage pool handle."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name

    @property
    def _path(self) -> str:
        return f"/v1/pools/{quote(self.name, safe='')}"

    def _action(self, action: str, body: dict[str, Any] | None = None) -> Any:
        return self.conn.call("POST", f"{self._path}/{action}", body or {})

    def info(self) -> dict[str, Any]:
        return dict(self.conn.call("GET", self._path))

    def xml(self, *, inactive: bool = False) -> str:
        return str(self.conn.call("GET", self._path + ("/xml?inactive=1" if inactive else "/xml"))["xml"])

    def build(self) -> Any:
        return self._action("build")

    def start(self) -> Any:
        return self._action("start")

    def destroy(self) -> Any:
        return self._action("destroy")

    def refresh(self) -> Any:
        return self._action("refresh")

    def set_autostart(self, enabled: bool) -> Any:
        return self._action("autostart", {"enabled": enabled})

    def undefine(self) -> None:
        self.conn.call("DELETE", self._path)

    def list_volumes(self) -> list[dict[str, Any]]:
        return list(self.conn.call("GET", self._path + "/volumes"))

    def volume(self, name: str) -> Volume:
        return Volume(self, name)

    def create_volume_xml(self, xml: str, *, prealloc_metadata: bool = False) -> Volume:
        info = self.conn.call(
            "POST", self._path + "/volumes", {"xml": xml, "prealloc_metadata": prealloc_metadata}
        )
        return Volume(self, str(info["name"]))

    def create_volume_from(self, xml: str, source: Volume, *, prealloc_metadata: bool = False) -> Volume:
        """Like ``vol-create-from``: a volume defined by ``xml`` holding a copy of ``source``'s content."""
        body = {
            "xml": xml,
            "prealloc_metadata": prealloc_metadata,
            "input": {"pool": source.pool.name, "name": source.name},
        }
        return Volume(self, str(self.conn.call("POST", self._path + "/volumes", body)["name"]))

    def create_volume(
        self,
        name: str,
        capacity: int,
        *,
        fmt: str = "qcow2",
        backing: str | None = None,
        backing_fmt: str | None = None,
    ) -> Volume:
        """Like ``vol-create-as``: ``capacity`` in bytes; ``backing`` a path or volume of this pool."""
        from xml.sax.saxutils import quoteattr

        backing_xml = ""
        if backing:
            backing_xml = (
                f"<backingStore><path>{backing}</path>"
                f"<format type={quoteattr(backing_fmt or 'qcow2')}/></backingStore>"
            )
        xml = (
            f"<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<target><format type={quoteattr(fmt)}/></target>{backing_xml}</volume>"
        )
        return self.create_volume_xml(xml)


class Volume:
    """A storage volume handle."""

    def __init__(self, pool: StoragePool, name: str) -> None:
        self.pool = pool
        self.name = name

    @property
    def _path(self) -> str:
        return f"{self.pool._path}/volumes/{quote(self.name, safe='')}"

    def info(self) -> dict[str, Any]:
        return dict(self.pool.conn.call("GET", self._path))

    def path(self) -> str:
        return str(self.info()["path"])

    def xml(self) -> str:
        return str(self.pool.conn.call("GET", self._path + "/xml")["xml"])

    def delete(self) -> None:
        self.pool.conn.call("DELETE", self._path)

    def clone(self, name: str) -> Volume:
        info = self.pool.conn.call("POST", self._path + "/clone", {"name": name})
        return Volume(self.pool, str(info.get("name", name)))

    def resize(self, capacity: int, *, shrink: bool = False) -> Any:
        return self.pool.conn.call("POST", self._path + "/resize", {"capacity": capacity, "shrink": shrink})

    def wipe(self, algorithm: str = "zero") -> dict[str, Any]:
        """Like ``vol-wipe``: overwrite the volume (``zero``, or one of scrub's patterns such as ``nnsa``)."""
        return dict(self.pool.conn.call("POST", self._path + "/wipe", {"algorithm": algorithm}))

    def upload(self, source: int | str, *, offset: int = 0, length: int = 0, sparse: bool = False) -> int:
        """Like ``vol-upload``: write a file (a path, or an open descriptor read from its start) into
        the volume at ``offset``, at most ``length`` bytes of it (0: all); with ``sparse``, its holes
        are sent as holes. Returns the bytes written."""
        from pyvirt.client import streams

        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC) if isinstance(source, str) else source
        try:
            size = os.fstat(fd).st_size
            end = min(size, length) if length else size
            query = f"?offset={offset}" + (f"&length={length}" if length else "")
            return streams.upload(
                self.pool.conn.stream(self._path + "/upload" + query), fd, end, sparse=sparse
            )
        finally:
            if isinstance(source, str):
                os.close(fd)

    def download(self, target: int | str, *, offset: int = 0, length: int = 0, sparse: bool = False) -> int:
        """Like ``vol-download``: the volume's bytes from ``offset`` (``length`` of them; 0: to its end)
        into a file (a path, created or truncated, or an open descriptor written from its start);
        with ``sparse``, holes stay holes. Returns the bytes covered."""
        from pyvirt.client import streams

        query = (
            f"?offset={offset}" + (f"&length={length}" if length else "") + ("&sparse=1" if sparse else "")
        )
        ws = self.pool.conn.stream(self._path + "/download" + query)
        if not isinstance(target, str):
            return streams.download(ws, target)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError:
            ws.close()
            raise
        try:
            return streams.download(ws, fd)
        finally:
            os.close(fd)

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

The CLI is built on this module: every verb is one or two calls here.
"""

from __future__ import annotations

from typing import Any

from pyvirt.client.transport import Transport, connect_unix, quote
from pyvirt.uri import URI, default_uri, parse_uri


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

    def stream(self, path: str) -> tuple[Transport, bytes]:
        """A new connection to the same daemon, upgraded to a raw stream at ``path``."""
        transport = open_transport(self.uri, self.readonly)
        leftover = transport.upgrade(path)
        return transport, leftover

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

    def events(self) -> Any:
        """Iterate lifecycle events as dicts, until the connection closes."""
        import json

        transport, leftover = self.stream("/v1/events")
        buf = leftover
        try:
            while True:
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    yield json.loads(line)
                chunk = transport.sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
        finally:
            transport.close()


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

    def console(self, *, force: bool = False, history: bool = False) -> tuple[Transport, bytes]:
        """An upgraded connection carrying the serial console both ways, and any bytes already read."""
        query = "&".join(q for q, on in (("force=1", force), ("history=1", history)) if on)
        return self.conn.stream(self._path + "/console" + (f"?{query}" if query else ""))


def open_transport(uri: URI, readonly: bool) -> Transport:
    if uri.transport == "unix":
        socket_path = uri.params.get("socket")
        if not socket_path:
            from pyvirt.paths import layout_for

            layout = layout_for(uri.mode)
            socket_path = str(layout.socket_ro if readonly else layout.socket)
        elif readonly and not socket_path.endswith("-ro"):
            socket_path += "-ro"  # read-only is the socket's property: never fall back to the main one
        return connect_unix(socket_path)
    from pyvirt.client import remote

    return remote.open_remote(uri, readonly)

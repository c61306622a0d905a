"""``<disk type='network'>`` on the protocols other than NBD, as libvirt 9.0 parses and runs them.

``http``, ``https``, ``ftp``, ``ftps`` (QEMU's curl drivers: a URL built from the host, the name and
``query``; ``<cookies>``, ``<ssl verify>``, ``<readahead size>``, ``<timeout seconds>``), ``nfs``
(``<identity user group>``), ``rbd`` (``pool/[namespace/]image``, monitors as hosts, ``<config file>``,
``<snapshot name>``), ``gluster`` (``volume/path``, inet or unix servers, QEMU's debug level 4 as
libvirt's default ``gluster_debug_level``), ``iscsi`` (``target[/lun]``, ``<initiator><iqn>``) and
``ssh``. A host without a port takes the protocol's default port, as libvirt's post-parse assigns it.

``<auth username><secret type usage|uuid/></auth>`` (in ``<source>`` or, its first place, in ``<disk>``;
not both) gives iSCSI and curl a user and password, RBD a cephx user and key; the secret's type is
``ceph`` for RBD and ``iscsi`` for the others, as libvirt checks it. The password, key and cookies
reach QEMU only as ``secret`` objects encrypted with the domain's master key
(:mod:`pyvirt.daemon.disk_secrets`), never in clear on the command line.

Which of them QEMU opens is up to Debian's ``qemu-block-extra`` (curl, nfs, rbd, gluster, iscsi, ssh).
"""

from __future__ import annotations

import grp
import pwd
from dataclasses import dataclass, field

from pyvirt.conf.secret import parse_uuid
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import XMLError

CURL = ("http", "https", "ftp", "ftps")
PROTOCOLS = (*CURL, "nfs", "rbd", "gluster", "iscsi", "ssh")
DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ftp": 21,
    "ftps": 990,
    "gluster": 24007,
    "iscsi": 3260,
    "ssh": 22,
}
MULTI_HOST = ("rbd", "gluster")  # the others take exactly one host
GLUSTER_DEBUG = 4  # libvirt's default gluster_debug_level (qemu.conf)


@dataclass
class Auth:
    username: str
    secret_type: str  # ceph | iscsi
    secret_uuid: str | None = None
    secret_usage: str | None = None
    in_source: bool = True  # written in <source> (libvirt's newer place) rather than in <disk>


@dataclass
class NetworkSource:
    """What a non-NBD network disk's ``<source>`` says beyond its protocol and name."""

    protocol: str
    name: str
    # (transport, host name or socket path, port): tcp | unix; the port filled with the default
    hosts: list[tuple[str, str, int | None]] = field(default_factory=list)
    query: str | None = None
    auth: Auth | None = None
    cookies: list[tuple[str, str]] = field(default_factory=list)
    ssl_verify: str | None = None  # yes | no (https, ftps)
    readahead: int | None = None  # bytes
    timeout: int | None = None  # seconds
    identity: tuple[str | None, str | None] | None = None  # nfs: user, group as written
    config_file: str | None = None  # rbd
    snapshot: str | None = None  # rbd
    initiator: str | None = None  # iscsi: the initiator's IQN


def parse(node: Elem, protocol: str) -> NetworkSource:
    """``<source protocol=...>`` of a protocol of :data:`PROTOCOLS`."""
    name = node.attr("name")
    if not name:
        raise XMLError(f"missing name for disk source of '{node.path}'")
    src = NetworkSource(protocol, name)
    if protocol in CURL:
        src.query = node.attr("query")
    for host in node.children("host"):
        src.hosts.append(_host(host, protocol))
    if protocol not in MULTI_HOST and len(src.hosts) != 1:
        raise XMLError(f"protocol '{protocol}' of '{node.path}' needs exactly one <host>")
    if protocol == "gluster" and not src.hosts:
        raise XMLError(f"protocol 'gluster' of '{node.path}' needs at least one <host>")
    if protocol in ("gluster", "rbd") and "/" not in name.strip("/"):
        what = "volume name or file name" if protocol == "gluster" else "pool or image name"
        raise XMLError(f"missing {what} in {protocol} source name '{name}' of '{node.path}'")
    if (auth := node.child("auth")) is not None:
        src.auth = parse_auth(auth, protocol, in_source=True)
    if protocol in ("http", "https") and (cookies := node.child("cookies")) is not None:
        for cookie in cookies.children("cookie"):
            value = cookie.text()
            cookie_name = cookie.require("name")
            if not cookie_name or any(c in cookie_name + value for c in ";\r\n"):
                raise XMLError(f"cookie '{cookie_name}' of '{cookie.path}' has a character HTTP forbids")
            if cookie_name in (n for n, _ in src.cookies):
                raise XMLError(f"duplicate cookie '{cookie_name}' of '{cookies.path}'")
            src.cookies.append((cookie_name, value))
            cookie.done()
        cookies.done()
    if protocol in ("https", "ftps") and (ssl := node.child("ssl")) is not None:
        src.ssl_verify = ssl.choice("verify", ("yes", "no"))
        ssl.done()
    if protocol in CURL:
        if (ahead := node.child("readahead")) is not None:
            src.readahead = ahead.integer("size", minimum=1)
            if src.readahead is None:
                raise XMLError(f"missing attribute 'size' of '{ahead.path}'")
            ahead.done()
        if (timeout := node.child("timeout")) is not None:
            src.timeout = timeout.integer("seconds", minimum=1)
            if src.timeout is None:
                raise XMLError(f"missing attribute 'seconds' of '{timeout.path}'")
            timeout.done()
    if protocol == "nfs" and (ident := node.child("identity")) is not None:
        src.identity = (ident.attr("user"), ident.attr("group"))
        _ids(src.identity, ident.path)
        ident.done()
    if protocol == "rbd":
        if (conf := node.child("config")) is not None:
            src.config_file = conf.require("file")
            conf.done()
        if (snap := node.child("snapshot")) is not None:
            src.snapshot = snap.require("name")
            snap.done()
    if protocol == "iscsi" and (init := node.child("initiator")) is not None:
        if (iqn := init.child("iqn")) is None:
            raise XMLError(f"missing element 'iqn' of '{init.path}'")
        src.initiator = iqn.require("name")
        iqn.done()
        init.done()
    return src


def _host(host: Elem, protocol: str) -> tuple[str, str, int | None]:
    transport = host.choice("transport", ("tcp", "unix", "rdma")) or "tcp"
    if transport == "rdma":
        raise unsupported(f"transport 'rdma' of '{host.path}': QEMU 7.2's {protocol} driver has none")
    if transport == "unix":
        if protocol != "gluster":
            raise unsupported(f"transport 'unix' of '{host.path}': protocol '{protocol}' has only tcp")
        socket = host.require("socket")
        if not socket.startswith("/"):
            raise XMLError(f"socket '{socket}' of '{host.path}' must be an absolute path")
        host.done()
        return ("unix", socket, None)
    name = host.require("name")
    port = host.integer("port", minimum=0, maximum=65535)
    if protocol == "nfs" and port:
        raise XMLError(f"port of '{host.path}': an NFS server is reached on its portmapper's port")
    host.done()
    return ("tcp", name, port or DEFAULT_PORTS.get(protocol, 0))  # RBD: 0, librados's own default


def parse_auth(node: Elem, protocol: str, *, in_source: bool) -> Auth:
    """``<auth username><secret type usage|uuid/></auth>``, its secret type checked as libvirt does."""
    if protocol not in ("iscsi", "rbd", *CURL):
        raise unsupported(f"'{node.path}' of protocol '{protocol}': libvirt gives QEMU no credentials for it")
    username = node.require("username")
    secret = node.child("secret")
    if secret is None:
        raise XMLError(f"missing element 'secret' of '{node.path}'")
    kind = secret.attr("type")
    if kind is None:
        raise unsupported("unknown secret type '<null>'")
    if kind not in ("ceph", "iscsi"):
        raise unsupported(f"unknown secret type '{kind}'")
    if kind != ("ceph" if protocol == "rbd" else "iscsi"):
        raise unsupported(f"invalid secret type '{kind}'")
    uuid, usage = secret.attr("uuid"), secret.attr("usage")
    if (uuid is None) == (usage is None):
        raise XMLError(f"'{secret.path}' needs either 'uuid' or 'usage'")
    auth = Auth(username, kind, parse_uuid(uuid, "secret uuid") if uuid else None, usage, in_source)
    secret.done()
    node.done()
    return auth


def _ids(identity: tuple[str | None, str | None], path: str) -> None:
    """Each of an NFS ``<identity>``'s user and group: ``+N`` (a number), a number or a name."""
    for value in identity:
        if value is not None and not value:
            raise XMLError(f"empty user or group of '{path}'")


def _numeric_id(value: str, kind: str) -> int:
    """libvirt's ``virGetUserID``/``virGetGroupID``: ``+N`` is the number; a name is looked up first."""
    if value.startswith("+") and value[1:].isdigit():
        return int(value[1:])
    try:
        return pwd.getpwnam(value).pw_uid if kind == "user" else grp.getgrnam(value).gr_gid
    except KeyError:
        if value.isdigit():
            return int(value)
        raise XMLError(f"no {kind} '{value}' on this host (NFS <identity>)") from None


# --- the command line --------------------------------------------------------------------------


def auth_secret_id(node: str) -> str:
    return f"{node}-storage-auth-secret0"


def cookie_secret_id(node: str) -> str:
    return f"{node}-storage-httpcookie-secret0"


def cookie_string(src: NetworkSource) -> str:
    """The cookies as curl sends them (libvirt's ``name=value; name=value``)."""
    return "; ".join(f"{name}={value}" for name, value in src.cookies)


def secret_ids(src: NetworkSource, node: str) -> list[str]:
    """The ids of the secret objects the disk's storage node names (given at start, or added over QMP
    before a hot-plugged disk's nodes)."""
    out = [auth_secret_id(node)] if src.auth is not None else []
    return out + ([cookie_secret_id(node)] if src.cookies else [])


def _url_host(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def _inet(host: tuple[str, str, int | None], typed: bool) -> dict[str, object]:
    transport, name, port = host
    if transport == "unix":
        return {"type": "unix", "path": name}
    out: dict[str, object] = {"type": "inet"} if typed else {}
    return {**out, "host": name, "port": str(port)}


def storage_props(src: NetworkSource, node: str) -> dict[str, object]:
    """The QEMU driver and options of the protocol node (libvirt 9.0's key order)."""
    proto = src.protocol
    if proto in CURL:
        _, host, port = src.hosts[0]
        path = src.name if src.name.startswith("/") else f"/{src.name}"
        url = f"{proto}://{_url_host(host)}:{port}{path}" + (f"?{src.query}" if src.query else "")
        out: dict[str, object] = {"driver": proto, "url": url}
        if src.auth is not None:
            out.update({"username": src.auth.username, "password-secret": auth_secret_id(node)})
        if src.ssl_verify is not None:
            out["sslverify"] = src.ssl_verify == "yes"
        if src.cookies:
            out["cookie-secret"] = cookie_secret_id(node)
        if src.timeout is not None:
            out["timeout"] = src.timeout
        if src.readahead is not None:
            out["readahead"] = src.readahead
        return out
    if proto == "nfs":
        out = {"driver": "nfs", "server": {"host": src.hosts[0][1], "type": "inet"}, "path": src.name}
        if src.identity is not None:
            user, group = src.identity
            if user is not None:
                out["user"] = _numeric_id(user, "user")
            if group is not None:
                out["group"] = _numeric_id(group, "group")
        return out
    if proto == "gluster":
        volume, _, path = src.name.lstrip("/").partition("/")
        servers = [_inet(host, True) for host in src.hosts]
        return {
            "driver": "gluster",
            "volume": volume,
            "path": path,
            "server": servers,
            "debug": GLUSTER_DEBUG,
        }
    if proto == "rbd":
        pool, _, image = src.name.partition("/")
        out = {"driver": "rbd", "pool": pool}
        namespace, slash, rest = image.partition("/")
        if slash:
            out["namespace"], image = namespace, rest
        out["image"] = image
        if src.snapshot is not None:
            out["snapshot"] = src.snapshot
        if src.config_file is not None:
            out["conf"] = src.config_file
        if src.hosts:
            out["server"] = [_inet(host, False) for host in src.hosts]
        if src.auth is not None:
            out["user"] = src.auth.username
            out["auth-client-required"] = ["cephx", "none"]
            out["key-secret"] = auth_secret_id(node)
        return out
    if proto == "iscsi":
        _, host, port = src.hosts[0]
        target, slash, lun = src.name.rpartition("/")
        if not slash:
            target, lun = src.name, "0"
        if not lun.isdigit():
            raise XMLError(f"invalid LUN '{lun}' in iSCSI source name '{src.name}'")
        out = {"driver": "iscsi", "portal": f"{_url_host(host)}:{port}", "target": target}
        out.update({"lun": int(lun), "transport": "tcp"})
        if src.auth is not None:
            out.update({"user": src.auth.username, "password-secret": auth_secret_id(node)})
        if src.initiator is not None:
            out["initiator-name"] = src.initiator
        return out
    assert proto == "ssh"
    return {"driver": "ssh", "server": _inet(src.hosts[0], False), "path": src.name}


# --- writing back ---------------------------------------------------------------------------------


def write_auth(auth: Auth) -> XNode:
    secret = {"type": auth.secret_type, "uuid": auth.secret_uuid, "usage": auth.secret_usage}
    return x("auth", {"username": auth.username}).add(x("secret", secret))


def write_source(src: NetworkSource) -> XNode:
    node = x("source", {"protocol": src.protocol, "name": src.name, "query": src.query})
    for transport, name, port in src.hosts:
        unix = transport == "unix"
        node.add(
            x("host", {"transport": "unix", "socket": name} if unix else {"name": name, "port": port or None})
        )
    if src.protocol == "nfs" and src.identity is not None:
        node.add(x("identity", {"user": src.identity[0], "group": src.identity[1]}))
    if src.auth is not None and src.auth.in_source:
        node.add(write_auth(src.auth))
    if src.snapshot is not None:
        node.add(x("snapshot", {"name": src.snapshot}))
    if src.config_file is not None:
        node.add(x("config", {"file": src.config_file}))
    if src.initiator is not None:
        node.add(x("initiator").add(x("iqn", {"name": src.initiator})))
    if src.ssl_verify is not None:
        node.add(x("ssl", {"verify": src.ssl_verify}))
    if src.cookies:
        node.add(x("cookies").add(*(x("cookie", {"name": n}, text=v) for n, v in src.cookies)))
    if src.readahead is not None:
        node.add(x("readahead", {"size": src.readahead}))
    if src.timeout is not None:
        node.add(x("timeout", {"seconds": src.timeout}))
    return node

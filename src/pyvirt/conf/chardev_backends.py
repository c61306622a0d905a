"""Character device backends beyond pty/file/unix/null: ``tcp``, ``udp``, ``dev`` and ``vc``.

For a ``<serial>``, ``<console>``, ``<parallel>`` or ``<channel>`` of these types this module reads the
``<source>`` elements (and tcp's ``<protocol>``), writes them back, and gives QEMU's ``-chardev``:

- ``tcp``: ``<source mode='connect'|'bind' host service/>`` and ``<protocol type='raw'|'telnet'/>`` as
  ``socket,host,port`` (``server=on,wait=off`` when bound, ``telnet=on``). TLS (``tls='yes'``,
  ``telnets``/``tls`` protocols) needs x509 credentials pyvirt does not hand QEMU, and is refused;
- ``udp``: the remote end (``mode='connect'``) and the local one (``mode='bind'``) as
  ``udp,host,port,localaddr,localport``, each empty (port 0 locally) when not given, as libvirt writes;
- ``dev``: a host serial (or, for ``<parallel>``, parallel) port ``<source path/>`` as ``serial``
  or ``parallel`` with ``path``; the daemon hands the device node to QEMU's user;
- ``vc``: QEMU's virtual console.

The source attributes are kept in :attr:`CharDevConfig.source_extra` (``host``, ``service``,
``bind.host``, ``bind.service``, ``protocol``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import CharDevConfig

TYPES = ("tcp", "udp", "dev", "vc")
PROTOCOLS = ("raw", "telnet")


def _service(node: Elem) -> str | None:
    value = node.integer("service", minimum=0, maximum=65535)
    return None if value is None else str(value)


def parse(e: Elem, dev: CharDevConfig) -> None:
    """The sources of a chardev of one of :data:`TYPES` (its type already read)."""
    extra = dev.source_extra
    sources = e.children("source")
    if dev.type == "vc":
        if sources:
            raise sources[0].refuse()
        return
    if dev.type == "dev":
        if len(sources) != 1:
            raise XMLError(f"'{e.path}' of type 'dev' needs one <source path>")
        dev.source_path = sources[0].require("path")
        if not dev.source_path.startswith("/dev/"):
            raise XMLError(f"source path '{dev.source_path}' of '{e.path}' must be a device under /dev")
        sources[0].done()
        return
    if not sources or len(sources) > 2:
        raise XMLError(f"'{e.path}' of type '{dev.type}' needs a <source>")
    for source in sources:
        mode = source.choice("mode", ("connect", "bind")) or "connect"
        if source.choice("tls", ("no", "yes")) == "yes":
            raise unsupported(
                f"attribute 'tls' = 'yes' of '{source.path}': chardevs over TLS are not supported"
            )
        prefix = "" if dev.type == "tcp" or mode == "connect" else "bind."
        if dev.type == "tcp":
            if len(sources) > 1:
                raise XMLError(f"'{e.path}' of type 'tcp' takes one <source>")
            dev.source_mode = mode
        if f"{prefix}service" in extra or f"{prefix}host" in extra:
            raise XMLError(f"'{e.path}' has two <source mode='{mode}'>")
        if (host := source.attr("host")) is not None:
            extra[f"{prefix}host"] = host
        if (service := _service(source)) is not None:
            extra[f"{prefix}service"] = service
        source.done()
    if dev.type == "tcp":
        if "service" not in extra:
            raise XMLError(f"missing attribute 'service' of '{e.path}/source'")
        if (protocol := e.child("protocol")) is not None:
            extra["protocol"] = protocol.choice("type", PROTOCOLS, required=True) or "raw"
            protocol.done()


def write(dev: CharDevConfig) -> list[XNode]:
    """The ``<source>`` (and ``<protocol>``) elements of a chardev of one of :data:`TYPES`."""
    extra = dev.source_extra
    if dev.type == "dev":
        return [x("source", {"path": dev.source_path})]
    if dev.type == "tcp":
        source = {
            "mode": dev.source_mode or "connect",
            "host": extra.get("host"),
            "service": extra["service"],
        }
        return [x("source", source), x("protocol", {"type": extra.get("protocol", "raw")})]
    out = []
    if dev.type == "udp":
        if "bind.host" in extra or "bind.service" in extra:
            out.append(
                x(
                    "source",
                    {"mode": "bind", "host": extra.get("bind.host"), "service": extra.get("bind.service")},
                )
            )
        out.append(
            x("source", {"mode": "connect", "host": extra.get("host"), "service": extra.get("service")})
        )
    return out


def spec(dev: CharDevConfig, chardev_id: str) -> str:
    """The ``-chardev`` value of a chardev of one of :data:`TYPES`."""
    extra = dev.source_extra
    if dev.type == "vc":
        return f"vc,id={chardev_id}"
    if dev.type == "dev":
        backend = "parallel" if dev.kind == "parallel" else "serial"
        return f"{backend},id={chardev_id},path={dev.source_path}"
    if dev.type == "tcp":
        out = f"socket,id={chardev_id},host={extra.get('host', '')},port={extra['service']}"
        if extra.get("protocol") == "telnet":
            out += ",telnet=on"
        if dev.source_mode == "bind":
            out += ",server=on,wait=off"
        return out
    if dev.type == "udp":
        return (
            f"udp,id={chardev_id},host={extra.get('host', '')},port={extra.get('service', '')},"
            f"localaddr={extra.get('bind.host', '')},localport={extra.get('bind.service', '0')}"
        )
    raise UnsupportedConfig(f"unsupported configuration: {dev.kind} type '{dev.type}'")

"""Character device backends beyond pty/file/unix/null: ``tcp``, ``udp``, ``dev``, ``pipe``, ``vc``,
``stdio``, ``spiceport`` and ``qemu-vdagent``.

For a ``<serial>``, ``<console>``, ``<parallel>`` or ``<channel>`` of these types this module reads the
``<source>`` elements (and tcp's ``<protocol>``), writes them back, and gives QEMU's ``-chardev``:

- ``tcp``: ``<source mode='connect'|'bind' host service/>`` and ``<protocol type='raw'|'telnet'/>`` as
  ``socket,host,port`` (``server=on,wait=off`` when bound, ``telnet=on``). TLS (``tls='yes'``,
  ``telnets``/``tls`` protocols) needs x509 credentials pyvirt does not hand QEMU, and is refused;
- ``udp``: the remote end (``mode='connect'``) and the local one (``mode='bind'``) as
  ``udp,host,port,localaddr,localport``, each empty (port 0 locally) when not given, as libvirt writes;
- ``dev``: a host serial (or, for ``<parallel>``, parallel) port ``<source path/>`` as ``serial``
  or ``parallel`` with ``path``; the daemon hands the device node to QEMU's user;
- ``pipe``: ``<source path/>`` as ``pipe,path``: QEMU opens the FIFOs ``PATH.in`` and ``PATH.out``, or
  ``PATH`` itself when they are missing; the daemon hands them to QEMU's user;
- ``vc``: QEMU's virtual console; ``stdio``: QEMU's standard input and output (the domain's log);
- ``spiceport``: ``<source channel/>``, a named port of the SPICE display (refused without one);
- ``qemu-vdagent`` (channels): QEMU's own vdagent, ``<source><clipboard copypaste/><mouse mode/>``
  as ``clipboard=on|off`` and ``mouse=on`` (client) / ``off`` (server), each left out when not given;
- ``dbus``: refused by name, as it needs a D-Bus display pyvirt does not offer.

The source attributes are kept in :attr:`CharDevConfig.source_extra` (``host``, ``service``,
``bind.host``, ``bind.service``, ``protocol``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf import chardev_options
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import CharDevConfig

TYPES = ("tcp", "udp", "dev", "pipe", "vc", "stdio", "spiceport", "qemu-vdagent", "dbus")
PROTOCOLS = ("raw", "telnet")


def _service(node: Elem) -> str | None:
    value = node.integer("service", minimum=0, maximum=65535)
    return None if value is None else str(value)


def parse(e: Elem, dev: CharDevConfig) -> None:
    """The sources of a chardev of one of :data:`TYPES` (its type already read)."""
    extra = dev.source_extra
    sources = e.children("source")
    if dev.type == "dbus":
        raise unsupported(
            f"attribute 'type' = 'dbus' of '{e.path}': a D-Bus chardev needs a D-Bus display "
            "(<graphics type='dbus'>), which pyvirt does not offer"
        )
    if dev.type in ("vc", "stdio"):
        if sources:
            raise sources[0].refuse()
        return
    if dev.type == "spiceport":
        if len(sources) != 1:
            raise XMLError(f"'{e.path}' of type 'spiceport' needs one <source channel>")
        extra["channel"] = sources[0].require("channel")
        sources[0].done()
        return
    if dev.type == "qemu-vdagent":
        _vdagent(e, dev, sources)
        return
    if dev.type == "dev":
        if len(sources) != 1:
            raise XMLError(f"'{e.path}' of type 'dev' needs one <source path>")
        dev.source_path = sources[0].require("path")
        if not dev.source_path.startswith("/dev/"):
            raise XMLError(f"source path '{dev.source_path}' of '{e.path}' must be a device under /dev")
        sources[0].done()
        return
    if dev.type == "pipe":
        if len(sources) != 1:
            raise XMLError(f"'{e.path}' of type 'pipe' needs one <source path>")
        dev.source_path = sources[0].require("path")
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
            chardev_options.parse_reconnect(source, dev, mode)
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


def _vdagent(e: Elem, dev: CharDevConfig, sources: list[Elem]) -> None:
    if dev.kind != "channel":
        raise unsupported(f"attribute 'type' = 'qemu-vdagent' of '{e.path}': only a <channel> can be one")
    if len(sources) > 1:
        raise XMLError(f"'{e.path}' of type 'qemu-vdagent' takes one <source>")
    for source in sources:
        if (clipboard := source.child("clipboard")) is not None:
            copypaste = clipboard.choice("copypaste", ("yes", "no"), required=True) or "no"
            dev.source_extra["clipboard"] = copypaste
            clipboard.done()
        if (mouse := source.child("mouse")) is not None:
            dev.source_extra["mouse"] = mouse.choice("mode", ("client", "server"), required=True) or "client"
            mouse.done()
        source.done()


def write(dev: CharDevConfig) -> list[XNode]:
    """The ``<source>`` (and ``<protocol>``) elements of a chardev of one of :data:`TYPES`."""
    extra = dev.source_extra
    if dev.type in ("dev", "pipe"):
        return [x("source", {"path": dev.source_path})]
    if dev.type == "spiceport":
        return [x("source", {"channel": extra["channel"]})]
    if dev.type == "qemu-vdagent":
        agent = x("source")
        if "clipboard" in extra:
            agent.add(x("clipboard", {"copypaste": extra["clipboard"]}))
        if "mouse" in extra:
            agent.add(x("mouse", {"mode": extra["mouse"]}))
        return [agent] if agent.children else []
    if dev.type == "tcp":
        source = {
            "mode": dev.source_mode or "connect",
            "host": extra.get("host"),
            "service": extra["service"],
        }
        return [
            x("source", source).add(chardev_options.write_reconnect(dev)),
            x("protocol", {"type": extra.get("protocol", "raw")}),
        ]
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


def require_display(devices: list[CharDevConfig], has_spice: bool) -> None:
    """A ``spiceport`` chardev exists only with a SPICE display."""
    for dev in devices:
        if dev.type == "spiceport" and not has_spice:
            raise UnsupportedConfig(
                f"unsupported configuration: {dev.kind} of type 'spiceport' needs a SPICE display"
            )


def spec(dev: CharDevConfig, chardev_id: str) -> str:
    """The ``-chardev`` value of a chardev of one of :data:`TYPES`."""
    extra = dev.source_extra
    if dev.type in ("vc", "stdio"):
        return f"{dev.type},id={chardev_id}"
    if dev.type == "spiceport":
        return f"spiceport,id={chardev_id},name={extra['channel']}"
    if dev.type == "qemu-vdagent":
        out = f"qemu-vdagent,id={chardev_id},name=vdagent"
        if "clipboard" in extra:
            out += f",clipboard={'on' if extra['clipboard'] == 'yes' else 'off'}"
        if "mouse" in extra:
            out += f",mouse={'on' if extra['mouse'] == 'client' else 'off'}"
        return out
    if dev.type == "dev":
        backend = "parallel" if dev.kind == "parallel" else "serial"
        return f"{backend},id={chardev_id},path={str(dev.source_path).replace(',', ',,')}"
    if dev.type == "pipe":
        return f"pipe,id={chardev_id},path={str(dev.source_path).replace(',', ',,')}"
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

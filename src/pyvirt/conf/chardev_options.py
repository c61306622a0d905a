"""Options of a chardev beside its backend: ``<log file append/>`` and a client socket's
``<source><reconnect enabled timeout/></source>``.

- ``<log file='/path' append='on|off'/>`` (any ``<serial>``, ``<console>``, ``<parallel>`` or ``<channel>``):
  QEMU copies everything the device sends to the file, ``logfile=PATH`` with ``logappend=on|off`` when
  ``append`` is given (else QEMU truncates it, as libvirt does); the daemon hands the file to QEMU's user;
- ``<reconnect enabled='yes' timeout='N'/>`` (a ``tcp`` or ``unix`` source in ``connect`` mode): QEMU
  reconnects N seconds after losing the server, ``reconnect=N``; ``enabled='no'`` is ``reconnect=0``.

Both are kept in :attr:`CharDevConfig.source_extra` (``log.file``, ``log.append``, ``reconnect``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import CharDevConfig


def parse_log(e: Elem, dev: CharDevConfig) -> None:
    """The chardev's ``<log>``, if any."""
    if (log := e.child("log")) is None:
        return
    path = log.require("file")
    if not path.startswith("/"):
        raise XMLError(f"log file '{path}' of '{e.path}' must be an absolute path")
    dev.source_extra["log.file"] = path
    if (append := log.choice("append", ("on", "off"))) is not None:
        dev.source_extra["log.append"] = append
    log.done()


def write_log(dev: CharDevConfig) -> XNode | None:
    if "log.file" not in dev.source_extra:
        return None
    return x("log", {"file": dev.source_extra["log.file"], "append": dev.source_extra.get("log.append")})


def parse_reconnect(source: Elem, dev: CharDevConfig, mode: str | None) -> None:
    """``<reconnect>`` inside a ``tcp`` or ``unix`` ``<source>`` (client sockets only)."""
    if (node := source.child("reconnect")) is None:
        return
    if mode == "bind" or (mode is None and dev.type == "unix"):
        raise XMLError(f"'{node.path}' needs <source mode='connect'>: only a client reconnects")
    if node.choice("enabled", ("yes", "no"), required=True) == "yes":
        timeout = node.integer("timeout", minimum=1)
        if timeout is None:
            raise XMLError(f"missing attribute 'timeout' of '{node.path}' (reconnect enabled)")
        dev.source_extra["reconnect"] = str(timeout)
    else:
        dev.source_extra["reconnect"] = "0"
    node.done()


def write_reconnect(dev: CharDevConfig) -> XNode | None:
    seconds = dev.source_extra.get("reconnect")
    if seconds is None:
        return None
    if seconds == "0":
        return x("reconnect", {"enabled": "no"})
    return x("reconnect", {"enabled": "yes", "timeout": seconds})


def spec_tail(dev: CharDevConfig) -> str:
    """What the options add to the chardev's ``-chardev`` value."""
    extra = dev.source_extra
    out = f",reconnect={extra['reconnect']}" if "reconnect" in extra else ""
    if "log.file" in extra:
        out += f",logfile={extra['log.file'].replace(',', ',,')}"
        if "log.append" in extra:
            out += f",logappend={extra['log.append']}"
    return out

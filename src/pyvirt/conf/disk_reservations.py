"""``<source><reservations managed='yes'|'no'>`` of a SCSI LUN (``device='lun'``), as libvirt 9.0 runs it:
QEMU asks a ``qemu-pr-helper`` to issue the SCSI persistent-reservation commands it may not issue
itself (they need CAP_SYS_RAWIO).

``managed='yes'``: one helper per domain, run by the daemon as libvirt runs it (``qemu-pr-helper -k
SOCKET -f PIDFILE``, the socket in the domain's run directory, :mod:`pyvirt.daemon.pr_helper`), the
``pr-manager-helper`` object ``pr-helper0``; ``managed='no'``: a helper the host runs already, reached at
``<source type='unix' path mode='client'/>``, an object ``pr-helper-NODE-storage`` of the disk's own.
Either way the disk's protocol node names the object in ``pr-manager``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import XMLError

MANAGED_ID = "pr-helper0"  # libvirt's id of the per-domain helper's object
MANAGED_SOCKET = "pr-helper0.sock"  # its socket, in the domain's run directory


@dataclass
class Reservations:
    managed: bool
    path: str | None = None  # managed='no': the helper's socket


def parse(source: Elem) -> Reservations | None:
    """The ``<reservations>`` child of a disk's ``<source>``."""
    if (node := source.child("reservations")) is None:
        return None
    managed = node.choice("managed", ("yes", "no"))
    if managed is None:
        raise XMLError(f"missing attribute 'managed' of '{node.path}'")
    out = Reservations(managed == "yes")
    helper = node.child("source")
    if out.managed:
        if helper is not None:
            raise XMLError(f"'{node.path}' with managed='yes' takes no <source>: the daemon runs the helper")
    else:
        if helper is None:
            raise XMLError(f"'{node.path}' with managed='no' needs <source type='unix' path mode='client'/>")
        helper.choice("type", ("unix",), required=True)
        if helper.choice("mode", ("client",)) is None:
            raise XMLError(f"missing attribute 'mode' of '{helper.path}' (QEMU is the helper's client)")
        out.path = helper.require("path")
        if not out.path.startswith("/"):
            raise XMLError(f"path '{out.path}' of '{helper.path}' must be absolute")
        helper.done()
    node.done()
    return out


def check(res: Reservations | None, *, device: str, disk_type: str, target: str) -> None:
    if res is not None and (device != "lun" or disk_type != "block"):
        raise unsupported(f"disk '{target}': <reservations> are allowed only for a 'lun' of type 'block'")


def write(res: Reservations) -> XNode:
    node = x("reservations", {"managed": "yes" if res.managed else "no"})
    if res.path is not None:
        node.add(x("source", {"type": "unix", "path": res.path, "mode": "client"}))
    return node


def object_id(res: Reservations, node: str) -> str:
    return MANAGED_ID if res.managed else f"pr-helper-{node}-storage"


def helper_object(object_id: str, path: str) -> dict[str, object]:
    return {"qom-type": "pr-manager-helper", "id": object_id, "path": path}

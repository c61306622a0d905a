"""The VM generation ID: ``<genid>GUID</genid>`` (or ``<genid/>``) as QEMU's ``vmgenid`` device.

A guest (Windows, Linux's vmgenid driver) reads the GUID to notice it was restored from a snapshot or
cloned. ``<genid/>`` without a value gets a random GUID at define, written back into the definition as
libvirt does; a given one is kept.
"""

from __future__ import annotations

import uuid

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument


def parse(e: Elem) -> str:
    """The GUID of ``<genid>``, canonical; a new random one for an empty element."""
    text = e.text(required=False)
    e.done()
    if not text:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidArgument(f"invalid GUID '{text}' in element 'genid'") from None


def write(guid: str | None) -> XNode | None:
    return x("genid", text=guid) if guid else None


def device(guid: str) -> list[str]:
    return ["-device", f"vmgenid,guid={guid},id=vmgenid0"]

"""``<smartcard>`` and ``<controller type='ccid'>``: a USB CCID reader (``usb-ccid``) with one card, as
libvirt 9.0 gives them to QEMU.

- ``mode='host'``: a card emulated by libcacard over the host's NSS database of smartcards
  (``ccid-card-emulated,backend=nss-emulated``);
- ``mode='host-certificates'``: a card made of three certificates of an NSS database (three ``<certificate>``,
  ``<database>``, /etc/pki/nssdb by default: ``backend=certificates,cert1..3,db``);
- ``mode='passthrough'``: a remote card reached through a character device (``ccid-card-passthru``):
  a socket (``unix``, ``tcp``...) to a vscclient, or ``spicevmc`` to a SPICE client.

One card (libvirt 9.0 refuses a second) sits in slot 0 of a CCID controller (``<address type='ccid'
controller='N' slot='0'/>``); a smartcard without a controller gets controller 0, as libvirt adds it.
libcacard opens its NSS database when QEMU starts; a host without one has the start refused, naming
the database, before QEMU runs (QEMU would only say "failed to initialize vcard").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvirt.conf.addresses import number
from pyvirt.conf.domain import CharDevConfig, PCIAddress
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain

MODES = ("host", "host-certificates", "passthrough")
DEFAULT_DATABASE = "/etc/pki/nssdb"  # libvirt's and libcacard's


@dataclass
class SmartcardConfig:
    mode: str = "host"
    certificates: list[str] = field(default_factory=list)  # host-certificates: exactly three
    database: str | None = None  # host-certificates: the NSS database directory
    source: CharDevConfig | None = None  # passthrough: the character device to the card
    address: PCIAddress | None = None  # type='ccid': controller, slot
    alias: str | None = None


def parse(e: Elem, char_types: tuple[str, ...]) -> SmartcardConfig:
    """The smartcard's own part of ``e``; the caller parses the source, alias and address."""
    card = SmartcardConfig(mode=e.choice("mode", MODES, required=True) or "host")
    if card.mode == "passthrough":
        kind = e.choice("type", ("spicevmc", *char_types), required=True) or "spicevmc"
        card.source = CharDevConfig(kind="smartcard", type=kind)
    elif card.mode == "host-certificates":
        for node in e.children("certificate"):
            cert = node.text()
            if "/" in cert:
                raise XMLError(f"certificate name '{cert}' of '{node.path}' may not contain '/'")
            card.certificates.append(cert)
            node.done()
        if len(card.certificates) != 3:
            raise XMLError(
                f"smartcard mode 'host-certificates' needs exactly three <certificate> in '{e.path}'"
            )
        if (db := e.child("database")) is not None:
            card.database = db.text()
            if not card.database.startswith("/"):
                raise XMLError(f"database '{card.database}' of '{db.path}' must be an absolute path")
            db.done()
    return card


def write(card: SmartcardConfig, extra: tuple[XNode | None, ...]) -> XNode:
    node = x("smartcard", {"mode": card.mode, "type": card.source.type if card.source else None})
    node.add(*(x("certificate", text=cert) for cert in card.certificates))
    node.add(x("database", text=card.database) if card.database is not None else None)
    return node.add(*extra)


def controller_of(card: SmartcardConfig) -> int:
    if card.address is None:
        return 0
    if card.address.type != "ccid":
        raise InvalidArgument(f"a smartcard cannot have an address of type '{card.address.type}'")
    return number(card.address, "controller")  # its slot is 0 (conf.addresses' limits)


def check(dom: Domain) -> None:
    """One card, as libvirt 9.0 allows ("this QEMU binary lacks multiple smartcard support")."""
    if len(dom.devices.smartcards) > 1:
        raise UnsupportedConfig(
            "unsupported configuration: more than one <smartcard> (libvirt 9.0 gives QEMU one card)"
        )
    for card in dom.devices.smartcards:
        controller_of(card)


def ccid_indexes(dom: Domain) -> list[int]:
    """The CCID controllers QEMU gets: the XML's, and controller 0 for cards that name none there."""
    given = {c.index for c in dom.devices.controllers if c.type == "ccid"}
    return sorted(given | {controller_of(card) for card in dom.devices.smartcards})


def device_props(card: SmartcardConfig) -> tuple[str, dict[str, str]]:
    """(driver, properties) of the card, less its chardev, id and bus."""
    if card.mode == "host":
        return "ccid-card-emulated", {"backend": "nss-emulated"}
    if card.mode == "host-certificates":
        # QEMU's option syntax doubles a comma inside a value, as libvirt escapes them
        props = {f"cert{i}": cert.replace(",", ",,") for i, cert in enumerate(card.certificates, 1)}
        db = database(card).replace(",", ",,")
        return "ccid-card-emulated", {"backend": "certificates", **props, "db": db}
    return "ccid-card-passthru", {}


def database(card: SmartcardConfig) -> str:
    return card.database or DEFAULT_DATABASE


def require_host(dom: Domain) -> None:
    """Refuse, by name, an emulated card whose NSS database this host lacks (QEMU could not start)."""
    for card in dom.devices.smartcards:
        if card.mode != "passthrough" and not os.path.isdir(database(card)):
            raise UnsupportedConfig(
                f"unsupported configuration: smartcard mode '{card.mode}' needs the NSS database "
                f"{database(card)} (libcacard's, with the card's certificates), which this host lacks"
            )

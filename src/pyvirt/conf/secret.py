"""libvirt's secret XML (``<secret ephemeral= private=>`` with uuid, description and usage): parse and format.

A secret's value is not part of its XML: the daemon keeps it apart (:mod:`pyvirt.daemon.secrets`).
Parsing is strict as everywhere else; formatting follows libvirt 9.0's ``virSecretDefFormat``.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass

from pyvirt.conf.xmlutil import Elem, parse_document, serialize, unsupported, x, yes_no
from pyvirt.errors import XMLError

#: Usage type → the element under ``<usage>`` that names what the secret is for.
USAGE_ELEMENTS = {"volume": "volume", "ceph": "name", "iscsi": "target", "tls": "name", "vtpm": "name"}
_USAGE_WORDS = {"volume": "volume path", "ceph": "name", "iscsi": "target", "tls": "name", "vtpm": "name"}


@dataclass
class SecretDef:
    uuid: str
    ephemeral: bool = False
    private: bool = False
    description: str | None = None
    usage_type: str | None = None  # one of USAGE_ELEMENTS; None: no <usage> ("Unused" in secret-list)
    usage_id: str | None = None  # the volume path, name or target

    @property
    def usage(self) -> str:
        """secret-list's Usage column: ``TYPE ID``, or ``Unused``."""
        return f"{self.usage_type} {self.usage_id}" if self.usage_type else "Unused"


def parse_uuid(text: str, what: str = "uuid element") -> str:
    """A UUID with or without dashes, in its canonical form."""
    try:
        return str(uuidlib.UUID(text.strip()))
    except ValueError:
        raise XMLError(f"malformed {what}: '{text}'") from None


def parse_secret(text: str) -> SecretDef:
    """``<secret>`` XML into a :class:`SecretDef` (a random UUID when it has none)."""
    root = Elem(parse_document(text))
    if root.tag != "secret":
        raise XMLError(f"expected a <secret> root element, found <{root.tag}>")
    secret = SecretDef(uuid="")
    secret.ephemeral = bool(root.flag("ephemeral"))
    secret.private = bool(root.flag("private"))
    if (node := root.child("uuid")) is not None:
        secret.uuid = parse_uuid(node.text())
        node.done()
    else:
        secret.uuid = str(uuidlib.uuid4())
    if (node := root.child("description")) is not None:
        secret.description = node.node.text
        node.text(required=False)
        node.done()
    if (usage := root.child("usage")) is not None:
        kind = usage.attr("type")
        if kind is None:
            raise XMLError("unknown secret usage type")
        if kind not in USAGE_ELEMENTS:
            raise unsupported(f"unknown secret usage type {kind}")
        secret.usage_type = kind
        node = usage.child(USAGE_ELEMENTS[kind])
        if node is None or not node.text(required=False):
            raise XMLError(f"{kind} usage specified, but {_USAGE_WORDS[kind]} is missing")
        secret.usage_id = node.text()
        node.done()
        usage.done()
    root.done()
    return secret


def format_secret(secret: SecretDef) -> str:
    """secret-dumpxml's document (libvirt 9.0's layout: ephemeral and private always written)."""
    root = x("secret", {"ephemeral": yes_no(secret.ephemeral), "private": yes_no(secret.private)})
    root.add(x("uuid", text=secret.uuid))
    if secret.description is not None:
        root.add(x("description", text=secret.description))
    if secret.usage_type is not None:
        element = USAGE_ELEMENTS[secret.usage_type]
        root.add(x("usage", {"type": secret.usage_type}).add(x(element, text=secret.usage_id)))
    return serialize(root)

"""A disk's ``<encryption format='luks'>`` (libvirt's storage encryption XML, in a domain's ``<disk>``).

The passphrase is a secret object (:mod:`pyvirt.conf.secret`) named by its UUID or by its usage
(the volume path of a ``<usage type='volume'>`` secret). libvirt takes the element as a child of
``<disk>`` (its first place) or of ``<source>`` (since 5.10) and writes it back where it found it.
Only ``luks``, QEMU's own engine, on a qcow2 (``encrypt.format=luks``) or raw LUKS image is taken;
qcow's old AES and librbd's luks2 are refused by name. A volume's ``<encryption>`` (``vol-create``) may
also name the cipher a new image gets: ``<cipher name size mode hash>`` and ``<ivgen name hash>``, as
qemu-img's ``cipher-alg`` (name-size), ``cipher-mode``, ``hash-alg``, ``ivgen-alg`` and ``ivgen-hash-alg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.conf.secret import parse_uuid
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import XMLError

FORMATS = ("luks",)
#: The image formats an encrypted disk may have: QEMU's qcow2 encrypt.format=luks, or a raw LUKS volume.
DISK_FORMATS = ("qcow2", "raw")


@dataclass
class Cipher:
    """``<cipher name size mode hash>`` and ``<ivgen name hash>`` of a volume's ``<encryption>``."""

    name: str
    size: int
    mode: str | None = None
    hash: str | None = None
    ivgen: str | None = None
    ivgen_hash: str | None = None
    ivgen_given: bool = False  # an <ivgen> element was written (its name is required)

    def qemu_options(self) -> dict[str, str]:
        """qemu-img's ``-o`` names for it (those left out take qemu-img's defaults)."""
        out = {"cipher-alg": f"{self.name}-{self.size}"}
        for key, value in (
            ("cipher-mode", self.mode),
            ("hash-alg", self.hash),
            ("ivgen-alg", self.ivgen),
            ("ivgen-hash-alg", self.ivgen_hash),
        ):
            if value is not None:
                out[key] = value
        return out


@dataclass
class DiskEncryption:
    format: str = "luks"
    secret_uuid: str | None = None
    secret_usage: str | None = None  # the volume path of a usage type='volume' secret
    in_source: bool = False  # written inside <source> rather than as a child of <disk>
    cipher: Cipher | None = None  # a volume's <cipher>/<ivgen>: how vol-create makes its LUKS header

    @property
    def secret_name(self) -> str:
        """The secret as the XML names it (for messages)."""
        return f"uuid '{self.secret_uuid}'" if self.secret_uuid else f"usage '{self.secret_usage}'"


def parse_encryption(e: Elem, *, in_source: bool, volume: bool = False) -> DiskEncryption:
    """``<encryption>``; a ``volume``'s may name its cipher (a disk's cannot: its image has one)."""
    fmt = e.require("format")
    if fmt not in FORMATS:
        raise unsupported(
            f"encryption format '{fmt}' of '{e.path}' is not supported (only 'luks': qcow encryption "
            "is QEMU's deprecated AES, luks2 needs librbd)"
        )
    e.choice("engine", ("qemu",))
    enc = DiskEncryption(fmt, in_source=in_source)
    secrets = e.children("secret")
    if len(secrets) != 1:
        raise XMLError(f"'{e.path}' of format 'luks' needs exactly one <secret type='passphrase'>")
    node = secrets[0]
    if node.require("type") != "passphrase":
        raise unsupported(f"unknown volume encryption secret type {node.attr('type')} in '{node.path}'")
    uuid, usage = node.attr("uuid"), node.attr("usage")
    if (uuid is None) == (usage is None):
        raise XMLError(f"'{node.path}' needs one of the attributes 'uuid' and 'usage'")
    enc.secret_uuid = parse_uuid(uuid, f"secret uuid of '{node.path}'") if uuid is not None else None
    enc.secret_usage = usage
    node.done()
    if volume:
        enc.cipher = _parse_cipher(e)
    e.done()
    return enc


def _parse_cipher(e: Elem) -> Cipher | None:
    cipher, ivgen = e.child("cipher"), e.child("ivgen")
    if cipher is None:
        if ivgen is not None:
            raise XMLError(f"'{ivgen.path}' needs a <cipher> beside it")
        return None
    size = cipher.require("size")
    if not size.isdigit():
        raise XMLError(f"cannot parse cipher size '{size}' of '{cipher.path}'")
    out = Cipher(cipher.require("name"), int(size), cipher.attr("mode"), cipher.attr("hash"))
    cipher.done()
    if ivgen is not None:
        out.ivgen, out.ivgen_hash, out.ivgen_given = ivgen.require("name"), ivgen.attr("hash"), True
        ivgen.done()
    return out


def cipher_nodes(c: Cipher) -> list[XNode]:
    """The ``<cipher>`` and ``<ivgen>`` elements as written (libvirt's order of attributes)."""
    nodes = [x("cipher", {"name": c.name, "size": str(c.size), "mode": c.mode, "hash": c.hash})]
    if c.ivgen_given:
        nodes.append(x("ivgen", {"name": c.ivgen, "hash": c.ivgen_hash}))
    return nodes


def encryption_node(enc: DiskEncryption) -> XNode:
    secret = {"type": "passphrase", "uuid": enc.secret_uuid, "usage": enc.secret_usage}
    return x("encryption", {"format": enc.format}).add(x("secret", secret))

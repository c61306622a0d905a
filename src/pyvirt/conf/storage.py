"""Storage pools and volumes: libvirt's ``<pool>`` and ``<volume>`` XML as dataclasses, parsed and formatted.

Parsing is strict like the domain parser: anything the directory-pool driver cannot honour is refused by
name and path. Read-only fields libvirt prints (``capacity``/``allocation``/``available`` of a pool, a
volume's ``key``, ``physical``, ``timestamps``) are accepted and dropped, so dumped XML can be fed back.
Names are checked here too: a pool name becomes a file name in the configuration folder and a volume
name a file name inside the pool, so neither may be empty, start with a dot, hold ``/`` or control
characters. Nothing here does I/O.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass, field

from pyvirt.conf.disk_encryption import Cipher, DiskEncryption, cipher_nodes, parse_encryption
from pyvirt.conf.names import validate_name
from pyvirt.conf.units import unit_factor
from pyvirt.conf.xmlutil import Elem, XNode, parse_document, serialize, unsupported, x
from pyvirt.errors import InvalidArgument, XMLError

POOL_TYPES = ("dir",)
VOLUME_CREATE_FORMATS = ("raw", "qcow2")
# libvirt's file-format names: what a probed volume may be shown as, and what a backing volume may be.
VOLUME_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "qcow", "qed", "vpc", "iso", "cloop", "dmg", "bochs")
VOLUME_FEATURES = ("lazy_refcounts",)
MAX_SIZE = (1 << 63) - 1
_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COMPAT = ("0.10", "1.1")

CONFIG_HEADER = """<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  pyvirt pool-define {name}
or other application using the pyvirt API.
-->

"""


def scaled_size(value: str, unit: str | None, element: str) -> int:
    """A ``<capacity unit=...>`` value in bytes (unit defaults to bytes, as libvirt's)."""
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise XMLError(f"malformed {element} element: '{value}' is not a non-negative integer")
    try:
        factor = unit_factor(unit if unit is not None else "bytes")
    except InvalidArgument as err:
        raise XMLError(f"{err.message} in element '{element}'") from err
    size = int(text) * factor
    if size > MAX_SIZE:
        raise XMLError(f"size {value} {unit or 'bytes'} in element '{element}' is too large")
    return size


@dataclass
class Permissions:
    """``<permissions>``: None means "not stated" (libvirt's -1)."""

    mode: int | None = None
    owner: int | None = None
    group: int | None = None
    label: str | None = None

    def empty(self) -> bool:
        return self.mode is None and self.owner is None and self.group is None and self.label is None


@dataclass
class PoolDef:
    name: str
    uuid: str
    target_path: str
    type: str = "dir"
    permissions: Permissions = field(default_factory=Permissions)


@dataclass
class PoolSizes:
    capacity: int = 0
    allocation: int = 0
    available: int = 0


@dataclass
class BackingStore:
    path: str
    format: str | None = None  # None: probe it (libvirt's default for a directory pool)


@dataclass
class VolumeDef:
    """A volume to create (from ``vol-create``/``vol-create-as`` XML) or one being described."""

    name: str
    capacity: int | None = None  # None only with a backing store: the backing volume's size
    allocation: int | None = None  # None: as libvirt, the capacity
    format: str = "raw"
    permissions: Permissions = field(default_factory=Permissions)
    compat: str | None = None
    cluster_size: int | None = None
    features: list[str] | None = None  # None: no <features>; [] an empty one
    backing: BackingStore | None = None
    encryption: DiskEncryption | None = None  # <target><encryption format='luks'>: made with its secret


@dataclass
class Timestamps:
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


@dataclass
class VolumeInfo:
    """A volume as the driver sees it on disk: what ``vol-info``, ``vol-list`` and ``vol-dumpxml`` show."""

    name: str
    path: str
    format: str
    capacity: int
    allocation: int
    physical: int
    type: str = "file"
    permissions: Permissions = field(default_factory=Permissions)
    timestamps: Timestamps | None = None
    compat: str | None = None
    cluster_size: int | None = None
    features: list[str] | None = None
    backing: BackingStore | None = None
    encryption: str | None = None  # the image's own encryption: luks (or qcow, QEMU's old AES)
    encryption_secret: str | None = None  # the UUID of the secret whose usage is this volume's path
    encryption_cipher: Cipher | None = None  # the <cipher>/<ivgen> it was made with, while remembered


# ------------------------------------------------------------------------------------------------ parsing


def _permissions(e: Elem | None) -> Permissions:
    perms = Permissions()
    if e is None:
        return perms
    if (mode := e.child("mode")) is not None:
        text = mode.text()
        if not re.fullmatch(r"[0-7]{1,4}", text) or int(text, 8) & ~0o777:
            raise XMLError(f"malformed octal mode '{text}' in '{mode.path}'")
        perms.mode = int(text, 8)
    if (owner := e.child("owner")) is not None:
        perms.owner = owner.text_int(minimum=-1, maximum=2**32 - 1)
        if perms.owner == -1:
            perms.owner = None
    if (group := e.child("group")) is not None:
        perms.group = group.text_int(minimum=-1, maximum=2**32 - 1)
        if perms.group == -1:
            perms.group = None
    if (label := e.child("label")) is not None:
        perms.label = label.text()
    e.done()
    return perms


def _uuid(text: str) -> str:
    try:
        return str(uuidlib.UUID(text))
    except ValueError as err:
        raise XMLError(f"XML error: malformed uuid element '{text}'") from err


def _ignore_sizes(root: Elem, *names: str) -> None:
    for name in names:
        if (node := root.child(name)) is not None:
            scaled_size(node.text(), node.attr("unit"), name)
            node.done()


def parse_pool(text: str) -> PoolDef:
    """``<pool>`` XML into a :class:`PoolDef` (a new UUID when none is given)."""
    root = Elem(parse_document(text))
    if root.tag != "pool":
        raise XMLError(f"expected a <pool> root element, found <{root.tag}>")
    pool_type = root.attr("type")
    if pool_type is None:
        raise XMLError("missing attribute 'type' of 'pool'")
    if pool_type not in POOL_TYPES:
        raise unsupported(f"storage pool type '{pool_type}' is not supported (only 'dir')")
    name_node = root.child("name")
    if name_node is None:
        raise XMLError("XML error: missing pool source name element")
    name = validate_name(name_node.text(), "pool")
    name_node.done()
    uuid_node = root.child("uuid")
    uuid = _uuid(uuid_node.text()) if uuid_node is not None else str(uuidlib.uuid4())
    if uuid_node is not None:
        uuid_node.done()
    _ignore_sizes(root, "capacity", "allocation", "available")
    if (source := root.child("source")) is not None:
        source.done()  # a directory pool has no source: any child is refused
    target = root.child("target")
    path_node = target.child("path") if target is not None else None
    if target is None or path_node is None:
        raise XMLError("XML error: missing storage pool target path")
    path = _sanitize_path(path_node.text())
    path_node.done()
    perms = _permissions(target.child("permissions"))
    target.done()
    root.done()
    return PoolDef(name=name, uuid=uuid, target_path=path, type=pool_type, permissions=perms)


def _sanitize_path(path: str) -> str:
    """libvirt's virFileSanitizePath: collapse '//' and drop a trailing '/'; the path must be absolute."""
    if _CONTROL.search(path):
        raise XMLError(f"path {path!r} cannot contain control characters")
    if not path.startswith("/"):
        raise XMLError(f"storage pool target path '{path}' must be absolute")
    cleaned = re.sub(r"/+", "/", path)
    if len(cleaned) > 1:
        cleaned = cleaned.rstrip("/")
    if "/../" in cleaned + "/" or cleaned.endswith("/.."):
        raise XMLError(f"storage pool target path '{path}' must not contain '..'")
    return cleaned


def _format_type(e: Elem | None, allowed: tuple[str, ...], what: str) -> str | None:
    if e is None:
        return None
    value = e.require("type")
    e.done()
    if value not in allowed:
        raise unsupported(f"{what} format '{value}' is not supported (use {' or '.join(allowed)})")
    return value


def parse_volume(text: str, *, require_capacity: bool = True) -> VolumeDef:
    """``<volume>`` XML (what ``vol-create``/``vol-create-as`` send) into a :class:`VolumeDef`.

    Without ``require_capacity`` (``vol-create-from``: the input volume's size is the floor) the
    capacity may be left out.
    """
    root = Elem(parse_document(text))
    if root.tag != "volume":
        raise XMLError(f"expected a <volume> root element, found <{root.tag}>")
    root.choice("type", ("file",))
    name_node = root.child("name")
    if name_node is None:
        raise XMLError("XML error: missing volume name element")
    vol = VolumeDef(name=validate_name(name_node.text(), "volume"))
    name_node.done()
    root.skip("key", "physical")
    if (source := root.child("source")) is not None:
        source.done()
    if (cap := root.child("capacity")) is not None:
        vol.capacity = scaled_size(cap.text(), cap.attr("unit"), "capacity")
        cap.done()
    if (alloc := root.child("allocation")) is not None:
        vol.allocation = scaled_size(alloc.text(), alloc.attr("unit"), "allocation")
        alloc.done()
    if (target := root.child("target")) is not None:
        target.skip("path", "timestamps")
        vol.format = _format_type(target.child("format"), VOLUME_CREATE_FORMATS, "volume") or "raw"
        vol.permissions = _permissions(target.child("permissions"))
        if (compat := target.child("compat")) is not None:
            vol.compat = compat.text()
            compat.done()
            if vol.compat not in _COMPAT:
                raise unsupported(f"qcow2 compat '{vol.compat}' is not supported (use 0.10 or 1.1)")
        if (cluster := target.child("clusterSize")) is not None:
            vol.cluster_size = scaled_size(cluster.text(), cluster.attr("unit"), "clusterSize")
            cluster.done()
        if (features := target.child("features")) is not None:
            vol.features = []
            for feature in features.each():
                if feature.tag not in VOLUME_FEATURES:
                    raise unsupported(f"unsupported feature {feature.tag}")
                feature.done()
                vol.features.append(feature.tag)
            features.done()
            vol.compat = vol.compat or "1.1"
        if (enc := target.child("encryption")) is not None:
            vol.encryption = parse_encryption(enc, in_source=False, volume=True)
        target.done()
    if (backing := root.child("backingStore")) is not None:
        backing.skip("permissions", "timestamps")
        path = backing.child("path")
        if path is None:
            raise XMLError("missing element 'backingStore/path'")
        vol.backing = BackingStore(
            path=path.text(), format=_format_type(backing.child("format"), VOLUME_FORMATS, "backing")
        )
        path.done()
        backing.done()
    root.done()
    if require_capacity and vol.capacity is None and vol.backing is None:
        raise XMLError("XML error: missing capacity element")
    validate_volume(vol)
    return vol


def validate_volume(vol: VolumeDef) -> None:
    """Checks that need the whole definition."""
    if vol.format != "qcow2":
        for what, present in (
            ("a backing store", vol.backing is not None),
            ("<compat>", vol.compat is not None),
            ("<clusterSize>", vol.cluster_size is not None),
            ("<features>", vol.features is not None),
        ):
            if present:
                raise unsupported(f"volume format '{vol.format}' does not support {what}; use qcow2")
    if vol.encryption is not None and vol.format not in ("qcow2", "raw"):
        raise unsupported(
            f"volume format '{vol.format}' does not support <encryption>: use qcow2 or raw (a LUKS container)"
        )
    if vol.cluster_size is not None and (
        vol.cluster_size < 512
        or vol.cluster_size > 2 * 1024 * 1024
        or vol.cluster_size & (vol.cluster_size - 1)
    ):
        raise unsupported(f"cluster size {vol.cluster_size} must be a power of two from 512 B to 2 MiB")
    if vol.features and vol.compat == "0.10":
        raise unsupported("lazy_refcounts needs qcow2 compat 1.1")


# --------------------------------------------------------------------------------------------- formatting


def _permissions_node(perms: Permissions) -> XNode | None:
    if perms.empty():
        return None
    node = x("permissions")
    if perms.mode is not None:
        node.add(x("mode", text=f"0{perms.mode:o}"))
    if perms.owner is not None:
        node.add(x("owner", text=str(perms.owner)))
    if perms.group is not None:
        node.add(x("group", text=str(perms.group)))
    if perms.label is not None:
        node.add(x("label", text=perms.label))
    return node


def _bytes(tag: str, value: int) -> XNode:
    return x(tag, {"unit": "bytes"}, text=str(value))


def format_pool(pool: PoolDef, sizes: PoolSizes | None = None, perms: Permissions | None = None) -> str:
    """libvirt's layout; ``sizes`` and the target's on-disk ``perms`` are those of an active pool."""
    sizes = sizes or PoolSizes()
    root = x("pool", {"type": pool.type}).add(
        x("name", text=pool.name),
        x("uuid", text=pool.uuid),
        _bytes("capacity", sizes.capacity),
        _bytes("allocation", sizes.allocation),
        _bytes("available", sizes.available),
        x("source", text="\0"),
        x("target").add(x("path", text=pool.target_path), _permissions_node(perms or pool.permissions)),
    )
    # libvirt prints a directory pool's empty source as an open and a close tag on two lines.
    return serialize(root).replace("  <source>\0</source>\n", "  <source>\n  </source>\n")


def format_pool_config(pool: PoolDef) -> str:
    """The persistent configuration file: libvirt's warning comment, then the pool with zero sizes."""
    return CONFIG_HEADER.format(name=pool.name) + format_pool(pool)


def _timestamp(tag: str, ns: int) -> XNode:
    sec, nsec = divmod(ns, 1_000_000_000)
    return x(tag, text=f"{sec}.{nsec:09d}" if nsec else str(sec))


def _target(tag: str, path: str, fmt: str | None, info: VolumeInfo | None) -> XNode:
    node = x(tag).add(x("path", text=path))
    if fmt is not None:
        node.add(x("format", {"type": fmt}))
    if info is None:
        return node
    node.add(_permissions_node(info.permissions))
    if info.timestamps is not None:
        ts = info.timestamps
        node.add(
            x("timestamps").add(
                _timestamp("atime", ts.atime_ns),
                _timestamp("mtime", ts.mtime_ns),
                _timestamp("ctime", ts.ctime_ns),
            )
        )
    if info.encryption is not None:  # libvirt 9.0: the secret whose usage is the path, if there is one
        enc = x("encryption", {"format": info.encryption})
        if info.encryption_secret:
            enc.add(x("secret", {"type": "passphrase", "uuid": info.encryption_secret}))
        if info.encryption_cipher is not None:
            enc.add(*cipher_nodes(info.encryption_cipher))
        if not info.encryption_secret and info.encryption_cipher is None:
            enc.text = "\0"  # written as an open and a close tag, as libvirt does
        node.add(enc)
    if info.compat is not None:
        node.add(x("compat", text=info.compat))
    if info.cluster_size:
        node.add(x("clusterSize", {"unit": "B"}, text=str(info.cluster_size)))
    if info.features is not None:
        node.add(x("features").add(*(x(name) for name in info.features)))
    return node


def format_volume(info: VolumeInfo) -> str:
    """``vol-dumpxml``: libvirt 9.0's layout for a file volume of a directory pool."""
    root = x("volume", {"type": info.type}).add(
        x("name", text=info.name),
        x("key", text=info.path),
        _bytes("capacity", info.capacity),
        _bytes("allocation", info.allocation),
        _bytes("physical", info.physical) if info.physical else None,
        _target("target", info.path, info.format, info),
    )
    if info.backing is not None:
        root.add(_target("backingStore", info.backing.path, info.backing.format or "raw", None))
    text = serialize(root)
    return re.sub(r"( *)(<encryption [^>]*>)\0(</encryption>)", r"\1\2\n\1\3", text)


def volume_xml(
    name: str,
    capacity: int,
    *,
    allocation: int | None = None,
    fmt: str | None = None,
    backing_path: str | None = None,
    backing_format: str | None = None,
) -> str:
    """The XML ``virsh vol-create-as`` builds from its options."""
    root = x("volume").add(x("name", text=name), x("capacity", text=str(capacity)))
    if allocation is not None:
        root.add(x("allocation", text=str(allocation)))
    if fmt is not None:
        root.add(x("target").add(x("format", {"type": fmt})))
    if backing_path is not None:
        backing = x("backingStore").add(x("path", text=backing_path))
        if backing_format is not None:
            backing.add(x("format", {"type": backing_format}))
        root.add(backing)
    return serialize(root)

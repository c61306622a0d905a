"""What a disk's ``<driver>`` and ``<transient>`` add to its block nodes, as libvirt 9.0 runs them.

- ``<driver copy_on_read='on'>``: a ``copy-on-read`` filter node ``pyvirt-CoR-TARGET`` over the
  format node, which the device reads: what the guest reads from a backing file is copied into the
  top image;
- ``<driver><metadata_cache><max_size unit=...>N</max_size></metadata_cache></driver>``: the qcow2
  format node's ``cache-size`` in bytes (qcow2 only, as libvirt checks);
- ``<transient/>``: the guest's writes go to an overlay made at start over the disk's image
  (``IMAGE.TRANSIENT-DOMAIN``, libvirt's name) and deleted when the domain stops
  (:mod:`pyvirt.daemon.transient_disks`). With ``shareBacking='yes'`` the image is opened read-only
  (several domains may share it) and the overlay, made before QEMU starts, is on the command line
  above it (libvirt plugs that disk after QEMU starts instead: the guest sees the same disk).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvirt.conf.units import unit_factor
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x


@dataclass
class DiskLayers:
    copy_on_read: bool = False
    metadata_cache: int | None = None  # bytes
    transient: bool = False
    share_backing: bool = False  # <transient shareBacking='yes'/>: the image read-only, shared


def parse_driver(node: Elem, layers: DiskLayers) -> None:
    """``copy_on_read`` and ``<metadata_cache>`` of a disk's ``<driver>``."""
    layers.copy_on_read = node.choice("copy_on_read", ("on", "off")) == "on"
    if (cache := node.child("metadata_cache")) is not None:
        layers.metadata_cache = parse_metadata_cache(cache)


def parse_metadata_cache(cache: Elem) -> int | None:
    """``<metadata_cache><max_size unit=...>N</max_size></metadata_cache>`` in bytes (None: no size)."""
    size_bytes = None
    if (size := cache.child("max_size")) is not None:
        size_bytes = size.text_int(minimum=0) * unit_factor(size.attr("unit") or "bytes")
        size.done()
    cache.done()
    return size_bytes


def parse_transient(e: Elem, layers: DiskLayers) -> None:
    """A ``<disk>``'s ``<transient/>``."""
    if (node := e.child("transient")) is None:
        return
    layers.share_backing = node.choice("shareBacking", ("yes", "no")) == "yes"
    layers.transient = True
    node.done()


def check(layers: DiskLayers, *, fmt: str, disk_type: str, readonly: bool, target: str) -> None:
    if layers.metadata_cache is not None and fmt != "qcow2":
        raise unsupported(f"disk '{target}': metadata_cache is only supported with the qcow2 format")
    if layers.transient:
        if disk_type not in ("file", "block", "volume") or fmt not in ("raw", "qcow2"):
            raise unsupported(f"disk '{target}': <transient/> needs a local raw or qcow2 image")
        if readonly:
            raise unsupported(f"disk '{target}': <transient/> is not supported with read-only disks")
        if layers.copy_on_read and not layers.share_backing:  # its overlay would go above the filter
            raise unsupported(f"disk '{target}': copy_on_read with <transient/> needs shareBacking='yes'")


def cor_node(target: str) -> str:
    return f"pyvirt-CoR-{target}"


def cor_blockdev(target: str, below: str) -> dict[str, object]:
    return {"driver": "copy-on-read", "node-name": cor_node(target), "file": below, "discard": "unmap"}


def driver_attrs(layers: DiskLayers) -> dict[str, str | None]:
    return {"copy_on_read": "on" if layers.copy_on_read else None}


def driver_children(layers: DiskLayers) -> list[XNode]:
    if layers.metadata_cache is None:
        return []
    size = x("max_size", {"unit": "bytes"}, text=str(layers.metadata_cache))
    return [x("metadata_cache").add(size)]


def transient_node(layers: DiskLayers) -> XNode | None:
    share = "yes" if layers.share_backing else None
    return x("transient", {"shareBacking": share}) if layers.transient else None

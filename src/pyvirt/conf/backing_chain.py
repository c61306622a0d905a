"""A disk's ``<backingStore>`` chain, as libvirt 9.0 reads and runs it.

In a running domain's XML the chain is the one QEMU has open (read from the images at start, or the
one given). In a definition it is the user's, and libvirt 9.0 uses it as written instead of reading
the image headers: each layer gets a pair of block nodes of its own with its own format, the layer
above names it as its ``backing``, and an empty ``<backingStore/>`` ends the chain (the image above it
has no backing: ``"backing": null`` under a format that has backing files). A given chain whose last
layer has no ``<backingStore>`` of its own leaves what is below that layer to the image's header
(QEMU opens it, as in libvirt's ``domxml-to-native``). ``<backingStore/>`` directly under the disk:
the source stands alone.

Layers are local files (``type='file'``), block devices (``type='block'``) and images on a server
(``type='network'``, a ``<source protocol=...>`` as a network disk has it: conf.network_disk or NBD,
with its ``<auth>``, cookies and NBD ``tls='yes'`` given to QEMU as a network disk's own are, named
after the layer's nodes: :func:`remotes`), each with its ``<format type=...>`` (and, for qcow2,
``<metadata_cache>``, the node's ``cache-size``). :func:`moved` keeps a given chain true when the
daemon changes the disk's source (an external snapshot's overlay, a commit, a block copy). A disk
plugged into a running domain gets its given chain as at start (daemon.blockdevs); block jobs take
local layers only.

A running domain's live XML holds each disk's running chain whole, given or read; which ones were
given is kept beside it in the run record (:func:`given_of`, :func:`mark_given`), so that a daemon
restarted keeps them given: a save image's or a snapshot's definition then carries them, and the
restore or revert opens the same chain, not the one the headers name.
"""

from __future__ import annotations

from pyvirt.conf import disk_layers
from pyvirt.conf.domain import BackingLayer, DiskConfig, Domain
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import XMLError

LAYER_TYPES = ("file", "block", "network")
# The formats a backing layer may have (libvirt's names, as a disk's <driver type>).
LAYER_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx")
# Formats whose images name a backing file: their node gets "backing" (null at the chain's end).
BACKING_FORMATS = ("qcow2", "vmdk")
CLOSED, OPEN = "closed", "open"


def parse(e: Elem, *, live: bool) -> tuple[list[BackingLayer], str | None]:
    """The chain under a disk (nearest first) and, in a definition, whether it is ``closed`` by an
    empty ``<backingStore/>`` or ``open`` (None in live XML: it is the running chain, not a given one)."""
    chain: list[BackingLayer] = []
    node: Elem | None = e
    while node is not None and (node.attr("type") is not None or node.child("source") is not None):
        kind = node.choice("type", LAYER_TYPES) or "file"
        node.skip("index")
        fmt = node.child("format")
        source = node.child("source")
        if source is None or fmt is None:
            raise XMLError(f"'{node.path}' needs <format> and <source>")
        if kind == "network":
            remote = _remote(source)
            layer = BackingLayer(remote.source_name or "", "raw", kind, remote=remote)
        else:
            layer = BackingLayer(source.require("file" if kind == "file" else "dev"), "raw", kind)
        layer.format = fmt.choice("type", LAYER_FORMATS, required=True) or "raw"
        if (cache := fmt.child("metadata_cache")) is not None:  # as a disk's <driver> has it
            layer.metadata_cache = disk_layers.parse_metadata_cache(cache)
            if layer.format != "qcow2":
                raise unsupported(f"'{fmt.path}': metadata_cache is only supported with the qcow2 format")
        source.skip("index")
        source.done()
        fmt.done()
        chain.append(layer)
        below = node.child("backingStore")
        node.done()
        if below is None:
            return chain, None if live else OPEN
        node = below
    if node is not None:
        node.done()
    return chain, None if live else CLOSED


def _remote(source: Elem) -> DiskConfig:
    """A network layer's server, read as a network disk's ``<source>``."""
    from pyvirt.conf.domain_xml import _Parser

    remote = DiskConfig(type="network", target_dev="backingStore")
    _Parser.network_source(source, remote)
    return remote


def layer_node(node: str, depth: int) -> str:
    """The node-name prefix of layer ``depth`` (1: just under the source) of the disk ``node``."""
    return f"{node}-b{depth}"


def remotes(disk: DiskConfig, node: str) -> list[tuple[str, DiskConfig]]:
    """The layers of ``disk``'s given chain on a server, each as (its node-name prefix, the server as a
    network disk's source): their secret objects and TLS credentials are named after that prefix."""
    if disk.backing_given is None:
        return []
    return [
        (layer_node(node, depth), layer.remote)
        for depth, layer in enumerate(disk.backing or [], start=1)
        if layer.remote is not None
    ]


def write(chain: list[BackingLayer], *, closed: bool = True) -> XNode:
    """libvirt's nested ``<backingStore>`` for ``chain`` (nearest first), ended by an empty one when
    ``closed``; an empty closed chain is ``<backingStore/>``."""
    inner: XNode | None = x("backingStore") if closed else None
    for layer in reversed(chain):
        node = x("backingStore", {"type": layer.type})
        fmt = x("format", {"type": layer.format})
        if layer.metadata_cache is not None:
            size = x("max_size", {"unit": "bytes"}, text=str(layer.metadata_cache))
            fmt.add(x("metadata_cache").add(size))
        if layer.remote is not None:
            from pyvirt.conf.domain_xml import _network_source

            node.add(fmt, _network_source(layer.remote))
        else:
            node.add(fmt, x("source", {"file" if layer.type == "file" else "dev": layer.source}))
        inner = node.add(inner)
    assert inner is not None, "an open chain has a layer"
    return inner


def check(disk: DiskConfig) -> None:
    """A given chain needs an image (local or on a server) of a format that has backing files."""
    if disk.backing_given is None or not disk.backing:
        return
    if disk.type not in ("file", "block", "volume", "network") or disk.driver_type not in BACKING_FORMATS:
        raise unsupported(
            f"disk '{disk.target_dev}': a <backingStore> chain needs an image of a format with backing "
            f"files ({', '.join(BACKING_FORMATS)}), not {disk.type} '{disk.driver_type}'"
        )
    for layer in disk.backing[:-1]:
        if layer.format not in BACKING_FORMATS:
            raise unsupported(
                f"disk '{disk.target_dev}': backing store '{layer.source}' of format '{layer.format}' "
                "cannot have a backing store of its own"
            )


def given_of(dom: Domain) -> dict[str, str]:
    """Which disks of running ``dom`` run on a given chain (``open`` or ``closed``), by target: what
    the live XML, where every running chain is written out whole, cannot say."""
    return {
        disk.target_dev: disk.backing_given
        for disk in dom.devices.disks
        if disk.backing_given is not None and disk.backing is not None
    }


def mark_given(dom: Domain, given: dict[str, str]) -> None:
    """Mark the chains of ``dom``'s disks as given (:func:`given_of`) once its live XML is read again
    (a daemon restart): a save, snapshot or revert then keeps them, not the images' headers."""
    for disk in dom.devices.disks:
        if disk.backing is not None and given.get(disk.target_dev) in (OPEN, CLOSED):
            disk.backing_given = given[disk.target_dev]


def moved(disk: DiskConfig, path: str) -> None:
    """``disk``'s given chain once ``path`` is to be its source (the caller sets it after): the layers
    below ``path`` when it was in the chain (an overlay committed, a pull), else the old source over the
    old chain (a new overlay). An open chain whose end would be in doubt is given up: the images'
    headers tell."""
    if disk.backing_given is None or disk.backing is None:
        return
    chain = [BackingLayer(disk.source or "", disk.driver_type, "block" if disk.type == "block" else "file")]
    chain += disk.backing
    below = next((i + 1 for i, layer in enumerate(chain) if layer.source == path), None)
    if disk.backing_given == OPEN and (below is None or below == len(chain)):
        disk.backing, disk.backing_given = None, None
    else:
        disk.backing = chain[below:] if below is not None else chain

"""The block nodes of a disk's given ``<backingStore>`` chain (conf.backing_chain), as libvirt 9.0 has them.

Each layer, from the bottom up, is a protocol node (``file``, ``host_device`` or a network disk's)
and a read-only format node ``NODE-bN-format``; the layer above names it as its ``backing``. The end
of a closed chain gets ``"backing": null`` under a format that has backing files (QEMU reads no
header for more); the last layer of an open chain gets no ``backing``, so QEMU opens what its header
names. A disk without a given chain gets nothing here: QEMU opens the chain its images name.
"""

from __future__ import annotations

from pyvirt.conf.backing_chain import BACKING_FORMATS, CLOSED, layer_node
from pyvirt.conf.domain import DiskConfig


def layer_nodes(disk: DiskConfig, node: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The ``-blockdev`` objects of ``disk``'s given chain, bottom first, and what its top format node
    adds (its ``backing``); nothing for a disk whose chain is read from its images."""
    from pyvirt.qemu.command import _cache_options, storage_node

    if disk.backing_given is None or disk.backing is None:
        return [], {}
    cache = _cache_options(disk)
    objects: list[dict[str, object]] = []
    below: str | None = None
    for depth in range(len(disk.backing), 0, -1):
        layer = disk.backing[depth - 1]
        name = layer_node(node, depth)
        storage: dict[str, object] = {
            "driver": "host_device" if layer.type == "block" else "file",
            "filename": layer.source,
            "node-name": f"{name}-storage",
            "auto-read-only": True,
            "discard": "unmap" if disk.discard == "unmap" else "ignore",
        }
        if layer.remote is not None:  # a network disk's protocol node
            storage = storage_node(layer.remote, name, None)
            storage["discard"] = "unmap" if disk.discard == "unmap" else "ignore"
        fmt: dict[str, object] = {
            "node-name": f"{name}-format",
            "read-only": True,
            "driver": layer.format,
            "file": f"{name}-storage",
        }
        if cache is not None:
            storage["cache"] = fmt["cache"] = cache
        if layer.metadata_cache is not None:
            fmt["cache-size"] = layer.metadata_cache
        if layer.format in BACKING_FORMATS and (below is not None or disk.backing_given == CLOSED):
            fmt["backing"] = below
        objects += [storage, fmt]
        below = f"{name}-format"
    if disk.driver_type in BACKING_FORMATS and (below is not None or disk.backing_given == CLOSED):
        return objects, {"backing": below}
    return objects, {}

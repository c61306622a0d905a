"""Unplugging a disk that runs on a given ``<backingStore>`` chain (daemon.blockdevs): the files given
back are its given layers, not what its header names, and the secret and TLS objects of its layers on
servers are deleted, whether it was plugged (a prefix per layer) or started with (named under its own)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.daemon import blockdevs
from pyvirt.errors import OperationFailed
from pyvirt.image.create import create_image

DOMAIN = """<domain type='qemu'><name>u</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{top}'/>
<backingStore type='file'><format type='qcow2'/><source file='{mid}'/>
<backingStore type='network'><format type='qcow2'/>
<source protocol='nbd' name='base' tls='yes'><host name='127.0.0.1' port='10809'/></source>
<backingStore/></backingStore></backingStore><target dev='vdb' bus='virtio'/></disk></devices></domain>"""


class Monitor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def execute(self, command: str, args: Any = None) -> Any:
        self.calls.append((command, args))
        if command in ("x-debug-query-block-graph", "query-fdsets"):
            raise OperationFailed("not in this fake")
        return {}

    async def remove_fdset(self, fdset: str) -> None:
        self.calls.append(("remove-fdset", fdset))


def _unplug(tmp_path: Path, prefixes: list[str]) -> tuple[Monitor, list[str]]:
    top, mid, other = (str(tmp_path / n) for n in ("top.qcow2", "mid.qcow2", "other.qcow2"))
    create_image(other, "qcow2", 1 << 20)
    create_image(top, "qcow2", 1 << 20, backing=other, backing_fmt="qcow2")  # the header says other
    create_image(mid, "qcow2", 1 << 20)
    disk = load_domain_xml(DOMAIN.format(top=top, mid=mid)).devices.disks[0]
    monitor = Monitor()
    given_back: list[str] = []
    record = SimpleNamespace(blockdevs={"vdb": prefixes}, blockroots={}, fdsets={}, disk_files={})
    reg = SimpleNamespace(confinement=SimpleNamespace(give_back=lambda _r, files: given_back.extend(files)))
    proc = SimpleNamespace(record=record, monitor=monitor)
    asyncio.run(blockdevs.unplug_nodes(reg, SimpleNamespace(name="u"), proc, disk, []))  # type: ignore[arg-type]
    return monitor, given_back


def test_a_started_disk_gives_back_its_given_layers_and_drops_its_layers_objects(tmp_path: Path) -> None:
    monitor, given_back = _unplug(tmp_path, ["pyvirt-1"])
    assert given_back == [str(tmp_path / "top.qcow2"), str(tmp_path / "mid.qcow2")]
    deleted = [args["id"] for command, args in monitor.calls if command == "object-del"]
    assert "pyvirt-1-b2-storage-tls0" in deleted and all(d.startswith("pyvirt-1-b2-") for d in deleted)


def test_a_plugged_disk_drops_the_objects_of_each_layer_prefix(tmp_path: Path) -> None:
    monitor, _ = _unplug(tmp_path, ["pyvirt-4", "pyvirt-5", "pyvirt-6"])
    deleted = [args["id"] for command, args in monitor.calls if command == "object-del"]
    assert "pyvirt-6-storage-tls0" in deleted and not any(d.startswith("pyvirt-4-") for d in deleted)

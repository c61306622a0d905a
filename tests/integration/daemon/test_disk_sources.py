"""Disk sources and drivers libvirt 9.0 runs, on one real guest under TCG shared by the module's tests:
a disk served over HTTP (QEMU's curl driver, byte ranges) by a server on the loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml
from tests.support.rangehttp import serving

pytestmark = pytest.mark.slow
HTTP_MARKER = b"pyvirt-http-disk"


def serial_devices(console: Console) -> dict[str, str]:
    """The guest's virtio disks by their serial: serial → /dev/vdX."""
    out = console.run("for d in /sys/block/vd*; do echo ${d##*/}=$(cat $d/serial); done")
    return {serial: f"/dev/{dev}" for dev, serial in re.findall(r"(vd[a-z]+)=(\S+)", out)}


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, list[str]]]:
    root = tmp_path_factory.mktemp("http")
    (root / "disk.img").write_bytes(
        HTTP_MARKER.ljust(4 * 1024 * 1024 - 512, b"\0") + b"tail-of-the-image".ljust(512, b"\0")
    )
    with serving(root) as (port, requests):
        yield root, port, requests


@pytest.fixture(scope="module")
def guest(
    module_daemon: Daemon, http_root: tuple[Path, int, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    _, port, _ = http_root
    disks = (
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        f"<source protocol='http' name='disk.img' query='v=1'><host name='127.0.0.1' port='{port}'/>"
        "<timeout seconds='30'/><readahead size='65536'/></source>"
        "<target dev='vdb' bus='virtio'/><readonly/><serial>http</serial></disk>"
    )
    path = tmp_path_factory.mktemp("xml") / "srcs.xml"
    path.write_text(domain_xml("srcs", extra_devices=disks))
    module_daemon.cli("define", str(path)).ok()
    module_daemon.cli("start", "srcs").ok()
    console = Console(module_daemon, "srcs")
    console.expect("pyvirt-guest: ready")
    try:
        yield console
    finally:
        console.close()
        module_daemon.cli("destroy", "srcs")


def test_a_disk_served_over_http_is_read_by_the_guest(
    guest: Console, module_daemon: Daemon, http_root: tuple[Path, int, list[str]]
) -> None:
    _, port, requests = http_root
    xml = module_daemon.cli("dumpxml", "srcs").ok().out
    assert "<source protocol='http' name='disk.img' query='v=1'>" in xml
    assert f"<host name='127.0.0.1' port='{port}'/>" in xml and "<timeout seconds='30'/>" in xml
    dev = serial_devices(guest)["http"]
    assert HTTP_MARKER.decode() in guest.run(f"head -c 16 {dev}; echo")
    assert "tail-of-the-image" in guest.run(
        f"tail -c 512 {dev} | head -c 17; echo"
    )  # a range at the image's end
    assert any(r.startswith("GET /disk.img?v=1") and "bytes=" in r for r in requests)

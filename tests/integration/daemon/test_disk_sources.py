"""Disk sources and drivers libvirt 9.0 runs, on one real guest under TCG shared by the module's tests:
a disk served over HTTP (QEMU's curl driver, byte ranges) by a server on the loopback, a qcow2 overlay
with copy_on_read over a raw image, and a <transient/> disk (the last test stops the guest)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml
from tests.support.rangehttp import serving

pytestmark = pytest.mark.slow
HTTP_MARKER = b"pyvirt-http-disk"
COR_MARKER = b"pyvirt-cor-base"
ORIGINAL = b"original-content"
MIB = 1024 * 1024


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
def images() -> Iterator[Path]:
    """A directory QEMU's user can traverse: a raw base with an overlay for copy-on-read (the marker
    1 MiB in, beyond what the guest's kernel probes at boot) and the image of the transient disk."""
    root = Path(tempfile.mkdtemp(prefix="pvt-srcs-", dir="/tmp"))
    root.chmod(0o755)
    (root / "base.raw").write_bytes(bytes(MIB) + COR_MARKER.ljust(3 * MIB, b"\0"))
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(root / "base.raw"),
            str(root / "cor.qcow2"),
        ],
        check=True,
    )
    (root / "transient.raw").write_bytes(ORIGINAL.ljust(MIB, b"\0"))
    (root / "shared.raw").write_bytes(ORIGINAL.ljust(MIB, b"\0"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def allocated_in_top(image: Path, offset: int) -> bool:
    """Whether the overlay ``image`` holds the data at ``offset`` itself (qemu-img map, depth 0)."""
    out = subprocess.run(
        ["qemu-img", "map", "-U", "--output=json", str(image)], capture_output=True, text=True, check=True
    ).stdout
    for extent in json.loads(out):
        if extent["start"] <= offset < extent["start"] + extent["length"]:
            return bool(extent["depth"] == 0 and extent["data"])
    raise AssertionError(f"no extent at {offset} in {out}")


@pytest.fixture(scope="module")
def guest(
    module_daemon: Daemon,
    http_root: tuple[Path, int, list[str]],
    images: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    _, port, _ = http_root
    disks = (
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        f"<source protocol='http' name='disk.img' query='v=1'><host name='127.0.0.1' port='{port}'/>"
        "<timeout seconds='30'/><readahead size='65536'/></source>"
        "<target dev='vdb' bus='virtio'/><readonly/><serial>http</serial></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2' copy_on_read='on'/>"
        f"<source file='{images / 'cor.qcow2'}'/><target dev='vdc' bus='virtio'/><serial>cor</serial></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{images / 'transient.raw'}'/><target dev='vdd' bus='virtio'/>"
        "<serial>transient</serial><transient/></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{images / 'shared.raw'}'/><target dev='vde' bus='virtio'/>"
        "<serial>shared</serial><transient shareBacking='yes'/></disk>"
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


def test_copy_on_read_copies_what_the_guest_reads_into_the_overlay(guest: Console, images: Path) -> None:
    overlay = images / "cor.qcow2"
    assert not allocated_in_top(overlay, MIB)
    dev = serial_devices(guest)["cor"]
    assert COR_MARKER.decode() in guest.run(
        f"dd if={dev} bs=65536 skip=16 count=1 2>/dev/null | head -c 15; echo"
    )
    # a write flushed 2 MiB in has QEMU write its qcow2 metadata out, for qemu-img to see
    guest.run(f"echo x | dd of={dev} bs=512 seek=4096 conv=notrunc,fsync 2>/dev/null")
    assert allocated_in_top(overlay, MIB)
    assert not allocated_in_top(overlay, 3 * MIB)  # what it did not read stays in the base


def test_an_http_disk_plugged_into_the_running_guest_is_read(
    guest: Console, module_daemon: Daemon, http_root: tuple[Path, int, list[str]], images: Path
) -> None:
    _, port, _ = http_root
    xml = images / "hot.xml"
    xml.write_text(
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        f"<source protocol='http' name='disk.img'><host name='127.0.0.1' port='{port}'/></source>"
        "<target dev='vdf' bus='virtio'/><readonly/><serial>hot</serial></disk>"
    )
    module_daemon.cli("attach-device", "srcs", str(xml), "--live").ok()
    # until the guest's kernel has the new disk (a wait, not a timing: the assertion is on its content)
    guest.run(
        "for i in $(seq 300); do grep -qs hot /sys/block/vd*/serial && break; sleep 0.2; done", timeout=90
    )
    dev = serial_devices(guest)["hot"]
    assert HTTP_MARKER.decode() in guest.run(f"head -c 16 {dev}; echo")
    assert "<source protocol='http' name='disk.img'>" in module_daemon.cli("dumpxml", "srcs").ok().out
    module_daemon.cli("detach-device", "srcs", str(xml), "--live").ok()


def test_a_transient_disk_forgets_the_guest_writes_at_stop(
    guest: Console, module_daemon: Daemon, images: Path
) -> None:
    """The last test of the module: it stops the guest. The shareBacking='yes' disk's image is open
    read-only (another reader may lock it) under the overlay start made."""
    xml = module_daemon.cli("dumpxml", "srcs").ok().out
    assert "<transient/>" in xml and "<transient shareBacking='yes'/>" in xml
    images_of = {"transient": images / "transient.raw", "shared": images / "shared.raw"}
    overlays = {serial: Path(f"{image}.TRANSIENT-srcs") for serial, image in images_of.items()}
    assert all(overlay.exists() for overlay in overlays.values())
    info = subprocess.run(["qemu-img", "info", str(images_of["shared"])], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr  # no write lock on the shared image
    devices = serial_devices(guest)
    for serial in images_of:
        dev = devices[serial]
        guest.run(f"echo guest-wrote-this | dd of={dev} conv=notrunc 2>/dev/null; sync")
        assert "guest-wrote-this" in guest.run(f"head -c 16 {dev}; echo")
    module_daemon.cli("destroy", "srcs").ok()
    for serial, image in images_of.items():
        assert not overlays[serial].exists()
        assert image.read_bytes().startswith(ORIGINAL)
        assert os.path.getsize(image) == MIB

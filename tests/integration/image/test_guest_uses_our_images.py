"""QEMU boots the test guest from disks ``pyvirt img`` made (directly, through a backing chain, and in
every format a domain takes: vmdk with its extents, vdi, vhdx, vpc), the guest writes to them, and the
library reads back exactly what the guest wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyvirt.image import image_info, open_image
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml, guest_artifacts

pytestmark = pytest.mark.slow
IMG = [sys.executable, "-m", "pyvirt.cli.img"]
PATTERN_OFFSET = 5 * 1024 * 1024 + 512  # not cluster-aligned, on purpose


def img(*args: str) -> None:
    subprocess.run([*IMG, *args], check=True, capture_output=True)


def boot_and_write(
    daemon: Daemon, tmp_path: Path, name: str, root: Path, data: Path, fmt: str = "qcow2"
) -> str:
    extra = (
        f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>"
        f"<source file='{data}'/><target dev='vdb' bus='virtio'/></disk>"
    )
    xml = tmp_path / f"{name}.xml"
    xml.write_text(domain_xml(name, disk=root, disk_format=fmt, extra_devices=extra))
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", name).ok()
    console = Console(daemon, name)
    console.expect("pyvirt-guest: ready")
    payload = f"written-by-{name}-" * 64
    console.run(f"for i in $(seq 64); do printf 'written-by-{name}-'; done > /root/payload")
    out = console.run(
        f"dd if=/root/payload of=/dev/vdb bs=1 seek={PATTERN_OFFSET} conv=notrunc 2>&1; sync; echo dd-rc=$?"
    )
    assert "dd-rc=0" in out, out
    console.send("poweroff\n")
    daemon.wait_state(name, "shut off", 90)
    console.close()
    return payload


def check_qemu_clean(path: Path) -> None:
    result = subprocess.run(["qemu-img", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_guest_boots_from_a_converted_disk_and_writes_to_a_created_one(
    daemon: Daemon, tmp_path: Path
) -> None:
    art = guest_artifacts()
    root = tmp_path / "root.qcow2"
    data = tmp_path / "data.qcow2"
    img("convert", "-f", "qcow2", "-O", "qcow2", str(art.disk), str(root))
    img("create", "-f", "qcow2", str(data), "64M")
    payload = boot_and_write(daemon, tmp_path, "direct", root, data)
    with open_image(str(data)) as image:
        assert image.read(PATTERN_OFFSET, len(payload)).decode() == payload
        assert image.read(0, 4096) == bytes(4096)
    for path in (root, data):
        check_qemu_clean(path)


def test_guest_boots_through_a_backing_chain(daemon: Daemon, tmp_path: Path) -> None:
    art = guest_artifacts()
    base = tmp_path / "base.qcow2"
    img("convert", "-f", "qcow2", "-O", "qcow2", str(art.disk), str(base))
    mid = tmp_path / "mid.qcow2"
    top = tmp_path / "top.qcow2"
    img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(mid))
    img("create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", str(top))
    data_base = tmp_path / "data-base.qcow2"
    data = tmp_path / "data.qcow2"
    img("create", "-f", "qcow2", str(data_base), "64M")
    img("create", "-f", "qcow2", "-b", str(data_base), "-F", "qcow2", str(data))
    before = base.read_bytes()
    payload = boot_and_write(daemon, tmp_path, "chain", top, data)
    assert base.read_bytes() == before  # the guest wrote to the top only
    with open_image(str(data)) as image:
        assert image.read(PATTERN_OFFSET, len(payload)).decode() == payload
    with open_image(str(data_base)) as image:
        assert image.read(PATTERN_OFFSET, len(payload)) == bytes(len(payload))
    chain = image_info(str(top), backing_chain=True)
    names = [entry["filename"] for entry in chain] if isinstance(chain, list) else [chain["filename"]]
    assert names[0].endswith("top.qcow2")
    for path in (top, mid, base, data):
        check_qemu_clean(path)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("vmdk", "subformat=monolithicSparse"),
        ("vmdk", "subformat=twoGbMaxExtentFlat"),
        ("vhdx", "subformat=dynamic"),
        ("vdi", "static=off"),
        ("vpc", "subformat=dynamic"),
    ],
)
def test_guest_boots_from_and_writes_to_other_formats(
    daemon: Daemon, tmp_path: Path, fmt: str, options: str
) -> None:
    art = guest_artifacts()
    root = tmp_path / f"root.{fmt}"
    data = tmp_path / f"data.{fmt}"
    img("convert", "-f", "qcow2", "-O", fmt, "-o", options, str(art.disk), str(root))
    img("create", "-f", fmt, "-o", options, str(data), "64M")
    name = f"boot-{fmt}-{options.split('=')[1].lower()}"
    payload = boot_and_write(daemon, tmp_path, name, root, data, fmt)
    with open_image(str(data), fmt=fmt) as image:
        assert image.read(PATTERN_OFFSET, len(payload)).decode() == payload
    if fmt != "vpc":  # qemu-img check does not check vpc
        for path in (root, data):
            check_qemu_clean(path)
    compare = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", fmt, str(art.disk), str(root)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert compare.returncode == 1, compare.stdout  # the guest wrote to its root while it ran

"""``vol-wipe`` as libvirt's directory pool does it: zeros written over an allocated file, a sparse file
truncated to holes, a qcow2 volume zero-filled like any file, scrub(1) for the other algorithms, and
refusals for volumes a running domain uses."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from pyvirt.conf.storage import BackingStore, VolumeDef
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, UnsupportedConfig
from pyvirt.image import image_info
from pyvirt.paths import Layout
from pyvirt.storage import volumes
from tests.unit.storage.drivers import make_driver


def test_zero_wipe_of_an_allocated_file_writes_zeros_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v.img"
    path.write_bytes(os.urandom(3 << 20) + b"tail")
    info = volumes.describe(str(tmp_path), "v.img")
    volumes.wipe(info)
    st = path.stat()
    assert st.st_size == (3 << 20) + 4 and path.read_bytes() == bytes(st.st_size)
    assert st.st_blocks * 512 >= 3 << 20  # libvirt overwrites: the blocks stay allocated


def test_zero_wipe_of_a_sparse_file_truncates_it_to_holes(tmp_path: Path) -> None:
    path = tmp_path / "s.img"
    with open(path, "wb") as fh:
        fh.truncate(8 << 20)
        fh.seek(1 << 20)
        fh.write(b"secret" * 1000)
    volumes.wipe(volumes.describe(str(tmp_path), "s.img"))
    assert path.stat().st_size == 8 << 20 and path.stat().st_blocks == 0
    assert b"secret" not in path.read_bytes()


def test_zero_wipe_of_a_qcow2_volume_leaves_zeros_as_libvirt_does(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="q.qcow2", capacity=64 << 20, format="qcow2"))
    size = (layout.images_dir / "q.qcow2").stat().st_size
    after = driver.wipe_volume("default", "q.qcow2", "zero", in_use={})
    assert after["format"] == "raw" and after["capacity"] == size
    assert (layout.images_dir / "q.qcow2").read_bytes() == bytes(size)


def test_wipe_algorithms(tmp_path: Path) -> None:
    path = tmp_path / "v.img"
    original = os.urandom(1 << 20)
    path.write_bytes(original)
    info = volumes.describe(str(tmp_path), "v.img")
    with pytest.raises(UnsupportedConfig, match="argument unsupported: 'trim' algorithm not supported"):
        volumes.wipe(info, "trim")
    with pytest.raises(InvalidArgument, match="unsupported algorithm 'bogus'"):
        volumes.wipe(info, "bogus")
    assert path.read_bytes() == original
    if shutil.which("scrub") is None:
        pytest.skip("scrub is not installed")
    volumes.wipe(info, "nnsa")
    wiped = path.read_bytes()
    assert len(wiped) >= 1 << 20 and wiped[: 1 << 20] != original


def test_scrub_failure_is_reported_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "v").write_bytes(b"x")
    info = volumes.describe(str(tmp_path), "v")
    info.path = str(tmp_path / "vanished")
    if shutil.which("scrub") is None:
        with pytest.raises(OperationFailed, match="Cannot find 'scrub'"):
            volumes.wipe(info, "dod")
        return
    with pytest.raises(
        OperationFailed, match=r"Child process \(scrub -f -p dod .*vanished\) unexpected exit"
    ):
        volumes.wipe(info, "dod")


def test_wipe_refuses_a_volume_in_use_or_busy(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="base.qcow2", capacity=1 << 20, format="qcow2"))
    top = VolumeDef(
        name="top.qcow2", capacity=1 << 20, format="qcow2", backing=BackingStore("base.qcow2", "qcow2")
    )
    driver.create_volume("default", top)
    in_use = {str(layout.images_dir / "top.qcow2"): "vm1"}
    before = (layout.images_dir / "base.qcow2").read_bytes()
    with pytest.raises(
        InvalidState, match=re.escape("cannot wipe volume 'top.qcow2': it is in use by running domain 'vm1'")
    ):
        driver.wipe_volume("default", "top.qcow2", "zero", in_use=in_use)
    with pytest.raises(InvalidState, match="as a backing file of"):
        driver.wipe_volume("default", "base.qcow2", "zero", in_use=in_use)
    path = str(layout.images_dir / "base.qcow2")
    with pytest.raises(InvalidState, match="busy"), driver.busy(path, "being uploaded to"):
        driver.wipe_volume("default", "base.qcow2", "zero", in_use={})
    assert (layout.images_dir / "base.qcow2").read_bytes() == before
    assert image_info(str(layout.images_dir / "top.qcow2"))["format"] == "qcow2"

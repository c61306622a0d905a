"""Growing a qcow2 overlay over a longer backing file, and small-cluster headers (no QEMU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.image.api import create_image, open_image, resize
from pyvirt.image.errors import ImageError
from pyvirt.image.qcow2.image import Qcow2Image

MB = 1 << 20


def overlay(tmp_path: Path, compat: str, cluster: int = 65536) -> Path:
    create_image(str(tmp_path / "base.qcow2"), "qcow2", 3 * MB)
    with open_image(str(tmp_path / "base.qcow2"), readonly=False) as img:
        img.write(0, b"\x11" * (3 * MB))
    top = tmp_path / "top.qcow2"
    create_image(
        str(top), "qcow2", MB, backing="base.qcow2", backing_fmt="qcow2", compat=compat, cluster_size=cluster
    )
    return top


def test_new_area_reads_zeros_not_the_backing_file(tmp_path: Path) -> None:
    top = overlay(tmp_path, "1.1")
    resize(str(top), "+2M")
    with open_image(str(top)) as img:
        assert img.size == 3 * MB
        assert img.read(0, MB) == b"\x11" * MB
        assert img.read(MB, 2 * MB) == bytes(2 * MB)


def test_compat_010_cannot_zero_so_refuses(tmp_path: Path) -> None:
    top = overlay(tmp_path, "0.10")
    before = top.read_bytes()
    with pytest.raises(ImageError, match=r"^Failed to zero out new clusters: Operation not supported$"):
        resize(str(top), "3M")
    assert top.read_bytes() == before


def test_growth_past_the_backing_file_needs_no_zeros(tmp_path: Path) -> None:
    """A compat=0.10 overlay grows when its backing file is no longer than it: nothing to hide."""
    create_image(str(tmp_path / "short.qcow2"), "qcow2", MB)
    v2 = tmp_path / "v2.qcow2"
    create_image(str(v2), "qcow2", MB, backing="short.qcow2", backing_fmt="qcow2", compat="0.10")
    resize(str(v2), "4M")
    with open_image(str(v2)) as img:
        assert img.size == 4 * MB and img.read(0, img.size) == bytes(4 * MB)


@pytest.mark.parametrize("cluster", [512, 4096])
def test_long_backing_name_fits_small_clusters(tmp_path: Path, cluster: int) -> None:
    top = overlay(tmp_path, "1.1", cluster)
    name = "n" * 200 + ".qcow2"
    (tmp_path / name).write_bytes((tmp_path / "base.qcow2").read_bytes())
    with open_image(str(top), readonly=False, backing=False) as img:
        assert isinstance(img, Qcow2Image)
        img.set_backing(name, "qcow2")
    with open_image(str(top)) as img:
        assert img.backing_file == name and img.read(0, 4096) == b"\x11" * 4096

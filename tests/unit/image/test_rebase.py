"""``pyvirt.image.rebase`` without QEMU: safe mode keeps what the image reads, unsafe only renames."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pyvirt.image.api import create_image, open_image
from pyvirt.image.errors import ImageError
from pyvirt.image.qcow2.image import Qcow2Image
from pyvirt.image.qcow2.tables import L2_OFFSET_MASK, OFLAG_ZERO
from pyvirt.image.rebase import rebase

MB = 1 << 20


def write(path: Path, *ops: tuple[int, bytes | int]) -> None:
    """``(offset, data)`` writes data; ``(offset, n)`` zeroes n bytes."""
    with open_image(str(path), readonly=False) as img:
        for off, what in ops:
            if isinstance(what, int):
                img.write_zeroes(off, what)
            else:
                img.write(off, what)


def read(path: Path) -> bytes:
    with open_image(str(path)) as img:
        return img.read(0, img.size)


def setup(tmp_path: Path) -> None:
    rnd = random.Random(9)
    create_image(str(tmp_path / "base.qcow2"), "qcow2", 2 * MB)
    write(tmp_path / "base.qcow2", (0, rnd.randbytes(2 * MB)))
    create_image(str(tmp_path / "top.qcow2"), "qcow2", 4 * MB, backing="base.qcow2", backing_fmt="qcow2")
    write(tmp_path / "top.qcow2", (65536, b"t" * 4096), (MB, 65536))
    create_image(str(tmp_path / "other.qcow2"), "qcow2", 3 * MB)
    write(tmp_path / "other.qcow2", (MB, rnd.randbytes(2 * MB)))
    create_image(str(tmp_path / "lone.qcow2"), "qcow2", 4 * MB)
    write(tmp_path / "lone.qcow2", (0, b"l" * 512))


def entry(path: Path, cluster: int) -> int:
    with open_image(str(path), backing=False) as img:
        assert isinstance(img, Qcow2Image)
        return img.l2_entry(cluster)


@pytest.mark.parametrize(("image", "new"), [("top", "other.qcow2"), ("top", ""), ("lone", "other.qcow2")])
def test_safe_rebase_keeps_content(tmp_path: Path, image: str, new: str) -> None:
    setup(tmp_path)
    path = tmp_path / f"{image}.qcow2"
    before = read(path)
    rebase(str(path), new, "qcow2" if new else None)
    with open_image(str(path), backing=False) as img:
        assert img.backing_file == (new or None)
    assert read(path) == before


def test_past_the_old_end_become_zero_clusters(tmp_path: Path) -> None:
    setup(tmp_path)
    for name in ("top.qcow2", "lone.qcow2"):  # base ends at 2M; lone has no backing file at all
        rebase(str(tmp_path / name), "other.qcow2", "qcow2")
        e = entry(tmp_path / name, (2 * MB) // 65536)
        assert e & OFLAG_ZERO and not e & L2_OFFSET_MASK, hex(e)


def test_safe_rebase_without_format_copies_then_refuses(tmp_path: Path) -> None:
    setup(tmp_path)
    path = tmp_path / "top.qcow2"
    before = read(path)
    msg = r"^Could not change the backing file to 'other\.qcow2': backing format must be specified$"
    with pytest.raises(ImageError, match=msg):
        rebase(str(path), "other.qcow2", None)
    with open_image(str(path), backing=False) as img:
        assert img.backing_file == "base.qcow2"
    assert entry(path, (MB + 65536) // 65536) & L2_OFFSET_MASK  # the differing data was copied in
    assert read(path) == before


def test_unsafe_only_rewrites_the_header(tmp_path: Path) -> None:
    setup(tmp_path)
    path = tmp_path / "top.qcow2"
    rebase(str(path), "missing.qcow2", "qcow2", unsafe=True)
    with open_image(str(path), backing=False) as img:
        assert (img.backing_file, img.backing_format) == ("missing.qcow2", "qcow2")
    rebase(str(path), None, None, unsafe=True)
    with open_image(str(path)) as img:
        assert img.backing_file is None
        assert img.read(65536, 4096) == b"t" * 4096 and img.read(0, 4096) == bytes(4096)


def test_refusals(tmp_path: Path) -> None:
    setup(tmp_path)
    path = str(tmp_path / "top.qcow2")
    with pytest.raises(ImageError, match=r"^Invalid format name: 'bogus'$"):
        rebase(path, "other.qcow2", "bogus")
    with pytest.raises(ImageError, match=r"^Could not open new backing file 'nope': Could not open '.*nope'"):
        rebase(path, "nope", "qcow2")
    (tmp_path / "d.raw").write_bytes(bytes(4096))
    with pytest.raises(
        ImageError, match=r"^Could not change the backing file to 'x': Operation not supported$"
    ):
        rebase(str(tmp_path / "d.raw"), "x", "qcow2", fmt="raw", unsafe=True)

"""``pyvirt.image.commit``: which base a name denotes, what is copied, what is emptied (no QEMU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.image.api import create_image, open_image
from pyvirt.image.commit import commit, dirty_runs, find_backing_image
from pyvirt.image.errors import ImageError
from pyvirt.image.qcow2.image import Qcow2Image

MB = 1 << 20


def chain3(tmp_path: Path) -> Path:
    """e/base.qcow2 <- e/mid.qcow2 <- d/top.qcow2 (backing names: base.qcow2, ../e/mid.qcow2)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    create_image(str(tmp_path / "e/base.qcow2"), "qcow2", 4 * MB)
    create_image(str(tmp_path / "e/mid.qcow2"), "qcow2", None, backing="base.qcow2", backing_fmt="qcow2")
    top = tmp_path / "d/top.qcow2"
    create_image(str(top), "qcow2", None, backing="../e/mid.qcow2", backing_fmt="qcow2")
    with open_image(str(tmp_path / "e/base.qcow2"), readonly=False) as img:
        img.write(0, b"\x11" * (4 * MB))
    with open_image(str(tmp_path / "e/mid.qcow2"), readonly=False, allow_backing_outside=True) as img:
        img.write(MB, b"\x22" * MB)
        img.write_zeroes(3 * MB, 65536)
    with open_image(str(top), readonly=False, allow_backing_outside=True) as img:
        img.write(MB + 512 * 1024, b"\x33" * 65536)
        img.write_zeroes(MB, 65536)
    return top


def expected() -> bytes:
    model = bytearray(b"\x11" * (4 * MB))
    model[MB : 2 * MB] = b"\x22" * MB
    model[3 * MB : 3 * MB + 65536] = bytes(65536)
    model[MB + 512 * 1024 : MB + 512 * 1024 + 65536] = b"\x33" * 65536
    model[MB : MB + 65536] = bytes(65536)
    return bytes(model)


def read(path: Path) -> bytes:
    with open_image(str(path), allow_backing_outside=True) as img:
        return img.read(0, img.size)


@pytest.mark.parametrize(
    ("name", "depth"),
    [
        ("base.qcow2", 2),
        ("../e/base.qcow2", 2),
        ("../e/mid.qcow2", 1),
        ("mid.qcow2", None),  # from top's folder it does not exist; from mid's, it is mid itself
        ("e/base.qcow2", None),
        ("top.qcow2", None),
        ("base.qcow2/", None),
        ("", None),
    ],
)
def test_find_backing_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, depth: int | None
) -> None:
    chain3(tmp_path)
    monkeypatch.chdir(tmp_path)
    with open_image("d/top.qcow2", allow_backing_outside=True) as img:
        assert find_backing_image(img.chain(), name) == depth
        assert find_backing_image(img.chain(), str(tmp_path / "e/base.qcow2")) == 2


def test_commit_to_base_keeps_top_and_mid(tmp_path: Path) -> None:
    top = chain3(tmp_path)
    mid_before = (tmp_path / "e/mid.qcow2").read_bytes()
    top_before = top.read_bytes()
    seen: list[float] = []
    commit(str(top), base=str(tmp_path / "e/base.qcow2"), progress=seen.append)
    assert read(tmp_path / "e/base.qcow2") == expected()
    assert (tmp_path / "e/mid.qcow2").read_bytes() == mid_before
    assert top.read_bytes() == top_before
    assert seen[0] == 0.0 and seen[-1] == 100.0 and seen == sorted(seen)


def test_commit_to_backing_file_empties_top_unless_drop(tmp_path: Path) -> None:
    top = chain3(tmp_path)
    commit(str(top), drop=True)
    with open_image(str(top), backing=False) as img:
        assert isinstance(img, Qcow2Image)
        assert any(a for _, _, a in img.allocated_in_top(0, img.size))
    commit(str(top))
    with open_image(str(top), backing=False) as img:
        assert isinstance(img, Qcow2Image)
        assert not any(a for _, _, a in img.allocated_in_top(0, img.size))
    assert read(top) == read(tmp_path / "e/mid.qcow2") == expected()
    assert read(tmp_path / "e/base.qcow2") == b"\x11" * (4 * MB)


def test_errors_name_the_image(tmp_path: Path) -> None:
    top = chain3(tmp_path)
    with pytest.raises(ImageError, match=r"Did not find 'nope' in the backing chain of '.*top\.qcow2'"):
        commit(str(top), base="nope")
    with pytest.raises(ImageError, match=r"^Image does not have a backing file$"):
        commit(str(tmp_path / "e/base.qcow2"))


def test_dirty_runs_union_and_short_layers(tmp_path: Path) -> None:
    create_image(str(tmp_path / "b.qcow2"), "qcow2", 4 * MB)
    create_image(str(tmp_path / "m.qcow2"), "qcow2", MB, backing="b.qcow2", backing_fmt="qcow2")
    create_image(str(tmp_path / "t.qcow2"), "qcow2", 3 * MB, backing="m.qcow2", backing_fmt="qcow2")
    with open_image(str(tmp_path / "m.qcow2"), readonly=False) as img:
        img.write(65536, b"m" * 65536)
    with open_image(str(tmp_path / "t.qcow2"), readonly=False) as img:
        img.write(131072, b"t" * 65536)
        img.write_zeroes(0, 65536)
    with open_image(str(tmp_path / "t.qcow2")) as img:
        layers = [i for i in img.chain()[:2] if isinstance(i, Qcow2Image)]
        assert dirty_runs(layers[:1], img.size) == [(0, 65536), (131072, 196608)]
        # m's data joins t's, and past m's end (1 MiB) everything reads as zeros allocated there
        assert dirty_runs(layers, img.size) == [(0, 196608), (MB, 3 * MB)]

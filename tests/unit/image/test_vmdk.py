"""VMDK member files: the extent files beside a descriptor are named, so the daemon can hand them to
QEMU with the descriptor (single-file subformats have none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.image import create_image, open_image


@pytest.mark.parametrize(
    ("subformat", "extents"),
    [("monolithicSparse", 0), ("streamOptimized", 0), ("monolithicFlat", 1), ("twoGbMaxExtentFlat", 3)],
)
def test_member_files_are_the_extents_beside_the_descriptor(
    tmp_path: Path, subformat: str, extents: int
) -> None:
    path = tmp_path / "d.vmdk"
    create_image(str(path), "vmdk", 5 << 30, subformat=subformat)
    with open_image(str(path), fmt="vmdk") as img:
        members = img.member_files()
    assert len(members) == extents
    for member in members:
        assert Path(member).parent == tmp_path and Path(member).exists() and Path(member) != path
    assert {p for p in tmp_path.iterdir() if p != path} == {Path(m) for m in members}


def test_other_formats_have_no_member_files(tmp_path: Path) -> None:
    path = tmp_path / "d.qcow2"
    create_image(str(path), "qcow2", 1 << 20)
    with open_image(str(path)) as img:
        assert img.member_files() == []

"""``pyvirt img amend`` against ``qemu-img amend``: twin images amended the same way end with the same
compat level, lazy refcounts, refcount width and size, the same guest data in the image and in each
snapshot, and a clean ``qemu-img check``; the same refusals, with nothing changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.image.conftest import assert_clean, pyvirt_img, qemu_img, qemu_io, qinfo


def _specific(path: Path) -> dict[str, object]:
    data: dict[str, object] = qinfo(path)["format-specific"]["data"]
    return {k: data.get(k) for k in ("compat", "lazy-refcounts", "refcount-bits", "compression-type")}


def _twins(tmp_path: Path, options: str = "", *, backing: bool = False) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "ours.qcow2", tmp_path / "theirs.qcow2"
    args = ["create", "-q", "-f", "qcow2"]
    if options:
        args += ["-o", options]
    if backing:
        base = tmp_path / "base.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", str(base), "10M")
        qemu_io(base, "write -P 0x44 1M 2M")
        args += ["-b", str(base), "-F", "qcow2"]
    qemu_img(*args, str(ours), "10M")
    qemu_io(ours, "write -P 1 0 300k", "write -z 512k 64k")
    qemu_img("snapshot", "-c", "s1", str(ours))
    qemu_io(
        ours, "write -z 0 64k", "write -z -u 1M 64k", "write 2M 64k", "write -z 2M 64k", "write -P 7 5M 300k"
    )
    shutil.copy(ours, theirs)
    return ours, theirs


def _assert_twins(ours: Path, theirs: Path, tmp_path: Path) -> None:
    assert_clean(ours)
    assert _specific(ours) == _specific(theirs)
    assert qinfo(ours)["virtual-size"] == qinfo(theirs)["virtual-size"]
    assert "Images are identical" in qemu_img("compare", str(ours), str(theirs)).stdout
    for snap in ("s1",):
        a, b = tmp_path / "snap-ours.raw", tmp_path / "snap-theirs.raw"
        qemu_img("convert", "-l", snap, "-O", "raw", str(ours), str(a))
        qemu_img("convert", "-l", snap, "-O", "raw", str(theirs), str(b))
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "steps",
    [
        ["compat=0.10"],
        ["compat=0.10", "compat=1.1"],
        ["lazy_refcounts=on", "lazy_refcounts=off"],
        ["refcount_bits=2"],
        ["refcount_bits=64", "refcount_bits=8"],
        ["compat=0.10", "compat=1.1,lazy_refcounts=on,refcount_bits=4"],
        ["size=20M"],
        ["size=3M"],
    ],
    ids=lambda steps: " then ".join(steps),
)
def test_amend_as_qemu_img(tmp_path: Path, steps: list[str]) -> None:
    ours, theirs = _twins(tmp_path)
    for step in steps:
        mine = pyvirt_img("amend", "-q", "-o", step, str(ours))
        assert mine.returncode == 0, mine.stderr
        qemu_img("amend", "-o", step, str(theirs))
        _assert_twins(ours, theirs, tmp_path)


def test_downgrade_over_a_backing_file_keeps_zeroes_over_it(tmp_path: Path) -> None:
    ours, theirs = _twins(tmp_path, backing=True)
    assert pyvirt_img("amend", "-p", "-o", "compat=0.10", str(ours)).returncode == 0
    qemu_img("amend", "-o", "compat=0.10", str(theirs))
    _assert_twins(ours, theirs, tmp_path)
    raw = tmp_path / "guest.raw"
    qemu_img("convert", "-O", "raw", str(ours), str(raw))
    assert raw.read_bytes()[1 << 20 : (1 << 20) + 65536] == bytes(65536)  # the zero cluster over 0x44s


@pytest.mark.parametrize(
    ("create", "option", "message"),
    [
        (
            "",
            "compat=0.10,refcount_bits=8",
            "Refcount widths other than 16 bits require compatibility level",
        ),
        ("refcount_bits=8", "compat=0.10", "compat=0.10 requires refcount_bits=16"),
        ("compat=0.10", "lazy_refcounts=on", "Lazy refcounts only supported with compatibility level 1.1"),
        ("", "refcount_bits=3", "Refcount width must be a power of two and may not exceed 64 bits"),
        ("", "refcount_bits=1", "Cannot decrease refcount entry width to 1 bits: Cluster at offset 0x"),
        ("", "cluster_size=4k", "This option is only supported for image creation"),
        ("", "backing_file=x", "Cannot amend the backing file"),
        ("", "nonsense=1", "Invalid parameter 'nonsense'"),
    ],
)
def test_refusals_as_qemu_img(tmp_path: Path, create: str, option: str, message: str) -> None:
    ours, theirs = _twins(tmp_path, create)
    before = ours.read_bytes()
    mine = pyvirt_img("amend", "-o", option, str(ours))
    ref = qemu_img("amend", "-o", option, str(theirs), check=False)
    assert mine.returncode == ref.returncode == 1
    assert message in mine.stderr and message in ref.stderr
    assert ours.read_bytes() == before


def test_other_formats_and_missing_options_are_refused(tmp_path: Path) -> None:
    raw = tmp_path / "r.raw"
    raw.write_bytes(bytes(1 << 20))
    mine = pyvirt_img("amend", "-f", "raw", "-o", "size=2M", str(raw))
    assert mine.returncode == 1 and "Format driver 'raw' does not support option amendment" in mine.stderr
    assert raw.stat().st_size == 1 << 20
    assert "Must specify options (-o)" in pyvirt_img("amend", str(raw)).stderr


def test_an_encrypted_image_through_image_opts(tmp_path: Path) -> None:
    from tests.integration.image.conftest import LUKS_SECRET, luks_qcow2

    img = tmp_path / "e.qcow2"
    spec = luks_qcow2(img, "4M")
    mine = pyvirt_img(
        "amend", "--object", LUKS_SECRET, "--image-opts", "-o", "size=8M,lazy_refcounts=on", spec
    )
    assert mine.returncode == 0, mine.stderr
    assert qinfo(img)["virtual-size"] == 8 << 20 and _specific(img)["lazy-refcounts"] is True
    assert qemu_img("check", "--object", LUKS_SECRET, "--image-opts", spec).returncode == 0

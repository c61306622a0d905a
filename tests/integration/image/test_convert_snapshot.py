"""``pyvirt img convert -l`` against ``qemu-img convert -l``: an internal snapshot copied out, picked
by name, by id or by both, over a backing file and after the image grew; the same refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.image.conftest import pyvirt_img, qemu_img, qemu_io


@pytest.fixture
def image(tmp_path: Path) -> Path:
    base, img = tmp_path / "base.qcow2", tmp_path / "img.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(base), "10M")
    qemu_io(base, "write -P 7 4M 1M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(img))
    qemu_io(img, "write -P 1 0 1M", "write -z 4M 64k")
    qemu_img("snapshot", "-c", "first", str(img))
    qemu_img("resize", "-q", str(img), "20M")
    qemu_io(img, "write -P 2 0 2M", "write -P 3 15M 1M")
    qemu_img("snapshot", "-c", "second", str(img))
    qemu_io(img, "write -P 4 0 4M")
    return img


@pytest.mark.parametrize(
    "param",
    ["first", "1", "snapshot.id=1", "snapshot.name=first", "snapshot.id=1,snapshot.name=first", "second"],
)
@pytest.mark.parametrize("out_fmt", ["raw", "qcow2"])
def test_convert_a_snapshot_as_qemu_img(tmp_path: Path, image: Path, param: str, out_fmt: str) -> None:
    ours, theirs = tmp_path / f"ours.{out_fmt}", tmp_path / f"theirs.{out_fmt}"
    mine = pyvirt_img("convert", "-l", param, "-O", out_fmt, str(image), str(ours))
    assert mine.returncode == 0, mine.stderr
    qemu_img("convert", "-l", param, "-O", out_fmt, str(image), str(theirs))
    assert "Images are identical" in qemu_img("compare", "-s", str(ours), str(theirs)).stdout
    current = tmp_path / "current.raw"
    qemu_img("convert", "-O", "raw", str(image), str(current))
    assert "Content mismatch" in qemu_img("compare", str(ours), str(current), check=False).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", "nope"], "Failed to load snapshot: Can't find snapshot"),
        (["-l", "snapshot.id=2,snapshot.name=first"], "Failed to load snapshot: Can't find snapshot"),
        (["-l", "first", "EXTRA"], "No support for concatenating multiple snapshot"),
    ],
)
def test_refusals_as_qemu_img(tmp_path: Path, image: Path, args: list[str], message: str) -> None:
    argv = [str(image) if a == "EXTRA" else a for a in args]
    mine = pyvirt_img("convert", *argv, "-O", "raw", str(image), str(tmp_path / "ours.raw"))
    ref = qemu_img("convert", *argv, "-O", "raw", str(image), str(tmp_path / "theirs.raw"), check=False)
    assert mine.returncode == ref.returncode == 1
    assert message in mine.stderr and message in ref.stderr
    assert not (tmp_path / "ours.raw").exists()

"""pyvirt and QEMU exclude each other on an image through QEMU's own lock bytes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import create_image, open_image

from .conftest import qemu_img


@contextmanager
def qemu_holding(path: Path, *, readonly: bool) -> Iterator[None]:
    """qemu-io with the image open (as a VM would have it) until the block ends."""
    argv = ["qemu-io", "-f", "qcow2", *(["-r"] if readonly else []), str(path)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(timeout=10)


def test_vm_writer_excludes_us(tmp_path: Path) -> None:
    p = tmp_path / "vm.qcow2"
    create_image(str(p), "qcow2", 1 << 20)
    with qemu_holding(p, readonly=False):
        with pytest.raises(ImageError, match="lock"):
            open_image(str(p), readonly=False)
        with pytest.raises(ImageError, match='shared "write" lock'):
            open_image(str(p))
        with open_image(str(p), force_share=True) as img:
            assert img.read(0, 16) == bytes(16)
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"free again")


def test_our_writer_excludes_qemu(tmp_path: Path) -> None:
    p = tmp_path / "ours.qcow2"
    create_image(str(p), "qcow2", 1 << 20)
    with open_image(str(p), readonly=False):
        r = qemu_img("info", str(p), check=False)
        assert r.returncode != 0 and "lock" in r.stderr
        r = subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", "read 0 512", str(p)], capture_output=True, text=True
        )
        assert "lock" in r.stderr
    assert qemu_img("info", str(p)).returncode == 0


def test_readers_share(tmp_path: Path) -> None:
    p = tmp_path / "ro.qcow2"
    create_image(str(p), "qcow2", 1 << 20)
    with qemu_holding(p, readonly=True), open_image(str(p)) as a, open_image(str(p)) as b:
        assert a.read(0, 8) == b.read(0, 8)
        with pytest.raises(ImageError, match="lock"):
            open_image(str(p), readonly=False)

"""Block jobs on a pool volume (``<disk type='volume'>``) of a real guest under TCG, run on the file its
pool gives the volume as libvirt runs them: the volume stays the disk's source while it stays the top
image (an intermediate commit, a pull), the disk becomes the new file when a pivot replaces the top
(a copy). qemu-img is the oracle of every image the jobs leave."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.daemon.test_blockjobs import (
    MIB,
    chain,
    define_and_start,
    disk_element,
    expect_written,
    guest_write,
    make_chain,
    overlay_from,
    qemu_img,
)
from tests.support.daemon import Daemon

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (the oracle) is not installed"),
]

VOLUME_DISK = (
    "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source pool='bjpool' volume='top.qcow2'/><target dev='vda' bus='virtio'/></disk>"
)


def test_commit_pull_and_copy_of_a_pool_volume(daemon: Daemon, tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    folder.mkdir()
    base, _top, expected = make_chain(folder)  # base.qcow2 (and an unused top.qcow2, replaced below)
    mid, top = folder / "mid.qcow2", folder / "top.qcow2"
    expect_written(expected, 4 * MIB, MIB, 0x21)
    overlay_from(expected, base, mid)
    top.unlink()
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(mid), "-F", "qcow2", str(top))
    daemon.cli("pool-create-as", "bjpool", "dir", "--target", str(folder)).ok()
    console = define_and_start(daemon, tmp_path, "bjv", VOLUME_DISK)
    guest_write(console, 6, 1, 0x41)
    expect_written(expected, 6 * MIB, MIB, 0x41)
    live = disk_element(daemon, "bjv")
    assert "<source pool='bjpool' volume='top.qcow2'" in live and f"<source file='{mid}'/>" in live, live

    # An intermediate commit, the disk named by its volume's path: mid into base; the volume stays.
    done = daemon.cli("blockcommit", "bjv", str(top), "--top", str(mid), "--wait").ok()
    assert done.out == "\nCommit complete\n", done
    assert chain(top) == [str(top), str(base)]
    live = disk_element(daemon, "bjv")
    assert "<disk type='volume' device='disk'>" in live, live
    assert "<source pool='bjpool' volume='top.qcow2'" in live and str(mid) not in live, live
    assert f"<source file='{base}'/>" in live, live
    assert "<source pool='bjpool' volume='top.qcow2'/>" in disk_element(daemon, "bjv", "--inactive")

    # A pull: the base's data into the volume, which then stands alone, still the source.
    done = daemon.cli("blockpull", "bjv", "vda", "--wait").ok()
    assert done.out == "\nPull complete\n", done
    assert chain(top) == [str(top)]
    live = disk_element(daemon, "bjv")
    assert "<source pool='bjpool' volume='top.qcow2'" in live and "<backingStore" not in live.replace(
        "<backingStore/>", ""
    ), live
    done = daemon.cli("blockjob", "bjv", str(top), "--info").ok()  # virsh names the disk as it was named
    assert done.out == f"No current block job for {top}\n", done
    info = daemon.cli("domblkinfo", "bjv", "vda").ok().out
    assert re.match(rf"Capacity:\s+{64 * MIB}\n", info), info

    # A copy pivoted to a file: the file replaces the volume, in the live and the persistent definition.
    copy = tmp_path / "copy.qcow2"
    done = daemon.cli("blockcopy", "bjv", "vda", "--dest", str(copy), "--wait", "--pivot").ok()
    assert done.out == "\nSuccessfully pivoted\n", done
    live = disk_element(daemon, "bjv")
    assert "<disk type='file' device='disk'>" in live and f"<source file='{copy}'" in live, live
    assert "bjpool" not in live, live
    assert f"<source file='{copy}'/>" in disk_element(daemon, "bjv", "--inactive")
    guest_write(console, 8, 1, 0x51)
    expect_written(expected, 8 * MIB, MIB, 0x51)
    console.close()
    daemon.cli("destroy", "bjv").ok()

    # The oracle: the volume holds everything up to the pivot, the copy everything; both sound.
    for image in (top, copy, base):
        qemu_img("check", str(image))
    assert chain(copy) == [str(copy)]
    same = qemu_img("compare", "-f", "raw", "-F", "qcow2", str(expected), str(copy))
    assert "Images are identical" in same
    before_pivot = tmp_path / "before-pivot.raw"
    shutil.copyfile(expected, before_pivot)
    with open(before_pivot, "r+b") as fh:
        fh.seek(8 * MIB)
        fh.write(bytes(MIB))
    same = qemu_img("compare", "-f", "raw", "-F", "qcow2", str(before_pivot), str(top))
    assert "Images are identical" in same

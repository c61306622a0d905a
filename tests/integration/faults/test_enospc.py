"""A full file system under PYVIRT_ROOT (a small tmpfs the test mounts): define, image conversion,
clone and volume upload fail with an error that says the disk is full, and leave nothing torn: the
old definition intact, no partial file, no temporary file, the daemon serving on."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.store import is_temp_file
from tests.support.daemon import Daemon
from tests.support.guest import domain_xml, guest_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.root]
FULL = "No space left on device"


class Filler:
    """Takes the free space of a file system, and gives some back on demand."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "filler"

    def fill(self, leave: int = 0) -> None:
        chunk = b"\0" * (1 << 20)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, chunk[:size])
        finally:
            os.close(fd)
        if leave:
            os.truncate(self.path, max(0, self.path.stat().st_size - leave))

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def small_root() -> Iterator[tuple[Daemon, Filler]]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = Path(tempfile.mkdtemp(prefix="pvfull-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", str(root)], check=True)
    daemon = Daemon(root)
    try:
        daemon.start()
        yield daemon, Filler(root)
    finally:
        daemon.cleanup()
        subprocess.run(["umount", "-l", str(root)], check=False)
        with contextlib.suppress(OSError):
            root.rmdir()


def temp_files(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if is_temp_file(f)]


def test_define_on_a_full_disk(small_root: tuple[Daemon, Filler], tmp_path: Path) -> None:
    daemon, filler = small_root
    (tmp_path / "v1.xml").write_text(domain_xml("full1", memory_mib=64))
    daemon.cli("define", str(tmp_path / "v1.xml")).ok()
    config = daemon.config_dir / "full1.xml"
    before = config.read_text()
    filler.fill()
    (tmp_path / "v2.xml").write_text(domain_xml("full1", memory_mib=96))
    redefine = daemon.cli("define", str(tmp_path / "v2.xml"))
    (tmp_path / "new.xml").write_text(domain_xml("full2", memory_mib=64))
    new = daemon.cli("define", str(tmp_path / "new.xml"))
    for result in (redefine, new):
        assert result.rc == 1 and result.err.startswith("error: ") and FULL in result.err, result.err
        assert "internal error" not in result.err
    assert config.read_text() == before and load_domain_xml(before).memory_kib == 64 * 1024
    assert not (daemon.config_dir / "full2.xml").exists()
    assert "full2" not in daemon.cli("list", "--all").ok().out
    assert "<memory unit='KiB'>65536</memory>" in daemon.cli("dumpxml", "full1").ok().out
    assert not temp_files(daemon.root)
    filler.free()
    daemon.cli("define", str(tmp_path / "new.xml")).ok()  # with space again, it works


def test_convert_on_a_full_disk(small_root: tuple[Daemon, Filler], tmp_path: Path) -> None:
    daemon, filler = small_root
    source = tmp_path / "src.raw"
    with open(source, "wb") as fh:
        for i in range(24):
            fh.write(bytes([i + 1]) * (1 << 20))
    target = daemon.pool_dir / "out.qcow2"
    filler.fill(leave=8 << 20)
    result = daemon.cli("img", "convert", "-O", "qcow2", str(source), str(target))
    assert result.rc == 1 and "error: " in result.err and FULL in result.err, result.err
    assert not target.exists(), "a partial image was left behind"
    assert not temp_files(daemon.root)


def test_volume_upload_and_clone_on_a_full_disk(small_root: tuple[Daemon, Filler], tmp_path: Path) -> None:
    daemon, filler = small_root
    images = daemon.pool_dir
    daemon.cli("pool-start", "default")  # if the daemon has not started it yet
    daemon.cli("vol-create-as", "default", "up.raw", "24M", "--format", "raw", "--allocation", "0").ok()
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(24 << 20))
    assert (images / "up.raw").stat().st_blocks == 0, "the volume must be sparse for the upload to need space"
    filler.fill(leave=4 << 20)
    upload = daemon.cli("vol-upload", "--pool", "default", "up.raw", str(payload))
    assert upload.rc == 1 and upload.err.startswith("error: ") and FULL in upload.err, upload.err
    assert "internal error" not in upload.err
    assert daemon.cli("vol-info", "--pool", "default", "up.raw").ok()
    filler.free()

    # A clone whose disk copy runs out of space: no clone defined, no partial disk.
    art = guest_artifacts()
    disk = images / "orig.qcow2"
    subprocess.run(["cp", str(art.disk), str(disk)], check=True)
    (tmp_path / "orig.xml").write_text(domain_xml("orig", disk=disk, memory_mib=64))
    daemon.cli("define", str(tmp_path / "orig.xml")).ok()
    daemon.cli("pool-refresh", "default").ok()
    filler.fill(leave=1 << 20)
    clone = daemon.cli("clone", "--original", "orig", "--name", "copy1")
    assert clone.rc == 1 and clone.err.startswith("error: ") and FULL in clone.err, daemon.log.read_text()[
        -3000:
    ]
    assert "copy1" not in daemon.cli("list", "--all").ok().out
    assert not (daemon.config_dir / "copy1.xml").exists()
    assert sorted(p.name for p in images.iterdir() if p.name != "filler") == ["orig.qcow2", "up.raw"]
    assert not temp_files(daemon.root)

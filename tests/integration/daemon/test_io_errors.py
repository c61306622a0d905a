"""A real disk I/O error on a real guest under TCG: the disk's image lives on a small tmpfs the test
mounts; the guest writes until the host file system is full, QEMU pauses it (a disk's write-error
policy stops on ENOSPC by default, as libvirt leaves it): ``domstate --reason`` says
``paused (I/O error)``, domblkerror ``vda: no space`` and the event stream io-error, io-error-reason
and the suspend. Once space is freed, a resume lets the guest's write finish.

Every expected line is what virsh 9.0 printed for the same guest, disk and writes under libvirtd 9.0
(run side by side by hand: domstate, domblkerror before and after the resume, the four events)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import events
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]

MIB = 1 << 20


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """An 8 MiB tmpfs, mounted for the test (unmounted after)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = Path(tempfile.mkdtemp(prefix="pvioerr-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def test_a_full_host_file_system_pauses_the_guest_until_space_is_freed(
    daemon: Daemon, tmp_path: Path, small_fs: Path
) -> None:
    image, ballast = small_fs / "data.raw", small_fs / "ballast"
    with open(image, "wb") as fh:
        fh.truncate(32 * MIB)  # sparse: each block the guest writes takes host space
    with open(ballast, "wb") as fh:
        fh.write(b"\x01" * 6 * MIB)  # about 2 MiB left for the guest
    disk = (
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{image}'/><target dev='vda' bus='virtio'/></disk>"
    )
    xml = tmp_path / "ioe.xml"
    xml.write_text(domain_xml("ioe", extra_devices=disk))
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", "ioe").ok()
    console = Console(daemon, "ioe")
    console.expect("pyvirt-guest: ready")
    assert daemon.cli("domblkerror", "ioe").ok().out == "No errors found\n\n"

    # virsh's event listener, shown listening before the error.
    watcher = events.watch(daemon, "--domain", "ioe", "--all")
    seen = events.listening(daemon, watcher, "ioe", tmp_path)
    try:
        # 4 MiB where 2 fit: the write stops the guest, the shell waits for it.
        console.send(
            "dd if=/dev/zero bs=1M count=4 2>/dev/null | tr '\\000' '\\125' | "
            "dd of=/dev/vda bs=1M conv=fsync 2>&1; echo write-rc=$?\n"
        )
        daemon.wait_state("ioe", "paused", timeout=300)
        assert daemon.cli("domstate", "--reason", "ioe").ok().out == "paused (I/O error)\n\n"
        assert daemon.cli("domblkerror", "ioe").ok().out == "vda: no space\n\n"
        seen += events.read_until(watcher, b"Suspended I/O Error\n")
        assert daemon.cli("domstate", "--reason", "ioe").ok().out == "paused (I/O error)\n\n"

        # Space freed: resumed, QEMU retries the failed writes, the guest's dd ends well.
        ballast.unlink()
        daemon.cli("resume", "ioe").ok()
        assert console.expect(r"write-rc=(\d+)").group(1) == b"0"
        assert console.run("echo done") == "done"
        assert daemon.cli("domstate", "--reason", "ioe").ok().out == "running (unpaused)\n\n"
        # QEMU keeps the device's I/O status until the device is reset (its ``cont`` resets only
        # named backends, not a -blockdev disk's), and libvirt 9.0 shows it as it is: so do we.
        assert daemon.cli("domblkerror", "ioe").ok().out == "vda: no space\n\n"
        seen += events.read_until(watcher, b"Resumed Unpaused\n")
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=30)
    lines = seen.decode().splitlines()
    error_at = next(i for i, line in enumerate(lines) if "'io-error'" in line)
    assert lines[error_at] == f"event 'io-error' for domain 'ioe': {image} (virtio-disk0) pause", lines
    assert lines[error_at + 1] == (
        f"event 'io-error-reason' for domain 'ioe': {image} (virtio-disk0) pause due to enospc"
    ), lines
    suspended = lines.index("event 'lifecycle' for domain 'ioe': Suspended I/O Error")
    assert suspended > error_at, lines
    assert "event 'lifecycle' for domain 'ioe': Resumed Unpaused" in lines[suspended:], lines
    console.close()
    daemon.cli("destroy", "ioe").ok()
    with open(image, "rb") as fh:
        fh.seek(0)
        assert fh.read(4 * MIB) == b"\x55" * 4 * MIB  # all four MiB, the retried ones too

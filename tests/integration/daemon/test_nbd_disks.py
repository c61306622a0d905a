"""``<disk type='network'>`` with protocol NBD, on a real guest under TCG: the root disk served by qemu-nbd on
a UNIX socket, a data disk on a TCP port of the loopback, both as libvirt writes them."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.qemu.graphics import free_port
from tests.support.daemon import Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow
MARKER = b"pyvirt-nbd-data-disk"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = copy_disk(guest_artifacts(), tmp_path / "root.qcow2")
    data = tmp_path / "data.raw"
    data.write_bytes(MARKER.ljust(1024 * 1024, b"\0"))
    # QEMU may run as a user of its own: the socket sits where that user can reach it, as libvirt needs too
    sock_dir = Path(tempfile.mkdtemp(prefix="pv-nbd-", dir="/tmp"))
    sock_dir.chmod(0o755)
    sock, port = sock_dir / "root.sock", free_port("127.0.0.1", 10809)
    procs = [
        subprocess.Popen(
            ["qemu-nbd", "-f", "qcow2", "-k", str(sock), "-x", "root", "--persistent", str(root)]
        ),
        subprocess.Popen(
            [
                "qemu-nbd",
                "-f",
                "raw",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "-x",
                "data",
                "-r",
                "--persistent",
                str(data),
            ]
        ),
    ]
    try:
        for _ in range(100):  # until both listen
            if (
                sock.exists()
                and subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
            ):
                break
            time.sleep(0.1)
        sock.chmod(0o666)
        yield sock, port
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_root_on_nbd_unix_socket_and_data_on_nbd_tcp(
    daemon: Daemon, tmp_path: Path, servers: tuple[Path, int]
) -> None:
    sock, port = servers
    text = domain_xml("nbd1", disk=tmp_path / "placeholder.qcow2")
    disks = (
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        f"<source protocol='nbd' name='root'><host transport='unix' socket='{sock}'/></source>"
        "<target dev='vda' bus='virtio'/></disk>"
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        f"<source protocol='nbd' name='data'><host name='127.0.0.1' port='{port}'/></source>"
        "<target dev='vdb' bus='virtio'/><readonly/></disk>"
    )
    text, count = re.subn(r"<disk .*?</disk>", disks, text, count=1, flags=re.S)
    assert count == 1
    path = tmp_path / "nbd1.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()
    assert f"<host transport='unix' socket='{sock}'/>" in daemon.cli("dumpxml", "nbd1").ok().out
    daemon.cli("start", "nbd1").ok()
    console = Console(daemon, "nbd1")
    console.expect("pyvirt-guest: ready")
    assert "/dev/vda" in console.run("grep ' / ' /proc/mounts")
    assert MARKER.decode() in console.run("head -c 20 /dev/vdb; echo")
    console.close()
    daemon.cli("destroy", "nbd1").ok()

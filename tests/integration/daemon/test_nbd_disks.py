"""``<disk type='network'>`` with protocol NBD, on a real guest under TCG: the root disk served by qemu-nbd on
a UNIX socket, a data disk on a TCP port of the loopback, both as libvirt writes them; and a UEFI
domain whose NVRAM (``<nvram type='network'>``) qemu-nbd serves."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.qemu.graphics import free_port
from tests.support.daemon import Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts
from tests.support.nbd import OVMF_VARS, nvram_domain_xml, pflash1_node, qemu_nbd

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
    served = ["-f", "raw", "-b", "127.0.0.1", "-p", str(port), "-x", "data", "-r", "--persistent", str(data)]
    try:
        with (
            qemu_nbd("-f", "qcow2", "-k", str(sock), "-x", "root", "--persistent", str(root), sock=sock),
            qemu_nbd(*served, port=port),
        ):
            yield sock, port
    finally:
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
    daemon.define(text)
    assert f"<host transport='unix' socket='{sock}'/>" in daemon.cli("dumpxml", "nbd1").ok().out
    daemon.cli("start", "nbd1").ok()
    console = Console(daemon, "nbd1")
    console.expect("pyvirt-guest: ready")
    assert "/dev/vda" in console.run("grep ' / ' /proc/mounts")
    assert MARKER.decode() in console.run("head -c 20 /dev/vdb; echo")
    console.close()
    daemon.cli("destroy", "nbd1").ok()


def test_nvram_served_over_nbd(daemon: Daemon, tmp_path: Path) -> None:
    """QEMU opens the NVRAM from the NBD server (started paused: the firmware need not run)."""
    sock_dir = Path(tempfile.mkdtemp(prefix="pv-nbd-", dir="/tmp"))
    sock_dir.chmod(0o755)
    vars_copy, sock = tmp_path / "vars.fd", sock_dir / "vars.sock"
    shutil.copyfile(OVMF_VARS, vars_copy)
    try:
        with qemu_nbd("-f", "raw", "-k", str(sock), "-x", "vars", "--persistent", str(vars_copy), sock=sock):
            path = tmp_path / "nvnbd.xml"
            source = f"<source protocol='nbd' name='vars'><host transport='unix' socket='{sock}'/></source>"
            path.write_text(nvram_domain_xml("nvnbd", source))
            daemon.cli("define", str(path)).ok()
            assert "<nvram type='network'>" in daemon.cli("dumpxml", "nvnbd").ok().out
            daemon.cli("start", "--paused", "nvnbd").ok()
            flash = pflash1_node(daemon, "nvnbd")
            assert flash["drv"] == "nbd" and "vars" in str(flash["file"]), flash
            assert not list(Path(daemon.root).rglob("nvnbd_VARS.fd"))  # no NVRAM file of its own
            daemon.cli("destroy", "nvnbd").ok()
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)

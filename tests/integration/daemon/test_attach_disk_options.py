"""attach-disk's options on a real TCG guest through a real pyvirtd: each one seen where it acts (the
guest's view of the disk, QEMU's own reply to qemu-monitor-command, the live XML): the driver, cache,
io and iothread, serial, alias, PCI address with multifunction, read-only and shareable modes, a SCSI
cdrom at a drive address with a World Wide Name (--wwn), a block device (--sourcetype block) and NBD
exports over a UNIX socket and TCP on loopback (--source-protocol, --source-host-*)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
MIB = 1 << 20


def _qmp(d: Daemon, command: str, **args: Any) -> Any:
    text = json.dumps({"execute": command, "arguments": args} if args else {"execute": command})
    return json.loads(d.cli("qemu-monitor-command", "ado", text).ok().out)["return"]


def _live_disk(d: Daemon, target: str) -> str:
    live = d.cli("dumpxml", "ado").ok().out
    found = [part for part in live.split("<disk")[1:] if f"<target dev='{target}'" in part]
    assert found, live
    return found[0].split("</disk>")[0]


def _marked(path: Path, marker: bytes, size: int = 16 * MIB) -> Path:
    with open(path, "wb") as fh:
        fh.write(marker)
        fh.truncate(size)
    return path


def _guest_reads(console: Console, dev: str, marker: bytes) -> None:
    out = console.run(f"dd if=/dev/{dev} bs={len(marker)} count=1 2>/dev/null")
    assert out == marker.decode(), out


def _detach(d: Daemon, console: Console, target: str, serial: str) -> None:
    d.cli("detach-disk", "ado", target).ok()
    console.virtio_disk(serial, present=False)


@contextmanager
def _nbd(*args: str) -> Iterator[None]:
    server = subprocess.Popen(["qemu-nbd", "--persistent", "--shared=4", *args])
    try:
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_listening(connect: Any) -> None:
    for _ in range(200):
        try:
            connect().close()
            return
        except OSError:
            subprocess.run(["sleep", "0.05"], check=True)
    raise AssertionError("qemu-nbd did not start listening")


def test_attach_disk_options_take_effect_in_the_guest(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    xml = domain_xml("ado").replace("</vcpu>", "</vcpu><iothreads>1</iothreads>", 1)
    (tmp_path / "ado.xml").write_text(xml)
    d.cli("define", str(tmp_path / "ado.xml")).ok()
    d.cli("start", "ado").ok()
    console = Console(d, "ado")
    console.expect(r"pyvirt-guest: ready")

    # --driver --subdriver --cache --io --iothread --serial --alias --address --multifunction
    # --mode readonly --sourcetype file --targetbus --type disk.
    data = _marked(tmp_path / "data.raw", b"DATAMARK")
    d.cli(
        "attach-disk", "ado", str(data), "vdb", "--driver", "qemu", "--subdriver", "raw", "--cache", "none",
        "--io", "native", "--iothread", "1", "--serial", "OPTS1", "--alias", "ua-data",
        "--address", "pci:0000.00.0a.0", "--multifunction", "--mode", "readonly", "--sourcetype", "file",
        "--targetbus", "virtio", "--type", "disk",
    ).ok()  # fmt: skip
    dev = console.virtio_disk("OPTS1")
    _guest_reads(console, dev, b"DATAMARK")
    assert console.run(f"cat /sys/block/{dev}/ro") == "1"
    assert console.run("ls /sys/bus/pci/devices").split().count("0000:00:0a.0") == 1
    assert console.run("cat /sys/bus/pci/devices/0000:00:0a.0/device") == "0x1001"  # virtio-blk
    live = _live_disk(d, "vdb")
    for attr in ("name='qemu'", "type='raw'", "cache='none'", "io='native'", "iothread='1'"):
        assert re.search(rf"<driver [^>]*{attr}", live), (attr, live)
    assert "<readonly/>" in live and "<alias name='ua-data'/>" in live, live
    assert re.search(r"<address type='pci' [^>]*slot='0x0a' function='0x0' multifunction='on'", live), live
    block = next(
        b for b in _qmp(d, "query-block") if b.get("qdev", "").startswith("/machine/peripheral/ua-data/")
    )
    assert block["inserted"]["ro"] is True and block["inserted"]["cache"]["direct"] is True, block
    assert block["inserted"]["file"] == str(data) or block["inserted"]["file"].startswith("/dev/fdset/")
    iothread = _qmp(d, "qom-get", path="/machine/peripheral/ua-data", property="iothread")
    assert iothread.endswith("iothread1"), iothread
    multi = _qmp(d, "qom-get", path="/machine/peripheral/ua-data", property="multifunction")
    assert multi is True, multi
    other = _marked(tmp_path / "other.raw", b"OTHER")
    result = d.cli("attach-disk", "ado", str(other), "vdz", "--wwn", "5000c50015ea71ad")
    assert result.rc == 1 and "wwn of disk 'vdz' (bus 'virtio')" in result.err, result
    _detach(d, console, "vdb", "OPTS1")

    # --mode shareable: QEMU lets another writer share the image (share-rw).
    shared = _marked(tmp_path / "shared.raw", b"SHAREMRK")
    d.cli("attach-disk", "ado", str(shared), "vdc", "--mode", "shareable", "--serial", "OPTS2").ok()
    dev = console.virtio_disk("OPTS2")
    assert console.run(f"cat /sys/block/{dev}/ro") == "0"
    live = _live_disk(d, "vdc")
    assert "<shareable/>" in live, live
    alias = re.search(r"<alias name='([^']+)'/>", live)
    assert alias is not None, live
    share = _qmp(d, "qom-get", path=f"/machine/peripheral/{alias.group(1)}", property="share-rw")
    assert share is True, share
    _detach(d, console, "vdc", "OPTS2")

    # --type cdrom on SCSI at --address scsi:0.0.3 (controller.bus.unit: LUN 3 of target 0, as
    # libvirt places it on a virtio-scsi controller, attached first: libvirt's default for a disk that
    # brings none is lsilogic, which the test guest has no driver for); --wwn: its World Wide Name.
    controller = tmp_path / "scsi.xml"
    controller.write_text("<controller type='scsi' index='0' model='virtio-scsi'/>")
    d.cli("attach-device", "ado", str(controller)).ok()
    iso = _marked(tmp_path / "disc.iso", b"CDROMMRK", 2048 * 64)
    d.cli(
        "attach-disk", "ado", str(iso), "sdb", "--type", "cdrom", "--targetbus", "scsi",
        "--address", "scsi:0.0.3", "--wwn", "0x5000c50015ea71ad",
    ).ok()  # fmt: skip
    console.run(
        "for i in $(seq 120); do ls /sys/class/scsi_device | grep -q ':0:0:3$' && break; sleep 0.5; done", 90
    )
    addresses = console.run("ls /sys/class/scsi_device").split()
    assert any(a.endswith(":0:0:3") for a in addresses), addresses
    (scsi,) = [a for a in addresses if a.endswith(":0:0:3")]
    assert console.run(f"cat /sys/class/scsi_device/{scsi}/device/type") == "5"  # a CD-ROM
    cd = console.run(f"ls /sys/class/scsi_device/{scsi}/device/block")
    _guest_reads(console, cd, b"CDROMMRK")
    live = _live_disk(d, "sdb")
    assert "device='cdrom'" in live and re.search(r"<address type='drive' [^>]*unit='3'", live), live
    assert "<wwn>0x5000c50015ea71ad</wwn>" in live, live
    alias = re.search(r"<alias name='([^']+)'/>", live)
    assert alias is not None, live
    wwn = _qmp(d, "qom-get", path=f"/machine/peripheral/{alias.group(1)}", property="wwn")
    assert wwn == 0x5000C50015EA71AD, wwn
    d.cli("detach-disk", "ado", "sdb").ok()
    assert "sdb" not in d.cli("domblklist", "ado").ok().out

    # --sourcetype block: a loop device this test makes (root only).
    losetup = shutil.which("losetup")
    if os.geteuid() == 0 and losetup:
        backing = _marked(tmp_path / "loop.raw", b"LOOPMARK")
        loop = subprocess.run(
            [losetup, "--find", "--show", str(backing)], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            d.cli("attach-disk", "ado", loop, "vdd", "--sourcetype", "block", "--serial", "OPTS4").ok()
            _guest_reads(console, console.virtio_disk("OPTS4"), b"LOOPMARK")
            live = _live_disk(d, "vdd")
            assert live.startswith(" type='block'") and f"<source dev='{loop}'/>" in live, live
            _detach(d, console, "vdd", "OPTS4")
        finally:
            subprocess.run([losetup, "-d", loop], check=True)

    # --source-protocol nbd: an export on a UNIX socket (--source-host-transport/-socket), then on
    # TCP at 127.0.0.1 (--source-host-name HOST:PORT), served by qemu-nbd.
    if shutil.which("qemu-nbd") is None:
        pytest.skip("qemu-nbd (qemu-utils) is not installed: the NBD server for --source-protocol")
    export = _marked(tmp_path / "export.raw", b"NBDMARK1")
    sock = tmp_path / "nbd.sock"
    with _nbd("--socket", str(sock), "--format", "raw", "--export-name", "exp", str(export)):
        _wait_listening(lambda: _unix(sock))
        os.chmod(sock.parent, 0o755)
        os.chmod(sock, 0o777)  # QEMU runs as its own user
        d.cli(
            "attach-disk", "ado", "exp", "vde", "--source-protocol", "nbd", "--source-host-transport", "unix",
            "--source-host-socket", str(sock), "--subdriver", "raw", "--serial", "OPTS5",
        ).ok()  # fmt: skip
        _guest_reads(console, console.virtio_disk("OPTS5"), b"NBDMARK1")
        live = _live_disk(d, "vde")
        assert live.startswith(" type='network'") and "protocol='nbd' name='exp'" in live, live
        assert f"<host transport='unix' socket='{sock}'/>" in live, live
        _detach(d, console, "vde", "OPTS5")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tcp = _marked(tmp_path / "tcp.raw", b"NBDMARK2")
    with _nbd(
        "--bind", "127.0.0.1", "--port", str(port), "--format", "raw", "--export-name", "exp2", str(tcp)
    ):
        _wait_listening(lambda: socket.create_connection(("127.0.0.1", port)))
        d.cli(
            "attach-disk", "ado", "exp2", "vdf", "--source-protocol", "nbd",
            "--source-host-name", f"127.0.0.1:{port}", "--subdriver", "raw", "--serial", "OPTS6",
        ).ok()  # fmt: skip
        _guest_reads(console, console.virtio_disk("OPTS6"), b"NBDMARK2")
        live = _live_disk(d, "vdf")
        assert f"<host name='127.0.0.1' port='{port}'/>" in live, live
        _detach(d, console, "vdf", "OPTS6")
    console.close()
    d.cli("destroy", "ado").ok()


def _unix(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(path))
    return conn

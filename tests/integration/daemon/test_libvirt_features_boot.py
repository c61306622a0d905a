"""Features libvirt 9.0 writes, booted for real under TCG: a virtio disk with packed rings and two
queues (the guest sees the packed-ring feature bit and the disk's serial), a serial port on a TCP
socket the test reads the guest's words from, audio settings, the builtin RNG and a generation ID."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from pyvirt.qemu.graphics import free_port
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
VIRTIO_F_RING_PACKED = 34  # the feature bit a virtio device offers with packed='on'


def test_virtio_options_tcp_serial_and_audio_in_a_running_guest(daemon: Daemon, tmp_path: Path) -> None:
    data = tmp_path / "data.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(data), "8M"], check=True)
    port = free_port("127.0.0.1", 20000)
    extra = (
        "<disk type='file' device='disk'>"
        "<driver name='qemu' type='raw' packed='on' queues='2' error_policy='stop'/>"
        f"<source file='{data}'/><target dev='vda' bus='virtio'/><serial>pyvirt-packed</serial></disk>"
        f"<serial type='tcp'><source mode='bind' host='127.0.0.1' service='{port}'/>"
        "<protocol type='raw'/><target port='1'/></serial>"
        "<audio id='1' type='none' timerPeriod='20'><output mixingEngine='yes' fixedSettings='yes'>"
        "<settings frequency='22050' channels='1' format='s16'/></output></audio>"
        "<sound model='ac97'/>"
        "<rng model='virtio'><backend model='builtin'/></rng>"
    )
    text = domain_xml("feat1", vcpus=2, extra_devices=extra).replace(
        "<name>feat1</name>", "<name>feat1</name><genid>0d2f9a6e-4c1b-4e8a-9f3d-5b6a7c8d9e0f</genid>"
    )
    path = tmp_path / "feat1.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()
    defined = daemon.cli("dumpxml", "feat1").ok().out
    assert "packed='on'" in defined and "<genid>0d2f9a6e-4c1b-4e8a-9f3d-5b6a7c8d9e0f</genid>" in defined
    daemon.cli("start", "feat1").ok()
    console = Console(daemon, "feat1")
    console.expect("pyvirt-guest: ready")
    assert console.run("cat /sys/block/vda/serial") == "pyvirt-packed"
    features = console.run("cat /sys/block/vda/device/features")
    assert features[VIRTIO_F_RING_PACKED] == "1", features
    assert console.run("ls /sys/block/vda/mq").split() == ["0", "1"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        # QEMU accepts the connection on its own time and drops what the port sends before: write again
        # until the words arrive.
        conn.settimeout(5)
        received = b""
        for _attempt in range(24):
            console.run("echo pyvirt-over-tcp > /dev/ttyS1")
            try:
                received += conn.recv(4096)
            except TimeoutError:
                continue
            if b"pyvirt-over-tcp" in received:
                break
        assert b"pyvirt-over-tcp" in received, received
    log = (daemon.root / "var/log/pyvirt/qemu/feat1.log").read_text()
    assert "out.frequency=22050" in log and "vmgenid,guid=0d2f9a6e-4c1b-4e8a-9f3d-5b6a7c8d9e0f" in log
    assert '"qom-type":"rng-builtin"' in log
    console.close()
    daemon.cli("destroy", "feat1").ok()

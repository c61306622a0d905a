"""libvirt 9.0's XML accepted for issue 17, in a running guest under TCG: a cdrom whose missing source
has startupPolicy='optional' (the domain starts with the drive empty, its configuration keeps the
source), a virtio disk with an <acpi index> the guest's kernel reads, I/O thread pools and the default
I/O thread's, and a balloon with free page reporting (the guest sees the feature)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
VIRTIO_BALLOON_F_REPORTING = 5


def test_startup_policy_acpi_index_pools_and_page_reporting(daemon: Daemon, tmp_path: Path) -> None:
    data = tmp_path / "data.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(data), "8M"], check=True)
    gone = tmp_path / "gone.iso"
    extra = (
        "<disk type='file' device='disk'><driver name='qemu' type='raw' iothread='2'/>"
        f"<source file='{data}'/><target dev='vdb' bus='virtio'/><acpi index='42'/></disk>"
        f"<disk type='file' device='cdrom'><source file='{gone}' startupPolicy='optional'/>"
        "<target dev='hdc' bus='ide'/><readonly/></disk>"
    )
    text = domain_xml("compat1", extra_devices=extra, balloon=True).replace(
        "<os>",
        "<iothreads>1</iothreads><iothreadids><iothread id='2' thread_pool_min='1' thread_pool_max='4'/>"
        "</iothreadids><defaultiothread thread_pool_max='8'/><os>",
    )
    text = text.replace('<memballoon model="virtio"', '<memballoon model="virtio" freePageReporting="on"')
    path = tmp_path / "compat1.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()
    daemon.cli("start", "compat1").ok()
    live = daemon.cli("dumpxml", "compat1").ok().out
    assert "<target dev='hdc'" in live and str(gone) not in live  # the drive is there, empty
    assert str(gone) in daemon.cli("dumpxml", "--inactive", "compat1").ok().out
    console = Console(daemon, "compat1")
    console.expect("pyvirt-guest: ready")
    # the guest names the disk by its order (no root disk here: vda); the index is on its PCI device
    indexes = console.run("cat /sys/bus/pci/devices/*/acpi_index 2>/dev/null || echo none")
    assert indexes == "42", indexes
    features = console.run("cat /sys/bus/virtio/drivers/virtio_balloon/virtio*/features")
    assert features[VIRTIO_BALLOON_F_REPORTING] == "1", features
    daemon.cli("destroy", "compat1").ok()

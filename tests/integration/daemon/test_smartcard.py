"""The emulated smartcard for real: ``<smartcard mode='host-certificates'>`` with three certificates of an
NSS database that certutil makes in the test's scratch directory is QEMU's ``ccid-card-emulated``
(libcacard) in a ``usb-ccid`` reader, which a real guest under TCG sees on its USB bus. QEMU runs as
its own user under Landlock: the daemon hands it the database to read for as long as it runs.

The test guest loads no USB driver at boot: the guest kernel's own USB modules (the host's
/lib/modules of the same kernel version) reach it as a tar archive on a raw disk, and it loads them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml, guest_dir

pytestmark = pytest.mark.slow
# the guest kernel's USB core and UHCI driver (the i440FX's piix3-uhci), dependencies first
USB_MODULES = (
    "kernel/drivers/usb/common/usb-common.ko",
    "kernel/drivers/usb/core/usbcore.ko",
    "kernel/drivers/usb/host/uhci-hcd.ko",
)
CCID_PRODUCT = "QEMU USB CCID"  # usb-ccid's product string


def guest_kernel_modules() -> Path:
    manifest = json.loads((guest_dir() / "manifest.json").read_text())
    modules = Path("/lib/modules") / manifest["kernel_version"]
    missing = [m for m in USB_MODULES if not (modules / m).exists()]
    if missing:
        pytest.skip(f"the guest kernel's USB modules are not on this host ({modules}: {', '.join(missing)})")
    return modules


def modules_disk(path: Path, modules: Path) -> None:
    """A raw disk that is a tar archive of the modules (the guest untars the block device)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for rel in USB_MODULES:
            tar.add(modules / rel, arcname=os.path.basename(rel))
    data = buffer.getvalue()
    path.write_bytes(data.ljust(-(-len(data) // 1048576) * 1048576, b"\0"))


def nss_database(directory: Path) -> None:
    """An NSS database with three self-signed certificates (and their keys): cert1, cert2, cert3."""
    if shutil.which("certutil") is None:
        pytest.skip("certutil (Debian's libnss3-tools) is not installed")
    directory.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
    noise = directory.parent / "noise"
    noise.write_bytes(os.urandom(64))
    for n in (1, 2, 3):
        subprocess.run(
            [
                *("certutil", "-S", "-d", f"sql:{directory}", "-n", f"cert{n}", "-s", f"CN=pyvirt-card-{n}"),
                *("-x", "-t", "CT,C,C", "-k", "rsa", "-g", "2048", "-z", str(noise)),
            ],
            check=True,
            capture_output=True,
        )
    noise.unlink()


def test_emulated_card_seen_on_the_guests_usb_bus(daemon: Daemon, tmp_path: Path) -> None:
    modules = guest_kernel_modules()
    db = tmp_path / "nssdb"
    nss_database(db)
    disk = tmp_path / "usbmods.raw"
    modules_disk(disk, modules)
    card = (
        "<smartcard mode='host-certificates'><certificate>cert1</certificate><certificate>cert2</certificate>"
        f"<certificate>cert3</certificate><database>{db}</database></smartcard>"
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{disk}'/>"
        "<target dev='vdb' bus='virtio'/><serial>usbmods</serial><readonly/></disk>"
    )
    path = tmp_path / "card1.xml"
    path.write_text(domain_xml("card1", extra_devices=card))
    daemon.cli("define", str(path)).ok()
    before = {f.name: (f.stat().st_uid, f.stat().st_gid, f.stat().st_mode) for f in db.iterdir()}
    daemon.cli("start", "card1").ok()
    console = Console(daemon, "card1")
    console.expect("pyvirt-guest: ready")
    dev = console.virtio_disk("usbmods")
    console.run(f"mkdir -p /tmp/usb && tar -xf /dev/{dev} -C /tmp/usb")
    for rel in USB_MODULES:
        console.run(f"insmod /tmp/usb/{os.path.basename(rel)}")
    find = "cat /sys/bus/usb/devices/*/product 2>/dev/null"
    products = console.run(
        f"for i in $(seq 60); do {find} | grep -q '{CCID_PRODUCT}' && break; sleep 0.5; done; {find}", 90
    )
    assert CCID_PRODUCT in products, products
    console.close()
    daemon.cli("destroy", "card1").ok()
    # the database was QEMU's to read while it ran (certutil makes its files 0600): given back as it was
    assert {f.name: (f.stat().st_uid, f.stat().st_gid, f.stat().st_mode) for f in db.iterdir()} == before

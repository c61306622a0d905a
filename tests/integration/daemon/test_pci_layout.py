"""The PCI layout pyvirt assigns at define (pyvirt.conf.pci_assign), seen from inside a real q35 TCG guest.

A q35 domain whose XML gives no address: define writes libvirt's layout (a pcie-root-port per PCIe device
and one spare), and in the guest each virtio device sits behind the root port its address names
(``/sys/bus/pci``: its parent is a QEMU ``pcie-root-port``, 1b36:000c, at that port's slot and function),
as a modern-only virtio device (a PCIe port makes them non-transitional). A disk plugged into the
running guest takes the spare port, works, and unplugs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
# virtio's modern PCI device ids (0x1040 + the virtio device type)
VIRTIO_IDS = {
    "0x1041": "interface",
    "0x1042": "disk",
    "0x1043": "controller",
    "0x1044": "rng",
    "0x1045": "memballoon",
}
EXTRA = """
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{data}'/>
  <target dev='vdb' bus='virtio'/><serial>DATA1</serial></disk>
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
"""


def _addr(el: ET.Element) -> tuple[int, int, int]:
    a = el.find("address")
    assert a is not None and a.get("type") == "pci", ET.tostring(el, encoding="unicode")
    return int(a.get("bus", "0"), 0), int(a.get("slot", "0"), 0), int(a.get("function", "0"), 0)


def _ports(root: ET.Element) -> dict[int, tuple[int, int, int]]:
    """Root port index → its address on pcie.0."""
    return {
        int(c.get("index", "-1")): _addr(c)
        for c in root.iter("controller")
        if c.get("type") == "pci" and c.get("model") == "pcie-root-port"
    }


def _guest_pci(console: Console) -> list[tuple[str, str, str]]:
    """(device id, its parent's vendor:device, the parent's slot.function on bus 0) of each virtio
    device in the guest."""
    script = (
        "for d in /sys/bus/pci/devices/*; do [ $(cat $d/vendor) = 0x1af4 ] || continue; "
        "p=$(dirname $(readlink -f $d)); "
        'echo "$(cat $d/device) $(cat $p/vendor 2>/dev/null):$(cat $p/device 2>/dev/null) ${p##*/}"; done'
    )
    out = []
    for line in console.run(script).splitlines():
        device, parent, where = line.split()
        out.append((device, parent, where))
    return out


def test_q35_devices_sit_behind_their_root_ports_and_a_disk_plugs_into_the_spare(
    daemon: Daemon, tmp_path: Path
) -> None:
    d = daemon
    data, extra = tmp_path / "data.raw", tmp_path / "extra.raw"
    for image in (data, extra):
        with open(image, "wb") as fh:
            fh.truncate(16 * 1024 * 1024)
    xml = domain_xml("pl1", nic_user=True, balloon=True, extra_devices=EXTRA.format(data=data))
    xml = re.sub(r"machine=(['\"])pc\1", "machine='q35'", xml)
    (tmp_path / "pl1.xml").write_text(xml)
    d.cli("define", str(tmp_path / "pl1.xml")).ok()

    config = ET.fromstring(d.cli("dumpxml", "--inactive", "pl1").ok().out)
    ports = _ports(config)
    # one port each for the NIC, the USB and virtio-serial controllers, the disk, the RNG, the balloon,
    # and one spare (libvirt's, for a definition that named no PCI controller)
    placed = {
        "interface": [_addr(e) for e in config.iter("interface")],
        "disk": [_addr(e) for e in config.iter("disk")],
        "rng": [_addr(e) for e in config.iter("rng")],
        "memballoon": [_addr(e) for e in config.iter("memballoon")],
        "controller": [_addr(c) for c in config.iter("controller") if c.get("type") == "virtio-serial"],
    }
    buses = [a[0] for addrs in placed.values() for a in addrs]
    usb = [_addr(c) for c in config.iter("controller") if c.get("type") == "usb"]
    assert sorted([*buses, usb[0][0]]) == sorted(ports)[:-1]  # each on a port of its own
    (spare,) = set(ports) - set(buses) - {usb[0][0]}
    everything = [a for addrs in placed.values() for a in addrs] + usb
    assert len(ports) == 7 and all(slot == 0 and function == 0 for _, slot, function in everything)
    # the same definition again changes nothing (the addresses are written, not recomputed)
    text = d.cli("dumpxml", "--inactive", "pl1").ok().out
    (tmp_path / "again.xml").write_text(text)
    d.cli("define", str(tmp_path / "again.xml")).ok()
    assert d.cli("dumpxml", "--inactive", "pl1").ok().out == text

    d.cli("start", "pl1").ok()
    console = Console(d, "pl1")
    console.expect(READY)
    seen = _guest_pci(console)
    expected = sorted(
        (kind, f"00:{ports[a[0]][1]:02x}.{ports[a[0]][2]}") for kind, addrs in placed.items() for a in addrs
    )
    got = sorted((VIRTIO_IDS.get(dev, dev), where[5:]) for dev, parent, where in seen)
    assert got == expected
    assert all(parent == "0x1b36:0x000c" for _, parent, _ in seen)  # QEMU's pcie-root-port

    # hot-plug: the disk takes the spare port, the guest writes to it, and it unplugs
    d.cli("attach-disk", "pl1", str(extra), "vdc", "--targetbus", "virtio", "--serial", "EXTRA1").ok()
    dev = console.virtio_disk("EXTRA1")
    live = ET.fromstring(d.cli("dumpxml", "pl1").ok().out)
    vdc = next(e for e in live.iter("disk") if e.find("target[@dev='vdc']") is not None)
    assert _addr(vdc)[0] == spare
    where = f"00:{ports[spare][1]:02x}.{ports[spare][2]}"
    assert ("0x1042", "0x1b36:0x000c", f"0000:{where}") in _guest_pci(console)
    console.run(f"dd if=/dev/zero of=/dev/{dev} bs=64k count=4 conv=fsync 2>/dev/null; echo done")
    d.cli("detach-disk", "pl1", "vdc").ok()
    console.virtio_disk("EXTRA1", present=False)
    assert "vdc" not in d.cli("domblklist", "pl1").ok().out
    d.cli("destroy", "pl1").ok()

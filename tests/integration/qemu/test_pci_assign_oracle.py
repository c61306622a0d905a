"""libvirt 9.0 as the oracle of the PCI addresses pyvirt assigns at define (pyvirt.conf.pci_assign).

Each case is a domain XML written here without addresses (or with some), defined in a private libvirtd
(tests/support/virtinstall.py) and read back with ``virsh dumpxml``; pyvirt's definition of the same XML
must give every device the same PCI address, and have the same PCI controllers (model, ``<model name>``,
``<target chassis port chassisNr>``, address). libvirt's own implicit devices that pyvirt does not write
into a definition (the root bus, q35's SATA controller, PS/2 inputs, the default video) are not
compared. The golden command lines of the libvirt-shaped cases (tests/data/domain) must place every
PCI device where ``virsh domxml-to-native`` places it. Without libvirt here the tests are skipped;
tests/unit/conf/test_pci_assign.py checks the same rules without it.
"""

from __future__ import annotations

import collections
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.qemu import keyval
from tests.integration.qemu.test_libvirt_oracle import CASES as GOLDEN_CASES
from tests.integration.qemu.test_libvirt_oracle import HOST_DEVICES
from tests.support.virtinstall import Oracle
from tests.unit.qemu.test_command import DATA_ROOT, argv_for

Layout = dict[tuple[str, str], dict[str, object]]
# Devices libvirt adds to a definition that pyvirt leaves to the command line or to the machine.
_LIBVIRT_ONLY = {
    ("controller", "pci0pcie-root"),
    ("controller", "pci0pci-root"),
    ("controller", "sata0"),
    ("controller", "ide0"),
    ("controller", "fdc0"),
}


def layout(xml: str) -> Layout:
    """(element, its type and index or its position) → its PCI address and, for PCI controllers, model,
    model name and target."""
    out: Layout = {}
    seen: collections.Counter[str] = collections.Counter()
    devices = ET.fromstring(xml).find("devices")
    assert devices is not None
    for dev in devices:
        if dev.tag == "controller":
            key = (dev.tag, f"{dev.get('type')}{dev.get('index')}{dev.get('model') or ''}")
        else:
            key = (dev.tag, str(seen[dev.tag]))
            seen[dev.tag] += 1
        entry: dict[str, object] = {}
        addr = dev.find("address")
        if addr is not None and addr.get("type") == "pci":
            entry["address"] = tuple(int(addr.get(k, "0"), 0) for k in ("bus", "slot", "function"))
            entry["multifunction"] = addr.get("multifunction", "off")
        if dev.tag == "controller" and dev.get("type") == "pci":
            entry["model"] = dev.get("model")
            name = dev.find("model")
            entry["name"] = None if name is None else name.get("name")
            target = dev.find("target")
            attrs = {} if target is None else dict(target.attrib)
            entry["target"] = sorted((k, int(v, 0) if v[:1].isdigit() else v) for k, v in attrs.items())
        if entry:
            out[key] = entry
    return out


def _domain(machine: str, devices: str) -> str:
    return f"""<domain type='qemu'>
  <name>pa-{machine}</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
{devices}
  </devices>
</domain>
"""


def _disk(dev: str, bus: str = "virtio", address: str = "") -> str:
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/tmp/{dev}.img'/>"
        f"<target dev='{dev}' bus='{bus}'/>{address}</disk>"
    )


def _nic(model: str, mac: str) -> str:
    return f"<interface type='user'><mac address='52:54:00:00:00:{mac}'/><model type='{model}'/></interface>"


_PORTS = "<controller type='pci' model='pcie-root'/>" + "".join(
    "<controller type='pci' model='pcie-root-port'/>" for _ in range(14)
)
_CHANNEL = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
_RNG = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"

CASES = {
    # PCIe devices each on a root port libvirt adds, a conventional NIC behind a pcie-to-pci-bridge,
    # the virtio-serial controller a channel needs, the default video's slot, one spare port
    "q35-mixed": _domain(
        "q35",
        _disk("vda")
        + _disk("vdb")
        + _disk("sda", "sata")
        + _nic("virtio", "01")
        + _nic("e1000", "02")
        + _nic("e1000e", "03")
        + _CHANNEL
        + "<graphics type='vnc'/>"
        + _RNG,
    ),
    # the 14 spare root ports pyvirt install writes: the devices take the first ones
    "q35-spare-ports": _domain(
        "q35", _PORTS + _disk("vda") + _nic("virtio", "01") + "<video><model type='virtio'/></video>" + _RNG
    ),
    # devices with addresses keep them; the others go around them
    "q35-some-addressed": _domain(
        "q35",
        "<controller type='pci' index='1' model='pcie-root-port'/>"
        "<controller type='pci' index='2' model='pcie-root-port'>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller>"
        + _disk("vda", address="<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>")
        + _disk("vdb")
        + _nic("virtio", "01"),
    ),
    # the chipset's places: ICH9 sound at 00:1b, USB2 companions at 00:1d, a qxl primary video at 00:01;
    # a secondary qxl, lsilogic and i6300esb behind the bridge, virtio-scsi on a port
    "q35-chipset": _domain(
        "q35",
        "<controller type='usb' index='0' model='ich9-ehci1'/>"
        "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
        "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>"
        "<controller type='usb' index='0' model='ich9-uhci3'><master startport='4'/></controller>"
        "<controller type='scsi' index='0' model='virtio-scsi'/>"
        "<controller type='scsi' index='1' model='lsilogic'/>"
        "<sound model='ich9'/><watchdog model='i6300esb'/>"
        "<video><model type='qxl' primary='yes'/></video><video><model type='qxl'/></video>",
    ),
    # a DMI bridge at 00:1e with a pci-bridge in it: conventional devices there, PCIe ones on ports
    "q35-bridges": _domain(
        "q35",
        "<controller type='pci' index='0' model='pcie-root'/>"
        "<controller type='pci' index='1' model='dmi-to-pci-bridge'/>"
        "<controller type='pci' index='2' model='pci-bridge'/>"
        + _nic("rtl8139", "01")
        + "<input type='tablet' bus='virtio'/><sound model='ich6'/>"
        "<serial type='pty'><target type='pci-serial'/></serial>"
        "<filesystem type='mount' accessmode='mapped'><source dir='/tmp'/><target dir='t'/></filesystem>"
        "<vsock model='virtio'><cid auto='yes'/></vsock>",
    ),
    # a PCIe switch behind a root port (its downstream port takes a PCIe device), the DMI bridge at 00:1e
    "q35-switch": _domain(
        "q35",
        "<controller type='pci' index='1' model='pcie-root-port'/>"
        "<controller type='pci' index='2' model='pcie-switch-upstream-port'>"
        "<address type='pci' bus='1' slot='0'/></controller>"
        "<controller type='pci' index='3' model='pcie-switch-downstream-port'>"
        "<target hotplug='off' port='4'/><address type='pci' bus='2' slot='0'/></controller>"
        "<controller type='pci' index='4' model='dmi-to-pci-bridge'/>"
        "<controller type='usb' model='nec-xhci'/>",
    ),
    # pc: USB2 companions share a slot, a second video, AHCI and a host device in libvirt's order
    "pc-usb2": _domain(
        "pc",
        "<controller type='usb' index='0' model='ich9-ehci1'/>"
        "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
        "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>"
        "<controller type='usb' index='0' model='ich9-uhci3'><master startport='4'/></controller>"
        "<controller type='sata' index='0'/><graphics type='vnc'/>"
        + _nic("e1000e", "01")
        + "<video><model type='qxl'/></video><video><model type='virtio'/></video>"
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/></source></hostdev>",
    ),
    # pc: SATA disks bring their AHCI controllers, each index up to the highest one named
    "pc-sata": _domain(
        "pc",
        _disk("vda")
        + _disk("sda", "sata")
        + _nic("virtio", "01")
        + _RNG
        + _disk("sdb", "sata", "<address type='drive' controller='2' bus='0' target='0' unit='0'/>"),
    ),
    # pc: SCSI disks bring libvirt's default controllers, each index up to the highest one named
    "pc-scsi": _domain(
        "pc",
        _disk("sda", "scsi")
        + _disk("sdb", "scsi", "<address type='drive' controller='2' bus='0' target='0' unit='0'/>"),
    ),
    # pc: PIIX3 at 00:01, the video at 00:02, the rest from 00:03 in libvirt's order
    "pc-mixed": _domain(
        "pc",
        _disk("hda", "ide")
        + _disk("vda")
        + _nic("e1000", "01")
        + _nic("virtio", "02")
        + "<controller type='scsi' index='0' model='virtio-scsi'/><sound model='ac97'/>"
        "<watchdog model='i6300esb'/><video><model type='vga'/></video>" + _CHANNEL + _RNG,
    ),
    # pc with more devices than slots: a pci-bridge (in the slot kept for it) takes the rest
    "pc-full": _domain(
        "pc",
        "".join(_disk(f"vd{chr(ord('a') + i)}") for i in range(26))
        + _disk("vdaa")
        + _disk("vdab")
        + _disk("vdac")
        + _nic("virtio", "01"),
    ),
    # a q35 guest with more PCIe devices than one slot of root ports holds
    "q35-many": _domain("q35", "".join(_disk(f"vd{chr(ord('a') + i)}") for i in range(12))),
}


def libvirt_layout(oracle: Oracle, xml: str, scratch: Path) -> Layout:
    path = scratch / "domain.xml"
    path.write_text(xml)
    name = ET.fromstring(xml).findtext("name")
    assert name
    oracle.virsh("define", str(path))
    try:
        return layout(oracle.virsh("dumpxml", "--inactive", name))
    finally:
        oracle.virsh("undefine", name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_addresses_agree_with_libvirt(case: str, oracle: Oracle, tmp_path: Path) -> None:
    theirs = libvirt_layout(oracle, CASES[case], tmp_path)
    ours = layout(format_domain(load_domain_xml(CASES[case])))
    for key in set(theirs) - set(ours):
        if key in _LIBVIRT_ONLY or (key[0] == "video" and not any(k[0] == "video" for k in ours)):
            del theirs[key]
    assert ours == theirs


Placement = collections.Counter[tuple[str, str, str]]
# domxml-to-native rebuilds each NIC from its MAC and model, without the address the XML gives it
_NATIVE_NIC_REBUILT = {"libvirt-virtio-options": ("virtio-net-pci", "pci.0", "0x6")}


def placement(argv: list[str]) -> Placement:
    """(driver, bus, addr) of every -device on a PCI bus, JSON or key=value."""
    out: Placement = collections.Counter()
    for i, arg in enumerate(argv[:-1]):
        if arg != "-device":
            continue
        value = argv[i + 1]
        if value.startswith("{"):
            props = {k: str(v) for k, v in json.loads(value).items()}
            driver = props.get("driver", "")
        else:
            items = keyval.split(value)
            driver = items[0]
            props = dict(item.split("=", 1) for item in items[1:] if "=" in item)
        bus = props.get("bus", "")
        if bus.startswith("pci") and "addr" in props:
            out[(driver, bus, props["addr"])] += 1
    return out


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_command_lines_place_devices_as_libvirt(case: str, oracle: Oracle) -> None:
    if (device := HOST_DEVICES.get(case)) and not os.path.exists(device):
        pytest.skip(f"libvirt opens {device}, which this host lacks")
    theirs = placement(oracle.native_argv(DATA_ROOT / "domain" / f"{case}.xml"))
    ours = placement(argv_for(f"domain/{case}"))
    if (rebuilt := _NATIVE_NIC_REBUILT.get(case)) is not None:
        ours[rebuilt] -= 1
        theirs[(rebuilt[0], rebuilt[1], "0x3")] -= 1
    assert +ours == +theirs

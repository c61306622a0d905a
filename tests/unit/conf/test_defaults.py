"""Post-parse defaults: only what libvirt itself writes back into a config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyvirt.conf.defaults import apply_defaults, infer_disk_bus
from pyvirt.conf.domain import CharDevConfig, Domain, InterfaceConfig
from pyvirt.conf.domain_xml import format_domain, load_domain_xml, parse_domain
from pyvirt.conf.mac import random_mac
from pyvirt.errors import UnsupportedConfig, XMLError

DATA = Path(__file__).resolve().parents[2] / "data" / "domain"
MINIMAL = (DATA / "minimal.xml").read_text()


def with_devices(devices: str, machine: str = " machine='pc'") -> Domain:
    text = MINIMAL.replace(" machine='pc'", machine)
    return parse_domain(text.replace("</domain>", f"<devices>{devices}</devices></domain>"))


def test_minimal_gains_nothing_but_what_libvirt_writes() -> None:
    dom = with_devices("", machine="")
    apply_defaults(dom)
    assert dom.os.machine == "pc"
    # libvirt's implicit USB controller (PIIX3's, at 00:01.2) and virtio balloon, nothing else
    assert [(c.type, c.model) for c in dom.devices.controllers] == [("usb", "piix3-uhci")]
    assert dom.devices.controllers[0].address is not None
    assert dom.devices.controllers[0].address.attrs["function"] == "0x2"
    assert dom.devices.memballoon is not None and dom.devices.memballoon.model == "virtio"
    assert dom.devices.inputs == []
    again = with_devices(
        "<controller type='usb' model='none'/><memballoon model='none'/>", machine=" machine='q35'"
    )
    apply_defaults(again)  # 'none' says there is to be none
    assert [c.model for c in again.devices.controllers] == [
        "none"
    ] and again.devices.memballoon.model == "none"
    q35 = with_devices("", machine=" machine='q35'")
    apply_defaults(q35)
    apply_defaults(q35)  # idempotent
    # libvirt's: the xHCI and the balloon each on a pcie-root-port it adds, and one spare port
    assert [c.model for c in q35.devices.controllers] == ["qemu-xhci", *["pcie-root-port"] * 3]
    assert q35.devices.controllers[0].address is not None
    assert q35.devices.controllers[0].address.attrs["bus"] == "0x01"


def test_uuid_is_generated_when_absent() -> None:
    text = re.sub(r"<uuid>.*</uuid>", "", MINIMAL)
    first, second = parse_domain(text), parse_domain(text)
    assert re.fullmatch(r"[0-9a-f-]{36}", first.uuid)
    assert first.uuid != second.uuid


def test_macs_are_random_qemu_oui_and_unique() -> None:
    nics = (
        "<interface type='user'/>" * 20
        + "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>"
    )
    dom = with_devices(nics)
    apply_defaults(dom)
    macs = [nic.mac for nic in dom.devices.interfaces]
    assert all(mac and re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", mac) for mac in macs)
    assert len(set(macs)) == len(macs)
    assert macs[-1] == "52:54:00:00:00:01"


def test_random_mac_avoids_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([b"\x00\x00\x01", b"\x00\x00\x01", b"\x00\x00\x02"])
    monkeypatch.setattr("pyvirt.conf.mac.secrets.token_bytes", lambda _n: next(draws))
    assert random_mac({"52:54:00:00:00:01"}) == "52:54:00:00:00:02"


@pytest.mark.parametrize(
    ("dev", "bus"), [("vda", "virtio"), ("vdab", "virtio"), ("sdb", "sata"), ("hdc", "ide"), ("xvda", None)]
)
def test_disk_bus_inference(dev: str, bus: str | None) -> None:
    assert infer_disk_bus(dev) == bus


def test_explicit_bus_is_kept() -> None:
    dom = with_devices("<disk type='file'><source file='/a'/><target dev='sda' bus='scsi'/></disk>")
    apply_defaults(dom)
    assert dom.devices.disks[0].target_bus == "scsi"


def test_console_alone_becomes_serial_zero_like_libvirt() -> None:
    dom = with_devices("<console type='pty'/>")
    apply_defaults(dom)
    serial = dom.devices.serials[0]
    console = dom.devices.consoles[0]
    assert (serial.type, serial.target_type, serial.target_port, serial.target_model) == (
        "pty",
        "isa-serial",
        0,
        "isa-serial",
    )
    assert (console.target_type, console.target_port) == ("serial", 0)


def test_console_takes_the_serial_target() -> None:
    dom = with_devices("<serial type='pty'><target port='2'/></serial><console type='pty'/>")
    apply_defaults(dom)
    assert len(dom.devices.serials) == 1
    assert dom.devices.serials[0].target_type == "isa-serial"
    assert dom.devices.consoles[0].target_port == 2


def test_virtio_console_is_left_alone() -> None:
    dom = with_devices("<console type='pty'><target type='virtio'/></console>")
    apply_defaults(dom)
    assert dom.devices.serials == []
    assert dom.devices.consoles[0].target_type == "virtio"


def test_apply_defaults_is_idempotent() -> None:
    dom = Domain(name="x", devices=parse_domain(MINIMAL).devices)
    dom.devices.interfaces.append(InterfaceConfig(type="user"))
    dom.devices.consoles.append(CharDevConfig(kind="console"))
    apply_defaults(dom)
    once = format_domain(dom)
    apply_defaults(dom)
    assert format_domain(dom) == once


def test_scsi_disks_get_libvirts_default_controller_model() -> None:
    """libvirt's SCSI controller model for x86 is lsilogic, on pc and q35 alike: one per controller index
    a disk names, and for a <controller type='scsi'> that names no model."""
    disks = (
        "<disk type='file' device='disk'><source file='/a'/><target dev='sda' bus='scsi'/></disk>"
        "<disk type='file' device='disk'><source file='/b'/><target dev='sdb' bus='scsi'/>"
        "<address type='drive' controller='2' bus='0' target='0' unit='1'/></disk>"
    )
    for machine in (" machine='pc'", " machine='q35'"):
        dom = with_devices(disks, machine=machine)
        apply_defaults(dom)
        apply_defaults(dom)  # idempotent
        scsi = [(c.index, c.model) for c in dom.devices.controllers if c.type == "scsi"]
        assert scsi == [(0, "lsilogic"), (1, "lsilogic"), (2, "lsilogic")]  # each index up to the highest
    named = with_devices("<controller type='scsi' index='0'/><controller type='scsi' model='virtio-scsi'/>")
    apply_defaults(named)
    assert [c.model for c in named.devices.controllers if c.type == "scsi"] == ["lsilogic", "virtio-scsi"]
    assert "<controller type='scsi' index='0' model='lsilogic'" in format_domain(named)


def test_q35_gets_the_root_ports_libvirt_adds() -> None:
    """A root port per device libvirt places and one spare when the XML has no PCI controller; when it
    has some (pyvirt install's spare ports), the devices take those first (pyvirt.conf.pci_assign)."""
    dom = with_devices("", machine=" machine='q35'")
    apply_defaults(dom)
    assert [c.index for c in dom.devices.controllers if c.type == "pci"] == [1, 2, 3]
    ports = (
        "<controller type='pci' model='pcie-root'/>" + "<controller type='pci' model='pcie-root-port'/>" * 4
    )
    spare = with_devices(ports, machine=" machine='q35'")
    apply_defaults(spare)
    assert [c.index for c in spare.devices.controllers if c.type == "pci"] == [0, 1, 2, 3, 4]


def test_virtio_scsi_tuning_on_a_controller_without_model_is_refused() -> None:
    with pytest.raises(UnsupportedConfig, match="'queues'"):  # libvirt: only virtio-scsi has queues
        with_devices("<controller type='scsi' index='0'><driver queues='4'/></controller>")


@pytest.mark.parametrize(("machine", "root"), [("q35", "pcie-root"), ("pc", "pci-root")])
def test_pci_controller_0_must_be_the_root(machine: str, root: str) -> None:
    # libvirt 9.0 gives a root port without an index the first free one, 0, and then refuses it
    port = "pcie-root-port" if machine == "q35" else "pci-bridge"
    xml = (
        f"<domain type='qemu'><name>t</name><memory>65536</memory><os><type machine='{machine}'>hvm</type>"
        f"</os><devices><controller type='pci' model='{port}'/></devices></domain>"
    )
    with pytest.raises(
        XMLError, match=f"index='0' must be model='{root}' for this machine type, but model='{port}'"
    ):
        load_domain_xml(xml)

"""Device addresses: libvirt's number syntax, ranges, clashes and the controllers they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyvirt.conf.addresses import parse_number
from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.errors import InvalidArgument

MINIMAL = (Path(__file__).resolve().parents[2] / "data" / "domain" / "minimal.xml").read_text()


def doc(devices: str, machine: str = "pc") -> str:
    text = MINIMAL.replace("machine='pc'", f"machine='{machine}'")
    return text.replace("</domain>", f"<devices>{devices}</devices></domain>")


def pci(slot: str, function: str = "0", bus: str = "0", extra: str = "") -> str:
    return f"<address type='pci' domain='0x0000' bus='{bus}' slot='{slot}' function='{function}'{extra}/>"


def rng(address: str) -> str:
    return f"<rng model='virtio'><backend model='random'>/dev/urandom</backend>{address}</rng>"


@pytest.mark.parametrize(
    ("text", "value"),
    [("010", 8), ("0x1f", 31), ("0X1F", 31), ("10", 10), ("0", 0), ("00", 0), ("0x0000", 0)],
)
def test_numbers_read_as_libvirt_reads_them(text: str, value: int) -> None:
    assert parse_number(text, "x") == value


@pytest.mark.parametrize("text", ["08", "-1", "0x", "", "1e3", "0b1", " ", "0x1g"])
def test_bad_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid number"):
        parse_number(text, "x")


def test_an_octal_slot_is_slot_eight() -> None:
    dom = load_domain_xml(doc(rng(pci("010"))))
    assert dom.devices.rngs[0].address is not None


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (pci("32"), "slot='32' of 'devices/rng/address' is out of range"),
        (pci("0x20"), "slot='0x20'"),
        (pci("3", "8"), "function='8'"),
        (pci("3", bus="0x100"), "bus='0x100'"),
        (pci("3", extra=" multifunction='maybe'"), "multifunction='maybe'"),
        ("<address type='pci' domain='0x0001' bus='0' slot='3' function='0'/>", "domain='0x0001'"),
        (pci("09"), "invalid number '09'"),
    ],
)
def test_pci_ranges_are_checked_at_parse_time(address: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        load_domain_xml(doc(rng(address)))


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (rng(pci("3")) + rng(pci("0x3")), "PCI address 00:03.0 is used by both rng #0 and rng #1"),
        (rng("<address type='usb' bus='0' port='1'/>"), "rng #0 cannot have an address of type 'usb'"),
        (
            "<serial type='pty'><address type='usb' bus='0' port='1'/></serial>",
            "serial 'isa-serial' cannot have an address of type 'usb'",
        ),
        (
            "<interface type='user'><address type='drive' controller='0' unit='0'/></interface>",
            "interface #0 cannot have an address of type 'drive'",
        ),
        (
            "<disk type='file' device='cdrom'><target dev='hda' bus='ide'/>"
            "<address type='drive' controller='0' bus='0' target='0' unit='2'/></disk>",
            "drive address unit 2 of disk 'hda' is out of range on ide (0-1)",
        ),
        (
            "<disk type='file' device='cdrom'><target dev='hda' bus='ide'/></disk>"
            "<disk type='file' device='cdrom'><target dev='hdb' bus='ide'/>"
            "<address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>",
            "ide drive address 0:0:0:0 is used by both disk 'hda' and disk 'hdb'",
        ),
        (
            "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/>"
            "<address type='drive' controller='0' bus='0' target='0' unit='6'/></disk>",
            "unit 6 of disk 'sda' is out of range on sata (0-5)",
        ),
        (
            "<disk type='file' device='disk'><source file='/a'/><target dev='vda' bus='virtio'/>"
            "<address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>",
            "disk 'vda' on bus 'virtio' cannot have a drive address",
        ),
        (
            "<controller type='virtio-serial' index='0'/>"
            + "".join(
                f"<channel type='unix'><target type='virtio' name='{name}'/>"
                "<address type='virtio-serial' controller='0' bus='0' port='3'/></channel>"
                for name in "ab"
            ),
            "virtio-serial port 3 of controller 0 is used by both channel #0 and channel #1",
        ),
        (
            "<channel type='unix'><target type='virtio' name='a'/>"
            "<address type='virtio-serial' controller='0' bus='0' port='0'/></channel>",
            "port='0'",
        ),
        (
            "<controller type='usb' index='0' model='piix3-uhci'/>"
            "<input type='tablet' bus='usb'><address type='usb' bus='0' port='0'/></input>",
            "USB port '0'",
        ),
        (
            "<controller type='usb' index='0' model='piix3-uhci'/>"
            + "<input type='tablet' bus='usb'><address type='usb' bus='0' port='1.2'/></input>" * 2,
            "USB port 1.2 of bus 0 is used by both input #0 and input #1",
        ),
        (
            "<controller type='usb' index='0' model='piix3-uhci'/>"
            "<input type='tablet' bus='usb'><address type='usb' bus='1' port='1'/></input>",
            "on USB bus 1, which no usb controller has",
        ),
        (
            "<input type='mouse' bus='ps2'><alias name='ua-x'/></input>"
            "<input type='keyboard' bus='ps2'><alias name='ua-x'/></input>",
            "device alias 'ua-x' is used by more than one device",
        ),
    ],
)
def test_clashes_and_dangling_addresses_are_refused(devices: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        load_domain_xml(doc(devices))

"""Smartcards and CCID controllers (pyvirt.conf.smartcard): parsed, written, checked, on QEMU's argv;
and a watchdog's dump action (QEMU pauses, the daemon dumps)."""

from __future__ import annotations

import pytest

from pyvirt.conf import smartcard
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>s</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices><controller type='usb' model='piix3-uhci'/>{devices}</devices></domain>"""
SPICEVMC = "<smartcard mode='passthrough' type='spicevmc'/><graphics type='spice' port='5930' autoport='no'/>"
HOST = "<smartcard mode='host'><address type='ccid' controller='0' slot='0'/></smartcard>"
CERTS = "<certificate>a</certificate><certificate>b</certificate><certificate>c</certificate>"


def _argv(devices: str) -> list[str]:
    dom = load_domain_xml(XML.format(devices=devices))
    return build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))


def test_passthrough_over_spicevmc_round_trips_and_needs_spice() -> None:
    dom = load_domain_xml(XML.format(devices=SPICEVMC))
    assert load_domain_xml(format_domain(dom)).devices.smartcards[0].source is not None
    argv = _argv(SPICEVMC)
    assert "spicevmc,id=charsmartcard0,name=smartcard" in argv
    assert "ccid-card-passthru,chardev=charsmartcard0,id=smartcard0,bus=ccid0.0" in argv
    with pytest.raises(PyvirtError, match="a smartcard of type 'spicevmc' needs a SPICE display"):
        _argv(SPICEVMC.replace("type='spice'", "type='vnc'"))


def test_host_card_and_its_database() -> None:
    argv = _argv(HOST)
    assert "usb-ccid,id=ccid0,bus=usb.0" in argv
    assert "ccid-card-emulated,backend=nss-emulated,id=smartcard0,bus=ccid0.0" in argv
    dom = load_domain_xml(XML.format(devices=HOST))
    assert smartcard.database(dom.devices.smartcards[0]) == "/etc/pki/nssdb"


def test_commas_in_certificate_names_and_database_are_doubled_as_libvirt_does() -> None:
    """libvirt's name-escape case: a certificate 'cert1,foo' and a database '/etc/pki/nssdb,foo'."""
    certs = CERTS.replace(">a<", ">cert1,foo<")
    devices = (
        f"<smartcard mode='host-certificates'>{certs}<database>/etc/pki/nssdb,foo</database></smartcard>"
    )
    assert (
        "ccid-card-emulated,backend=certificates,cert1=cert1,,foo,cert2=b,cert3=c,db=/etc/pki/nssdb,,foo,"
        "id=smartcard0,bus=ccid0.0"
    ) in _argv(devices)
    again = format_domain(load_domain_xml(XML.format(devices=devices)))
    assert (
        "<certificate>cert1,foo</certificate>" in again and "<database>/etc/pki/nssdb,foo</database>" in again
    )


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("<smartcard mode='host-certificates'><certificate>a</certificate></smartcard>", "exactly three"),
        (f"<smartcard mode='host-certificates'>{CERTS}<database>rel</database></smartcard>", "absolute"),
        (f"<smartcard mode='host'/><smartcard mode='host-certificates'>{CERTS}</smartcard>", "more than one"),
        ("<smartcard mode='host'><address type='ccid' controller='0' slot='1'/></smartcard>", "slot"),
        ("<smartcard mode='host'><address type='usb' bus='0' port='1'/></smartcard>", "type 'usb'"),
        ("<smartcard mode='other'/>", "mode"),
        (f"<smartcard mode='host-certificates'>{CERTS.replace('>a<', '>a/b<')}</smartcard>", "'/'"),
    ],
)
def test_refused_by_name(devices: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(XML.format(devices=devices))


def test_watchdog_dump_pauses_qemu() -> None:
    argv = _argv("<watchdog model='ib700' action='dump'/>")
    assert argv[argv.index("-watchdog-action") + 1] == "pause"
    dom = load_domain_xml(XML.format(devices="<watchdog model='ib700' action='dump'/>"))
    assert "action='dump'" in format_domain(dom)

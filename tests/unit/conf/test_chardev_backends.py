"""Chardev backends tcp, udp, dev and vc (pyvirt.conf.chardev_backends), parallel ports, serial models."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>c</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices>{devices}<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>"""
DEVICES = """<serial type='tcp'><source mode='connect' host='10.0.0.1' service='4555'/>
<protocol type='telnet'/><target port='0'/></serial>
<serial type='udp'><source mode='connect' service='9999'/><target port='1'/></serial>
<serial type='dev'><source path='/dev/ttyS2'/><target type='pci-serial' port='2'/>
<address type='pci' domain='0' bus='0' slot='5' function='0'/></serial>
<parallel type='dev'><source path='/dev/parport0'/><target port='0'/></parallel>
<console type='tcp'><source mode='connect' host='10.0.0.1' service='4555'/><protocol type='telnet'/>
<target type='serial' port='0'/></console>"""


def chardevs(xml: str) -> list[str]:
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    return [
        argv[i + 1]
        for i, a in enumerate(argv)
        if a in ("-chardev", "-device") and "monitor" not in argv[i + 1]
    ]


def test_backends_models_and_parallel_ports_on_the_command_line_and_back() -> None:
    xml = XML.format(devices=DEVICES)
    assert chardevs(xml) == [
        "socket,id=charserial0,host=10.0.0.1,port=4555,telnet=on",
        "isa-serial,chardev=charserial0,id=serial0,index=0",
        "udp,id=charserial1,host=,port=9999,localaddr=,localport=0",
        "isa-serial,chardev=charserial1,id=serial1,index=1",
        "serial,id=charserial2,path=/dev/ttyS2",
        "pci-serial,chardev=charserial2,id=serial2,bus=pci.0,addr=0x5",
        "parallel,id=charparallel0,path=/dev/parport0",
        "isa-parallel,chardev=charparallel0,id=parallel0",
    ]
    again = format_domain(load_domain_xml(xml))
    assert "<parallel type='dev'>" in again and "<protocol type='telnet'/>" in again
    assert chardevs(again) == chardevs(xml)


@pytest.mark.parametrize(
    ("devices", "reason"),
    [
        ("<serial type='tcp'><source mode='connect' host='h' service='1' tls='yes'/></serial>", "over TLS"),
        ("<serial type='tcp'><source mode='connect' host='h'/></serial>", "missing attribute 'service'"),
        ("<serial type='tcp'><source host='h' service='1'/><protocol type='telnets'/></serial>", "'telnets'"),
        ("<serial type='dev'><source path='/etc/passwd'/></serial>", "must be a device under /dev"),
        ("<serial type='vc'><source path='/dev/tty1'/></serial>", "devices/serial/source"),
        (
            "<serial type='udp'><source service='1'/><source service='2'/></serial>",
            "two <source mode='connect'>",
        ),
        (
            "<serial type='pty'><target type='isa-serial'/><address type='pci' slot='3'/></serial>",
            "type 'pci'",
        ),
        ("<serial type='spiceport'/>", "needs one <source channel>"),
        ("<serial type='qemu-vdagent'/>", "only a <channel>"),
        ("<channel type='dbus'><target type='virtio' name='org.x.0'/></channel>", "D-Bus display"),
    ],
)
def test_refused_by_name(devices: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(devices=devices))


def test_pipe_backend_as_libvirt_writes_it_and_back() -> None:
    """<channel type='pipe'> of a guestfwd target (libvirt's name-escape case: a comma in the path)."""
    xml = XML.format(
        devices="<channel type='pipe'><source path='/tmp/guestfwd,foo'/>"
        "<target type='guestfwd' address='10.0.2.1' port='4600'/></channel>"
        "<serial type='pipe'><source path='/run/p'/><target port='0'/></serial>"
    )
    assert chardevs(xml)[:2] == [
        "pipe,id=charserial0,path=/run/p",
        "isa-serial,chardev=charserial0,id=serial0,index=0",
    ]
    assert "pipe,id=charchannel0,path=/tmp/guestfwd,,foo" in chardevs(xml)
    again = format_domain(load_domain_xml(xml))
    assert "<source path='/tmp/guestfwd,foo'/>" in again and "<source path='/run/p'/>" in again
    with pytest.raises(PyvirtError, match="needs one <source path>"):
        load_domain_xml(XML.format(devices="<serial type='pipe'><target port='0'/></serial>"))

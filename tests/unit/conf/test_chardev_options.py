"""Chardev options and the newer backends: <log>, <reconnect>, stdio, spiceport, qemu-vdagent, guestfwd
(pyvirt.conf.chardev_options, chardev_backends, guestfwd)."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>c</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
<devices>{devices}</devices></domain>"""
SPICE = "<graphics type='spice' port='5930' autoport='no'/>"


def options(xml: str, *names: str) -> list[str]:
    argv = build_argv(load_domain_xml(xml), RuntimeContext(accel="tcg", monitor_path="/x"))
    return [argv[i + 1] for i, a in enumerate(argv) if a in names and "monitor" not in argv[i + 1]]


def round_trip(devices: str, *names: str) -> list[str]:
    """The options of ``devices``, after checking dumpxml's copy gives the same."""
    xml = XML.format(devices=devices)
    again = format_domain(load_domain_xml(xml))
    assert options(again, *names) == options(xml, *names)
    return options(xml, *names)


@pytest.mark.parametrize(
    ("devices", "chardev"),
    [
        (
            "<serial type='file'><source path='/v/s.txt'/><log file='/v/s.log' append='off'/></serial>",
            "file,id=charserial0,path=/v/s.txt,logfile=/v/s.log,logappend=off",
        ),
        (
            "<serial type='pty'><log file='/v/s.log'/></serial>",
            "pty,id=charserial0,logfile=/v/s.log",
        ),
        (
            "<serial type='unix'><source mode='connect' path='/v/s.sock'>"
            "<reconnect enabled='yes' timeout='7'/></source></serial>",
            "socket,id=charserial0,path=/v/s.sock,reconnect=7",
        ),
        (
            "<serial type='tcp'><source mode='connect' host='127.0.0.1' service='9'>"
            "<reconnect enabled='no'/></source></serial>",
            "socket,id=charserial0,host=127.0.0.1,port=9,reconnect=0",
        ),
        ("<serial type='stdio'/>", "stdio,id=charserial0"),
        (
            "<serial type='unix'><source mode='bind' path='/v/p.sock'/><protocol type='raw'/></serial>",
            "socket,id=charserial0,path=/v/p.sock,server=on,wait=off",
        ),
        (
            f"<serial type='spiceport'><source channel='org.qemu.console.serial.0'/></serial>{SPICE}",
            "spiceport,id=charserial0,name=org.qemu.console.serial.0",
        ),
    ],
)
def test_serial_chardevs_on_the_command_line_and_back(devices: str, chardev: str) -> None:
    assert round_trip(devices, "-chardev")[0] == chardev


@pytest.mark.parametrize(
    ("source", "tail"),
    [
        ("", ""),
        ("<source><clipboard copypaste='no'/><mouse mode='server'/></source>", ",clipboard=off,mouse=off"),
        ("<source><mouse mode='client'/></source>", ",mouse=on"),
    ],
)
def test_qemu_vdagent_channel(source: str, tail: str) -> None:
    devices = (
        f"<channel type='qemu-vdagent'>{source}<target type='virtio' name='com.redhat.spice.0'/></channel>"
    )
    out = round_trip(devices, "-chardev", "-device")
    assert f"qemu-vdagent,id=charchannel0,name=vdagent{tail}" in out
    assert any(o.startswith("virtserialport,") and "name=com.redhat.spice.0" in o for o in out), out


def test_guestfwd_channels_are_user_netdevs_without_a_serial_port() -> None:
    devices = (
        "<channel type='tcp'><source mode='connect' host='127.0.0.1' service='5000'/>"
        "<target type='guestfwd' address='10.0.2.1' port='4600'/></channel>"
    )
    assert not [d for d in round_trip(devices, "-device") if "virtserialport" in d or "virtio-serial" in d]
    out = round_trip(devices, "-chardev", "-netdev")
    assert out == [
        "socket,id=charchannel0,host=127.0.0.1,port=5000",
        '{"type":"user","guestfwd":[{"str":"tcp:10.0.2.1:4600-chardev:charchannel0"}],"id":"channel0"}',
    ]
    assert "<target type='guestfwd' address='10.0.2.1' port='4600'/>" in format_domain(
        load_domain_xml(XML.format(devices=devices))
    )


@pytest.mark.parametrize(
    ("devices", "reason"),
    [
        ("<serial type='pty'><log file='rel.log'/></serial>", "absolute path"),
        ("<serial type='pty'><log file='/v/a' append='yes'/></serial>", "'append' = 'yes'"),
        (
            "<serial type='unix'><source mode='bind' path='/v/s'><reconnect enabled='yes' timeout='1'/>"
            "</source></serial>",
            "only a client reconnects",
        ),
        (
            "<serial type='unix'><source mode='connect' path='/v/s'><reconnect enabled='yes'/>"
            "</source></serial>",
            "missing attribute 'timeout'",
        ),
        (
            "<channel type='unix'><source mode='bind' path='/v/s'/><target type='guestfwd' address='x' "
            "port='1'/></channel>",
            "not an IPv4 address",
        ),
        (
            "<channel type='unix'><source mode='bind' path='/v/s'/><target type='guestfwd' "
            "address='10.0.2.1'/></channel>",
            "missing attribute 'port'",
        ),
        ("<serial type='stdio'><source path='/x'/></serial>", "devices/serial/source"),
        (
            "<serial type='unix'><source mode='bind' path='/v/p'/><protocol type='telnet'/></serial>",
            "'type' = 'telnet'",
        ),
    ],
)
def test_refused_by_name(devices: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        load_domain_xml(XML.format(devices=devices))


def test_spiceport_without_a_spice_display_is_refused_at_start() -> None:
    xml = XML.format(
        devices="<serial type='spiceport'><source channel='org.qemu.console.serial.0'/></serial>"
    )
    with pytest.raises(PyvirtError, match="'spiceport' needs a SPICE display"):
        options(xml, "-chardev")

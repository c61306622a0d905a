"""SPICE's agent channel and USB redirection (pyvirt.conf.spicevmc): parsed, written, on QEMU's argv."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>s</name><memory>65536</memory><os><type machine='q35'>hvm</type></os>
<devices><controller type='usb' model='qemu-xhci' ports='15'/>
<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
<graphics type='spice' port='5930' autoport='no'/>
<redirdev bus='usb' type='spicevmc'/><redirdev bus='usb' type='spicevmc'/></devices></domain>"""


def test_round_trip_and_argv() -> None:
    dom = load_domain_xml(XML)
    assert [r.type for r in dom.devices.redirdevs] == ["spicevmc", "spicevmc"]
    again = load_domain_xml(format_domain(dom))
    assert len(again.devices.redirdevs) == 2 and again.devices.channels[0].type == "spicevmc"
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    chardevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-chardev"]
    assert "spicevmc,id=charchannel0,name=vdagent" in chardevs
    assert (
        "spicevmc,id=charredir0,name=usbredir" in chardevs
        and "spicevmc,id=charredir1,name=usbredir" in chardevs
    )
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert any(d.startswith("usb-redir,") and "chardev=charredir1" in d for d in devices), devices
    assert any(d.startswith("virtserialport,") and "name=com.redhat.spice.0" in d for d in devices), devices


def test_refused_without_spice_or_by_name() -> None:
    vnc = load_domain_xml(XML.replace("type='spice'", "type='vnc'"))
    with pytest.raises(PyvirtError, match="needs a SPICE display"):
        build_argv(vnc, RuntimeContext(accel="tcg", monitor_path="/x"))
    with pytest.raises(PyvirtError, match="tcp"):
        load_domain_xml(
            XML.replace("<redirdev bus='usb' type='spicevmc'/>", "<redirdev bus='usb' type='tcp'/>", 1)
        )

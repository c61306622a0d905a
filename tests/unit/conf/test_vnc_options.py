"""VNC's sharePolicy, powerControl, websocket and legacy socket attribute (pyvirt.conf.vnc_options), and
a SPICE display without a port."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>v</name><memory>65536</memory><os><type>hvm</type></os>
<devices>{graphics}</devices></domain>"""


def argv(graphics: str) -> list[str]:
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(graphics=graphics))))
    return build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))


def test_options_on_the_vnc_listener() -> None:
    out = argv("<graphics type='vnc' port='5901' autoport='no' sharePolicy='ignore' websocket='5701'/>")
    assert out[out.index("-vnc") + 1] == "127.0.0.1:1,share=ignore,websocket=5701"
    out = argv("<graphics type='vnc' powerControl='yes'><listen type='none'/></graphics>")
    assert out[out.index("-vnc") + 1] == "none,power-control=on"
    out = argv("<graphics type='vnc' powerControl='no'/>")
    assert "power-control" not in out[out.index("-vnc") + 1]


def test_the_legacy_socket_attribute_is_a_socket_listener() -> None:
    dom = load_domain_xml(XML.format(graphics="<graphics type='vnc' socket='/run/x/vnc.sock'/>"))
    assert dom.devices.graphics[0].listen_socket and dom.devices.graphics[0].socket == "/run/x/vnc.sock"
    out = argv("<graphics type='vnc' socket='/run/x/vnc.sock' sharePolicy='allow-exclusive'/>")
    assert out[out.index("-vnc") + 1] == "unix:/run/x/vnc.sock,share=allow-exclusive"


def test_spice_without_a_port_listens_nowhere() -> None:
    out = argv("<graphics type='spice' autoport='no'/>")
    assert out[out.index("-spice") + 1] == "port=0,disable-ticketing=on,seamless-migration=on"


@pytest.mark.parametrize(
    ("graphics", "reason"),
    [
        ("<graphics type='vnc' websocket='-1'/>", "pyvirt picks no WebSocket port"),
        ("<graphics type='spice' sharePolicy='ignore'/>", "sharePolicy of graphics type 'spice'"),
        ("<graphics type='vnc' sharePolicy='maybe'/>", "'sharePolicy' = 'maybe'"),
        ("<graphics type='vnc' socket='relative.sock'/>", "must be an absolute path"),
        ("<graphics type='vnc' port='5901' autoport='no' websocket='70000'/>", "websocket"),
    ],
)
def test_refused_by_name(graphics: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(graphics)

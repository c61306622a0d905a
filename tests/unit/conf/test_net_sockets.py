"""vhost-user and socket interfaces (pyvirt.conf.net_sockets): parsed, written back, on QEMU's command
line as libvirt 9.0 gives them, and the start refusals of a vhost-user NIC."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pyvirt.conf import net_sockets
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type machine='pc'>hvm</type></os>
{backing}<devices>{nic}</devices></domain>"""
SHARED = "<memoryBacking><access mode='shared'/></memoryBacking>"


def _vhu(path: str, mode: str = "client", extra: str = "", model: str = "virtio") -> str:
    return (
        f"<interface type='vhostuser'><source type='unix' path='{path}' mode='{mode}'>{extra}</source>"
        f"<model type='{model}'/></interface>"
    )


def test_round_trip_and_argv() -> None:
    nic = _vhu("/run/v.sock", extra="<reconnect enabled='no'/>") + (
        "<interface type='udp'><source address='127.0.0.1' port='5'><local address='127.0.0.1' port='6'/>"
        "</source></interface>"
    )
    dom = load_domain_xml(XML.format(backing="", nic=nic))
    again = load_domain_xml(format_domain(dom))
    assert [n.socket for n in again.devices.interfaces] == [n.socket for n in dom.devices.interfaces]
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert "socket,id=charnet0,path=/run/v.sock,reconnect=0" in argv
    assert '{"type":"vhost-user","chardev":"charnet0","id":"hostnet0"}' in argv
    assert '{"type":"socket","udp":"127.0.0.1:5","localaddr":"127.0.0.1:6","id":"hostnet1"}' in argv


@pytest.mark.parametrize(
    ("nic", "message"),
    [
        (_vhu("rel.sock"), "must be absolute"),
        (_vhu("/v.sock", "server", "<reconnect enabled='yes' timeout='3'/>"), "mode='client' only"),
        (_vhu("/v.sock", "client", "<reconnect enabled='yes'/>"), "missing attribute 'timeout'"),
        (_vhu("/v.sock", model="e1000"), "vhostuser requires the virtio-net"),
        (  # no model: libvirt's default for x86 (rtl8139) is refused as libvirt 9.0 refuses it
            "<interface type='vhostuser'><source type='unix' path='/v.sock' mode='client'/></interface>",
            r"Wrong or no <model> 'type' attribute specified with <interface type='vhostuser'/>",
        ),
        (
            "<interface type='udp'><source address='127.0.0.1' port='5'/></interface>",
            "missing element 'local'",
        ),
        ("<interface type='client'><source port='5'/></interface>", "missing attribute 'address'"),
        ("<interface type='server'><source address='127.0.0.1'/></interface>", "missing attribute 'port'"),
        ("<interface type='mcast'/>", "needs <source>"),
    ],
)
def test_refused_by_name(nic: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(XML.format(backing="", nic=nic))


def test_start_needs_client_mode_and_a_backend(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "vhu.sock")
    with pytest.raises(PyvirtError, match="in mode 'server'"):
        net_sockets.require_host(load_domain_xml(XML.format(backing=SHARED, nic=_vhu(path, "server"))))
    dom = load_domain_xml(XML.format(backing=SHARED, nic=_vhu(path)))
    with pytest.raises(PyvirtError, match="no vhost-user backend listens"):
        net_sockets.require_host(dom)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as backend:
        backend.bind(path)
        backend.listen(1)
        net_sockets.require_host(dom)  # a backend listens: the start goes on
        assert "not shared" not in caplog.text
        # libvirt 9.0 starts it on unshared memory too (the NIC then carries nothing): a warning
        net_sockets.require_host(load_domain_xml(XML.format(backing="", nic=_vhu(path))))
        assert "the guest's memory is not shared" in caplog.text

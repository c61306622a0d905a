"""domdisplay's URIs from a running domain's XML, as virsh 9.0 writes them."""

from __future__ import annotations

from pyvirt.cli.keys import display_urls

VNC = "<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1' passwd='s3cret'/>"
SPICE = "<graphics type='spice' port='5902' tlsPort='5903' listen='0.0.0.0' passwd='pw'/>"


def xml(*graphics: str) -> str:
    return f"<domain><devices>{''.join(graphics)}</devices></domain>"


def test_vnc_display_number_and_password() -> None:
    assert display_urls(xml(VNC), None, False) == ["vnc://127.0.0.1:1"]
    assert display_urls(xml(VNC), None, True) == ["vnc://:s3cret@127.0.0.1:1"]


def test_spice_port_tls_port_and_wildcard_listen() -> None:
    assert display_urls(xml(SPICE), None, False) == ["spice://localhost:5902?tls-port=5903"]
    assert display_urls(xml(SPICE), "spice", True) == ["spice://localhost:5902?tls-port=5903&password=pw"]


def test_order_type_filter_and_sockets() -> None:
    both = xml(SPICE, VNC)
    assert display_urls(both, None, False)[0].startswith("vnc://")
    assert display_urls(both, "rdp", False) == []
    sock = (
        "<graphics type='vnc' socket='/run/vnc.sock'>"
        "<listen type='socket' socket='/run/vnc.sock'/></graphics>"
    )
    assert display_urls(xml(sock), None, False) == ["vnc+unix:///run/vnc.sock"]
    ipv6 = "<graphics type='vnc' port='5900' listen='::1'/>"
    assert display_urls(xml(ipv6), None, False) == ["vnc://[::1]:0"]


def test_no_port_yet_is_no_display() -> None:
    assert display_urls(xml("<graphics type='vnc' port='-1' autoport='yes'/>"), None, False) == []

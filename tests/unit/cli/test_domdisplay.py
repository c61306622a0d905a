"""domdisplay's URIs from a running domain's XML, as virsh 9.0 writes them (virsh's test driver, when
installed, as the reference)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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


ORACLE_GRAPHICS = [
    # (no autoport: virsh's test driver keeps port -1 for it, and virsh prints display -5901)
    "<graphics type='vnc' port='5901' listen='0.0.0.0' passwd='s3cret'/>"
    + SPICE.replace("0.0.0.0", "127.0.0.1"),
    "<graphics type='vnc' port='5900' listen='::1'><listen type='address' address='::1'/></graphics>",
    "<graphics type='vnc' socket='/run/vnc.sock'><listen type='socket' socket='/run/vnc.sock'/></graphics>",
    "<graphics type='spice' port='5905'><listen type='address' address='0.0.0.0'/></graphics>",
    "<graphics type='spice'><listen type='socket' socket='/run/sp.sock'/></graphics>",
    "<graphics type='spice' port='5907' passwd='x'><listen type='address' address='10.0.0.1'/></graphics>",
]


@pytest.mark.skipif(
    shutil.which("virsh") is None, reason="virsh (libvirt 9.0, the reference) is not installed"
)
@pytest.mark.parametrize("graphics", ORACLE_GRAPHICS)
def test_as_virsh_prints_them(graphics: str, tmp_path: Path) -> None:
    """virsh's test driver runs the domain: pyvirt's URIs of its live XML are virsh domdisplay's."""
    path = tmp_path / "dd.xml"
    path.write_text(
        "<domain type='test'><name>dd</name><memory>65536</memory><os><type>hvm</type></os>"
        f"<devices>{graphics}</devices></domain>"
    )
    script = f"define {path}; start dd; dumpxml dd --security-info; echo @@; "
    script += "; echo @@; ".join(
        f"domdisplay dd {flags}"
        for flags in ("", "--include-password --all", "--type spice --include-password")
    )
    done = subprocess.run(["virsh", "-c", "test:///default", script], capture_output=True, text=True)
    out = done.stdout
    assert "<domain" in out, done.stderr
    xml, *answers = out.split("@@\n")
    live = xml[xml.index("<domain") :]
    for answer, (wanted, password, every) in zip(
        answers, ((None, False, False), (None, True, True), ("spice", True, False)), strict=True
    ):
        urls = display_urls(live, wanted, password)
        assert [line for line in answer.splitlines() if line] == (urls if every else urls[:1]), answer

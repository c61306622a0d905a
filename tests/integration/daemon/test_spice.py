"""SPICE displays as libvirt writes them, on a real QEMU: an autoport TCP display (the port start chose
shows in the live XML and accepts connections) and a UNIX-socket display, each with qxl video, and
domdisplay's URIs of each."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
QXL = "<video><model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1' primary='yes'/></video>"


def define(daemon: Daemon, tmp_path: Path, name: str, graphics: str) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, extra_devices=graphics + QXL))
    daemon.cli("define", str(path)).ok()


def test_spice_autoport_with_password_and_qxl(daemon: Daemon, tmp_path: Path) -> None:
    graphics = (
        "<graphics type='spice' autoport='yes' passwd='s3cret'><listen type='address' address='127.0.0.1'/>"
        "<image compression='off'/></graphics><sound model='ich6'/><audio id='1' type='spice'/>"
    )
    define(daemon, tmp_path, "sp1", graphics)
    assert "port='-1' autoport='yes'" in daemon.cli("dumpxml", "sp1").ok().out
    daemon.cli("start", "sp1").ok()
    live = daemon.cli("dumpxml", "sp1").ok().out
    match = re.search(r"<graphics type='spice' port='(\d+)' autoport='yes'", live)
    assert match, live
    port = int(match.group(1))
    assert port >= 5900 and "passwd" not in live  # the password only with --security-info
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
    # domdisplay: SPICE's URI has the port itself (VNC's a display number), the password as a query.
    assert daemon.cli("domdisplay", "sp1").ok().out == f"spice://127.0.0.1:{port}\n"
    out = daemon.cli("domdisplay", "sp1", "--type", "spice", "--include-password").ok().out
    assert out == f"spice://127.0.0.1:{port}?password=s3cret\n", out
    result = daemon.cli("domdisplay", "sp1", "--type", "vnc")
    assert result.rc == 1 and result.err == "error: No graphical display with type 'vnc' found\n"
    cmdline = Path(f"/proc/{daemon.qemu_pids()['sp1']}/cmdline").read_bytes().split(b"\0")
    spice = cmdline[cmdline.index(b"-spice") + 1].decode()
    assert spice.startswith(f"port={port},addr=127.0.0.1,image-compression=off"), spice
    assert "s3cret" not in b" ".join(cmdline).decode() and "disable-ticketing" not in spice
    assert cmdline[cmdline.index(b"-audiodev") + 1] == b"spice,id=audio1"
    console = Console(daemon, "sp1")
    console.expect("pyvirt-guest: ready")
    out = console.run("for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor $d/device); done")
    assert "0x1b36 0x0100" in out and "0x8086 0x2668" in out, out  # the qxl VGA, the ICH6 HDA
    console.close()
    daemon.cli("destroy", "sp1").ok()


def test_spice_on_a_unix_socket(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "sp2", "<graphics type='spice'><listen type='socket'/></graphics>")
    assert "<listen type='socket'/>" in daemon.cli("dumpxml", "sp2").ok().out
    daemon.cli("start", "sp2").ok()
    live = daemon.cli("dumpxml", "sp2").ok().out
    match = re.search(r"<listen type='socket' socket='([^']+)'/>", live)
    assert match, live
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(match.group(1))
    assert daemon.cli("domdisplay", "sp2").ok().out == f"spice+unix://{match.group(1)}\n"
    assert "<listen type='socket'/>" in daemon.cli("dumpxml", "--inactive", "sp2").ok().out
    daemon.cli("destroy", "sp2").ok()

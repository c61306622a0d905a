"""Video models libvirt writes, seen by a real guest under TCG: qxl as the primary VGA device (and an AC97
sound card beside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow


def test_qxl_primary_and_secondary_reach_the_guest(daemon: Daemon, tmp_path: Path) -> None:
    video = (
        "<video><model type='qxl' ram='65536' vram='32768' vgamem='16384' heads='1' primary='yes'/></video>"
        "<video><model type='qxl' ram='32768' vram='16384' vgamem='8192' heads='2'/></video>"
        "<sound model='ac97'/><audio id='1' type='none'/>"
    )
    path = tmp_path / "qxl1.xml"
    path.write_text(domain_xml("qxl1", vnc=True, extra_devices=video))
    daemon.cli("define", str(path)).ok()
    daemon.cli("start", "qxl1").ok()
    console = Console(daemon, "qxl1")
    console.expect("pyvirt-guest: ready")
    # Red Hat's qxl: vendor 0x1b36, device 0x0100, class 0x030000 (VGA) for the primary, 0x038000 (other)
    out = console.run(
        "for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor $d/device $d/class); done | grep 0x0100"
    )
    assert "0x1b36 0x0100 0x030000" in out and "0x1b36 0x0100 0x038000" in out, out
    out = console.run("for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor $d/device); done")
    assert "0x8086 0x2415" in out, out  # the AC97 sound card
    console.close()
    daemon.cli("destroy", "qxl1").ok()

"""<clock offset='absolute'> (pyvirt.conf.clock) on a real guest: its RTC starts at the given instant."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow


def test_absolute_offset_sets_the_guests_rtc(daemon: Daemon, tmp_path: Path) -> None:
    text = domain_xml("clock1")
    clock = (
        "<clock offset='absolute' start='1893456000'><timer name='rtc' track='guest'/></clock>"  # 2030-01-01
    )
    text = text.replace("<devices>", clock + "<devices>", 1)
    path = tmp_path / "clock1.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()
    assert "<clock offset='absolute' start='1893456000'>" in daemon.cli("dumpxml", "clock1").ok().out
    daemon.cli("start", "clock1").ok()
    console = Console(daemon, "clock1")
    console.expect("pyvirt-guest: ready")
    assert console.run("cat /sys/class/rtc/rtc0/date") == "2030-01-01"
    console.close()
    daemon.cli("destroy", "clock1").ok()

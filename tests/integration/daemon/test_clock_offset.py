"""<clock offset='absolute'> (pyvirt.conf.clock) on a real guest: its RTC starts at the given instant;
<clock offset='variable'>: the guest setting its RTC is recorded into the live XML's adjustment, as
libvirt records it (pyvirt.daemon.rtc), and reported as the rtc-change event."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.events import listening, read_until, watch
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


def test_variable_offset_records_the_guests_rtc_changes(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    text = domain_xml("clock2").replace(
        "<devices>", "<clock offset='variable' adjustment='120' basis='utc'/><devices>", 1
    )
    path = tmp_path / "clock2.xml"
    path.write_text(text)
    d.cli("define", str(path)).ok()
    d.cli("start", "clock2").ok()
    console = Console(d, "clock2")
    console.expect("pyvirt-guest: ready")
    proc = watch(d, "--all", "--domain", "clock2")
    try:
        listening(d, proc, "clock2", tmp_path)
        # The guest moves its clock an hour on and writes it to the RTC (QEMU: RTC_CHANGE, offset ~3600).
        console.run("date -s @$(( $(date +%s) + 3600 )) >/dev/null && hwclock -w -u && echo written")
        seen = read_until(proc, b"rtc-change").decode()
        while not re.search(r"rtc-change.*\n", seen):
            seen += read_until(proc, b"\n").decode()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    event = re.search(r"event 'rtc-change' for domain 'clock2': (-?\d+)", seen)
    assert event is not None, seen
    offset = int(event.group(1))
    assert 3500 <= offset <= 3700, seen  # the guest's hour, give or take its boot's drift
    live = d.cli("dumpxml", "clock2").ok().out
    clock = re.search(r"<clock offset='variable' adjustment='(-?\d+)' basis='utc'", live)
    assert clock is not None and int(clock.group(1)) == 120 + offset, live  # the start's plus QEMU's
    assert "adjustment='120'" in d.cli("dumpxml", "--inactive", "clock2").ok().out
    console.close()
    d.cli("destroy", "clock2").ok()

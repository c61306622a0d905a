"""domxml-to-native qemu-argv on a real daemon: the command line start would run, nothing started."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.support.daemon import Daemon
from tests.unit.qemu.test_command import DATA_ROOT

CASE = DATA_ROOT / "domain" / "libvirt-pc-ide-floppy.xml"


def test_domxml_to_native_prints_the_argv_start_would_run(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.cli("domxml-to-native", "qemu-argv", str(CASE)).ok()
    argv = shlex.split(result.out)
    assert result.out.endswith("\n") and result.out.count("\n") == 1
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert argv[argv.index("-name") + 1] == "guest=dos-box,debug-threads=on"
    # the daemon's own paths, not the golden test's
    monitor = next(arg for arg in argv if arg.startswith("socket,id=charmonitor"))
    assert f"path={daemon.run_dir}/dos-box.monitor" in monitor
    assert argv[argv.index("-pidfile") + 1] == f"{daemon.run_dir}/dos-box.pid"
    assert "floppy,unit=0,drive=pyvirt-1-format,id=fdc0-0-0" in argv
    assert "isa-fdc.bootindexA=1" in argv
    golden = (CASE.with_suffix(".args")).read_text()
    for arg in argv:
        if str(daemon.root) not in arg:
            assert arg in golden, f"{arg!r} is not in the golden command line"
    assert "dos-box" not in daemon.cli("list", "--all").ok().out  # nothing defined or started
    assert not daemon.qemu_pids()


def test_domxml_to_native_refusals(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.cli("domxml-to-native", "xen-xm", str(CASE))
    assert result.rc == 1 and result.err.startswith("error: unsupported config type xen-xm"), result.err
    bad = tmp_path / "bad.xml"
    bad.write_text(CASE.read_text().replace("<controller type='fdc' index='0'/>", "<hub type='usb'/>"))
    result = daemon.cli("domxml-to-native", "qemu-argv", str(bad))
    assert result.rc == 1 and "element 'devices/hub' is not supported" in result.err, result.err

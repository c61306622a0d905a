"""pyvirt-guests against a real daemon and real TCG guests: at host shutdown a guest that listens to the
power button shuts down, one that does not is destroyed after the timeout, both are recorded; at boot
both start again, and a guest that was not running stays off."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Console, Daemon, Result
from tests.support.guest import domain_xml, guest_artifacts

pytestmark = pytest.mark.slow

READY = r"pyvirt-guest: ready"
# No kernel, no disk: SeaBIOS looks for something to boot for ever, and ignores ACPI.
DEAF = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
    "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
)


def guests(daemon: Daemon, *args: str) -> Result:
    proc = subprocess.run(
        [str(BIN / "pyvirt-guests"), *args], env=daemon.env, capture_output=True, text=True, timeout=300
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def define(daemon: Daemon, tmp_path: Path, name: str, xml: str) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    daemon.cli("define", str(path)).ok()


def test_a_guest_shuts_down_with_the_host_and_comes_back(daemon: Daemon, tmp_path: Path) -> None:
    guest_artifacts()
    define(daemon, tmp_path, "gw", domain_xml("gw"))
    define(daemon, tmp_path, "idle", DEAF.format(name="idle"))
    daemon.cli("start", "gw").ok()
    console = Console(daemon, "gw")
    console.expect(READY)
    state_file = daemon.root / "var/lib/pyvirt/pyvirt-guests"

    # A long timeout: the stop returns as soon as the guest is down.
    stop = guests(daemon, "stop", "--timeout", "600").ok()
    assert stop.out == "Shutting down gw\nDomain gw has been shut down\n"
    console.expect("pyvirt-guest: power button", 60)
    console.close()
    assert daemon.cli("domstate", "--reason", "gw").ok().out.strip() == "shut off (shutdown)"
    assert state_file.read_text() == "gw\n"

    start = guests(daemon, "start").ok()
    assert start.out == "Domain gw started\n"
    assert daemon.state("gw") == "running"
    assert daemon.state("idle") == "shut off"  # was not running: stays off
    assert not state_file.exists()
    assert "No guests to start." in guests(daemon, "start").ok().out  # once only
    daemon.cli("destroy", "gw").ok()


def test_a_guest_deaf_to_the_power_button_is_destroyed_after_the_timeout(
    daemon: Daemon, tmp_path: Path
) -> None:
    define(daemon, tmp_path, "deaf", DEAF.format(name="deaf"))
    daemon.cli("start", "deaf").ok()
    stop = guests(daemon, "stop", "--timeout", "3").ok()
    assert stop.out == "Shutting down deaf\nTimeout expired while shutting down deaf: destroying it\n"
    assert daemon.cli("domstate", "--reason", "deaf").ok().out.strip() == "shut off (destroyed)"
    assert guests(daemon, "start").ok().out == "Domain deaf started\n"
    assert daemon.state("deaf") == "running"
    daemon.cli("destroy", "deaf").ok()


def test_nothing_running(daemon: Daemon) -> None:
    assert guests(daemon, "stop").ok().out == "No running guests.\n"
    assert (daemon.root / "var/lib/pyvirt/pyvirt-guests").read_text() == ""
    assert guests(daemon, "start").ok().out == ""


def test_errors_are_reported(daemon: Daemon) -> None:
    bad = guests(daemon, "stop", "--timeout", "-1")
    assert bad.rc == 1 and bad.err == "error: --timeout must not be negative\n"
    nowhere = guests(daemon, "-c", "qemu+unix:///system?socket=/nonexistent", "start")
    assert nowhere.rc == 1 and nowhere.err.startswith("error: Failed to connect socket to '/nonexistent'")


def test_suspend_saves_guests_and_start_resumes_them(daemon: Daemon, tmp_path: Path) -> None:
    """--on-shutdown suspend (libvirt-guests' ON_SHUTDOWN=suspend): the guest is saved, not shut down, and
    the next start resumes it where it was (a file it wrote in RAM is still there, no new boot); a
    transient guest is shut down instead."""
    define(daemon, tmp_path, "sv", domain_xml("sv"))
    daemon.cli("start", "sv").ok()
    console = Console(daemon, "sv")
    console.expect(READY)
    console.run("echo kept-in-ram > /tmp/marker")
    console.close()
    transient = tmp_path / "tr.xml"
    transient.write_text(DEAF.format(name="tr"))
    daemon.cli("create", str(transient)).ok()

    stop = guests(daemon, "stop", "--on-shutdown", "suspend", "--timeout", "3", "--bypass-cache").ok()
    assert stop.out == (
        "Saving sv\nDomain sv has been saved\nDomain tr is transient and cannot be saved: shutting it down\n"
        "Shutting down tr\nTimeout expired while shutting down tr: destroying it\n"
    )
    assert daemon.cli("domstate", "--reason", "sv").ok().out.strip() == "shut off (saved)"
    assert "Managed save:   yes" in daemon.cli("dominfo", "sv").ok().out
    assert "tr" not in daemon.cli("list", "--all", "--name").ok().out.split()

    assert guests(daemon, "start", "--bypass-cache=1").ok().out == "Domain sv restored\n"
    assert daemon.cli("domstate", "--reason", "sv").ok().out.strip() == "running (restored)"
    console = Console(daemon, "sv")
    assert "kept-in-ram" in console.run("cat /tmp/marker")
    console.close()
    assert "Managed save:   no" in daemon.cli("dominfo", "sv").ok().out
    daemon.cli("destroy", "sv").ok()

    bad = guests(daemon, "stop", "--on-shutdown", "hibernate")
    assert bad.rc == 1 and bad.err.startswith("error: argument --on-shutdown: invalid choice: 'hibernate'")

"""The seed's workflow on a real QEMU guest under TCG: define → start → console → dominfo →
shutdown/destroy → autostart, plus reboot, reset, suspend/resume and the on_* actions."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.support import events
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml, guest_artifacts

pytestmark = pytest.mark.slow

READY = r"pyvirt-guest: ready"


def define(daemon: Daemon, tmp_path: Path, name: str, **kw: object) -> Path:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, **kw))  # type: ignore[arg-type]
    daemon.cli("define", str(path)).ok()
    return path


def test_seed_workflow(daemon: Daemon, tmp_path: Path) -> None:
    guest_artifacts()
    path = define(daemon, tmp_path, "web01")
    assert (daemon.config_dir / "web01.xml").exists()

    listing = daemon.cli("list", "--all").ok().out
    assert re.search(r"^ -\s+web01\s+shut off\s*$", listing, re.M), listing
    assert daemon.cli("list").ok().out.count("web01") == 0

    start = daemon.cli("start", "web01").ok()
    assert start.out == "Domain 'web01' started\n\n"
    console = Console(daemon, "web01")
    console.expect(READY)
    assert console.run("echo hello-$((6*7))") == "hello-42"

    info = daemon.cli("dominfo", "web01").ok().out
    assert re.search(r"^Id:\s+1$", info, re.M)
    assert re.search(r"^State:\s+running$", info, re.M)
    assert re.search(r"^Max memory:\s+131072 KiB$", info, re.M)
    assert re.search(r"^Persistent:\s+yes$", info, re.M)
    assert daemon.cli("domstate", "--reason", "web01").ok().out == "running (booted)\n\n"

    # ACPI shutdown reaches the guest, which powers off by itself.
    assert daemon.cli("shutdown", "web01").ok().out == "Domain 'web01' is being shutdown\n\n"
    console.expect("pyvirt-guest: power button", 60)
    daemon.wait_state("web01", "shut off")
    assert daemon.cli("domstate", "--reason", "web01").ok().out == "shut off (shutdown)\n\n"
    console.close()
    log = (daemon.root / "var/log/pyvirt/qemu/web01.log").read_text()
    assert "starting up pyvirt" in log and "-name guest=web01" in log

    # destroy
    daemon.cli("start", "web01").ok()
    assert daemon.cli("destroy", "web01").ok().out == "Domain 'web01' destroyed\n\n"
    assert daemon.cli("domstate", "--reason", "web01").ok().out == "shut off (destroyed)\n\n"
    assert not daemon.qemu_pids()

    # autostart links follow libvirt's convention
    assert daemon.cli("autostart", "web01").ok().out == "Domain 'web01' marked as autostarted\n\n"
    link = daemon.config_dir / "autostart/web01.xml"
    assert link.is_symlink() and str(link.readlink()) == "../web01.xml"
    assert "Autostart:      enable" in daemon.cli("dominfo", "web01").ok().out
    assert (
        daemon.cli("autostart", "--disable", "web01").ok().out == "Domain 'web01' unmarked as autostarted\n\n"
    )
    assert not link.exists()
    assert path.exists()


def test_reboot_reset_suspend_resume(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "r1")
    daemon.cli("start", "r1").ok()
    console = Console(daemon, "r1")
    console.expect(READY)
    pid = daemon.qemu_pids()["r1"]

    assert daemon.cli("reboot", "r1").ok().out == "Domain 'r1' is being rebooted\n\n"
    console.expect("pyvirt-guest: power button", 60)
    console.expect(READY, 120)  # booted again in the same QEMU
    assert daemon.qemu_pids()["r1"] == pid
    assert daemon.state("r1") == "running"

    assert daemon.cli("reset", "r1").ok().out == "Domain 'r1' was reset\n\n"
    console.expect(READY, 120)

    assert daemon.cli("suspend", "r1").ok().out == "Domain 'r1' suspended\n\n"
    assert daemon.cli("domstate", "--reason", "r1").ok().out == "paused (user)\n\n"
    console.send("echo after-pause\n")
    with pytest.raises(AssertionError):
        console.expect("\nafter-pause", 2)
    assert daemon.cli("resume", "r1").ok().out == "Domain 'r1' resumed\n\n"
    console.expect("\nafter-pause", 30)
    assert daemon.cli("domstate", "--reason", "r1").ok().out == "running (unpaused)\n\n"
    console.close()
    daemon.cli("destroy", "--graceful", "r1").ok()


def test_start_paused_and_console_from_a_pipe(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "p1")
    daemon.cli("start", "--paused", "p1").ok()
    assert daemon.cli("domstate", "--reason", "p1").ok().out == "paused (user)\n\n"
    daemon.cli("resume", "p1").ok()
    Console(daemon, "p1").expect(READY)
    # `pyvirt console` with stdin a pipe: the bytes are typed, 0x1d detaches.
    import subprocess

    from tests.support.daemon import BIN

    proc = subprocess.Popen(
        [str(BIN / "pyvirt"), "console", "p1"],
        env=daemon.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b"echo piped-$((40+2))\n")
    proc.stdin.flush()
    seen = events.read_until(proc, b"piped-42", bound=60)  # the answer, then 0x1d detaches
    proc.stdin.write(b"\x1d")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"Connected to domain 'p1'" in seen + out
    daemon.cli("destroy", "p1").ok()


def test_on_poweroff_restart_and_on_reboot_destroy(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "a1", on_poweroff="restart")
    daemon.cli("start", "a1").ok()
    console = Console(daemon, "a1")
    console.expect(READY)
    console.send("poweroff -f\n")
    console.expect(READY, 120)  # restarted instead of stopping
    assert daemon.state("a1") == "running"
    console.close()
    daemon.cli("destroy", "a1").ok()

    define(daemon, tmp_path, "a2", on_reboot="destroy")
    daemon.cli("start", "a2").ok()
    console = Console(daemon, "a2")
    console.expect(READY)
    console.send("reboot -f\n")
    daemon.wait_state("a2", "shut off", 60)
    console.close()


@pytest.mark.parametrize(
    ("on_crash", "expected"),
    [("destroy", "shut off (crashed)"), ("preserve", "crashed (panicked)"), ("restart", "running")],
)
def test_on_crash(daemon: Daemon, tmp_path: Path, on_crash: str, expected: str) -> None:
    name = f"c-{on_crash}"
    define(daemon, tmp_path, name, on_crash=on_crash, panic=True)
    daemon.cli("start", name).ok()
    console = Console(daemon, name)
    console.expect(READY)
    console.send("echo c > /proc/sysrq-trigger\n")
    if on_crash == "restart":
        console.expect(READY, 120)
        assert daemon.state(name) == "running"
    else:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = daemon.cli("domstate", "--reason", name).out.strip()
            if state == expected:
                break
            time.sleep(0.3)
        assert state == expected
    console.close()
    if on_crash != "destroy":
        daemon.cli("destroy", name).ok()


def test_boot_from_qcow2_disk(daemon: Daemon, tmp_path: Path) -> None:
    import shutil

    art = guest_artifacts()
    disk = tmp_path / "d1.qcow2"
    shutil.copyfile(art.disk, disk)
    define(daemon, tmp_path, "disk1", disk=disk)
    daemon.cli("start", "disk1").ok()
    console = Console(daemon, "disk1")
    console.expect(READY)
    assert "/dev/vda" in console.run("grep ' / ' /proc/mounts || mount")
    blk = daemon.cli("domblklist", "disk1").ok().out
    assert re.search(rf"^ vda\s+{re.escape(str(disk))}$", blk, re.M), blk
    console.close()
    daemon.cli("destroy", "disk1").ok()


def test_transient_create(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "t1.xml"
    path.write_text(domain_xml("t1"))
    assert daemon.cli("create", str(path)).ok().out == f"Domain 't1' created from {path}\n\n"
    assert "Persistent:     no" in daemon.cli("dominfo", "t1").ok().out
    assert not (daemon.config_dir / "t1.xml").exists()
    daemon.cli("destroy", "t1").ok()
    gone = daemon.cli("dominfo", "t1")
    assert gone.rc == 1 and gone.err == "error: failed to get domain 't1'\n"


def test_kvm_refused_with_a_clear_error_when_unusable(daemon: Daemon, tmp_path: Path) -> None:
    from pyvirt.qemu.kvmprobe import kvm_usable

    usable, reason = kvm_usable()
    if usable:
        pytest.skip("KVM is usable on this host")
    path = tmp_path / "k1.xml"
    path.write_text(domain_xml("k1").replace('type="qemu"', 'type="kvm"', 1))
    daemon.cli("define", str(path)).ok()
    result = daemon.cli("start", "k1")
    assert result.rc == 1
    assert "KVM is not usable on this host" in result.err and reason in result.err
    assert "type='qemu'" in result.err
    assert daemon.state("k1") == "shut off"


def test_pmsuspend_to_ram_and_wake_up(daemon: Daemon, tmp_path: Path) -> None:
    """The guest suspends to RAM (S3): QEMU's SUSPEND makes the domain pmsuspended, which suspend and
    resume refuse and destroy ends; an RTC alarm wakes it (WAKEUP) and it runs again."""
    define(daemon, tmp_path, "s3")
    watcher = events.watch(daemon, "s3", "--event", "lifecycle")
    try:
        events.listening(daemon, watcher, "s3", tmp_path)
        daemon.cli("start", "s3").ok()
        console = Console(daemon, "s3")
        console.expect(READY)
        console.send("echo mem > /sys/power/state\n")
        events.read_until(watcher, b"event 'lifecycle' for domain 's3': PMSuspended Memory\n")
        assert daemon.cli("domstate", "--reason", "s3").ok().out == "pmsuspended (unknown)\n\n"
        refused = daemon.cli("suspend", "s3")
        assert refused.rc == 1 and "domain is pmsuspended" in refused.err, refused.err
        refused = daemon.cli("resume", "s3")
        assert refused.rc == 1 and "domain is not paused" in refused.err, refused.err
        daemon.cli("destroy", "s3").ok()
        assert daemon.cli("domstate", "--reason", "s3").ok().out == "shut off (destroyed)\n\n"
        console.close()

        daemon.cli("start", "s3").ok()
        console = Console(daemon, "s3")
        console.expect(READY)
        console.send("echo +10 > /sys/class/rtc/rtc0/wakealarm; echo mem > /sys/power/state\n")
        out = events.read_until(
            watcher, b"event 'lifecycle' for domain 's3': Started Event wakeup\n"
        ).decode()
        assert "PMSuspended Memory" in out.split("Started Booted")[-1], out
        assert daemon.cli("domstate", "--reason", "s3").ok().out == "running (event wakeup)\n\n"
        console.close()
        daemon.cli("destroy", "s3").ok()
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)


def test_a_detach_waiting_on_a_paused_guest_blocks_nothing(daemon: Daemon, tmp_path: Path) -> None:
    """A paused guest cannot answer an unplug request: the detach waits for it without holding the
    domain, so resume (then the guest releases the NIC) and destroy (then the detach fails) get through."""
    import subprocess

    from tests.support.daemon import BIN

    mac = "52:54:00:00:91:01"
    define(daemon, tmp_path, "dt", nic_user=True, mac=mac)
    daemon.cli("start", "dt").ok()
    console = Console(daemon, "dt")
    console.expect(READY)
    console.close()

    def detach_while_paused() -> subprocess.Popen[str]:
        daemon.cli("suspend", "dt").ok()
        waiting = daemon.log.read_text().count("domain dt: waiting for the guest to release")
        detach = subprocess.Popen(
            [str(BIN / "pyvirt"), "detach-interface", "dt", "user", "--mac", mac],
            env=daemon.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while daemon.log.read_text().count("domain dt: waiting for the guest to release") == waiting:
            assert detach.poll() is None and time.monotonic() < deadline, detach.communicate()
            time.sleep(0.1)
        assert daemon.cli("domstate", "--reason", "dt").ok().out == "paused (user)\n\n"
        return detach

    detach = detach_while_paused()
    daemon.cli("resume", "dt").ok()
    out, err = detach.communicate(timeout=60)
    assert detach.returncode == 0 and out == "Interface detached successfully\n\n", err
    assert mac not in daemon.cli("domiflist", "dt").ok().out

    daemon.cli("destroy", "dt").ok()
    daemon.cli("start", "dt").ok()  # the NIC is back: the detach changed the running domain only
    console = Console(daemon, "dt")
    console.expect(READY)
    console.close()
    detach = detach_while_paused()
    assert daemon.cli("destroy", "dt").ok().out == "Domain 'dt' destroyed\n\n"
    out, err = detach.communicate(timeout=60)
    assert detach.returncode == 1 and "domain is not running" in err, (out, err)
    assert daemon.cli("domstate", "--reason", "dt").ok().out == "shut off (destroyed)\n\n"

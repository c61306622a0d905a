"""The guest agent on a real pyvirtd and a real TCG guest running Debian's qemu-guest-agent: the agent's
connection seen as events, guestinfo, domfsinfo, domifaddr --source agent, domhostname, domtime,
passwords and SSH keys, a file system frozen and thawed, qemu-agent-command, an agent that stops
answering, an agent leaving and coming back, a domain without an agent (--mode lists falling back to
ACPI), shutdown and reboot --mode agent, a daemon restarted, and power management suspend and wakeup."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow

READY = "pyvirt-guest: ready"
AGENT = """<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"""
# A crypt(3) SHA-512 hash, as set-user-password --encrypted takes it (of the word "pyvirt").
HASH = "$6$pyvirtsalt$OTgLTc9MqKRyTc5s8QYNSUz70F/vcWkowHlCJXBe5dNTV4KTJmZfe9yNP2kTnPx68.PO4uOgSdR1aUan2XpZO0"


# qemu-guest-agent sets passwords with chpasswd, which busybox-static lacks: the test installs this one
# ("user:password" lines on stdin; -e: already encrypted), hashing with busybox's mkpasswd.
CHPASSWD = """#!/bin/sh
enc=0; [ "$1" = "-e" ] && enc=1
while IFS=: read -r user pass; do
    [ $enc = 1 ] || pass=$(mkpasswd -m sha512 "$pass")
    sed -i "s|^$user:[^:]*:|$user:$pass:|" /etc/shadow
done
"""


# qemu-guest-agent 7.2 runs "shutdown -h -P|-H|-r +0 MESSAGE": the test guest's shim reads only its first
# argument (so it powers off for a reboot too); the test installs one that reads them all.
SHUTDOWN = """#!/bin/sh
sync
for arg; do
    case "$arg" in
        -r) exec /bin/busybox reboot -f ;;
        -H) exec /bin/busybox halt -f ;;
    esac
done
exec /bin/busybox poweroff -f
"""


def install(console: Console, path: str, text: str) -> None:
    """Write an executable file into the guest (on its disk: it stays for the next boot)."""
    data = base64.b64encode(text.encode()).decode()
    console.run(f"echo {data} | base64 -d > {path} && chmod 755 {path} && sync")


def scratch_ext4(path: Path) -> Path:
    """A small raw ext4 image for the guest to mount (its own disk, so freezing it spares the root)."""
    with open(path, "wb") as fh:
        fh.truncate(16 * 2**20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "scratch", str(path)], check=True)
    return path


class EventReader:
    """``pyvirt event --event agent-lifecycle --loop`` run in the background, read with a deadline."""

    def __init__(self, daemon: Daemon, domain: str) -> None:
        self.proc = subprocess.Popen(
            [
                str(BIN / "pyvirt"),
                "event",
                domain,
                "--event",
                "agent-lifecycle",
                "--loop",
                "--timeout",
                "600",
            ],
            env=daemon.env,
            stdout=subprocess.PIPE,
        )
        self.pending = b""

    def until(self, wanted: str, timeout: float = 180) -> str:
        """The lines up to the first with ``wanted`` (AssertionError after ``timeout`` s)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        seen = ""
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                seen += line.decode() + "\n"
                if wanted in line.decode():
                    return seen
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {wanted!r} event in {timeout}s; the stream gave:\n{seen}"
            data = os.read(fd, 4096)
            assert data, f"the event stream ended before {wanted!r}; it gave:\n{seen}"
            self.pending += data

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_guest_agent_verbs(daemon: Daemon, tmp_path: Path) -> None:
    art = guest_artifacts()
    disk = copy_disk(art, tmp_path / "ga1.qcow2")
    scratch = scratch_ext4(tmp_path / "scratch.raw")
    extra = (
        AGENT + f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{scratch}'/><target dev='vdb' bus='virtio'/></disk>"
    )
    xml = tmp_path / "ga1.xml"
    text = domain_xml("ga1", disk=disk, nic_user=True, extra_devices=extra)
    xml.write_text(text.replace("<devices>", "<pm><suspend-to-mem enabled='yes'/></pm><devices>", 1))
    daemon.cli("define", str(xml)).ok()

    # The agent's lifecycle, as virsh event --event agent-lifecycle prints it.
    events = EventReader(daemon, "ga1")
    try:
        time.sleep(1)  # subscribed before the start (an early event would be missed, not misread)
        daemon.cli("start", "ga1").ok()
        console = Console(daemon, "ga1")
        port = console.expect(r"pyvirt-guest: agent on (vport\w+)", 180).group(1).decode()
        console.expect(READY, 180)
        seen = events.until("state: 'connected'")
        assert "event 'agent-lifecycle' for domain 'ga1': state: 'connected' reason: 'channel event'" in seen

        # guestinfo: every group by default; one group when asked.
        out = daemon.cli("guestinfo", "ga1").ok().out
        assert re.search(r"^os\.id\s+: pyvirt-guest$", out, re.M), out
        assert re.search(r"^hostname\s+: pyvirt-guest$", out, re.M), out
        assert re.search(r"^fs\.count\s+: [1-9]", out, re.M), out
        assert re.search(r"^if\.count\s+: [1-9]", out, re.M), out
        assert re.search(r"^timezone\.offset\s+: -?\d+$", out, re.M), out
        mounts = dict(re.findall(r"^fs\.(\d+)\.mountpoint\s+: (\S+)$", out, re.M))
        root = next(i for i, mp in mounts.items() if mp == "/")
        assert re.search(rf"^fs\.{root}\.fstype\s+: ext4$", out, re.M), out
        assert re.search(rf"^fs\.{root}\.disk\.0\.alias\s+: vda$", out, re.M), out
        only = daemon.cli("guestinfo", "ga1", "--hostname").ok().out
        assert only == "hostname            : pyvirt-guest\n\n", only
        kernel = console.run("uname -r")
        os_only = daemon.cli("guestinfo", "ga1", "--os").ok().out
        assert f"{'os.kernel-release':<20}: {kernel}\n" in os_only, os_only
        for flag, key in (
            ("--user", "user.count"),
            ("--timezone", "timezone.offset"),
            ("--disk", "disk.count"),
        ):
            assert key in daemon.cli("guestinfo", "ga1", flag).ok().out
        assert "if.0.name" in daemon.cli("guestinfo", "ga1", "--interface").ok().out
        assert "fs.count" in daemon.cli("guestinfo", "ga1", "--filesystem").ok().out

        # domfsinfo: the root file system on the domain's vda.
        out = daemon.cli("domfsinfo", "ga1").ok().out
        assert re.search(r"^ Mountpoint\s+Name\s+Type\s+Target\n-+\n", out), out
        assert re.search(r"^ /\s+\S+\s+ext4\s+vda$", out, re.M), out

        # domifaddr --source agent: an address only the guest knows (no lease, no neighbour).
        console.run("ip addr add 192.0.2.7/24 dev eth0")
        out = daemon.cli("domifaddr", "ga1", "--source", "agent").ok().out
        assert re.search(r"^ lo\s+00:00:00:00:00:00\s+ipv4\s+127\.0\.0\.1/8$", out, re.M), out
        assert re.search(r"^ (eth0|-)\s+\S+\s+ipv4\s+192\.0\.2\.7/24$", out, re.M), out
        full = daemon.cli("domifaddr", "ga1", "--source", "agent", "--full").ok().out
        assert re.search(r"^ eth0\s+52:54:00:\S+\s+ipv4\s+192\.0\.2\.7/24$", full, re.M), full
        out = daemon.cli("domifaddr", "ga1", "--source", "agent", "--interface", "eth0", "--json").ok().out
        rows = json.loads(out)
        assert {row["name"] for row in rows} == {"eth0"}, rows
        assert any(row["protocol"] == "ipv4" and row["address"] == "192.0.2.7/24" for row in rows), rows

        # domhostname (the agent's, the default); domtime get, set and --sync.
        assert daemon.cli("domhostname", "ga1").ok().out == "pyvirt-guest\n\n"
        console.run("hostname renamed-guest")
        assert daemon.cli("domhostname", "ga1", "--source", "agent").ok().out == "renamed-guest\n\n"
        out = daemon.cli("domtime", "ga1").ok().out
        guest_now = int(re.fullmatch(r"Time: (\d+)\n", out).group(1))  # type: ignore[union-attr]
        assert abs(guest_now - time.time()) < 3600, out  # the guest's RTC is the host's clock
        daemon.cli("domtime", "ga1", "--time", "2000000000").ok()
        assert int(console.run("date +%s")) >= 2000000000
        assert daemon.cli("domtime", "ga1", "--pretty").ok().out.startswith("Time: 2033-05-18 ")
        daemon.cli("domtime", "ga1", "--now").ok()
        assert abs(int(console.run("date +%s")) - time.time()) < 600
        daemon.cli("domtime", "ga1", "--sync").ok()
        result = daemon.cli("domtime", "ga1", "--now", "--sync")
        assert result.rc == 1 and "Options --now and --sync are mutually exclusive" in result.err

        # set-user-password: plain (hashed by the guest's chpasswd; the same password with the same salt
        # gives the same hash) and --encrypted (stored as given).
        install(console, "/usr/sbin/chpasswd", CHPASSWD)
        out = daemon.cli("set-user-password", "ga1", "root", "s3cret").ok().out
        assert out == "Password set successfully for root in ga1\n"
        check = (
            "h=$(sed -n 's/^root:\\([^:]*\\):.*/\\1/p' /etc/shadow); s=$(echo \"$h\" | cut -d'$' -f3); "
            '[ "$(mkpasswd -m sha512 s3cret "$s")" = "$h" ] && echo PASSWORD-OK'
        )
        assert "PASSWORD-OK" in console.run(check)
        daemon.cli("set-user-password", "ga1", "--user", "root", "--password", HASH, "--encrypted").ok()
        assert console.run("grep ^root: /etc/shadow").startswith(f"root:{HASH}:")

        # set-user-sshkeys / get-user-sshkeys: add from a file, remove one, reset.
        keys = tmp_path / "keys"
        keys.write_text(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@test\n"
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@test\n"
        )
        daemon.cli("set-user-sshkeys", "ga1", "root", "--file", str(keys)).ok()
        out = daemon.cli("get-user-sshkeys", "ga1", "root").ok().out
        assert out.endswith("\n\n") and sorted(out.splitlines()[:-1]) == keys.read_text().splitlines(), out
        assert "one@test" in console.run("cat /root/.ssh/authorized_keys")
        one = tmp_path / "one"
        one.write_text(keys.read_text().splitlines()[0] + "\n")
        daemon.cli("set-user-sshkeys", "ga1", "root", "--file", str(one), "--remove").ok()
        assert daemon.cli("get-user-sshkeys", "ga1", "root").ok().out.strip().endswith("two@test")
        daemon.cli("set-user-sshkeys", "ga1", "root", "--reset").ok()
        assert daemon.cli("get-user-sshkeys", "ga1", "root").ok().out == "\n"
        result = daemon.cli("set-user-sshkeys", "ga1", "root")
        assert result.rc == 1 and "Option --file is required" in result.err

        # domfsfreeze blocks a write on the frozen file system until domfsthaw.
        console.run("mkdir -p /scratch && mount /dev/vdb /scratch")
        out = daemon.cli("domfsfreeze", "ga1", "--mountpoint", "/scratch").ok().out
        assert out == "Froze 1 filesystem(s)\n\n"
        console.send("(echo data > /scratch/file && echo WRITE-DONE) &\n")
        assert "FILE-ABSENT" in console.run("sleep 2; [ -s /scratch/file ] || echo FILE-ABSENT")
        assert "WRITE-DONE" not in console.buffer.decode(errors="replace")
        assert daemon.cli("domfsthaw", "ga1").ok().out == "Thawed 1 filesystem(s)\n\n"
        console.expect("WRITE-DONE", 60)
        assert console.run("cat /scratch/file") == "data"
        result = daemon.cli("domfsthaw", "ga1", "/scratch")
        assert result.rc == 1 and "specifying mountpoints is not supported" in result.err
        daemon.cli("domfstrim", "ga1", "--minimum", "4096").ok()
        result = daemon.cli("domfstrim", "ga1", "--mountpoint", "/")
        assert result.rc == 1 and "Unable to invoke fstrim" in result.err

        # qemu-agent-command: the reply as JSON text, --pretty indented; an unknown command's error.
        out = daemon.cli("qemu-agent-command", "ga1", '{"execute":"guest-ping"}').ok().out
        assert out == '{"return":{}}\n\n'
        out = (
            daemon.cli("qemu-agent-command", "ga1", "--pretty", '{"execute":"guest-get-host-name"}').ok().out
        )
        assert out == '{\n  "return": {\n    "host-name": "renamed-guest"\n  }\n}\n\n', out
        out = daemon.cli("qemu-agent-command", "ga1", "--block", '{"execute":"guest-ping"}').ok().out
        assert out == '{"return":{}}\n\n'
        assert daemon.cli("qemu-agent-command", "ga1", "--async", '{"execute":"guest-ping"}').ok().out == "\n"
        result = daemon.cli("qemu-agent-command", "ga1", "--timeout", "10", '{"execute":"guest-bogus"}')
        assert result.rc == 1 and "guest-bogus" in result.err

        # An agent that stops answering: refused after the timeout, with libvirt's message.
        console.run("kill -STOP $(cat /run/qemu-ga.pid)")
        result = daemon.cli("domtime", "ga1")
        assert result.rc == 1
        assert result.err == "error: Guest agent is not responding: Guest agent not available for now\n"
        console.run("kill -CONT $(cat /run/qemu-ga.pid)")
        assert daemon.cli("domhostname", "ga1").ok().out == "renamed-guest\n\n"

        install(console, "/sbin/shutdown", SHUTDOWN)
        # shutdown --mode acpi,agent: the agent comes first whatever the order given (libvirt takes the
        # modes as flags): the guest powers itself off (no power button press), and its agent leaves first.
        daemon.cli("shutdown", "ga1", "--mode", "acpi,agent").ok()
        daemon.wait_state("ga1", "shut off", 120)
        assert "power button" not in console.buffer.decode(errors="replace")
        seen = events.until("state: 'disconnected'")
        assert "state: 'disconnected' reason: 'channel event'" in seen
        console.close()
        result = daemon.cli("domtime", "ga1")
        assert result.rc == 1 and "domain is not running" in result.err

        # reboot --mode agent (on a fresh boot): the guest reboots itself; its agent leaves and comes back.
        daemon.cli("start", "ga1").ok()
        events.until("state: 'connected'")
        assert daemon.cli("reboot", "ga1", "--mode", "agent").ok().out == "Domain 'ga1' is being rebooted\n\n"
        seen = events.until("state: 'connected'")
        assert "state: 'disconnected'" in seen
        # A daemon restarted meanwhile asks QEMU whether the agent's port is open: a shutdown with no
        # --mode goes through the connected agent (no power button press), as libvirt's.
        events.close()
        daemon.restart()
        console = Console(daemon, "ga1", history=False)
        events = EventReader(daemon, "ga1")
        daemon.cli("shutdown", "ga1").ok()
        before = console.expect(r"(?s)(.*)reboot: Power down", 120).group(1).decode(errors="replace")
        assert "power button" not in before, before
        daemon.wait_state("ga1", "shut off", 120)
        console.close()

        # A third boot.
        daemon.cli("start", "ga1").ok()
        console3 = Console(daemon, "ga1")
        console3.expect(READY, 180)
        events.until("state: 'connected'")
        assert daemon.cli("domhostname", "ga1").ok().out == "pyvirt-guest\n\n"

        # An agent that leaves (its port closed): 'disconnected' at once, and calls refused at once, with
        # libvirt's words; started again, it is 'connected' and answers.
        console3.run("kill $(cat /run/qemu-ga.pid)")
        seen = events.until("state: 'disconnected'")
        assert "state: 'disconnected' reason: 'channel event'" in seen
        for argv in (("domtime", "ga1"), ("domfsfreeze", "ga1"), ("shutdown", "ga1", "--mode", "agent")):
            result = daemon.cli(*argv)
            assert result.rc == 1 and "Guest agent is not responding: QEMU guest agent is not connected" in (
                result.err
            ), (argv, result.err)
        console3.run(f"qemu-ga -m virtio-serial -p /dev/{port} -t /run/qemu-ga -d -f /run/qemu-ga.pid")
        events.until("state: 'connected'")
        assert daemon.cli("domhostname", "ga1").ok().out == "pyvirt-guest\n\n"
        console3.close()

        # dompmsuspend mem: the guest suspends itself to RAM; dompmwakeup wakes it.
        result = daemon.cli("dompmsuspend", "ga1", "mem", "--duration", "5")
        assert result.rc == 1 and "Duration not supported" in result.err
        result = daemon.cli("dompmwakeup", "ga1")
        assert result.rc == 1 and "domain is not suspended" in result.err
        out = daemon.cli("dompmsuspend", "ga1", "--target", "mem").ok().out
        assert out == "Domain 'ga1' successfully suspended\n"
        daemon.wait_state("ga1", "pmsuspended", 60)
        assert daemon.cli("dompmwakeup", "ga1").ok().out == "Domain 'ga1' successfully woken up\n"
        daemon.wait_state("ga1", "running", 60)  # QEMU's wakeup (whether this kernel resumes is its own)
        daemon.cli("destroy", "ga1").ok()
    finally:
        events.close()


def test_no_agent_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    """A domain without the agent channel: every agent verb says so, at once; --mode lists fall back."""
    xml = tmp_path / "na1.xml"
    xml.write_text(domain_xml("na1"))
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", "na1").ok()
    for argv in (
        ("domtime", "na1"),
        ("guestinfo", "na1"),
        ("domfsfreeze", "na1"),
        ("domifaddr", "na1", "--source", "agent"),
        ("qemu-agent-command", "na1", '{"execute":"guest-ping"}'),
        ("shutdown", "na1", "--mode", "agent"),
    ):
        result = daemon.cli(*argv)
        assert result.rc == 1 and "QEMU guest agent is not configured" in result.err, (argv, result.err)

    # --mode lists: the agent first (absent here), then ACPI's power button (the guest's acpid powers it
    # off, or QEMU resets it for a reboot). An unknown mode, or one QEMU lacks, is refused by name before
    # anything is tried, even with acpi in the list (libvirt refuses its flag).
    result = daemon.cli("shutdown", "na1", "--mode", "acpi,bogus")
    assert result.rc == 1 and "Unknown mode bogus value, expecting 'acpi', 'agent'" in result.err
    result = daemon.cli("reboot", "na1", "--mode", "initctl")
    assert result.rc == 1 and "cannot reboot a domain by initctl" in result.err
    result = daemon.cli("shutdown", "na1", "--mode", "signal,agent,acpi")
    assert result.rc == 1 and "cannot shut down a domain by signal" in result.err
    console = Console(daemon, "na1")
    console.expect(READY, 180)
    out = daemon.cli("reboot", "na1", "--mode", "agent,acpi").ok().out
    assert out == "Domain 'na1' is being rebooted\n\n"
    console.expect(r"(?s)power button.*pyvirt-guest: ready", 180)
    assert daemon.cli("domstate", "na1").ok().out == "running\n\n"
    daemon.cli("shutdown", "na1", "--mode", "acpi,agent").ok()
    console.expect("pyvirt-guest: power button", 120)
    daemon.wait_state("na1", "shut off", 120)
    console.close()

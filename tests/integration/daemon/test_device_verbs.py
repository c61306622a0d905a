"""attach-device, detach-device, detach-device-alias, update-device and change-media's scopes on a real
pyvirtd and a real TCG guest: what goes to the running domain, what to the definition, what is refused
by name (and then changes nothing)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.support import events
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
CDROM = """
<controller type='scsi' index='0' model='virtio-scsi'/>
<disk type='file' device='cdrom'>
  <driver name='qemu' type='raw'/><target dev='sdc' bus='scsi'/><readonly/>
</disk>
"""


def _disk(target: str, path: Path, alias: str = "", serial: str = "") -> str:
    extra = f"<alias name='{alias}'/>" if alias else ""
    extra += f"<serial>{serial}</serial>" if serial else ""
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{path}'/>"
        f"<target dev='{target}' bus='virtio'/>{extra}</disk>"
    )


def test_device_verbs_and_their_scopes(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    (tmp_path / "dv.xml").write_text(domain_xml("dv", extra_devices=CDROM))
    d.cli("define", str(tmp_path / "dv.xml")).ok()
    iso = tmp_path / "empty.iso"
    iso.write_bytes(b"\0" * 2048 * 16)
    files = {}
    for name, text in {
        "rng": "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
        "nic": "<interface type='user'><mac address='52:54:00:00:a1:01'/><model type='e1000'/></interface>",
        "nic-down": "<interface type='user'><mac address='52:54:00:00:a1:01'/><model type='e1000'/>"
        "<link state='down'/></interface>",
        "nic-bridge": "<interface type='bridge'><mac address='52:54:00:00:a1:01'/>"
        "<source bridge='br9'/><model type='e1000'/></interface>",
    }.items():
        files[name] = tmp_path / f"{name}.xml"
        files[name].write_text(text)

    # Shut off: --current is the definition; change-media --config puts a medium in it.
    d.cli("attach-device", "dv", str(files["rng"]), "--current").ok()
    assert "<rng model='virtio'>" in d.cli("dumpxml", "--inactive", "dv").ok().out
    d.cli("detach-device", "dv", str(files["rng"]), "--config").ok()
    assert "<rng" not in d.cli("dumpxml", "--inactive", "dv").ok().out
    out = d.cli("change-media", "dv", "sdc", str(iso), "--insert", "--block", "--print-xml").ok().out
    assert "type='block'" in out or 'type="block"' in out
    assert re.search("<source dev=." + re.escape(str(iso)), out)
    d.cli("change-media", "dv", "sdc", str(iso), "--insert", "--config").ok()
    assert f"<source file='{iso}'/>" in d.cli("dumpxml", "--inactive", "dv").ok().out
    d.cli("change-media", "dv", "sdc", "--eject", "--config").ok()
    result = d.cli("attach-device", "dv", str(files["rng"]), "--live")
    assert result.rc == 1 and "domain is not running" in result.err

    # virsh event: device-added and device-removed (--event), and with --all the tray's moves too.
    # No --timeout (a busy machine outlasts any fixed one): the watchers end on SIGINT. The domain is
    # defined again until the --all one prints it: then both listen (the other one started first).
    added = events.watch(d, "dv", "--event", "device-added")
    every = events.watch(d, "dv", "--all")
    seen = events.listening(d, every, "dv", tmp_path)
    d.cli("start", "dv").ok()
    console = Console(d, "dv")
    console.expect(READY)

    # An <rng> only into the definition while running (--config); --live is refused by name.
    result = d.cli("attach-device", "dv", str(files["rng"]), "--live")
    assert result.rc == 1 and "a <rng> cannot be attached to a running domain" in result.err
    assert d.cli("attach-device", "dv", str(files["rng"]), "--config").ok().out.strip() == (
        "Device attached successfully"
    )
    assert "<rng" in d.cli("dumpxml", "--inactive", "dv").ok().out
    assert "<rng" not in d.cli("dumpxml", "dv").ok().out

    # A <hostdev>: --live goes through the host's checks (this host has no such device: refused by name,
    # nothing changes); --config puts it in the definition, and detach-device finds it by its source.
    hostdev = tmp_path / "hostdev.xml"
    hostdev.write_text(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0xfe' "
        "slot='0x1f' function='0x7'/></source></hostdev>"
    )
    result = d.cli("attach-device", "dv", str(hostdev), "--live")
    assert result.rc == 1 and "host PCI device 0000:fe:1f.7 does not exist" in result.err, result.err
    assert "<hostdev" not in d.cli("dumpxml", "dv").ok().out
    d.cli("attach-device", "dv", str(hostdev), "--config").ok()
    assert "bus='0xfe'" in d.cli("dumpxml", "--inactive", "dv").ok().out
    d.cli("detach-device", "dv", str(hostdev), "--config").ok()
    assert "<hostdev" not in d.cli("dumpxml", "--inactive", "dv").ok().out

    # An <interface> through attach-device (attach-interface's code): live only with --live.
    d.cli("attach-device", "dv", str(files["nic"]), "--live").ok()
    live = d.cli("dumpxml", "dv").ok().out
    assert "52:54:00:00:a1:01" in live and "52:54:00:00:a1:01" not in d.cli("dumpxml", "--inactive", "dv").out
    console.run(
        "for i in $(seq 60); do grep -q 0x8086 /sys/class/net/*/device/vendor && break; sleep 1; done", 90
    )
    # update-device: the NIC's link goes down live; changing its model live is refused by name.
    d.cli("update-device", "dv", str(files["nic-down"]), "--live").ok()
    assert "<link state='down'/>" in d.cli("dumpxml", "dv").ok().out
    result = d.cli("update-device", "dv", str(files["nic-bridge"]))
    assert result.rc == 1 and "cannot modify field 'type'" in result.err
    assert d.cli("detach-device", "dv", str(files["nic"]), "--live").ok().out.strip() == (
        "Device detached successfully"
    )
    assert "52:54:00:00:a1:01" not in d.cli("dumpxml", "dv").ok().out

    # A disk with a user alias: attach-device --persistent, detach-device-alias --live (sent, not
    # waited for), then from the definition with --config.
    disk = tmp_path / "a.raw"
    disk.write_bytes(b"\0" * 1024 * 1024)
    (tmp_path / "disk.xml").write_text(_disk("vdb", disk, "ua-extra", "EXTRA"))
    d.cli("attach-device", "dv", str(tmp_path / "disk.xml"), "--persistent").ok()
    assert "<alias name='ua-extra'/>" in d.cli("dumpxml", "dv").ok().out
    assert "<alias name='ua-extra'/>" in d.cli("dumpxml", "--inactive", "dv").ok().out
    # update-device: the serial of a plugged disk cannot change live; in the definition it can.
    (tmp_path / "disk2.xml").write_text(_disk("vdb", disk, "ua-extra", "OTHER"))
    result = d.cli("update-device", "dv", str(tmp_path / "disk2.xml"), "--live")
    assert result.rc == 1 and "cannot modify field 'serial'" in result.err
    d.cli("update-device", "dv", str(tmp_path / "disk2.xml"), "--config").ok()
    assert "<serial>OTHER</serial>" in d.cli("dumpxml", "--inactive", "dv").ok().out
    assert "<serial>EXTRA</serial>" in d.cli("dumpxml", "dv").ok().out
    result = d.cli("detach-device-alias", "dv", "ua-extra", "--live")
    assert result.ok().out.strip() == "Device detach request sent successfully"
    for _ in range(120):
        if "ua-extra" not in d.cli("dumpxml", "dv").ok().out:
            break
        console.run("sleep 0.5")
    assert "ua-extra" not in d.cli("dumpxml", "dv").ok().out
    result = d.cli("detach-device-alias", "dv", "ua-nothing", "--current")
    assert result.rc == 1 and "no device found with alias ua-nothing" in result.err
    d.cli("detach-device-alias", "dv", "ua-extra", "--config").ok()
    assert "ua-extra" not in d.cli("dumpxml", "--inactive", "dv").ok().out

    # change-media --update (--current: the running domain) puts a medium in, and takes it out again.
    d.cli("change-media", "dv", "sdc", str(iso), "--update", "--current").ok()
    assert str(iso) in d.cli("domblklist", "dv").ok().out
    assert str(iso) not in d.cli("domblklist", "--inactive", "dv").ok().out
    assert d.cli("change-media", "dv", "sdc", "--update").ok().out.strip() == "Successfully updated media."
    assert str(iso) not in d.cli("domblklist", "dv").ok().out
    result = d.cli("change-media", "dv", "vdz", "--eject")
    assert result.rc == 1 and "No disk found whose source path or target is vdz" in result.err
    d.cli("destroy", "dv").ok()
    outputs = []
    for proc, last in ((added, b": ua-extra\n"), (every, b": Stopped Destroyed\n")):
        seen = events.read_until(proc, last)
        proc.send_signal(signal.SIGINT)
        outputs.append((seen + proc.communicate(timeout=30)[0]).decode())
    assert "event 'device-added' for domain 'dv': ua-extra\n" in outputs[0]
    assert "event 'device-added' for domain 'dv': net0\n" in outputs[0]
    assert "removed" not in outputs[0] and "lifecycle" not in outputs[0]
    assert "event 'device-removed' for domain 'dv': ua-extra\n" in outputs[1]
    assert "event 'device-removed' for domain 'dv': net0\n" in outputs[1]
    assert "event 'tray-change' for domain 'dv' disk scsi0-0-0-2: opened\n" in outputs[1]
    assert "event 'tray-change' for domain 'dv' disk scsi0-0-0-2: closed\n" in outputs[1]
    assert "event 'lifecycle' for domain 'dv': Stopped Destroyed\n" in outputs[1]

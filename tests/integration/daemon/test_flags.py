"""The effect of each domain verb's flags on a real pyvirtd and a real TCG guest, or their refusal:
``shutdown/reboot --mode``, ``start/create --autodestroy``, ``undefine --nvram/--keep-nvram/
--managed-save``, ``console --devname/--safe``, ``detach-interface --persistent``, ``domif-setlink
--config``, ``domblklist/domiflist --inactive`` and ``dumpxml --migratable``. The network flags
(``attach-interface --target``, ``domifaddr --source``) are in test_flags_network.py."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument
from tests.support import events
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow

READY = "pyvirt-guest: ready"
MAC1, MAC2 = "52:54:00:f1:00:01", "52:54:00:f1:00:02"


def write(tmp_path: Path, name: str, **kw: object) -> Path:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, **kw))  # type: ignore[arg-type]
    return path


def wait_gone(daemon: Daemon, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while name in daemon.cli("list", "--all", "--name").ok().out.split():
        assert time.monotonic() < deadline, f"domain {name} still listed after {timeout}s"
        time.sleep(0.2)


def test_mode_flags_nics_and_inactive_views(daemon: Daemon, tmp_path: Path) -> None:
    daemon.cli("define", str(write(tmp_path, "f1", nic_user=True, mac=MAC1))).ok()

    # domif-setlink --config (here on a domain that does not run): the definition, read at start.
    daemon.cli("domif-setlink", "f1", MAC1, "down", "--config").ok()
    assert "<link state='down'/>" in daemon.cli("dumpxml", "--inactive", "f1").ok().out
    daemon.cli("start", "f1").ok()
    console = Console(daemon, "f1")
    console.expect(READY)
    link = console.run("ip link set eth0 up; sleep 1; ip link show eth0")
    assert "NO-CARRIER" in link and "LOWER_UP" not in link
    daemon.cli("domif-setlink", "f1", MAC1, "up").ok()  # no --config: the running guest only
    assert "LOWER_UP" in console.run(
        "for i in $(seq 30); do ip link show eth0 | grep -q LOWER_UP && break; sleep 1; done; "
        "ip link show eth0",
        60,
    )
    assert "<link state='down'/>" in daemon.cli("dumpxml", "--inactive", "f1").ok().out
    daemon.cli("domif-setlink", "f1", MAC1, "up", "--config").ok()
    assert "<link state='up'/>" in daemon.cli("dumpxml", "--inactive", "f1").ok().out

    # dumpxml --migratable: the running definition without its runtime-only state.
    live = daemon.cli("dumpxml", "f1").ok().out
    assert re.search(r"<domain [^>]*id='1'", live) and "<alias " in live and "/dev/pts/" in live
    migratable = daemon.cli("dumpxml", "--migratable", "f1").ok().out
    assert "<name>f1</name>" in migratable and f"<mac address='{MAC1}'/>" in migratable
    assert " id=" not in migratable.split("\n", 1)[0] and "<alias " not in migratable
    assert "/dev/pts/" not in migratable

    # --inactive: the persistent definition, once it differs from the running one.
    disk = tmp_path / "extra.img"
    disk.write_bytes(bytes(1 << 20))
    extra = f'<disk type="file" device="disk"><source file="{disk}"/><target dev="vdb" bus="virtio"/></disk>'
    redefined = write(tmp_path, "f1", nic_user=True, mac=MAC1, extra_devices=extra)
    text = redefined.read_text().replace(
        "</devices>",
        f'<interface type="user"><mac address="{MAC2}"/><model type="virtio"/></interface></devices>',
    )
    redefined.write_text(text)
    daemon.cli("define", str(redefined)).ok()
    assert "vdb" not in daemon.cli("domblklist", "f1").ok().out
    assert re.search(rf"^ vdb\s+{disk}$", daemon.cli("domblklist", "--inactive", "f1").ok().out, re.M)
    assert re.search(
        r"^ file\s+disk\s+vdb\s", daemon.cli("domblklist", "--inactive", "--details", "f1").ok().out, re.M
    )
    assert MAC2 not in daemon.cli("domiflist", "f1").ok().out
    inactive = daemon.cli("domiflist", "--inactive", "f1").ok().out
    assert MAC1 in inactive and MAC2 in inactive

    # detach-interface --persistent on a running domain: from the guest and the definition.
    result = daemon.cli("detach-interface", "f1", "user", "--mac", MAC1, "--persistent", "--current")
    assert (
        result.rc == 1 and result.err == "error: Options --persistent and --current are mutually exclusive\n"
    )
    daemon.cli("detach-interface", "f1", "user", "--mac", MAC1, "--persistent").ok()
    assert MAC1 not in daemon.cli("domiflist", "f1").ok().out
    assert MAC1 not in daemon.cli("domiflist", "--inactive", "f1").ok().out
    assert MAC2 in daemon.cli("domiflist", "--inactive", "f1").ok().out
    console.run("for i in $(seq 30); do [ -e /sys/class/net/eth0 ] || break; sleep 1; done", 60)
    assert "can't find device 'eth0'" in console.run("ip link show eth0 2>&1")

    # shutdown/reboot --mode: acpi is QEMU's power button, agent the guest agent (this domain has none);
    # the others are refused, naming the mode. (--mode agent on a guest with an agent: test_guest_agent.)
    for verb, mode, words in (
        (
            "shutdown",
            "bogus",
            "Unknown mode bogus value, expecting 'acpi', 'agent', 'initctl', 'signal', or 'paravirt'",
        ),
        ("reboot", "bogus", "Unknown mode bogus value, expecting 'acpi', 'agent', 'initctl', 'signal' or"),
        ("shutdown", "agent", "argument unsupported: QEMU guest agent is not configured"),
        ("shutdown", "initctl", "QEMU cannot shut down a domain by initctl"),
        ("reboot", "signal", "QEMU cannot reboot a domain by signal"),
        ("reboot", "paravirt", "QEMU cannot reboot a domain by paravirt"),
    ):
        result = daemon.cli(verb, "f1", "--mode", mode)
        assert result.rc == 1 and words in result.err, result.err
    assert daemon.state("f1") == "running"
    assert daemon.cli("reboot", "f1", "--mode", "acpi").ok().out == "Domain 'f1' is being rebooted\n\n"
    console.expect("pyvirt-guest: power button", 60)
    console.expect(READY, 120)
    assert daemon.state("f1") == "running"
    daemon.cli("shutdown", "f1", "--mode", "agent,acpi").ok()  # no agent: ACPI, the next in the list
    console.expect("pyvirt-guest: power button", 60)
    daemon.wait_state("f1", "shut off")
    console.close()


def test_autodestroy_ends_with_the_connection(daemon: Daemon, tmp_path: Path) -> None:
    daemon.cli("define", str(write(tmp_path, "a1"))).ok()
    # virsh's behaviour: the CLI's connection closes as it exits, and the domain goes with it.
    assert daemon.cli("start", "a1", "--autodestroy").ok().out == "Domain 'a1' started\n\n"
    daemon.wait_state("a1", "shut off")
    assert daemon.cli("domstate", "--reason", "a1").ok().out == "shut off (destroyed)\n\n"
    transient = write(tmp_path, "a2")
    daemon.cli("create", str(transient), "--autodestroy").ok()
    wait_gone(daemon, "a2")

    # Through the API: the domain lives as long as the connection that started it.
    owner, other = daemon.connect(), daemon.connect()
    owner.domain("a1").start(autodestroy=True)
    owner.create_xml(transient.read_text(), autodestroy=True)
    other.domain("a1").suspend()  # another client works on it meanwhile
    assert other.domain("a1").info()["state"] == "paused"
    assert other.domain("a2").info()["state"] == "running"
    owner.close()
    daemon.wait_state("a1", "shut off")
    wait_gone(daemon, "a2")

    # The daemon restarts while the client is connected: the new daemon has no such connection.
    daemon.connect().domain("a1").start(autodestroy=True)
    daemon.restart()
    daemon.wait_state("a1", "shut off")

    # A domain started without the flag outlives its client; the flag needs a start.
    other = daemon.connect()  # the restart closed the earlier one
    other.domain("a1").start()
    other.close()
    with pytest.raises(InvalidArgument, match="field 'autodestroy' needs 'start'"):
        daemon.connect().call("domain.define", body={"xml": transient.read_text(), "autodestroy": True})
    daemon.cli("destroy", "a1").ok()  # still running: nothing destroyed it


def test_undefine_nvram_flags(daemon: Daemon, tmp_path: Path) -> None:
    nvram = tmp_path / "u1_VARS.fd"
    loader = (
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
        f"<nvram>{nvram}</nvram></os>"
    )
    path = write(tmp_path, "u1")
    path.write_text(path.read_text().replace("</os>", loader, 1))
    daemon.cli("define", str(path)).ok()
    nvram.write_bytes(b"vars")  # what a first start leaves

    result = daemon.cli("undefine", "u1")
    assert (
        result.rc == 1 and "cannot undefine domain with nvram" in result.err and "--keep-nvram" in result.err
    )
    assert (daemon.config_dir / "u1.xml").exists() and nvram.exists()
    result = daemon.cli("undefine", "u1", "--nvram", "--keep-nvram")
    assert result.rc == 1 and result.err == "error: Options --nvram and --keep-nvram are mutually exclusive\n"

    assert daemon.cli("undefine", "u1", "--keep-nvram").ok().out == "Domain 'u1' has been undefined\n\n"
    assert nvram.read_bytes() == b"vars" and not (daemon.config_dir / "u1.xml").exists()

    daemon.cli("define", str(path)).ok()
    # --managed-save on a domain without a managed save image: nothing to remove, accepted (as virsh).
    daemon.cli("undefine", "u1", "--nvram", "--managed-save").ok()
    assert not nvram.exists() and not (daemon.config_dir / "u1.xml").exists()

    daemon.cli("define", str(path)).ok()  # no NVRAM file (never started): nothing to decide
    daemon.cli("undefine", "u1").ok()


def test_console_devname_and_safe(daemon: Daemon, tmp_path: Path) -> None:
    second = '<serial type="pty"><target port="1"/></serial>'
    daemon.cli("define", str(write(tmp_path, "c1", extra_devices=second))).ok()
    daemon.cli("start", "c1").ok()
    conn = daemon.connect()
    ws = conn.domain("c1").console(devname="serial0", history=True)
    seen = b""
    while READY.encode() not in seen:
        message = ws.receive(timeout=180)
        assert isinstance(message, bytes), message
        seen += message

    # --safe: a console is never shared, so a second session is refused (--force takes it over).
    result = daemon.cli("console", "c1", "--safe", "--timeout", "1", input="")
    assert result.rc == 1 and "Active console session exists for this domain" in result.err
    result = daemon.cli(
        "console", "c1", "--devname", "console0", "--safe", "--force", "--timeout", "1", input=""
    )
    assert result.rc == 0 and "Connected to domain 'c1'" in result.out
    while (message := ws.receive(timeout=30)) is not None:  # the first session was taken over: it ends
        assert isinstance(message, bytes)

    result = daemon.cli("console", "c1", "--devname", "serial7")
    assert result.rc == 1 and "cannot find character device serial7" in result.err
    # --devname serial1: the second serial port (the guest's ttyS1), while serial0 keeps its shell.
    serial0 = Console(conn, "c1")
    serial1 = conn.domain("c1").console(devname="serial1")
    serial0.send("echo from-ttyS1 > /dev/ttyS1\n")
    seen = b""
    while b"from-ttyS1" not in seen:
        message = serial1.receive(timeout=60)
        assert isinstance(message, bytes), message
        seen += message
    serial1.close()
    serial0.close()
    conn.close()
    daemon.cli("destroy", "c1").ok()


def test_title_password_events_logs_and_snapshots(daemon: Daemon, tmp_path: Path) -> None:
    path = write(tmp_path, "p1", vnc=True)
    text = path.read_text().replace("<name>p1</name>", "<name>p1</name><title>web front</title>", 1)
    path.write_text(text.replace("<graphics ", "<graphics passwd='s3cret' ", 1))
    daemon.cli("define", str(path)).ok()
    daemon.cli("define", str(write(tmp_path, "p2"))).ok()

    # list --title: a Title column, from each domain's <title>.
    out = daemon.cli("list", "--all", "--title").ok().out
    assert re.search(r"^ Id\s+Name\s+State\s+Title$", out, re.M), out
    assert re.search(r"^ -\s+p1\s+shut off\s+web front$", out, re.M), out
    assert "Title" not in daemon.cli("list", "--all").ok().out

    # vncdisplay --include-password: virsh's ':PASSWORD@' prefix, from the secure XML.
    daemon.cli("start", "p1").ok()
    display = daemon.vnc_display("p1")
    assert daemon.cli("vncdisplay", "p1").ok().out == f"127.0.0.1:{display}\n\n"
    assert daemon.cli("vncdisplay", "p1", "--include-password").ok().out == f":s3cret@127.0.0.1:{display}\n\n"
    result = daemon.cli("-r", "vncdisplay", "p1", "--include-password")
    assert result.rc == 1 and "s3cret" not in result.out + result.err

    # event --event: lifecycle is what pyvirtd delivers; another type is refused, naming it.
    result = daemon.cli("event", "--event", "reboot", "--timeout", "1")
    assert result.rc == 1 and "event type 'reboot' is not delivered" in result.err
    out = daemon.cli("event", "p1", "--event", "lifecycle", "--timeout", "1").ok().out
    assert out == "events received: 0\n\n"

    # destroy --remove-logs: the domain's log and its rotated copies go; without it they stay.
    logs = daemon.root / "var/log/pyvirt/qemu"
    (logs / "p1.log.1").write_text("rotated\n")
    assert (logs / "p1.log").exists()
    daemon.cli("start", "p2").ok()
    daemon.cli("destroy", "p2").ok()
    assert (logs / "p2.log").exists()
    daemon.cli("destroy", "p1", "--remove-logs").ok()
    assert not (logs / "p1.log").exists() and not (logs / "p1.log.1").exists()
    assert (logs / "p2.log").exists()

    # vol-delete --delete-snapshots: refused (libvirt has it for rbd pools only); the volume stays.
    daemon.cli("vol-create-as", "default", "s.qcow2", "1M", "--format", "qcow2").ok()
    result = daemon.cli("vol-delete", "s.qcow2", "--pool", "default", "--delete-snapshots")
    assert result.rc == 1 and "--delete-snapshots: not supported" in result.err
    daemon.cli("vol-info", "s.qcow2", "--pool", "default").ok()


NET = (
    "<network><name>{name}</name><bridge name='{bridge}'/>"
    "<ip address='10.{n}.0.1' netmask='255.255.255.0'/></network>"
)


def test_listing_filters_and_json_outputs(daemon: Daemon, tmp_path: Path) -> None:
    import json

    daemon.cli("define", str(write(tmp_path, "l1"))).ok()
    daemon.cli("define", str(write(tmp_path, "l2"))).ok()
    daemon.cli("autostart", "l2").ok()
    # event --timestamp: each event line starts with its time (shown listening first: a redefinition).
    watcher = events.watch(daemon, "l1", "--timestamp")
    seen = events.listening(daemon, watcher, "l1", tmp_path)
    daemon.cli("start", "l1").ok()
    seen += events.read_until(watcher, b": Started Booted\n")
    watcher.send_signal(signal.SIGINT)
    watcher.wait(timeout=60)
    out = seen.decode()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}: "
    assert re.search(rf"^{stamp}event 'lifecycle' for domain 'l1': Defined Updated$", out, re.M), out
    assert re.search(rf"^{stamp}event 'lifecycle' for domain 'l1': Started Booted$", out, re.M), out
    daemon.cli("create", str(write(tmp_path, "l3"))).ok()
    daemon.cli("suspend", "l3").ok()

    def names(*flags: str) -> list[str]:
        return daemon.cli("list", *flags, "--name").ok().out.split()

    assert names("--all", "--state-running") == ["l1"]
    assert names("--all", "--state-paused") == ["l3"]
    assert names("--all", "--state-other") == []
    assert names("--all", "--no-autostart") == ["l1", "l3"]
    assert names("--all", "--persistent") == ["l1", "l2"]
    assert names("--all", "--transient") == ["l3"]
    assert daemon.cli("list", "--all", "--id").ok().out.split() == ["1", "2"]
    assert re.search(r"^ 1\s+l1\s+running$", daemon.cli("list", "--table").ok().out, re.M)

    assert json.loads(daemon.cli("domstate", "l3", "--json").ok().out) == {
        "state": "paused",
        "reason": "user",
    }
    disk = tmp_path / "d.img"
    disk.write_bytes(bytes(1 << 20))
    extra = f'<disk type="file" device="disk"><source file="{disk}"/><target dev="vdb" bus="virtio"/></disk>'
    daemon.cli("define", str(write(tmp_path, "l4", extra_devices=extra))).ok()
    blk = json.loads(daemon.cli("domblklist", "l4", "--json").ok().out)
    assert blk == [{"type": "file", "device": "disk", "target": "vdb", "source": str(disk)}]
    for verb, key in (
        ("nodeinfo", "cpus"),
        ("capabilities", "xml"),
        ("version", "hypervisor"),
        ("uri", "uri"),
        ("hostname", "hostname"),
    ):
        data = json.loads(daemon.cli(verb, "--json").ok().out)
        assert key in data, (verb, data)
    assert json.loads(daemon.cli("uri", "--json").ok().out) == {"uri": "qemu:///system"}
    checks = json.loads(daemon.cli("host-validate", "--json").ok().out)
    assert any(check["name"] for check in checks)
    assert "Running against daemon: " in daemon.cli("version", "--daemon").ok().out
    assert "Running against daemon: " not in daemon.cli("version").ok().out

    # Networks, defined only (starting one needs a bridge: test_networks does that in a namespace).
    for name, n in (("na", 61), ("nb", 62)):
        path = tmp_path / f"{name}.xml"
        path.write_text(NET.format(name=name, bridge=f"pvtf{n}", n=n))
        daemon.cli("net-define", str(path)).ok()
    daemon.cli("net-autostart", "nb").ok()
    uuid = daemon.cli("net-uuid", "na").ok().out.strip()
    assert daemon.cli("net-name", uuid).ok().out == "na\n\n"

    def nets(*flags: str) -> list[str]:
        return [n for n in daemon.cli("net-list", *flags, "--name").ok().out.split() if n in ("na", "nb")]

    assert nets() == []  # active ones only, by default
    assert nets("--inactive") == ["na", "nb"]
    assert nets("--all", "--autostart") == ["nb"]
    assert nets("--all", "--no-autostart") == ["na"]
    assert nets("--all", "--persistent") == ["na", "nb"]
    assert nets("--all", "--transient") == []
    assert uuid in daemon.cli("net-list", "--all", "--uuid").ok().out.split()
    listed = json.loads(daemon.cli("net-list", "--all", "--json").ok().out)
    assert {n["name"]: n["autostart"] for n in listed if n["name"] in ("na", "nb")} == {
        "na": False,
        "nb": True,
    }
    assert json.loads(daemon.cli("net-info", "nb", "--json").ok().out)["autostart"] is True
    daemon.cli("net-autostart", "nb", "--disable").ok()
    assert json.loads(daemon.cli("net-info", "nb", "--json").ok().out)["autostart"] is False
    assert "<bridge name='pvtf61'" in daemon.cli("net-dumpxml", "na", "--inactive").ok().out
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/pvtf61/pvtf63/' \"$1\"\n")
    editor.chmod(0o755)
    daemon.cli("net-edit", "na", env={"EDITOR": str(editor)}).ok()
    assert "<bridge name='pvtf63'" in daemon.cli("net-dumpxml", "na").ok().out

    # Pools and volumes.
    folder = tmp_path / "p"
    daemon.cli("pool-define-as", "fp", "dir", "--target", str(folder)).ok()
    result = daemon.cli("pool-build", "fp", "--overwrite", "--no-overwrite")
    assert result.rc == 1 and "mutually exclusive" in result.err
    daemon.cli("pool-start", "fp", "--build", "--no-overwrite").ok()  # builds (makes the folder), then starts
    assert folder.is_dir()
    pool_uuid = json.loads(daemon.cli("pool-info", "fp", "--json").ok().out)["uuid"]
    assert pool_uuid in daemon.cli("pool-list", "--uuid").ok().out.split()
    assert "fp" in daemon.cli("pool-list", "--no-autostart", "--name").ok().out.split()
    assert "fp" in daemon.cli("pool-list", "--type", "dir", "--name").ok().out.split()
    assert "fp" not in daemon.cli("pool-list", "--type", "logical", "--name").ok().out.split()
    assert "fp" in [p["name"] for p in json.loads(daemon.cli("pool-list", "--json").ok().out)]
    volxml = tmp_path / "v.xml"
    volxml.write_text(
        "<volume><name>v.qcow2</name><capacity unit='M'>64</capacity>"
        "<target><format type='qcow2'/></target></volume>"
    )
    daemon.cli("vol-create", "fp", str(volxml), "--prealloc-metadata").ok()
    volxml.write_text(volxml.read_text().replace("v.qcow2", "w.qcow2"))
    daemon.cli("vol-create", "fp", str(volxml)).ok()
    vols = {v["name"]: v for v in json.loads(daemon.cli("vol-list", "fp", "--json").ok().out)}
    assert vols["v.qcow2"]["allocation"] > vols["w.qcow2"]["allocation"]  # the L2 tables are allocated
    daemon.cli("vol-create-as", "fp", "r.img", "1M", "--format", "raw", "--allocation", "0").ok()
    daemon.cli("vol-resize", "r.img", "8M", "--pool", "fp", "--allocate").ok()
    info = json.loads(daemon.cli("vol-info", "r.img", "--pool", "fp", "--json").ok().out)
    assert info["capacity"] == 8 << 20 and info["allocation"] >= 7 << 20
    daemon.cli("destroy", "l1").ok()
    daemon.cli("destroy", "l3").ok()


def test_start_and_create_console(daemon: Daemon, tmp_path: Path) -> None:
    daemon.cli("define", str(write(tmp_path, "k1"))).ok()
    # --console: attached right after the start; Ctrl+] (0x1d) on stdin detaches.
    out = daemon.cli("start", "k1", "--console", input="\x1d").ok().out
    assert out.startswith("Domain 'k1' started\n\nConnected to domain 'k1'\n"), out
    path = write(tmp_path, "k2")
    out = daemon.cli("create", str(path), "--console", input="\x1d").ok().out
    assert out.startswith(f"Domain 'k2' created from {path}\n\nConnected to domain 'k2'\n"), out
    daemon.cli("destroy", "k1").ok()
    daemon.cli("destroy", "k2").ok()
    assert "Connected" not in daemon.cli("start", "k1").ok().out  # without it, no console
    daemon.cli("destroy", "k1").ok()

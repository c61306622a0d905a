"""Every remaining virsh verb on a real daemon, and realistic libvirt XML (a libvirt 9.0 config file,
virt-install output, a UEFI guest) defined unchanged and really started by QEMU under TCG."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import events
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[2] / "data/domain"


def define(daemon: Daemon, tmp_path: Path, name: str, **kw: object) -> Path:
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, **kw))  # type: ignore[arg-type]
    daemon.cli("define", str(path)).ok()
    return path


def test_identity_and_listing_verbs(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "v1", vnc=True)
    define(daemon, tmp_path, "v2")
    daemon.cli("start", "v1").ok()
    daemon.cli("autostart", "v2").ok()
    uuid = daemon.cli("domuuid", "v1").ok().out.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", uuid)
    assert daemon.cli("domid", "v1").ok().out == "1\n\n"
    assert daemon.cli("domid", "v2").ok().out == "-\n\n"
    assert daemon.cli("domname", "1").ok().out == "v1\n\n"
    assert daemon.cli("domname", uuid).ok().out == "v1\n\n"

    def stable(text: str) -> str:
        return "".join(line for line in text.splitlines(True) if not line.startswith("CPU time:"))

    assert stable(daemon.cli("dominfo", "1").ok().out) == stable(daemon.cli("dominfo", uuid).ok().out)

    assert daemon.cli("list", "--name").ok().out == "v1\n\n"
    assert daemon.cli("list", "--all", "--name").ok().out == "v1\nv2\n\n"
    assert daemon.cli("list", "--uuid").ok().out == f"{uuid}\n\n"
    assert daemon.cli("list", "--all", "--state-shutoff", "--name").ok().out == "v2\n\n"
    assert daemon.cli("list", "--all", "--autostart", "--name").ok().out == "v2\n\n"
    data = json.loads(daemon.cli("list", "--all", "--json").ok().out)
    assert {d["name"]: d["state"] for d in data} == {"v1": "running", "v2": "shut off"}
    info = json.loads(daemon.cli("--json", "dominfo", "v1").ok().out)
    assert info["state"] == "running" and info["vcpus"] == 1 and info["max_memory_kib"] == 131072

    display = daemon.vnc_display("v1")
    assert daemon.cli("vncdisplay", "v1").ok().out == f"127.0.0.1:{display}\n\n"
    result = daemon.cli("vncdisplay", "v2")
    assert result.rc == 1 and "VNC" in result.err
    iflist = daemon.cli("domiflist", "v1").ok().out
    assert iflist.startswith(" Interface   Type   Source   Model   MAC\n")

    # dumpxml of a running domain is valid against libvirt's own schema and carries live state.
    live = daemon.cli("dumpxml", "v1").ok().out
    assert (
        "<domain type='qemu' id='1'>" in live and "/dev/pts/" in live and f"port='{5900 + display}'" in live
    )
    inactive = daemon.cli("dumpxml", "--inactive", "v1").ok().out
    assert "id=" not in inactive.splitlines()[0] and "/dev/pts/" not in inactive
    if shutil.which("virt-xml-validate"):
        for n, text in enumerate((live, inactive)):
            path = tmp_path / f"dump{n}.xml"
            path.write_text(text)
            check = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
            assert check.returncode == 0, check.stderr + text
    daemon.cli("destroy", "v1").ok()


def test_host_verbs(daemon: Daemon) -> None:
    node = daemon.cli("nodeinfo").ok().out
    assert re.search(r"^CPU\(s\):\s+\d+$", node, re.M) and re.search(r"^Memory size:\s+\d+ KiB$", node, re.M)
    caps = daemon.cli("capabilities").ok().out
    assert "<capabilities>" in caps and "<domain type='qemu'/>" in caps
    version = daemon.cli("version").ok().out
    assert re.search(r"^Running hypervisor: QEMU \d+\.\d+\.\d+$", version, re.M)
    assert daemon.cli("uri").ok().out == "qemu:///system\n\n"
    assert (
        daemon.cli("hostname").ok().out.strip()
        == subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    )
    validate = daemon.cli("host-validate")
    assert "QEMU: Checking if device /dev/kvm is usable" in validate.out
    from pyvirt.qemu.kvmprobe import kvm_usable

    usable, reason = kvm_usable()
    if not usable:
        assert validate.rc == 1 and reason in validate.out


def test_edit_and_undefine_with_storage(daemon: Daemon, tmp_path: Path) -> None:
    from tests.support.guest import guest_artifacts

    disk = tmp_path / "e1.qcow2"
    shutil.copyfile(guest_artifacts().disk, disk)
    define(daemon, tmp_path, "e1", disk=disk)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/<vcpu>1</<vcpu>2</' \"$1\"\n")
    editor.chmod(0o755)
    result = daemon.cli("edit", "e1", env={"EDITOR": str(editor)}).ok()
    assert result.out == "Domain 'e1' XML configuration edited.\n\n"
    assert re.search(r"^CPU\(s\):\s+2$", daemon.cli("dominfo", "e1").ok().out, re.M)
    assert daemon.cli("edit", "e1", env={"EDITOR": "true"}).ok().out == (
        "Domain 'e1' XML configuration not changed.\n\n"
    )
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/bin/sh\nsed -i 's/<vcpu>2</<vcpu>x</' \"$1\"\n")
    broken.chmod(0o755)
    result = daemon.cli("edit", "e1", env={"EDITOR": str(broken)})
    assert result.rc == 1 and "vcpu" in result.err
    assert re.search(r"^CPU\(s\):\s+2$", daemon.cli("dominfo", "e1").ok().out, re.M)

    result = daemon.cli("undefine", "--remove-all-storage", "e1").ok()
    assert f"Volume '{disk}' removed." in result.out and "Domain 'e1' has been undefined" in result.out
    assert not disk.exists()
    assert not (daemon.config_dir / "e1.xml").exists()


def test_events_stream(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "ev1")
    # `event --loop` over every domain, shown listening first (a redefinition it prints); no --timeout
    # (a busy machine outlasts any fixed one): it ends on SIGINT once it printed the last event.
    watcher = events.watch(daemon, "--event", "lifecycle")
    seen = events.listening(daemon, watcher, "ev1", tmp_path)
    daemon.cli("start", "ev1").ok()
    daemon.cli("suspend", "ev1").ok()
    daemon.cli("resume", "ev1").ok()
    daemon.cli("destroy", "ev1").ok()
    seen += events.read_until(watcher, b": Stopped Destroyed\n")
    watcher.send_signal(signal.SIGINT)
    watcher.wait(timeout=60)
    out = seen.decode()
    at = [
        out.find(f"event 'lifecycle' for domain 'ev1': {expected}\n")
        for expected in ("Defined Updated", "Started Booted", "Suspended Paused", "Resumed Unpaused",
                         "Stopped Destroyed")
    ]  # fmt: skip
    assert -1 not in at and at == sorted(at), out


@pytest.mark.parametrize("name", ["libvirt9-q35-debian", "virt-install-debian12", "uefi-assorted"])
def test_real_libvirt_xml_defines_and_starts(daemon: Daemon, tmp_path: Path, name: str) -> None:
    text = (DATA / f"{name}.xml").read_text()
    text = re.sub(r"type=(['\"])kvm\1", r"type=\1qemu\1", text, count=1)
    # Point every disk at a scratch image of the right format, so QEMU can really open it.
    for source in set(re.findall(r"<source file=['\"]([^'\"]+)['\"]", text)):
        fmt = "qcow2" if source.endswith("qcow2") else "raw"
        image = tmp_path / Path(source).name
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(image), "64M"], check=True)
        text = text.replace(source, str(image))
    for pool, volume in set(re.findall(r"<source pool=['\"]([^'\"]+)['\"] volume=['\"]([^'\"]+)['\"]", text)):
        fmt = "qcow2" if volume.endswith("qcow2") else "raw"
        daemon.cli("vol-create-as", pool, volume, "64M", "--format", fmt).ok()
    loops = []
    for device in set(re.findall(r"<source dev=['\"]([^'\"]+)['\"]", text)):
        backing = tmp_path / (Path(device).name + ".img")
        subprocess.run(["truncate", "-s", "64M", str(backing)], check=True)
        loop = subprocess.run(
            ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
        ).stdout.strip()
        loops.append(loop)
        text = text.replace(device, loop)
    text = re.sub(r"(<nvram[^>]*>)[^<]*</nvram>", rf"\g<1>{tmp_path}/VARS.fd</nvram>", text)
    # Log files and sockets of serial ports and channels go under the scratch root, not the host's.
    for source in set(re.findall(r"<source [^>]*path=['\"](/[^'\"]+)['\"]", text)):
        scratch = tmp_path / "host" / source.lstrip("/")
        scratch.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # where QEMU (as its own user) creates its sockets, as libvirt's channel dir
            shutil.chown(scratch.parent, "pyvirt-qemu", "pyvirt-qemu")
        text = text.replace(source, str(scratch))
    text = re.sub(r"<interface type=['\"](network|bridge)['\"].*?</interface>", "", text, flags=re.S)
    path = tmp_path / "dom.xml"
    path.write_text(text)
    result = daemon.cli("define", str(path)).ok()
    dom = re.search(r"Domain '([^']+)' defined", result.out)
    assert dom
    try:
        started = daemon.cli("start", dom.group(1))
        log = next((daemon.root / "var/log/pyvirt/qemu").glob("*.log"), None)
        assert started.rc == 0, started.err + (log.read_text()[-3000:] if log else "")
        assert daemon.state(dom.group(1)) == "running"
        daemon.cli("destroy", dom.group(1)).ok()
    finally:
        for loop in loops:
            subprocess.run(["losetup", "-d", loop], check=False)


def test_console_through_api_sees_history(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "h1")
    daemon.cli("start", "h1").ok()
    first = Console(daemon, "h1")
    first.expect("pyvirt-guest: ready")
    first.close()
    # A later console with --history replays the boot output it missed.
    late = Console(daemon, "h1", history=True)
    late.expect("pyvirt-guest: ready", 5)
    late.close()
    daemon.cli("destroy", "h1").ok()

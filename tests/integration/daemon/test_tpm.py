"""Emulated TPMs (pyvirt.daemon.tpm, pyvirt.qemu.swtpm) in real guests under TCG, one guest shared by
the checks in order: the guest sees a TPM 2.0 with the PCR banks <active_pcr_banks> names, the state
(its endorsement key) survives a stop and start, and the banks change at the next start; a save and
restore and a snapshot with memory carry the TPM's volatile state (an extended PCR); the state is
encrypted on disk; swtpm killed under the guest ends the domain as crashed, with the reason in its
log (also under a daemon restarted since the start); undefine removes the state unless --keep-tpm. A
TPM 1.2 boots too, its swtpm in the domain's cgroup. A passthrough TPM is refused by name on a host
without one; an external TPM (an swtpm the test runs) serves a guest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

SECRET = "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
EK_HANDLE = 0x81010001  # where swtpm_setup --createek leaves a TPM 2.0's endorsement key
DIGEST = hashlib.sha256(b"pyvirt").digest()

needs_swtpm = pytest.mark.skipif(shutil.which("swtpm_setup") is None, reason="swtpm-tools is not installed")


def octal(data: bytes) -> str:
    """``data`` as a shell printf format (busybox's printf knows octal escapes)."""
    return "".join(f"\\{byte:03o}" for byte in data)


def tpm_exchange(console: Console, command: bytes) -> bytes:
    """Send a raw TPM command through the guest's /dev/tpm0 and return the response."""
    out = console.run(
        f"(printf '{octal(command)}' > /tmp/cmd; exec 3<>/dev/tpm0; cat /tmp/cmd >&3; "
        "dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 -v)"
    )
    return bytes.fromhex("".join(out.split()))


def read_public(handle: int) -> bytes:
    return struct.pack(">HII", 0x8001, 14, 0x173) + struct.pack(">I", handle)  # TPM2_ReadPublic


def pcr_extend(pcr: int, digest: bytes) -> bytes:
    """TPM2_PCR_Extend with the empty password session, one SHA-256 digest."""
    session = struct.pack(">IHBH", 0x40000009, 0, 0, 0)  # TPM_RS_PW, no nonce, no attributes, no hmac
    body = struct.pack(">I", pcr) + struct.pack(">I", len(session)) + session
    body += struct.pack(">IH", 1, 0x000B) + digest
    return struct.pack(">HII", 0x8002, 10 + len(body), 0x182) + body


def ok(response: bytes) -> bytes:
    assert len(response) >= 10 and response[6:10] == b"\0\0\0\0", response.hex()
    return response


def tpm_xml(name: str, tpm: str) -> str:
    """The test guest with ``tpm``, booted from its bzImage: QEMU 7.2's PVH boot of the ELF vmlinux
    puts the initrd over the ACPI tables once SeaBIOS has made room for a TPM's event log."""
    return domain_xml(name, extra_devices=tpm).replace("/vmlinux</kernel>", "/vmlinuz</kernel>")


def boot(daemon: Daemon, name: str) -> Console:
    daemon.cli("start", name).ok()
    console = Console(daemon, name)
    console.expect("pyvirt-guest: ready")
    return console


def state_dir(daemon: Daemon, name: str) -> Path:
    uuid = daemon.cli("domuuid", name).ok().out.strip()
    return daemon.root / "var/lib/pyvirt/swtpm" / uuid


def define(daemon: Daemon, tmp_path: Path, name: str, tpm: str, uuid: str | None = None) -> None:
    path = tmp_path / f"{name}.xml"
    text = tpm_xml(name, tpm)
    path.write_text(
        text.replace(f"<name>{name}</name>", f"<name>{name}</name><uuid>{uuid}</uuid>") if uuid else text
    )
    daemon.cli("define", str(path)).ok()


@pytest.mark.slow
@needs_swtpm
def test_an_emulated_tpm_2_in_a_guest(module_daemon: Daemon, tmp_path: Path) -> None:
    daemon = module_daemon
    secret = tmp_path / "secret.xml"
    secret.write_text(
        f"<secret ephemeral='no' private='yes'><uuid>{SECRET}</uuid><usage type='vtpm'>"
        "<name>tpm1</name></usage></secret>"
    )
    daemon.cli("secret-define", str(secret)).ok()
    value = tmp_path / "value"
    value.write_text("a passphrase for the TPM state")
    daemon.cli("secret-set-value", SECRET, "--file", str(value), "--plain").ok()

    def tpm(banks: str) -> str:
        return (
            "<tpm model='tpm-crb'><backend type='emulator' version='2.0'>"
            f"<encryption secret='{SECRET}'/><active_pcr_banks>{banks}</active_pcr_banks></backend></tpm>"
        )

    define(daemon, tmp_path, "tpm1", tpm("<sha1/>"))
    dumped = daemon.cli("dumpxml", "tpm1").ok().out
    assert f"<encryption secret='{SECRET}'/>" in dumped and "<sha1/>" in dumped, dumped
    console = boot(daemon, "tpm1")
    assert console.run("cat /sys/class/tpm/tpm0/tpm_version_major") == "2"
    assert console.run("ls -d /dev/tpm0 /sys/class/tpm/tpm0/pcr-*").split() == [
        "/dev/tpm0",
        "/sys/class/tpm/tpm0/pcr-sha1",
    ]
    ek = ok(tpm_exchange(console, read_public(EK_HANDLE)))
    console.close()
    log = (daemon.root / "var/log/pyvirt/qemu/tpm1.log").read_text()
    assert "-tpmdev emulator,id=tpm-tpm0,chardev=chrtpm" in log and "-device tpm-crb" in log
    assert SECRET not in log and "passphrase" not in log  # the passphrase went through a pipe

    # The state is encrypted: swtpm cannot read it without the key.
    state = state_dir(daemon, "tpm1") / "tpm2"
    daemon.cli("destroy", "tpm1").ok()
    assert not list(daemon.run_dir.glob("tpm1.channels")), "swtpm's run folder is left"
    assert (state / "tpm2-00.permall").stat().st_uid != 0  # QEMU's user owns it
    copy = tmp_path / "copy"
    shutil.copytree(state, copy)
    plain = subprocess.run(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={copy}", "--ctrl", f"type=unixio,path={tmp_path}/s",
         "--flags", "not-need-init,startup-clear", "--log", f"file={tmp_path}/plain.log"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert plain.returncode != 0, "an encrypted TPM state was read without its key"

    # The state survives; the banks follow <active_pcr_banks> at the next start.
    define(daemon, tmp_path, "tpm1", tpm("<sha256/>"))
    console = boot(daemon, "tpm1")
    assert console.run("ls -d /sys/class/tpm/tpm0/pcr-*") == "/sys/class/tpm/tpm0/pcr-sha256"
    assert ok(tpm_exchange(console, read_public(EK_HANDLE))) == ek

    # A save and restore carries the TPM's volatile state: PCR 16, extended once.
    ok(tpm_exchange(console, pcr_extend(16, DIGEST)))
    extended = hashlib.sha256(b"\0" * 32 + DIGEST).hexdigest()
    assert console.run("cat /sys/class/tpm/tpm0/pcr-sha256/16").lower() == extended
    console.close()
    image = tmp_path / "tpm1.save"
    daemon.cli("save", "tpm1", str(image)).ok()
    daemon.cli("restore", str(image)).ok()
    console = Console(daemon, "tpm1", history=False)
    assert console.run("cat /sys/class/tpm/tpm0/pcr-sha256/16").lower() == extended
    # So does a snapshot with memory: PCR 16 extended after it is as it was once reverted.
    daemon.cli("snapshot-create-as", "tpm1", "s1", "--memspec", f"file={tmp_path}/s1.mem").ok()
    ok(tpm_exchange(console, pcr_extend(16, DIGEST)))
    assert console.run("cat /sys/class/tpm/tpm0/pcr-sha256/16").lower() != extended
    console.close()
    daemon.cli("snapshot-revert", "tpm1", "s1").ok()
    console = Console(daemon, "tpm1", history=False)
    assert console.run("cat /sys/class/tpm/tpm0/pcr-sha256/16").lower() == extended
    console.close()
    daemon.cli("snapshot-delete", "tpm1", "s1", "--metadata").ok()

    # swtpm killed under the guest: the domain ends as crashed and its log says why.
    pid = int((daemon.run_dir / "tpm1.channels/swtpm.pid").read_text())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "swtpm"
    os.kill(pid, signal.SIGKILL)
    daemon.wait_state("tpm1", "shut off (crashed)", timeout=120)
    log = (daemon.root / "var/log/pyvirt/qemu/tpm1.log").read_text()
    assert "the TPM emulator (swtpm) of domain tpm1 exited unexpectedly (killed by signal 9)" in log

    # undefine removes the state unless --keep-tpm.
    uuid = daemon.cli("domuuid", "tpm1").ok().out.strip()
    daemon.cli("undefine", "tpm1", "--keep-tpm").ok()
    assert (state / "tpm2-00.permall").exists()
    define(daemon, tmp_path, "tpm1", tpm("<sha256/>"), uuid)
    daemon.cli("undefine", "tpm1").ok()
    assert not state.parent.exists()


@pytest.mark.slow
@needs_swtpm
def test_an_emulated_tpm_1_2_in_a_guest(module_daemon: Daemon, tmp_path: Path) -> None:
    define(module_daemon, tmp_path, "tpm12", "<tpm model='tpm-tis'><backend type='emulator'/></tpm>")
    assert "<backend type='emulator' version='1.2'/>" in module_daemon.cli("dumpxml", "tpm12").ok().out
    console = boot(module_daemon, "tpm12")
    assert console.run("cat /sys/class/tpm/tpm0/tpm_version_major") == "1"
    console.close()
    # swtpm runs in the domain's cgroup, as QEMU does (libvirt's placement), and follows QEMU into
    # the v1 group a limit makes on a hybrid host (this one's memory controller is v1)
    swtpm_pid = int((module_daemon.run_dir / "tpm12.channels/swtpm.pid").read_text())
    qemu_pid = module_daemon.qemu_pids()["tpm12"]

    def groups(pid: int) -> str:
        return Path(f"/proc/{pid}/cgroup").read_text()

    assert "/pyvirt-tpm12.scope\n" in groups(qemu_pid), groups(qemu_pid)
    assert groups(swtpm_pid) == groups(qemu_pid)
    module_daemon.cli("memtune", "tpm12", "--hard-limit", "1048576").ok()
    assert groups(swtpm_pid) == groups(qemu_pid)
    # A daemon restarted under the running domain watches its swtpm again.
    module_daemon.restart()
    assert module_daemon.cli("domstate", "tpm12").ok().out.strip() == "running"
    os.kill(int((module_daemon.run_dir / "tpm12.channels/swtpm.pid").read_text()), signal.SIGKILL)
    module_daemon.wait_state("tpm12", "shut off (crashed)", timeout=120)
    log = (module_daemon.root / "var/log/pyvirt/qemu/tpm12.log").read_text()
    assert "swtpm) of domain tpm12 exited unexpectedly (its process ended)" in log
    module_daemon.cli("undefine", "tpm12", "--tpm").ok()
    assert not any((module_daemon.root / "var/lib/pyvirt/swtpm").iterdir())


@pytest.mark.skipif(Path("/dev/tpm0").exists(), reason="this host has a TPM")
def test_tpm_passthrough_refused_without_the_hosts_device(module_daemon: Daemon, tmp_path: Path) -> None:
    define(module_daemon, tmp_path, "tpmpt", "<tpm model='tpm-crb'><backend type='passthrough'>"
           "<device path='/dev/tpm0'/></backend></tpm>")  # fmt: skip
    assert "<device path='/dev/tpm0'/>" in module_daemon.cli("dumpxml", "tpmpt").ok().out
    result = module_daemon.cli("start", "tpmpt")
    assert result.rc == 1 and "TPM passthrough: this host has no /dev/tpm0" in result.err, result.err
    assert module_daemon.cli("domstate", "tpmpt").ok().out.strip() == "shut off"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("swtpm") is None, reason="swtpm is not installed")
def test_an_external_tpm_in_a_guest(module_daemon: Daemon, tmp_path: Path) -> None:
    """<backend type='external'>: QEMU connects to an swtpm this test runs (as root, its socket not
    the QEMU user's until the start hands it over); a start without it is refused by name."""
    sock = tmp_path / "ctrl.sock"
    tpm = (
        "<tpm model='tpm-crb'><backend type='external'>"
        f"<source type='unix' mode='connect' path='{sock}'/></backend></tpm>"
    )
    define(module_daemon, tmp_path, "tpmext", tpm)
    assert (
        f"<source type='unix' mode='connect' path='{sock}'/>"
        in module_daemon.cli("dumpxml", "tpmext").ok().out
    )
    result = module_daemon.cli("start", "tpmext")
    assert result.rc == 1 and f"external TPM: no emulator's socket at '{sock}'" in result.err, result.err
    (tmp_path / "state").mkdir()
    swtpm = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={tmp_path / 'state'}", "--terminate",
         "--ctrl", f"type=unixio,path={sock}", "--log", f"file={tmp_path / 'swtpm.log'}"],
    )  # fmt: skip
    try:
        for _ in range(600):  # swtpm makes its socket
            if sock.exists() or swtpm.poll() is not None:
                break
            time.sleep(0.05)
        before = os.stat(sock)
        assert before.st_uid == 0
        console = boot(module_daemon, "tpmext")
        assert console.run("cat /sys/class/tpm/tpm0/tpm_version_major") == "2"
        console.close()
        out = module_daemon.cli("qemu-monitor-command", "tpmext", '{"execute":"query-tpm"}').ok().out
        (found,) = json.loads(out)["return"]
        assert found["model"] == "tpm-crb" and found["options"]["type"] == "emulator", found
        assert found["options"]["data"]["chardev"] == "chrtpm", found
        module_daemon.cli("destroy", "tpmext").ok()
        swtpm.wait(timeout=60)  # --terminate: it ends when QEMU closes the connection
    finally:
        if swtpm.poll() is None:
            swtpm.kill()
            swtpm.wait()

"""virtiofs shares (pyvirt.conf.virtiofs, pyvirt.daemon.virtiofs) in a real guest under TCG: the daemon
starts a virtiofsd per share on a socket of its own (logged in the domain's log folder), the guest
mounts the tag, reads what the host put in the shared folder and writes what the host then sees; the
virtiofsds end with the domain. A share on ``<source socket>`` has QEMU connect to a virtiofsd the test
runs; a virtiofsd killed under the guest is reported (log, dominfo, an io-error event). A definition
without shared memory is refused by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.events import listening, read_until, watch
from tests.support.guest import domain_xml, guest_artifacts

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
# CAP_CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, MKNOD, SETFCAP: what virtiofsd keeps
FILE_CAPS = sum(1 << n for n in (0, 1, 3, 4, 6, 7, 27, 31))
SHARED = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"


def share_xml(source: Path, tag: str, binary: str = "") -> str:
    return (
        "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
        f"{binary}<source dir='{source}'/><target dir='{tag}'/></filesystem>"
    )


def define(daemon: Daemon, tmp_path: Path, name: str, devices: str, backing: str = SHARED) -> None:
    text = domain_xml(name, extra_devices=devices).replace("<vcpu", f"{backing}<vcpu", 1)
    path = tmp_path / f"{name}.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()


def is_virtiofsd(pid: int) -> bool:
    try:
        return b"virtiofsd" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def servers(source: Path) -> list[int]:
    """The virtiofsd processes serving ``source`` (a sandboxed one has a child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                argv
                and argv[0].endswith(b"virtiofsd")
                and any(a.startswith(f"source={source}".encode()) for a in argv)
            ):
                found.append(int(entry.name))
    return found


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_a_share_needs_shared_memory(module_daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "private.xml"
    path.write_text(domain_xml("vfs-private", extra_devices=share_xml(tmp_path, "t")))
    result = module_daemon.cli("define", str(path))
    assert result.rc == 1 and "'virtiofs' requires shared memory" in result.err, result.err
    assert module_daemon.cli("dominfo", "vfs-private").rc == 1  # nothing defined


def test_domxml_to_native_shows_the_share(module_daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "native.xml"
    text = domain_xml("vfs-native", extra_devices=share_xml(tmp_path, "t")).replace(
        "<vcpu", f"{SHARED}<vcpu", 1
    )
    path.write_text(text)
    argv = module_daemon.cli("domxml-to-native", "qemu-argv", str(path)).ok().out.split()
    socket = module_daemon.run_dir / "vfs-native.channels" / "fs0-fs.sock"
    assert f"socket,id=chr-vu-fs0,path={socket}" in argv
    (device,) = [arg for arg in argv if arg.startswith("vhost-user-fs-pci,")]
    assert "chardev=chr-vu-fs0" in device and "tag=t" in device
    assert not servers(tmp_path)  # nothing started


@pytest.mark.slow
@pytest.mark.skipif(not os.access(VIRTIOFSD, os.X_OK), reason=f"no {VIRTIOFSD} (Debian's qemu-system-common)")
def test_the_guest_reads_and_writes_the_share(module_daemon: Daemon, tmp_path: Path) -> None:
    manifest = json.loads((guest_artifacts().kernel.parent / "manifest.json").read_text())
    if not any(module.endswith("/virtiofs.ko") for module in manifest.get("modules", [])):
        pytest.skip("the test guest has no virtiofs module (built before scripts/test-guest/modules had it)")
    daemon = module_daemon
    share, other = tmp_path / "share", tmp_path / "other"
    share.mkdir()
    other.mkdir()
    (share / "from-host").write_text("written by the host\n")
    (other / "second").write_text("the second share\n")
    binary = f"<binary path='{VIRTIOFSD}' xattr='on'><cache mode='none'/><sandbox mode='chroot'/></binary>"
    define(daemon, tmp_path, "vfs1", share_xml(share, "hostshare") + share_xml(other, "second", binary))
    daemon.cli("start", "vfs1").ok()
    record = json.loads((daemon.run_dir / "vfs1.json").read_text())
    pids = record["virtiofsd"]
    assert len(pids) == 2 and all(is_virtiofsd(pid) for pid in pids)
    logs = daemon.root / "var/log/pyvirt/qemu"
    domain_log = (logs / "vfs1.log").read_text()
    assert f"starting virtiofsd: {VIRTIOFSD} --fd=" in domain_log
    assert f"-o source={other},cache=none,sandbox=chroot,xattr" in domain_log
    assert "vhost-user-fs-pci" in domain_log and "tag=hostshare" in domain_log
    assert (logs / "vfs1-fs0-virtiofsd.log").exists() and (logs / "vfs1-fs1-virtiofsd.log").exists()

    console = Console(daemon, "vfs1")
    console.expect("pyvirt-guest: ready")
    assert console.run("mount -t virtiofs hostshare /mnt && echo mounted") == "mounted"
    assert console.run("cat /mnt/from-host") == "written by the host"
    assert console.run("echo written by the guest > /mnt/from-guest && sync && echo done") == "done"
    assert (share / "from-guest").read_text() == "written by the guest\n"
    console.run("mkdir -p /m2 && mount -t virtiofs second /m2")
    assert console.run("cat /m2/second") == "the second share"
    # Each share is served by a confined virtiofsd: seccomp, no new privileges, only the file
    # capabilities it needs; in its own namespaces with the share as its root (sandbox='namespace',
    # the default: a child in new mount, PID and network namespaces) or chrooted into it.
    serving = {source: [pid for pid in servers(source) if status(pid)["CapEff"] != "0000000000000000"]
               for source in (share, other)}  # fmt: skip
    assert all(len(pids) == 1 for pids in serving.values()), serving
    for (pid,) in serving.values():
        fields = status(pid)
        assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1", fields
        assert int(fields["CapEff"], 16) == FILE_CAPS, fields["CapEff"]
    (pid,) = serving[share]
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    (pid,) = serving[other]
    assert os.readlink(f"/proc/{pid}/root") == str(other)
    console.close()

    daemon.cli("destroy", "vfs1").ok()
    deadline = time.monotonic() + 30
    while any(is_virtiofsd(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_virtiofsd(pid) for pid in pids), "a virtiofsd outlived its domain"
    while (servers(share) or servers(other)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not servers(share) and not servers(other), "a virtiofsd outlived its domain"
    assert not (daemon.run_dir / "vfs1.channels").exists()


def _external_virtiofsd(daemon: Daemon) -> tuple[Path, subprocess.Popen[bytes]]:
    """A virtiofsd the test runs on a socket of its own, as a user would for ``<source socket>``."""
    folder = daemon.root / "extvfs"
    (folder / "tree").mkdir(parents=True)
    folder.chmod(0o755)
    socket = folder / "vfs.sock"
    argv = [VIRTIOFSD, f"--socket-path={socket}", "-o", f"source={folder / 'tree'}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not socket.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert socket.exists(), "the test's virtiofsd made no socket"
    socket.chmod(0o666)  # QEMU's own user connects to it
    return socket, proc


@pytest.mark.slow
@pytest.mark.skipif(not os.access(VIRTIOFSD, os.X_OK), reason=f"no {VIRTIOFSD} (Debian's qemu-system-common)")
def test_a_socket_share_and_a_virtiofsd_dying(module_daemon: Daemon, tmp_path: Path) -> None:
    """``<source socket>``: QEMU connects to a virtiofsd the user runs (the daemon starts none for it);
    the daemon's own virtiofsd killed under the guest: logged, listed by dominfo, the guest left as it
    is (libvirt 9.0 does not watch it at all), also after a daemon restart. Paused: no guest driver is
    needed."""
    daemon = module_daemon
    share, share2 = tmp_path / "share", tmp_path / "share2"
    share.mkdir()
    share2.mkdir()
    socket, external = _external_virtiofsd(daemon)
    shares = (
        share_xml(share, "mine")
        + share_xml(share2, "mine2")
        + (
            "<filesystem type='mount'><driver type='virtiofs'/>"
            f"<source socket='{socket}'/><target dir='external'/></filesystem>"
        )
    )
    define(daemon, tmp_path, "vfs2", shares)
    try:
        assert f"<source socket='{socket}'/>" in daemon.cli("dumpxml", "vfs2").ok().out
        daemon.cli("start", "vfs2", "--paused").ok()
        pids = json.loads((daemon.run_dir / "vfs2.json").read_text())["virtiofsd"]
        assert len(pids) == 2  # the daemon started only its own shares'
        domain_log = daemon.root / "var/log/pyvirt/qemu/vfs2.log"
        assert f"socket,id=chr-vu-fs2,path={socket}" in domain_log.read_text()

        # On the event bus: libvirt's nearest event, an I/O error of the share the guest sees
        watcher = watch(daemon, "--all", "--domain", "vfs2")
        try:
            listening(daemon, watcher, "vfs2", tmp_path)
            os.kill(pids[0], signal.SIGKILL)
            seen = read_until(watcher, b"due to virtiofsd killed by signal 9\n").decode()
        finally:
            watcher.send_signal(signal.SIGINT)
            watcher.wait()
        head = f"for domain 'vfs2': {share} (fs0) report"
        assert f"event 'io-error' {head}\n" in seen, seen
        assert f"event 'io-error-reason' {head} due to virtiofsd killed by signal 9\n" in seen, seen
        expected = "virtiofsd of filesystem 'mine' (fs0) exited (killed by signal 9)"
        deadline = time.monotonic() + 60
        while expected not in daemon.cli("dominfo", "vfs2").ok().out and time.monotonic() < deadline:
            time.sleep(0.2)
        assert expected in daemon.cli("dominfo", "vfs2").ok().out
        assert expected in domain_log.read_text() and daemon.state("vfs2") == "paused"
        # A later daemon (which re-adopts the domain) watches the virtiofsds left
        daemon.restart()
        watcher = watch(daemon, "--all", "--domain", "vfs2")
        try:
            listening(daemon, watcher, "vfs2", tmp_path)
            os.kill(pids[1], signal.SIGKILL)  # its share found again from its command line
            seen = read_until(watcher, b"event 'io-error-reason'").decode()
        finally:
            watcher.send_signal(signal.SIGINT)
            watcher.wait()
        assert f"event 'io-error' for domain 'vfs2': {share2} (fs1) report\n" in seen, seen
        again = f"virtiofsd (pid {pids[1]}) exited"
        while again not in daemon.cli("dominfo", "vfs2").ok().out and time.monotonic() < deadline + 60:
            time.sleep(0.2)
        info = daemon.cli("dominfo", "vfs2").ok().out
        assert again in info and expected in info, info  # the first one's report kept in the record

        daemon.cli("destroy", "vfs2").ok()
        # QEMU was the user's virtiofsd's client: that virtiofsd ends once QEMU has gone
        assert external.wait(60) == 0
        assert external.stderr is not None
        assert b"Received vhost-user socket connection" in external.stderr.read()
        assert expected not in daemon.cli("dominfo", "vfs2").ok().out  # of that run only
    finally:
        daemon.cli("destroy", "vfs2")
        if external.poll() is None:
            external.kill()
        external.wait()

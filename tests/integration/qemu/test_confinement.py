"""QEMU confined on real TCG guests: it runs as the unprivileged QEMU user in a cgroup of its own, the
disks it uses are handed to that user while it runs and given back after (daemon restart included),
another domain's disk is out of its reach, and a session daemon leaves all of it out."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import re
import shutil
import stat
from pathlib import Path

import pytest
from qemu.qmp import QMPClient
from qemu.qmp.qmp_client import ExecuteError

from tests.support.daemon import Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts

pytestmark = pytest.mark.slow

READY = r"pyvirt-guest: ready"
QEMU_USER = "pyvirt-qemu"


def _qemu_ids() -> tuple[int, int]:
    pw = pwd.getpwnam(QEMU_USER)
    return pw.pw_uid, pw.pw_gid


def _status_ids(pid: int) -> dict[str, list[int]]:
    fields: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            fields[key] = [int(v) for v in value.split()]
    return fields


def _record(daemon: Daemon, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((daemon.run_dir / f"{name}.json").read_text())
    return data


def _private_disk(daemon: Daemon, name: str) -> Path:
    """A copy of the guest disk only root may touch (0600 root:root), in a traversable directory."""
    disk = copy_disk(guest_artifacts(), daemon.root / "images" / f"{name}.qcow2")
    os.chmod(disk.parent, 0o755)
    os.chown(disk, 0, 0)
    os.chmod(disk, 0o600)
    return disk


def _define(daemon: Daemon, name: str, disk: Path, **kw: object) -> None:
    xml = daemon.root / f"{name}.xml"
    xml.write_text(domain_xml(name, disk=disk, **kw))  # type: ignore[arg-type]
    daemon.cli("define", str(xml)).ok()


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture(scope="module", autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("confinement is the system daemon's: needs root")


def test_qemu_runs_as_its_user_in_its_cgroup_with_its_disk(daemon: Daemon) -> None:
    uid, gid = _qemu_ids()
    disk = _private_disk(daemon, "conf1")
    _define(daemon, "conf1", disk)
    daemon.cli("start", "conf1").ok()
    pid = daemon.qemu_pids()["conf1"]

    ids = _status_ids(pid)
    assert ids["Uid"] == [uid] * 4 and ids["Gid"] == [gid] * 4, ids
    kvm = [g.gr_gid for g in grp.getgrall() if g.gr_name == "kvm"]
    assert ids["Groups"] == kvm  # /dev/kvm, nothing else (no root group)
    assert _owner(disk) == (uid, gid, 0o600)
    assert "NoNewPrivs:\t1" in Path(f"/proc/{pid}/status").read_text()  # set for Landlock

    info = daemon.cli("dominfo", "conf1").ok().out
    assert re.search(r"^Security model:\s+dac$", info, re.M), info
    assert re.search(rf"^Security label:\s+\+{uid}:\+{gid} \(enforcing\)$", info, re.M), info

    cgroup = Path(str(_record(daemon, "conf1")["cgroup"]))
    assert cgroup.name == "pyvirt-conf1.scope"
    assert str(pid) in (cgroup / "cgroup.procs").read_text().split()
    assert "usage_usec" in (cgroup / "cpu.stat").read_text()
    assert f"0::/{cgroup.relative_to(_cgroup_mount())}" in Path(f"/proc/{pid}/cgroup").read_text()

    console = Console(daemon, "conf1")
    console.expect(READY)
    assert console.run("echo up-$((6*7))") == "up-42"
    console.close()

    daemon.cli("destroy", "conf1").ok()
    assert _owner(disk) == (0, 0, 0o600)
    assert not cgroup.exists()
    assert not re.search(r"^Security label:", daemon.cli("dominfo", "conf1").ok().out, re.M)


def test_owner_given_back_after_a_daemon_restart(daemon: Daemon) -> None:
    uid, gid = _qemu_ids()
    disk = _private_disk(daemon, "conf2")
    os.chmod(disk, 0o640)
    _define(daemon, "conf2", disk)
    daemon.cli("start", "conf2").ok()
    pid = daemon.qemu_pids()["conf2"]
    daemon.restart()
    assert _owner(disk) == (uid, gid, 0o640)  # still QEMU's: it still runs
    assert daemon.qemu_pids()["conf2"] == pid
    daemon.cli("destroy", "conf2").ok()
    assert _owner(disk) == (0, 0, 0o640)

    # QEMU gone while no daemon was there: the next daemon gives the disk back when it finds out
    daemon.cli("start", "conf2").ok()
    cgroup = Path(str(_record(daemon, "conf2")["cgroup"]))
    daemon.stop()
    os.kill(daemon.qemu_pids()["conf2"], 9)
    daemon.start()
    assert _owner(disk) == (0, 0, 0o640)
    assert not cgroup.exists()


def test_read_only_disk_is_readable_not_writable(daemon: Daemon) -> None:
    _, gid = _qemu_ids()
    disk = _private_disk(daemon, "conf3")
    cdrom = daemon.root / "images/extra.iso"
    cdrom.write_bytes(b"\0" * 2048 * 16)
    os.chmod(cdrom, 0o660)
    extra = (
        f"<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{cdrom}'/>"
        "<target dev='hdc' bus='ide'/><readonly/></disk>"
    )
    _define(daemon, "conf3", disk, extra_devices=extra)
    daemon.cli("start", "conf3").ok()
    assert _owner(cdrom) == (0, gid, 0o640)  # the QEMU group may read it, nobody but root write
    daemon.cli("destroy", "conf3").ok()
    assert _owner(cdrom) == (0, 0, 0o660)


def test_disk_in_a_directory_qemu_cannot_enter_is_refused(daemon: Daemon) -> None:
    uid, gid = _qemu_ids()
    hidden = daemon.root / "private"
    hidden.mkdir(mode=0o700)
    disk = copy_disk(guest_artifacts(), hidden / "conf4.qcow2")
    _define(daemon, "conf4", disk)
    result = daemon.cli("start", "conf4")
    assert result.rc == 1
    assert (
        f"error: Cannot access storage file '{disk}' (as uid:{uid}, gid:{gid}): Permission denied"
        in result.err
    ), result.err
    assert _owner(disk)[:2] == (0, 0)
    assert "conf4" not in daemon.qemu_pids()


def test_one_domain_cannot_open_another_domains_disk(daemon: Daemon) -> None:
    mine = _private_disk(daemon, "conf5")
    theirs = _private_disk(daemon, "conf6")
    _define(daemon, "conf5", mine)
    _define(daemon, "conf6", theirs)
    daemon.cli("start", "conf5").ok()
    daemon.cli("start", "conf6").ok()  # its disk is now the QEMU user's too: Landlock keeps them apart
    assert theirs.stat().st_uid == _qemu_ids()[0]
    monitor = _record(daemon, "conf5")["monitor"]
    daemon.stop()  # frees QEMU's one monitor connection; QEMU runs on

    async def blockdev_add(path: Path, read_only: bool) -> str:
        qmp = QMPClient("test")
        await qmp.connect(str(monitor))
        try:
            await qmp.execute(
                "blockdev-add",
                {"driver": "file", "node-name": "stolen", "filename": str(path), "read-only": read_only},
            )
            return "opened"
        except ExecuteError as err:
            return str(err)
        finally:
            await qmp.disconnect()

    for read_only in (False, True):
        reply = asyncio.run(blockdev_add(theirs, read_only))
        assert f"Could not open '{theirs}': Permission denied" in reply, reply
    daemon.start()
    daemon.cli("destroy", "conf5").ok()
    daemon.cli("destroy", "conf6").ok()


def test_session_daemon_starts_qemu_as_itself(tmp_path: Path) -> None:
    """A daemon that is not root cannot confine QEMU: it starts it as itself and says so."""
    nobody = pwd.getpwnam("nobody")
    d = Daemon(user="nobody")
    try:
        d.start()
        disk = copy_disk(guest_artifacts(), d.root / "images/sess.qcow2")
        for path in (d.root, *d.root.rglob("*")):
            os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
        _define(d, "sess", disk)
        os.chown(d.root / "sess.xml", nobody.pw_uid, nobody.pw_gid)
        d.cli("start", "sess").ok()
        pid = d.qemu_pids()["sess"]
        assert _status_ids(pid)["Uid"] == [nobody.pw_uid] * 4
        assert _owner(disk)[0] == nobody.pw_uid
        assert "cgroup" not in _record(d, "sess") or _record(d, "sess")["cgroup"] is None
        info = d.cli("dominfo", "sess").ok().out
        assert re.search(r"^Security model:\s+none$", info, re.M), info
        d.cli("destroy", "sess").ok()
    finally:
        d.cleanup()
        shutil.rmtree(d.root, ignore_errors=True)


def _cgroup_mount() -> Path:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    raise AssertionError("no cgroup2 mount")


def test_nvram_serial_file_and_channel_directory_are_handed_over(daemon: Daemon) -> None:
    uid, gid = _qemu_ids()
    serial_log = daemon.root / "images/conf7-serial.log"
    serial_log.parent.mkdir(exist_ok=True)
    xml = daemon.root / "conf7.xml"
    xml.write_text(
        "<domain type='qemu'><name>conf7</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>"
        "<devices><serial type='file'><source path='" + str(serial_log) + "'/><target port='0'/></serial>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "<memballoon model='none'/></devices></domain>"
    )
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", "--paused", "conf7").ok()
    nvram = daemon.root / "var/lib/pyvirt/qemu/nvram/conf7_VARS.fd"
    channels = daemon.run_dir / "conf7.channels"
    assert _owner(nvram)[:2] == (uid, gid)
    assert _owner(serial_log)[:2] == (uid, gid)  # created for QEMU, which appends to it
    assert _owner(channels) == (uid, gid, 0o750)
    assert (channels / "org.qemu.guest_agent.0").is_socket()  # QEMU could create its socket there
    assert _owner(daemon.run_dir / "conf7.pid")[:2] == (uid, gid)
    daemon.cli("destroy", "conf7").ok()
    assert _owner(nvram)[:2] == (0, 0)
    assert _owner(serial_log) == (0, 0, 0o600)

"""Test disks for the offline guest tools, built with libguestfs itself, and snapshots of their trees.

Two qcow2 disks are built in ONE appliance launch and cached under ``.cache/guest-tools`` (keyed by
this file's content, so editing the trees rebuilds them): a Debian-like tree (``/boot`` and ``/`` on
two partitions, fstab by UUID, busybox as /bin/sh) and a RHEL-like tree (one partition, fstab by
LABEL). Tests never touch them: they work on qcow2 overlays (``qemu-img create -b``). A snapshot is
``{path: [kind, mode, content-or-size]}`` of the whole tree, so a test can say exactly which paths an
operation removed, changed or added.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("PYVIRT_GUEST_TEST_CACHE", ROOT / ".cache" / "guest-tools"))
BUSYBOX = Path("/bin/busybox")
DISK_SIZE = 256 * 1024 * 1024
MACHINE_ID = "4f1c2a8e9b0d4e6fa1b2c3d4e5f60718\n"
OLD_SHADOW_HASH = (
    "$6$oldsalt$OldHashOldHashOldHashOldHashOldHashOldHashOldHashOldHashOldHashOldHashOldHashOld"
)

Snapshot = dict[str, list[Any]]

PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
SHADOW = f"root:{OLD_SHADOW_HASH}:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n"
GROUP = "root:x:0:\nalice:x:1000:\n"

COMMON_FILES: dict[str, str] = {
    "/etc/machine-id": MACHINE_ID,
    "/var/lib/dbus/machine-id": MACHINE_ID,
    "/etc/passwd": PASSWD,
    "/etc/passwd-": PASSWD,
    "/etc/shadow": SHADOW,
    "/etc/shadow-": SHADOW,
    "/etc/group": GROUP,
    "/etc/ssh/ssh_host_rsa_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nrsa\n",
    "/etc/ssh/ssh_host_rsa_key.pub": "ssh-rsa AAAArsa root@old\n",
    "/etc/ssh/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\ned25519\n",
    "/etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAAed root@old\n",
    "/etc/ssh/sshd_config": "PermitRootLogin prohibit-password\n",
    "/etc/udev/rules.d/70-persistent-net.rules": 'SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", '
    'NAME="eth0"\n',
    "/etc/udev/rules.d/99-local.rules": "# kept\n",
    "/root/.bash_history": "ls\nrm -rf /\n",
    "/root/.profile": "# kept\n",
    "/home/alice/.bash_history": "vim notes.txt\n",
    "/home/alice/notes.txt": "kept\n",
    "/tmp/x": "tmp\n",
    "/tmp/.hidden": "tmp\n",
    "/var/tmp/y": "tmp\n",
    "/var/tmp/sub/z": "tmp\n",
    "/var/mail/root": "From: cron\n",
    "/var/crash/x": "core\n",
    "/var/log/README": "kept: no log pattern matches\n",
    "/var/log/wtmp": "wtmp\n",
    "/var/log/journal/0123abcd/system.journal": "journal\n",
    "/var/log/cloud-init.log": "log\n",
    "/var/run/.keep": "",
}

DEBIAN_FILES: dict[str, str] = {
    **COMMON_FILES,
    "/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n',
    "/etc/debian_version": "12.5\n",
    "/etc/hostname": "debtemplate\n",
    "/etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tdebtemplate\n::1\tlocalhost ip6-localhost\n",
    "/etc/network/interfaces": "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
    "allow-hotplug ens3\niface ens3 inet dhcp\n",
    "/etc/default/grub": "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n"
    "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n#GRUB_TERMINAL=console\n',
    "/var/log/syslog": "log\n",
    "/var/log/dpkg.log": "log\n",
    "/var/log/apt/history.log": "log\n",
    "/var/log/apt/term.log": "log\n",
    "/var/cache/apt/archives/foo_1.0_amd64.deb": "deb\n",
    "/var/cache/apt/archives/lock": "",
    "/var/cache/apt/pkgcache.bin": "kept: not in archives\n",
    "/var/lib/dhcp/dhclient.ens3.leases": "lease {}\n",
    "/var/lib/apt/lists/deb.debian.org_dists": "kept\n",
}
DEBIAN_DIRS = ("/var/cache/apt/archives/partial", "/lib/systemd/system", "/etc/systemd/system", "/boot/grub")

RHEL_FILES: dict[str, str] = {
    **COMMON_FILES,
    "/etc/redhat-release": "Red Hat Enterprise Linux release 9.2 (Plow)\n",
    "/etc/os-release": 'NAME="Red Hat Enterprise Linux"\nVERSION="9.2 (Plow)"\nID="rhel"\nID_LIKE="fedora"\n'
    'VERSION_ID="9.2"\nPRETTY_NAME="Red Hat Enterprise Linux 9.2 (Plow)"\n',
    "/etc/hostname": "rheltemplate\n",
    "/etc/hosts": "127.0.0.1   localhost localhost.localdomain\n",
    "/etc/sysconfig/network": "NETWORKING=yes\n",
    "/etc/sysconfig/network-scripts/ifcfg-eth0": "DEVICE=eth0\nNAME=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n"
    "HWADDR=52:54:00:12:34:56\nUUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\nDHCP_HOSTNAME=rheltemplate\n",
    "/etc/sysconfig/network-scripts/ifcfg-ens3": "DEVICE=ens3\nBOOTPROTO=dhcp\nHWADDR=52:54:00:12:34:57\n",
    "/etc/selinux/config": "# SELinux\nSELINUX=enforcing\nSELINUXTYPE=targeted\n",
    "/etc/default/grub": "GRUB_TIMEOUT=5\n"
    "GRUB_DISTRIBUTOR=\"$(sed 's, release .*$,,g' /etc/system-release)\"\n"
    'GRUB_DEFAULT=saved\nGRUB_TERMINAL_OUTPUT="console"\nGRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet"\n'
    "GRUB_ENABLE_BLSCFG=true\n",
    "/var/log/messages": "log\n",
    "/var/log/secure": "log\n",
    "/var/log/dnf.log": "log\n",
    "/var/cache/dnf/baseos-1234/packages/bash-5.1.rpm": "rpm\n",
    "/var/lib/dhclient/dhclient-eth0.leases": "lease {}\n",
}
RHEL_DIRS = ("/usr/lib/systemd/system", "/etc/systemd/system")


def _builder_key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _write_tree(g: Any, files: dict[str, str], dirs: tuple[str, ...]) -> None:
    for d in dirs:
        g.mkdir_p(d)
    for path, content in files.items():
        g.mkdir_p(os.path.dirname(path))
        g.write(path, content.encode())
    g.chmod(0o1777, "/tmp")
    g.chmod(0o640, "/etc/shadow")
    g.chmod(0o700, "/root")


def _install_busybox(g: Any) -> None:
    for d in ("/bin", "/sbin", "/usr/bin", "/usr/sbin"):
        g.mkdir_p(d)
    g.upload(str(BUSYBOX), "/bin/busybox")
    g.chmod(0o755, "/bin/busybox")
    g.command(["/bin/busybox", "--install", "-s"])


def snapshot(g: Any) -> Snapshot:
    """Every path under / (mounted) except lost+found and busybox's links: kind, mode, content or size."""
    out: Snapshot = {}
    for rel in g.find("/"):
        path = "/" + rel
        if "lost+found" in path or path.startswith(("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/")):
            continue
        st = g.lstatns(path)
        mode = st["st_mode"]
        kind = {0o040000: "dir", 0o120000: "link", 0o100000: "file"}.get(mode & 0o170000, "other")
        if kind == "file":
            data = g.read_file(path) if st["st_size"] <= 65536 else b""
            out[path] = [kind, mode & 0o7777, data.decode("utf-8", "replace")]
        elif kind == "link":
            out[path] = [kind, 0, g.readlink(path)]
        else:
            out[path] = [kind, mode & 0o7777, ""]
    return out


def diff(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str], set[str]]:
    """(removed, added, changed) paths."""
    removed = set(before) - set(after)
    added = set(after) - set(before)
    changed = {p for p in set(before) & set(after) if before[p] != after[p]}
    return removed, added, changed


def _guestfs() -> Any:
    from pyvirt.guest.appliance import new_handle

    return new_handle()


def build_base_disks() -> tuple[Path, Path, Snapshot, Snapshot]:
    """(debian.qcow2, rhel.qcow2, their snapshots), built once and cached."""
    directory = CACHE / _builder_key()
    deb, rhel, snap = directory / "debian.qcow2", directory / "rhel.qcow2", directory / "snapshots.json"
    if snap.exists():
        data = json.loads(snap.read_text())
        return deb, rhel, data["debian"], data["rhel"]
    if CACHE.exists():
        shutil.rmtree(CACHE, ignore_errors=True)
    work = CACHE / f".build-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    g = _guestfs()
    try:
        for name in ("debian.qcow2", "rhel.qcow2"):
            g.disk_create(str(work / name), "qcow2", DISK_SIZE)
            g.add_drive_opts(str(work / name), format="qcow2")
        g.launch()
        # Debian: /boot on sda1, / on sda2, fstab by UUID.
        g.part_init("/dev/sda", "mbr")
        g.part_add("/dev/sda", "p", 2048, 2048 + 64 * 2048 - 1)
        g.part_add("/dev/sda", "p", 2048 + 64 * 2048, -2048)
        g.mkfs("ext4", "/dev/sda1")
        g.mkfs("ext4", "/dev/sda2")
        boot_uuid, root_uuid = g.vfs_uuid("/dev/sda1"), g.vfs_uuid("/dev/sda2")
        g.mount("/dev/sda2", "/")
        g.mkdir("/boot")
        g.mount("/dev/sda1", "/boot")
        fstab = f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\nUUID={boot_uuid} /boot ext4 defaults 0 2\n"
        fstab += "/dev/vdb1 none swap sw 0 0\nproc /proc proc defaults 0 0\n"
        _write_tree(g, {**DEBIAN_FILES, "/etc/fstab": fstab, "/boot/grub/grub.cfg": "# grub\n"}, DEBIAN_DIRS)
        _install_busybox(g)
        debian_snap = snapshot(g)
        g.umount_all()
        # RHEL: one partition, fstab by LABEL.
        g.part_disk("/dev/sdb", "mbr")
        g.mkfs("ext4", "/dev/sdb1", label="root")
        g.mount("/dev/sdb1", "/")
        _write_tree(g, {**RHEL_FILES, "/etc/fstab": "LABEL=root / ext4 defaults 0 1\n"}, RHEL_DIRS)
        rhel_snap = snapshot(g)
        g.umount_all()
        g.shutdown()
    finally:
        g.close()
    (work / "snapshots.json").write_text(json.dumps({"debian": debian_snap, "rhel": rhel_snap}))
    work.rename(directory)
    return deb, rhel, debian_snap, rhel_snap


def overlay(base: Path, path: Path) -> Path:
    """A qcow2 overlay of ``base`` at ``path``: writable, and the base stays untouched."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path)], check=True
    )
    return path


@contextmanager
def reading(*disks: Path) -> Iterator[Any]:
    """One read-only launch on ``disks`` (sda, sdb, ...)."""
    g = _guestfs()
    try:
        for disk in disks:
            g.add_drive_opts(str(disk), format="qcow2", readonly=True)
        g.launch()
        yield g
    finally:
        g.close()


def snapshot_root(g: Any, root: str, boot: str | None = None) -> Snapshot:
    g.mount_ro(root, "/")
    if boot:
        g.mount_ro(boot, "/boot")
    try:
        return snapshot(g)
    finally:
        g.umount_all()

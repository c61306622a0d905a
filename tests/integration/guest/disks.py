"""Test disks for the offline guest tools, and snapshots of their trees, both made on the host.

Two qcow2 disks are built with e2fsprogs (``mkfs.ext4 -d``) and sfdisk, without an appliance launch,
and cached under ``.cache/guest-tools`` (keyed by this file's content, so editing the trees rebuilds
them): a Debian-like tree (``/boot`` and ``/`` on two partitions, fstab by UUID, busybox as /bin/sh)
and a RHEL-like tree (one partition, fstab by LABEL). Tests never touch them: they work on qcow2
overlays (``qemu-img create -b``). A snapshot is ``{path: [kind, mode, content-or-size]}`` of the
whole tree, so a test can say exactly which paths an operation removed, changed or added; it is read
on the host too (:func:`snapshot_disk`), so checking a tool's result costs no appliance launch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from functools import partial
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
_BUSYBOX_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/")  # busybox's links: left out of snapshots

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


def _write_tree(root: Path, files: dict[str, str], dirs: tuple[str, ...], *, busybox: bool = False) -> None:
    """The tree under ``root`` with the modes a fresh install has (dirs 0755, files 0644, then the few
    special ones), and busybox as /bin/sh and the rest (``busybox --install -s``'s links)."""
    for d in dirs:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    if busybox:
        (root / "bin").mkdir(exist_ok=True)
        shutil.copyfile(BUSYBOX, root / "bin/busybox")
        names = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
        for name in names.stdout.split():
            link = root / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to("/bin/busybox")
    for top, _, names in os.walk(root):
        os.chmod(top, 0o755)
        for name in names:
            if not os.path.islink(os.path.join(top, name)):
                os.chmod(os.path.join(top, name), 0o644)
    for path, mode in (("bin/busybox", 0o755), ("tmp", 0o1777), ("etc/shadow", 0o640), ("root", 0o700)):
        if (root / path).exists():
            os.chmod(root / path, mode)


def _mkfs(tree: Path, image: Path, size: int, *options: str) -> None:
    """An ext4 file system of ``size`` bytes in the file ``image``, holding ``tree``."""
    _run("mkfs.ext4", "-q", "-F", "-d", str(tree), *options, str(image), f"{size // 1024}k")


def _assemble(disk: Path, partitions: list[tuple[int, Path]]) -> None:
    """A qcow2 ``disk`` of DISK_SIZE with an MBR table whose partitions hold the given file systems,
    each at its start sector (copied sparsely)."""
    raw = disk.with_suffix(".raw")
    with open(raw, "wb") as f:
        f.truncate(DISK_SIZE)
    table = "label: dos\n" + "".join(
        f"start={start}, size={image.stat().st_size // 512}, type=83\n" for start, image in partitions
    )
    _run("sfdisk", "-q", str(raw), stdin=table)
    with open(raw, "r+b") as out:
        for start, image in partitions:
            with open(image, "rb") as src:
                offset = start * 512
                while chunk := src.read(1 << 20):
                    if chunk.count(0) != len(chunk):
                        out.seek(offset)
                        out.write(chunk)
                    offset += len(chunk)
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk))
    raw.unlink()


def _entry(mode: int, size: int, content: Callable[[], bytes], target: Callable[[], str]) -> list[Any]:
    """A snapshot's [kind, mode, content-or-link-target] of one path."""
    kind = {0o040000: "dir", 0o120000: "link", 0o100000: "file"}.get(mode & 0o170000, "other")
    if kind == "file":
        data = content() if size <= 65536 else b""
        return [kind, mode & 0o7777, data.decode("utf-8", "replace")]
    if kind == "link":
        return [kind, 0, target()]
    return [kind, mode & 0o7777, ""]


def _kept(path: str) -> bool:
    return "lost+found" not in path and not path.startswith(_BUSYBOX_DIRS)


def diff(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str], set[str]]:
    """(removed, added, changed) paths."""
    removed = set(before) - set(after)
    added = set(after) - set(before)
    changed = {p for p in set(before) & set(after) if before[p] != after[p]}
    return removed, added, changed


def build_base_disks() -> tuple[Path, Path, Snapshot, Snapshot]:
    """(debian.qcow2, rhel.qcow2, their snapshots), built once and cached."""
    directory = CACHE / _builder_key()
    snap = directory / "snapshots.json"
    if not snap.exists():
        # One build at a time: test processes running side by side (pytest-xdist) share the cache.
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        with open(CACHE.parent / f".{CACHE.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not snap.exists():
                shutil.rmtree(CACHE, ignore_errors=True)  # other keys' disks: stale
                _build(directory)
    data = json.loads(snap.read_text())
    return directory / "debian.qcow2", directory / "rhel.qcow2", data["debian"], data["rhel"]


def _build(directory: Path) -> None:
    """The two disks and their snapshots into ``directory``, which appears whole or not at all."""
    work = CACHE / f".build-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    # Debian: /boot on partition 1 (64 MiB), / on partition 2, fstab by UUID.
    boot_uuid, root_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    fstab = f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\nUUID={boot_uuid} /boot ext4 defaults 0 2\n"
    fstab += "/dev/vdb1 none swap sw 0 0\nproc /proc proc defaults 0 0\n"
    files = {**DEBIAN_FILES, "/etc/fstab": fstab, "/boot/grub/grub.cfg": "# grub\n"}
    _write_tree(work / "deb-root", files, DEBIAN_DIRS, busybox=True)
    (work / "deb-root/boot").rename(work / "deb-boot")
    _write_tree(work / "deb-root", {}, ("/boot",))
    boot_size, root_size = 64 << 20, DISK_SIZE - (2048 + 64 * 2048 + 2048) * 512
    _mkfs(work / "deb-boot", work / "boot.img", boot_size, "-U", boot_uuid)
    _mkfs(work / "deb-root", work / "root.img", root_size, "-U", root_uuid)
    _assemble(work / "debian.qcow2", [(2048, work / "boot.img"), (2048 + 64 * 2048, work / "root.img")])
    # RHEL: one partition, fstab by LABEL.
    _write_tree(
        work / "rhel-root", {**RHEL_FILES, "/etc/fstab": "LABEL=root / ext4 defaults 0 1\n"}, RHEL_DIRS
    )
    _mkfs(work / "rhel-root", work / "rhel.img", DISK_SIZE - 2 * 2048 * 512, "-L", "root")
    _assemble(work / "rhel.qcow2", [(2048, work / "rhel.img")])
    for scratch in ("deb-root", "deb-boot", "rhel-root", "boot.img", "root.img", "rhel.img"):
        path = work / scratch
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    debian_snap = snapshot_disk(work / "debian.qcow2", root=2, boot=1)
    rhel_snap = snapshot_disk(work / "rhel.qcow2", root=1)
    (work / "snapshots.json").write_text(json.dumps({"debian": debian_snap, "rhel": rhel_snap}))
    work.rename(directory)


def overlay(base: Path, path: Path) -> Path:
    """A qcow2 overlay of ``base`` at ``path``: writable, and the base stays untouched."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path)], check=True
    )
    return path


def _run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    assert result.returncode == 0, f"{argv[0]} failed: {result.stderr.strip()}"
    return result.stdout


def _partition_offsets(raw: Path) -> list[int]:
    table = json.loads(_run("sfdisk", "--json", str(raw)))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [int(part["start"]) * sector for part in table["partitions"]]


def _modes(device: str, dirs: list[str]) -> dict[str, int]:
    """{path: st_mode} of every entry of ``dirs`` (and of "/" itself), from ONE debugfs run."""
    script = "ls -p /\n" + "".join(f'ls -p "{d}"\n' for d in dirs)
    out = _run("debugfs", "-f", "-", device, stdin=script)
    modes: dict[str, int] = {}
    directory = "/"
    for line in out.splitlines():
        if line.startswith("debugfs: ls -p "):
            directory = line.removeprefix("debugfs: ls -p ").strip('"')
        elif line.startswith("/") and line.count("/") >= 6:
            _, _ino, mode, _uid, _gid, name, *_ = line.split("/")
            if name == "." and directory == "/":
                modes["/"] = int(mode, 8)
            elif name not in (".", ".."):
                modes[os.path.join(directory, name)] = int(mode, 8)
    return modes


def _read_fs(device: str, into: Path) -> dict[str, int]:
    """Dump the file system ``device`` into ``into``; {path in the fs: st_mode} of everything in it.

    The file system must be clean (unmounted, no journal to replay), as the tool under test left it.
    """
    header = _run("dumpe2fs", "-h", device)
    assert re.search(r"^Filesystem state:\s+clean$", header, re.M), header
    assert "needs_recovery" not in header, header
    into.mkdir(parents=True)
    _run("debugfs", "-R", f"rdump / {into}", device)
    dirs = []
    for top, subdirs, _ in os.walk(into):
        dirs += ["/" + os.path.relpath(os.path.join(top, d), into) for d in subdirs]
    return _modes(device, dirs)


def snapshot_disk(disk: Path, root: int, boot: int | None = None) -> Snapshot:
    """The snapshot of a qcow2 disk's tree (partition numbers from 1, ``boot`` mounted on /boot), read on
    the host with e2fsprogs' debugfs: no appliance launch. Modes come from debugfs (its dump drops the
    sticky and set-id bits), contents and link targets from the dump."""
    with tempfile.TemporaryDirectory(prefix="pvt-read-") as tmp:
        raw = Path(tmp) / "disk.raw"
        _run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(disk), str(raw))
        offsets = _partition_offsets(raw)
        tree = Path(tmp) / "tree"
        modes = _read_fs(f"{raw}?offset={offsets[root - 1]}", tree)
        where = {path: tree / path.lstrip("/") for path in modes}
        if boot is not None:
            boot_modes = _read_fs(f"{raw}?offset={offsets[boot - 1]}", Path(tmp) / "boot")
            where = {p: w for p, w in where.items() if not p.startswith("/boot/")}
            for path, mode in boot_modes.items():
                name = "/boot" + (path if path != "/" else "")
                modes[name] = mode
                where[name] = Path(tmp) / "boot" / path.lstrip("/")
            modes = {p: m for p, m in modes.items() if p in where}
        out: Snapshot = {}
        for path in sorted(modes):
            if path != "/" and _kept(path):
                host = where[path]
                size = host.lstat().st_size
                out[path] = _entry(modes[path], size, host.read_bytes, partial(os.readlink, host))
        return out

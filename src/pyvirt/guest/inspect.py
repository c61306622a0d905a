"""What is on a guest disk: the operating system, its family, and how to mount its file systems.

libguestfs's ``inspect_os`` is thorough but slow in a TCG appliance (about 10 s: it scans for LVM, md
and Windows dynamic disks on every file system). The common case, plain partitions holding a Linux
root with ``/etc/os-release`` and an ``/etc/fstab`` naming its other file systems, is read here
directly in about a second; anything else (LVM, RAID, LUKS, btrfs, Windows, an fstab entry that
cannot be resolved) falls back to ``inspect_os``. Either way the answer is reduced to :class:`OSInfo`,
with the distribution mapped onto an OS family (debian, rhel, suse, ...), which is what template
preparation and package installation depend on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.guest.appliance import Handle

DEBIAN_FAMILY = frozenset({"debian", "ubuntu", "linuxmint", "kalilinux", "pardus", "neokylin"})
RHEL_FAMILY = frozenset(
    {
        "rhel",
        "centos",
        "fedora",
        "rocky",
        "almalinux",
        "oraclelinux",
        "scientificlinux",
        "redhat-based",
        "circle",
        "openeuler",
        "kylin",
    }
)
SUSE_FAMILY = frozenset({"sles", "opensuse", "suse-based"})


def family_of(os_type: str, distro: str) -> str:
    """The OS family of a libguestfs (type, distro) pair: debian, rhel, suse, arch, alpine, windows..."""
    if os_type == "windows":
        return "windows"
    if distro in DEBIAN_FAMILY:
        return "debian"
    if distro in RHEL_FAMILY:
        return "rhel"
    if distro in SUSE_FAMILY:
        return "suse"
    if distro in ("archlinux", "manjaro"):
        return "arch"
    if distro == "alpinelinux":
        return "alpine"
    return os_type if os_type != "unknown" else "unknown"


@dataclass(frozen=True)
class OSInfo:
    """One inspected operating system."""

    root: str  # the root file system's device, e.g. /dev/sda1
    type: str  # linux, windows, freebsd, ...
    distro: str  # debian, rhel, fedora, ...
    family: str  # see family_of
    major: int
    minor: int
    product_name: str
    package_management: str  # apt, dnf, yum, zypper, ... or "unknown"
    hostname: str
    mountpoints: dict[str, str] = field(default_factory=dict)  # mount point -> device

    @property
    def is_linux(self) -> bool:
        return self.type == "linux"


def inspect(g: Handle, disk_label: str = "the disk") -> OSInfo:
    """Inspect the launched handle; exactly one operating system must be found."""
    try:
        info = fast_inspect(g)
    except RuntimeError:
        info = None
    if info is not None:
        return info
    return full_inspect(g, disk_label)


def full_inspect(g: Handle, disk_label: str = "the disk") -> OSInfo:
    """libguestfs's own inspection (slow, thorough)."""
    try:
        roots = g.inspect_os()
    except RuntimeError as err:
        raise OperationFailed(f"inspection of {disk_label} failed: {err}") from err
    if not roots:
        raise InvalidArgument(
            f"no operating system found on {disk_label}: it holds no guest root file system "
            "that libguestfs recognises (use -m DEVICE to mount a file system by hand)"
        )
    if len(roots) > 1:
        raise InvalidArgument(
            f"{disk_label} holds {len(roots)} operating systems ({', '.join(roots)}); "
            "only single-OS disks are supported"
        )
    root = roots[0]
    os_type = g.inspect_get_type(root)
    distro = g.inspect_get_distro(root)
    return OSInfo(
        root=root,
        type=os_type,
        distro=distro,
        family=family_of(os_type, distro),
        major=g.inspect_get_major_version(root),
        minor=g.inspect_get_minor_version(root),
        product_name=g.inspect_get_product_name(root),
        package_management=g.inspect_get_package_management(root),
        hostname=g.inspect_get_hostname(root),
        mountpoints=dict(g.inspect_get_mountpoints(root)),
    )


# File systems a Linux root may be on (btrfs is left to inspect_os: subvolumes).
_ROOT_FS = frozenset({"ext2", "ext3", "ext4", "xfs"})
# Signatures that mean the layout needs inspect_os's LVM / md / LUKS handling.
_COMPLEX = frozenset({"LVM2_member", "linux_raid_member", "crypto_LUKS", "btrfs", "zfs_member"})
# fstab types that are not on the disk.
_NOT_ON_DISK = frozenset(
    {"swap", "proc", "sysfs", "tmpfs", "devpts", "devtmpfs", "none", "nfs", "nfs4", "cifs", "smbfs",
     "fuse", "fuse.sshfs", "cgroup", "cgroup2", "securityfs", "debugfs", "bind", "autofs", "9p", "virtiofs"}
)  # fmt: skip
# os-release IDs whose libguestfs distro name differs.
_DISTRO_BY_ID = {
    "ol": "oraclelinux",
    "opensuse-leap": "opensuse",
    "opensuse-tumbleweed": "opensuse",
    "sled": "sles",
    "arch": "archlinux",
    "alpine": "alpinelinux",
    "rocky": "rocky",
    "almalinux": "almalinux",
    "scientific": "scientificlinux",
}


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value pairs of an os-release file, quotes removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        return 0, 0
    return int(match.group(1)), int(match.group(2) or 0)


def package_management_of(family: str, distro: str, major: int) -> str:
    if family == "debian":
        return "apt"
    if family == "rhel":
        if distro == "fedora" or major >= 8:
            return "dnf"
        return "yum"
    return {"suse": "zypper", "arch": "pacman", "alpine": "apk"}.get(family, "unknown")


def _read(g: Handle, path: str) -> str | None:
    if not g.is_file(path, followsymlinks=True):
        return None
    data: bytes | str = g.read_file(path)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _describe_root(g: Handle, device: str) -> OSInfo | None:
    """With ``device`` mounted at /, the OS on it, or None if it is not a Linux root we understand."""
    if not (g.is_dir("/etc") and g.is_file("/etc/fstab")):
        return None
    os_release = _read(g, "/etc/os-release") or _read(g, "/usr/lib/os-release")
    redhat_release = _read(g, "/etc/redhat-release")
    debian_version = _read(g, "/etc/debian_version")
    fields = parse_os_release(os_release or "")
    os_id = fields.get("ID", "")
    if os_id:
        distro = _DISTRO_BY_ID.get(os_id, os_id)
        major, minor = _version(fields.get("VERSION_ID", ""))
        product = fields.get("PRETTY_NAME") or fields.get("NAME") or os_id
    elif redhat_release is not None:
        lower = redhat_release.lower()
        distro = "fedora" if "fedora" in lower else "centos" if "centos" in lower else "rhel"
        major, minor = _version(re.sub(r"^.*?release\s+", "", redhat_release.strip()))
        product = redhat_release.strip()
    elif debian_version is not None:
        distro = "debian"
        major, minor = _version(debian_version)
        product = f"Debian {debian_version.strip()}"
    else:
        return None
    if distro == "debian" and debian_version is not None and _version(debian_version)[0] == major:
        major, minor = _version(debian_version)
    family = family_of("linux", distro)
    hostname = (_read(g, "/etc/hostname") or "").strip().split("\n")[0]
    if not hostname:
        network = parse_os_release(_read(g, "/etc/sysconfig/network") or "")
        hostname = network.get("HOSTNAME", "")
    mountpoints = _fstab_mountpoints(g, device, _read(g, "/etc/fstab") or "")
    if mountpoints is None:
        return None
    return OSInfo(
        root=device,
        type="linux",
        distro=distro,
        family=family,
        major=major,
        minor=minor,
        product_name=product,
        package_management=package_management_of(family, distro, major),
        hostname=hostname or "unknown",
        mountpoints=mountpoints,
    )


def _fstab_mountpoints(g: Handle, root: str, fstab: str) -> dict[str, str] | None:
    """Mount point -> appliance device for the fstab's on-disk file systems; None if one is unresolvable."""
    mountpoints = {"/": root}
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#"):
            continue
        spec, mountpoint, fstype = fields[0], fields[1], fields[2]
        options = fields[3].split(",") if len(fields) > 3 else []
        if fstype in _NOT_ON_DISK or "bind" in options or not mountpoint.startswith("/") or mountpoint == "/":
            continue
        device = _resolve_spec(g, spec)
        if device is None:
            if "nofail" in options or "noauto" in options:
                continue
            return None
        mountpoints[mountpoint] = device
    return mountpoints


def _resolve_spec(g: Handle, spec: str) -> str | None:
    try:
        if spec.startswith("UUID="):
            return str(g.findfs_uuid(spec[5:].strip('"')))
        if spec.startswith("LABEL="):
            return str(g.findfs_label(spec[6:].strip('"')))
        if spec.startswith("/dev/disk/by-uuid/"):
            return str(g.findfs_uuid(spec.rsplit("/", 1)[1]))
        if spec.startswith("/dev/disk/by-label/"):
            return str(g.findfs_label(spec.rsplit("/", 1)[1]))
    except RuntimeError:
        return None
    match = re.fullmatch(r"/dev/(?:[shv]d|xvd)([a-z]+)(\d*)", spec)
    if match:
        device = f"/dev/sd{match.group(1)}{match.group(2)}"
        return device if device in g.list_partitions() or device in g.list_devices() else None
    return None


def fast_inspect(g: Handle) -> OSInfo | None:
    """The OS on a disk of plain partitions holding one Linux root, or None to ask inspect_os."""
    partitions = list(g.list_partitions())
    devices = [d for d in g.list_devices() if not any(p.startswith(d) for p in partitions)]
    found: list[OSInfo] = []
    for device in [*partitions, *devices]:
        try:
            fstype = g.vfs_type(device)
        except RuntimeError:
            continue
        if fstype in _COMPLEX:
            return None
        if fstype not in _ROOT_FS:
            continue
        try:
            g.mount_ro(device, "/")
        except RuntimeError:
            continue
        try:
            info = _describe_root(g, device)
        finally:
            g.umount_all()
        if info is not None:
            found.append(info)
    return found[0] if len(found) == 1 else None


def mount_all(g: Handle, info: OSInfo, *, readonly: bool = False) -> list[str]:
    """Mount the guest's file systems as its fstab says, shortest mount point first.

    The root must mount; a file system that does not is reported in the returned warnings
    (virt-sysprep does the same: a broken /boot should not stop a clean-up of /).
    """
    warnings: list[str] = []
    for mountpoint, device in sorted(info.mountpoints.items(), key=lambda item: len(item[0])):
        try:
            if readonly:
                g.mount_ro(device, mountpoint)
            else:
                g.mount(device, mountpoint)
        except RuntimeError as err:
            if mountpoint == "/":
                raise OperationFailed(f"cannot mount the guest's root file system {device}: {err}") from err
            warnings.append(f"{device} not mounted on {mountpoint}: {err}")
    return warnings

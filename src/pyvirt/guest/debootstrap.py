"""A Debian root file system tree from Debian's packages (debootstrap), cached by what went into it.

:func:`ensure_tree` runs ``debootstrap --variant=minbase --include=...`` on the host (it needs root)
into a cache folder keyed by a hash of the release, mirror and package list, so that rebuilding a
template, or a second test run, reuses the tree. The tree is never changed after it is made: template
builds copy it into a file system image (``mkfs.ext4 -d``) and configure the copy.
A tree is complete only once its stamp file exists; an interrupted debootstrap leaves a hidden
work folder that the next run removes, after unmounting what debootstrap left mounted in it (``proc``,
``sys``, ``dev``; :func:`pyvirt.mounts.remove_tree`). A build holds a lock on its work folder, so the
next run tells a dead build's folder from one in use at once.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.mounts import remove_tree

#: Packages of a cloud template on top of minbase: kernel, bootloader, init, cloud-init (NoCloud),
#: the guest agent, growpart, classic ifupdown networking on DHCP, and sshd.
TEMPLATE_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "grub-pc",
    "systemd-sysv",
    "udev",
    "dbus",
    "cloud-init",
    # debootstrap does not resolve virtual packages: python3-cryptography (for cloud-init) needs the
    # python3-cffi-backend-api-* that python3-cffi-backend provides.
    "python3-cffi-backend",
    "qemu-guest-agent",
    "cloud-guest-utils",
    "ifupdown",
    "isc-dhcp-client",
    "openssh-server",
    "sudo",
    "e2fsprogs",
    "fdisk",
    "kmod",
    "iproute2",
    "netbase",
)

STAMP = ".pyvirt-debootstrap.json"
LOCK = "build.lock"  # in a work folder, locked by the build using it
STALE_SECONDS = 3600


@dataclass(frozen=True)
class Release:
    """One operating system ``template build --os`` knows how to bootstrap."""

    name: str  # as given to --os
    suite: str
    mirror: str
    pretty: str


DEBIAN = "http://deb.debian.org/debian"

#: The Debian releases deb.debian.org serves and this host's debootstrap knows (older ones moved to
#: archive.debian.org; testing and unstable change under a build and are not offered).
RELEASES: dict[str, Release] = {
    "debian-11": Release("debian-11", "bullseye", DEBIAN, "Debian 11 (bullseye)"),
    "debian-12": Release("debian-12", "bookworm", DEBIAN, "Debian 12 (bookworm)"),
    "debian-13": Release("debian-13", "trixie", DEBIAN, "Debian 13 (trixie)"),
}


def release(name: str) -> Release:
    """The release named ``name`` (``--os``); InvalidArgument listing the known ones otherwise."""
    try:
        return RELEASES[name]
    except KeyError:
        known = ", ".join(sorted(RELEASES))
        raise InvalidArgument(f"unknown --os {name!r}: pyvirt template build knows {known}") from None


def package_version(tree: Path, package: str) -> str:
    """The version of ``package`` installed in ``tree`` (its dpkg status), upstream part only
    (``20.4.1`` of ``20.4.1-2+deb11u1``); ``""`` when it is not installed."""
    try:
        status = (tree / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return ""
    for stanza in status.split("\n\n"):
        fields: dict[str, str] = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
        if fields.get("Package") == package and "Version" in fields:
            version = fields["Version"].split(":", 1)[-1]
            return version.rsplit("-", 1)[0] if "-" in version else version
    return ""


def cache_key(rel: Release, packages: tuple[str, ...], variant: str = "minbase") -> str:
    """A short hash of everything that decides the tree's content."""
    blob = json.dumps(
        {"suite": rel.suite, "mirror": rel.mirror, "variant": variant, "packages": sorted(packages)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tree_path(cache_dir: Path, rel: Release, packages: tuple[str, ...]) -> Path:
    return cache_dir / "debootstrap" / f"{rel.suite}-{cache_key(rel, packages)}"


def cached_tree(cache_dir: Path, rel: Release, packages: tuple[str, ...] = TEMPLATE_PACKAGES) -> Path | None:
    """The cached tree when it is complete, else None."""
    tree = tree_path(cache_dir, rel, packages)
    return tree if (tree / STAMP).is_file() else None


def ensure_tree(
    cache_dir: Path,
    rel: Release,
    packages: tuple[str, ...] = TEMPLATE_PACKAGES,
    *,
    say: Callable[[str], None] | None = None,
) -> Path:
    """The debootstrapped tree of ``rel`` with ``packages``, made now unless the cache has it."""
    tree = cached_tree(cache_dir, rel, packages)
    if tree is not None:
        if say:
            say(f"Using the cached {rel.pretty} tree {tree}")
        return tree
    tree = tree_path(cache_dir, rel, packages)
    _check_host()
    tree.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(tree.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", suffix=".work", dir=tree.parent))
    lock = os.open(work / LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        rel.suite,
        str(work / "root"),
        rel.mirror,
    ]
    if say:
        say(f"debootstrap {rel.suite} ({len(packages)} packages and their dependencies) from {rel.mirror}")
    started = time.monotonic()
    log = work / "debootstrap.log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_env(), check=False
            )
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            debootstrap_log = work / "root/debootstrap/debootstrap.log"
            if debootstrap_log.is_file():
                tail += debootstrap_log.read_text(errors="replace").strip().splitlines()[-15:]
            raise OperationFailed(
                f"debootstrap of {rel.suite} failed (exit {proc.returncode}):\n  " + "\n  ".join(tail)
            )
        stamp = {
            "suite": rel.suite,
            "mirror": rel.mirror,
            "packages": list(packages),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.monotonic() - started, 1),
        }
        for deb in (work / "root/var/cache/apt/archives").glob("*.deb"):
            deb.unlink()  # 200 MB nobody needs again, which the file system image would carry
        (work / "root" / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        os.rename(work / "root", tree)
    finally:
        try:
            remove_tree(work)
        finally:
            os.close(lock)
    if say:
        say(f"debootstrap done in {time.monotonic() - started:.0f} s: {tree}")
    return tree


def _check_host() -> None:
    if shutil.which("debootstrap") is None:
        raise OperationFailed("debootstrap is not installed: install Debian's debootstrap package")
    if os.geteuid() != 0:
        raise OperationFailed("building a template runs debootstrap, which needs root: run as root")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update(LANG="C.UTF-8", DEBIAN_FRONTEND="noninteractive", DEBCONF_NONINTERACTIVE_SEEN="true")
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if "/usr/sbin" not in env["PATH"].split(":"):
        env["PATH"] += ":/usr/sbin:/sbin"
    return env


def _remove_stale(folder: Path) -> None:
    """Work folders of builds that died: their lock is free (a folder without one, of an older pyvirt
    or whose build is just starting, counts once it is an hour old)."""
    for stale in folder.glob(".*.work"):
        try:
            lock = os.open(stale / LOCK, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if time.time() - stale.stat().st_mtime > STALE_SECONDS:
                remove_tree(stale)
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a build in progress
        else:
            remove_tree(stale)
        finally:
            os.close(lock)

"""Installer media: the kernel and initrd of a ``--location`` tree (a directory or an ISO), found the way
virt-install 4.1 finds them.

The order is virt-install's: a ``.treeinfo`` (``[images-ARCH] kernel= initrd=``), then Debian's and
Ubuntu's layouts (``current/images/MANIFEST``, ``daily/MANIFEST`` or ``.disk/info``, the netboot
kernel under ``netboot/debian-installer/ARCH/``, the CD kernel under ``install.amd/``). ISOs are read
with pycdlib (Rock Ridge or Joliet names where they have them), never mounted. A tree where none of
these is found is not an installer, and is refused naming what was looked for.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyvirt.errors import InvalidArgument

_DEB_ARCH = {"x86_64": "amd64", "i686": "i386", "aarch64": "arm64"}
_CD_KERNELS = {
    "x86_64": ("install.amd/vmlinuz", "install.amd/initrd.gz"),
    "i686": ("install.386/vmlinuz", "install.386/initrd.gz"),
    "aarch64": ("install.a64/vmlinuz", "install.a64/initrd.gz"),
}


class Tree:
    """Read-only access to files of a directory or an ISO, by relative path."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.is_iso = os.path.isfile(location)
        self._iso: Any = None
        if self.is_iso:
            import pycdlib

            iso = pycdlib.PyCdlib()
            try:
                iso.open(location)
            except Exception as err:
                raise InvalidArgument(f"--location {location}: not an ISO 9660 image ({err})") from err
            self._iso = iso
        elif not os.path.isdir(location):
            raise InvalidArgument(f"--location {location}: no such directory or ISO file")

    def close(self) -> None:
        if self._iso is not None:
            self._iso.close()
            self._iso = None

    def read(self, rel: str, limit: int = 1 << 20) -> bytes | None:
        """The file's first ``limit`` bytes, or None when the tree has no such file."""
        if not self.is_iso:
            path = Path(self.location) / rel
            try:
                with open(path, "rb") as fh:
                    return fh.read(limit)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        import io

        for kind in ("rr_path", "joliet_path", "iso_path"):
            name = "/" + rel if kind != "iso_path" else _iso9660_name(rel)
            out = io.BytesIO()
            try:
                self._iso.get_file_from_iso_fp(out, **{kind: name})
            except Exception:
                continue
            return out.getvalue()[:limit]
        return None

    def extract(self, rel: str, dest: Path) -> None:
        """Copy file ``rel`` of the tree to ``dest``."""
        if not self.is_iso:
            with open(Path(self.location) / rel, "rb") as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            return
        for kind in ("rr_path", "joliet_path", "iso_path"):
            name = "/" + rel if kind != "iso_path" else _iso9660_name(rel)
            try:
                with open(dest, "wb") as out:
                    self._iso.get_file_from_iso_fp(out, **{kind: name})
                return
            except Exception:
                continue
        raise InvalidArgument(f"--location {self.location}: cannot read {rel}")

    def exists(self, rel: str) -> bool:
        return self.read(rel, 1) is not None


def _iso9660_name(rel: str) -> str:
    parts = rel.upper().split("/")
    parts[-1] = parts[-1] + ("" if "." in parts[-1] else ".") + ";1"
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class Found:
    kernel: str  # paths inside the tree
    initrd: str
    distro: str  # "treeinfo", "debian", "ubuntu", or "given"
    media_type: str  # "url", "daily", "disk" (a Debian CD), "mounted_iso_url", "treeinfo"


def _treeinfo(tree: Tree, arch: str) -> Found | None:
    text = tree.read(".treeinfo") or tree.read("treeinfo")
    if text is None:
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text.decode(errors="replace"))
        image_arch = parser.get("general", "arch", fallback=arch)
        section = f"images-{image_arch}"
        return Found(parser.get(section, "kernel"), parser.get(section, "initrd"), "treeinfo", "treeinfo")
    except (configparser.Error, KeyError):
        return None


def _debian(tree: Tree, arch: str) -> Found | None:
    for debname in ("debian", "ubuntu"):

        def says(rel: str, name: str = debname) -> bool:
            text = tree.read(rel)
            if text is None:
                return False
            if re.search(rb"[Uu]buntu", text):
                return name == "ubuntu"
            return re.search(rb"[Dd]ebian", text) is not None

        media = None
        if says("current/images/MANIFEST"):
            media = "url"
        elif says("current/legacy-images/MANIFEST"):
            media = "legacy_url"
        elif says("daily/MANIFEST"):
            media = "daily"
        else:
            info = tree.read(".disk/info") or b""
            if re.match(debname.capitalize().encode(), info):
                media = "disk" if tree.is_iso else "mounted_iso_url"
        if media is None:
            continue
        if media == "disk":
            if debname == "ubuntu":
                kernel, initrd = "install/vmlinuz", "install/initrd.gz"
            else:
                kernel, initrd = _CD_KERNELS.get(arch, ("install/vmlinuz", "install/initrd.gz"))
            return Found(kernel, initrd, debname, media)
        prefix = {"daily": "daily", "mounted_iso_url": "install", "legacy_url": "current/legacy-images"}.get(
            media, "current/images"
        )
        tree_arch = _tree_arch(tree.location)
        root = f"{prefix}/netboot/{debname}-installer/{tree_arch}/"
        return Found(root + "linux", root + "initrd.gz", debname, media)
    return None


def _tree_arch(location: str) -> str:
    """Debian's tree architecture as virt-install reads it: from the location's name, else i386."""
    for pattern in (r"^.*/installer-(\w+)/?$", r"^.*/daily-images/(\w+)/?$"):
        found = re.findall(pattern, location)
        if found:
            return str(found[0])
    for arch in ("i386", "amd64", "x86_64", "arm64"):
        if arch in location:
            return "amd64" if arch == "x86_64" else arch
    return "i386"


def find(location: str, arch: str, kernel: str | None = None, initrd: str | None = None) -> Found:
    """The installer kernel and initrd of ``location``; ``kernel``/``initrd`` (--location's
    ``kernel=``/``initrd=``) name them inside the tree instead."""
    tree = Tree(location)
    try:
        if kernel or initrd:
            if not (kernel and initrd):
                raise InvalidArgument(f"--location {location}: kernel= and initrd= are given together")
            found = Found(kernel.lstrip("/"), initrd.lstrip("/"), "given", "given")
        else:
            found_or_none = _treeinfo(tree, arch) or _debian(tree, arch)
            if found_or_none is None:
                raise InvalidArgument(
                    f"--location {location}: not an installer tree: no .treeinfo, no Debian or Ubuntu "
                    "installer (current/images/MANIFEST, daily/MANIFEST, .disk/info) was found in it; "
                    "name the files with --location PATH,kernel=K,initrd=I"
                )
            found = found_or_none
        for rel in (found.kernel, found.initrd):
            if not tree.exists(rel):
                raise InvalidArgument(f"--location {location}: the installer file {rel} is not in the tree")
        return found
    finally:
        tree.close()


def copy_out(location: str, found: Found, kernel_dest: Path, initrd_dest: Path) -> None:
    """Copy the kernel and initrd out of the tree (QEMU boots copies the daemon owns)."""
    tree = Tree(location)
    try:
        tree.extract(found.kernel, kernel_dest)
        tree.extract(found.initrd, initrd_dest)
    finally:
        tree.close()

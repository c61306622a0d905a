"""A disk of the test guest that boots by itself (BIOS, syslinux), for what boots a template or an
appliance's disk rather than a kernel given on the command line: ``pyvirt launch``, OVA imports.

Layout (MBR, syslinux's ``mbr.bin``): partition 1, FAT, holds syslinux, the guest's bzImage and its
initramfs; partition 2 is the test guest's ext4 root (its disk), whose init switch_roots into it
(``root=`` on the kernel command line: ``/dev/vda2`` on virtio, ``/dev/sda2`` on SATA or SCSI).

The root gains a NoCloud reader run by busybox init at boot (``::sysinit:``), a few lines of shell
standing for cloud-init: it mounts the ``cidata`` CD-ROM, sets the hostname from ``meta-data``, puts
the user-data's SSH keys in ``/root/.ssh/authorized_keys`` and says on the console::

    pyvirt-guest: nocloud hostname NAME keys N

(or ``pyvirt-guest: nocloud none`` without a seed). Built with syslinux and mtools (no mounts, no
root) and debugfs (e2fsprogs).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.guest import GuestArtifacts, guest_artifacts

MBR = Path("/usr/lib/SYSLINUX/mbr.bin")
TOOLS = ("syslinux", "mformat", "mcopy", "debugfs", "sfdisk")
BOOT_SIZE = 32 << 20
MiB = 1 << 20

NOCLOUD = r"""#!/bin/sh
# The test guest's NoCloud reader (tests/support/bootable.py): hostname and SSH keys from the seed.
i=0
while [ ! -b /dev/sr0 ] && [ "$i" -lt 100 ]; do usleep 100000; i=$((i + 1)); done
mkdir -p /run/seed
if mount -t iso9660 -o ro /dev/sr0 /run/seed 2>/dev/null && [ -f /run/seed/meta-data ]; then
    host=$(sed -n 's/^local-hostname: "\(.*\)"$/\1/p' /run/seed/meta-data)
    [ -n "$host" ] && hostname "$host" && echo "$host" > /etc/hostname
    mkdir -p /root/.ssh
    chmod 700 /root/.ssh
    keys=/root/.ssh/authorized_keys
    grep -o '"ssh-[^"]*"' /run/seed/user-data | tr -d '"' > "$keys"
    echo "pyvirt-guest: nocloud hostname $(hostname) keys $(wc -l < "$keys")" > /dev/console
    umount /run/seed
else
    echo "pyvirt-guest: nocloud none" > /dev/console
fi
"""

INITTAB = """# busybox init for the test guest, the NoCloud reader first (tests/support/bootable.py).
::sysinit:/etc/pyvirt/nocloud
::respawn:/bin/cttyhack /bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/mount -o remount,ro /
"""

needs_tools = pytest.mark.skipif(
    not (all(shutil.which(t) for t in TOOLS) and MBR.is_file()),
    reason="a bootable test disk needs syslinux, mtools, debugfs and sfdisk",
)


def _run(*argv: str, input: bytes | None = None) -> None:
    subprocess.run(argv, check=True, input=input, capture_output=True)


def make_raw(dest: Path, *, root: str = "/dev/vda2", artifacts: GuestArtifacts | None = None) -> Path:
    """The bootable raw disk at ``dest`` (made beside it, in ``dest``'s folder); returns ``dest``."""
    from pyvirt.image.api import convert

    art = artifacts or guest_artifacts()
    assert art.vmlinuz is not None, "the test guest has no bzImage (rebuild it)"
    work = dest.parent
    rootfs = work / f".{dest.name}.root"
    fat = work / f".{dest.name}.fat"
    try:
        convert(str(art.disk), str(rootfs), "raw", src_fmt=art.disk_format)
        for path, text in (("nocloud", NOCLOUD), ("inittab", INITTAB)):
            (work / f".{dest.name}.{path}").write_text(text)
        script = (
            f"rm /etc/inittab\nwrite {work}/.{dest.name}.inittab /etc/inittab\n"
            f"write {work}/.{dest.name}.nocloud /etc/pyvirt/nocloud\n"
            "sif /etc/pyvirt/nocloud mode 0100755\n"
        )
        _run("debugfs", "-w", "-f", "-", str(rootfs), input=script.encode())
        with open(fat, "wb") as f:
            f.truncate(BOOT_SIZE)
        _run("mformat", "-i", str(fat), "::")
        cfg = work / f".{dest.name}.cfg"
        cfg.write_text(
            "DEFAULT linux\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n"
            f"  APPEND {art.cmdline} root={root} rw\n"
        )
        _run("mcopy", "-i", str(fat), str(art.vmlinuz), "::/vmlinuz")
        _run("mcopy", "-i", str(fat), str(art.initrd), "::/initrd.img")
        _run("mcopy", "-i", str(fat), str(cfg), "::/syslinux.cfg")
        _run("syslinux", "--install", str(fat))
        root_size = rootfs.stat().st_size
        total = MiB + BOOT_SIZE + root_size
        with open(dest, "wb") as f:
            f.truncate(total)
        _run(
            "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(dest),
            input=(
                f"label: dos\nstart={MiB // 512}, size={BOOT_SIZE // 512}, type=6, bootable\n"
                f"start={(MiB + BOOT_SIZE) // 512}, size={root_size // 512}, type=83\n"
            ).encode(),
        )  # fmt: skip
        with open(dest, "r+b") as out:
            out.write(MBR.read_bytes()[:440])
            for offset, part in ((MiB, fat), (MiB + BOOT_SIZE, rootfs)):
                out.seek(offset)
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
    finally:
        for leftover in work.glob(f".{dest.name}.*"):
            leftover.unlink()
    return dest


def make_disk(dest: Path, fmt: str = "qcow2", *, root: str = "/dev/vda2", options: str = "") -> Path:
    """The bootable disk at ``dest`` in format ``fmt`` (qcow2, vmdk, vdi ...), through ``pyvirt img``."""
    raw = make_raw(dest.parent / f"{dest.name}.raw", root=root)
    try:
        from tests.support.daemon import BIN

        argv = [str(BIN / "pyvirt"), "img", "convert", "-f", "raw", "-O", fmt]
        if options:
            argv += ["-o", options]
        _run(*argv, str(raw), str(dest))
    finally:
        raw.unlink(missing_ok=True)
    return dest

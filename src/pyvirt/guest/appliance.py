"""The libguestfs appliance: a configured handle, disks checked before launch, errors made readable.

libguestfs boots a small Linux VM (the appliance) to parse guest file systems. On a host whose KVM is
unusable (see :func:`pyvirt.qemu.kvmprobe.kvm_usable`) the appliance must run under TCG, or it hangs.
Every offline tool opens its handle here, so that choice is made in one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from pyvirt.errors import InvalidArgument, NotFound, OperationFailed
from pyvirt.qemu.kvmprobe import kvm_usable

# guestfs.GuestFS ships without type information; this alias marks where a handle is expected.
Handle: TypeAlias = Any

# Magic numbers of the image formats QEMU reads, at offset 0; anything else is taken as raw.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"QFI\xfb", "qcow2"),
    (b"KDMV", "vmdk"),
    (b"QED\x00", "qed"),
    (b"vhdxfile", "vhdx"),
    (b"conectix", "vpc"),
)
_VDI_MAGIC_OFFSET = 0x40
_VDI_MAGIC = b"\x7f\x10\xda\xbe"
_MIN_RAW_SIZE = 64 * 1024


@dataclass(frozen=True)
class Disk:
    """One disk to add to the appliance."""

    path: str
    format: str | None = None  # None: sniffed from the file by probe_format
    readonly: bool = False


def probe_format(path: str) -> str:
    """The image format of ``path`` from its magic bytes; raw when none matches.

    Raises NotFound for a missing file and InvalidArgument for something that cannot be a disk.
    """
    p = Path(path)
    if not p.exists():
        raise NotFound(f"disk image {path} does not exist")
    if p.is_dir():
        raise InvalidArgument(f"{path} is a directory, not a disk image")
    try:
        with open(p, "rb") as f:
            head = f.read(_VDI_MAGIC_OFFSET + 4)
    except OSError as err:
        raise InvalidArgument(f"cannot read disk image {path}: {err.strerror}") from err
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[_VDI_MAGIC_OFFSET : _VDI_MAGIC_OFFSET + 4] == _VDI_MAGIC:
        return "vdi"
    if p.is_block_device():
        return "raw"
    size = p.stat().st_size
    if size < _MIN_RAW_SIZE or size % 512:
        raise InvalidArgument(
            f"{path} is not a disk image: no known image header, and its size ({size} bytes) "
            "is not that of a raw disk (a multiple of 512 bytes, at least 64 KiB)"
        )
    return "raw"


def tcg_needed() -> tuple[bool, str]:
    """Whether the appliance must run under TCG, and why."""
    usable, reason = kvm_usable()
    return (not usable), reason


def new_handle(*, network: bool = False, verbose: bool = False) -> Handle:
    """A guestfs handle, not yet launched, configured for this host."""
    import guestfs

    g = guestfs.GuestFS(python_return_dict=True)
    if not os.environ.get("LIBGUESTFS_BACKEND"):
        g.set_backend("direct")
    if tcg_needed()[0]:
        # set_backend_setting("force_tcg", "") crashes libguestfs 1.48's launch; the list form does not.
        settings = [s for s in g.get_backend_settings() if s != "force_tcg"]
        g.set_backend_settings([*settings, "force_tcg"])
    g.set_network(network)
    if verbose:
        g.set_verbose(True)
        g.set_trace(True)
    return g


def _kernel_present() -> bool:
    if os.environ.get("SUPERMIN_KERNEL"):
        return True
    return any(Path("/boot").glob("vmlinuz-*")) or any(Path("/lib/modules").glob("*/vmlinuz"))


def launch(g: Handle, disks: Sequence[Disk]) -> None:
    """Add ``disks`` to ``g`` and boot the appliance, with errors that say what to do."""
    if not disks:
        raise InvalidArgument("no disk given: use -a DISK or -d DOMAIN")
    for disk in disks:
        fmt = disk.format or probe_format(disk.path)
        if not os.access(disk.path, os.R_OK if disk.readonly else os.R_OK | os.W_OK):
            mode = "reading" if disk.readonly else "writing"
            raise InvalidArgument(f"cannot open disk image {disk.path} for {mode}: permission denied")
        try:
            g.add_drive_opts(disk.path, format=fmt, readonly=disk.readonly)
        except RuntimeError as err:
            raise OperationFailed(f"cannot add disk {disk.path}: {err}") from err
    try:
        g.launch()
    except RuntimeError as err:
        if not _kernel_present():
            raise OperationFailed(
                "cannot start the libguestfs appliance: the host has no Linux kernel in /boot for it; "
                "install Debian's linux-image-amd64 (or set SUPERMIN_KERNEL and SUPERMIN_MODULES)"
            ) from err
        raise OperationFailed(f"cannot start the libguestfs appliance: {err}") from err


@contextmanager
def launched(disks: Sequence[Disk], *, network: bool = False, verbose: bool = False) -> Iterator[Handle]:
    """A launched handle on ``disks``; shut down (flushing writes) and closed on exit."""
    g = new_handle(network=network, verbose=verbose)
    try:
        launch(g, disks)
        yield g
        try:
            g.shutdown()
        except RuntimeError as err:
            raise OperationFailed(f"the libguestfs appliance failed while writing back: {err}") from err
    finally:
        g.close()


def log(message: str, *, quiet: bool = False, start: float | None = None) -> None:
    """A progress line on stderr, virt-sysprep style (``[  12.3] Doing X``)."""
    if quiet:
        return
    if start is None:
        print(message, file=sys.stderr, flush=True)
        return
    import time

    print(f"[{time.monotonic() - start:6.1f}] {message}", file=sys.stderr, flush=True)

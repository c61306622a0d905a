"""Dynamic ownership from the mode bits: who may read, write, traverse; hand-over and give-back."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.errors import OperationFailed
from pyvirt.qemu import ownership
from pyvirt.qemu.ownership import Handover, Identity

IDENT = Identity("qemu", "qemu", uid=60001, gid=60002, groups=(60003,))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A directory anyone may traverse (pytest's own sits in a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="pvt-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _st(uid: int, gid: int, mode: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("uid", "gid", "mode", "want", "ok"),
    [
        (60001, 0, 0o600, ownership.R | ownership.W, True),  # owner bits
        (60001, 0, 0o060, ownership.R, False),  # the owner gets the owner bits only
        (0, 60002, 0o640, ownership.R, True),  # primary group
        (0, 60003, 0o640, ownership.R, True),  # supplementary group
        (0, 60002, 0o640, ownership.W, False),
        (0, 0, 0o604, ownership.R, True),  # others
        (0, 0, 0o700, ownership.X, False),
    ],
)
def test_allowed_follows_the_mode_bits(uid: int, gid: int, mode: int, want: int, ok: bool) -> None:
    assert ownership.allowed(_st(uid, gid, mode), IDENT, want) is ok


def test_untraversable_directory_is_refused_with_libvirts_message(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    disk = hidden / "d.img"
    disk.write_bytes(b"")
    with pytest.raises(OperationFailed) as err:
        ownership.check_traversable(str(disk), IDENT, "storage file")
    assert str(err.value).startswith(
        f"Cannot access storage file '{disk}' (as uid:60001, gid:60002): Permission denied"
    )
    os.chmod(hidden, 0o711)
    ownership.check_traversable(str(disk), IDENT, "storage file")


@needs_root
def test_hand_over_and_give_back(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    rw, ro, open_ro = tmp_path / "rw", tmp_path / "ro", tmp_path / "open"
    for path, mode in ((rw, 0o600), (ro, 0o660), (open_ro, 0o644)):
        path.write_bytes(b"")
        os.chmod(path, mode)
    handover = Handover(IDENT, {})
    handover.writable(str(rw), "storage file")
    handover.readable(str(ro), "storage file")
    handover.readable(str(open_ro), "storage file")
    assert (rw.stat().st_uid, rw.stat().st_gid) == (60001, 60002)
    assert (ro.stat().st_uid, ro.stat().st_gid, stat.S_IMODE(ro.stat().st_mode)) == (0, 60002, 0o640)
    assert str(open_ro) not in handover.owners  # readable already: left alone
    ownership.restore(handover.owners, held=[str(ro)])  # another domain still holds ro
    assert (rw.stat().st_uid, rw.stat().st_gid) == (0, 0)
    assert ro.stat().st_gid == 60002
    ownership.restore(handover.owners)
    assert (ro.stat().st_gid, stat.S_IMODE(ro.stat().st_mode)) == (0, 0o660)


@needs_root
def test_a_shared_file_keeps_the_owner_it_had_before_the_first_domain(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    disk = tmp_path / "shared"
    disk.write_bytes(b"")
    os.chmod(disk, 0o600)
    first = Handover(IDENT, {})
    first.readable(str(disk), "storage file")
    second = Handover(IDENT, first.owners)  # sees the file as the first left it
    second.readable(str(disk), "storage file")
    assert second.owners[str(disk)] == [0, 0, 0o600]

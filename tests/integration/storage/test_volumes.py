"""Volumes through a real pyvirtd: every vol-* verb with virsh 9.0's output, each image judged by the real
``qemu-img check``, multi-megabyte uploads and downloads (sparse and not), and bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.integration.storage.volume_checks import qemu_img, qemu_info
from tests.support.daemon import Daemon


def assert_clean(path: Path) -> None:
    """qemu-img check: 0 for a clean qcow2; raw images cannot be checked (63) and count as clean."""
    fmt = str(qemu_info(path)["format"])
    result = qemu_img("check", "-f", fmt, str(path))
    assert result.returncode in ((0,) if fmt == "qcow2" else (0, 63)), (
        f"{path}: {result.stdout}{result.stderr}"
    )


def test_every_volume_verb(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    assert daemon.cli("vol-create-as", "default", "a.qcow2", "64M", "--format", "qcow2").ok().out == (
        "Vol a.qcow2 created\n\n"
    )
    daemon.cli("vol-create-as", "default", "r.img", "2MiB").ok()
    daemon.cli("vol-create-as", "default", "s.img", "8M", "--allocation", "0").ok()
    daemon.cli("vol-create-as", "default", "m.qcow2", "16M", "--format", "qcow2", "--prealloc-metadata").ok()
    daemon.cli(
        "vol-create-as", "default", "top.qcow2", "128M", "--format", "qcow2",
        "--backing-vol", "a.qcow2", "--backing-vol-format", "qcow2",
    ).ok()  # fmt: skip
    # The backing volume may also be named by path, and its format probed.
    daemon.cli(
        "vol-create-as",
        "default",
        "top2.qcow2",
        "64M",
        "--format",
        "qcow2",
        "--backing-vol",
        str(pool / "a.qcow2"),
    ).ok()
    printed = daemon.cli("vol-create-as", "default", "x", "10M", "--print-xml").ok().out
    assert printed == "<volume>\n  <name>x</name>\n  <capacity>10485760</capacity>\n</volume>\n\n"
    assert not (pool / "x").exists()

    assert qemu_info(pool / "a.qcow2")["virtual-size"] == 64 << 20
    top = qemu_info(pool / "top.qcow2")
    assert top["virtual-size"] == 128 << 20 and top["backing-filename"] == str(pool / "a.qcow2")
    assert top["backing-filename-format"] == "qcow2"
    assert qemu_info(pool / "top2.qcow2")["backing-filename-format"] == "qcow2"
    assert qemu_info(pool / "r.img")["virtual-size"] == 2 << 20
    assert os.stat(pool / "r.img").st_blocks * 512 >= 2 << 20  # raw volumes are allocated, as libvirt's
    assert os.stat(pool / "s.img").st_blocks == 0
    assert os.stat(pool / "m.qcow2").st_blocks * 512 > os.stat(pool / "a.qcow2").st_blocks * 512
    assert (pool / "a.qcow2").stat().st_mode & 0o777 == 0o600

    listing = daemon.cli("vol-list", "default").ok().out.splitlines()
    assert listing[0].split() == ["Name", "Path"]
    assert [line.split()[0] for line in listing[2:-1]] == [
        "a.qcow2", "m.qcow2", "r.img", "s.img", "top.qcow2", "top2.qcow2",
    ]  # fmt: skip
    details = daemon.cli("vol-list", "--details", "default").ok().out
    assert re.search(rf"^ a\.qcow2\s+{pool}/a\.qcow2\s+file\s+64\.00 MiB\s+[\d.]+ KiB\s*$", details, re.M), (
        details
    )
    assert re.search(r"^ s\.img\s+\S+\s+file\s+8\.00 MiB\s+0\.00 B\s*$", details, re.M), details

    info = daemon.cli("vol-info", "top.qcow2", "--pool", "default").ok().out
    assert re.fullmatch(
        r"Name:           top\.qcow2\nType:           file\nCapacity:       128\.00 MiB\n"
        r"Allocation:     [\d.]+ KiB\n\n",
        info,
    ), info
    by_path = daemon.cli("vol-info", "--bytes", str(pool / "r.img")).ok().out
    assert "Capacity:       2097152 bytes\n" in by_path
    physical = daemon.cli("vol-info", "--physical", "--bytes", "a.qcow2", "--pool", "default").ok().out
    assert f"Physical:       {os.stat(pool / 'a.qcow2').st_size} bytes" in physical

    assert daemon.cli("vol-path", "--pool", "default", "a.qcow2").ok().out == f"{pool}/a.qcow2\n\n"
    dump = daemon.cli("vol-dumpxml", "--pool", "default", "top.qcow2").ok().out
    assert dump.startswith(f"<volume type='file'>\n  <name>top.qcow2</name>\n  <key>{pool}/top.qcow2</key>\n")
    assert "<capacity unit='bytes'>134217728</capacity>" in dump and "<format type='qcow2'/>" in dump
    assert f"<backingStore>\n    <path>{pool}/a.qcow2</path>\n    <format type='qcow2'/>" in dump

    assert daemon.cli("vol-clone", "--pool", "default", "top.qcow2", "clone.qcow2").ok().out == (
        "Vol clone.qcow2 cloned from top.qcow2\n\n"
    )
    assert qemu_info(pool / "clone.qcow2")["backing-filename"] == str(pool / "a.qcow2")
    daemon.cli("vol-clone", "r.img", "r2.img", "--pool", "default").ok()
    assert (
        qemu_img("compare", "-f", "raw", "-F", "raw", str(pool / "r.img"), str(pool / "r2.img")).returncode
        == 0
    )

    out = daemon.cli("vol-resize", "--pool", "default", "clone.qcow2", "256M").ok().out
    assert out == "Size of volume 'clone.qcow2' successfully changed to 256M\n\n"
    assert qemu_info(pool / "clone.qcow2")["virtual-size"] == 256 << 20
    out = daemon.cli("vol-resize", "--pool", "default", "r.img", "1M", "--delta").ok().out
    assert out == "Size of volume 'r.img' successfully changed by 1M\n\n"
    out = daemon.cli("vol-resize", "--pool", "default", "r.img", "-2M", "--shrink").ok().out
    assert out == "Size of volume 'r.img' successfully changed by 2M\n\n"
    assert (pool / "r.img").stat().st_size == 1 << 20

    for name in ("a.qcow2", "m.qcow2", "r.img", "s.img", "top.qcow2", "top2.qcow2", "clone.qcow2", "r2.img"):
        assert_clean(pool / name)

    assert (
        daemon.cli("vol-delete", "--pool", "default", "clone.qcow2").ok().out == "Vol clone.qcow2 deleted\n\n"
    )
    assert daemon.cli("vol-delete", str(pool / "r2.img")).ok().out == f"Vol {pool}/r2.img deleted\n\n"
    assert not (pool / "clone.qcow2").exists() and not (pool / "r2.img").exists()
    assert not [p for p in pool.iterdir() if p.name.startswith(".")]


def test_upload_and_download_stream(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    size = 48 << 20
    source = tmp_path / "src.bin"
    with open(source, "wb") as fh:  # data, a 32 MiB hole, data
        fh.write(os.urandom(8 << 20))
        fh.seek(40 << 20)
        fh.write(os.urandom(8 << 20))
    daemon.cli("vol-create-as", "default", "up.img", str(size), "--allocation", "0").ok()

    result = daemon.cli("vol-upload", "--sparse", "--pool", "default", "up.img", str(source)).ok()
    assert result.out == ""
    assert (pool / "up.img").read_bytes() == source.read_bytes()
    assert (pool / "up.img").stat().st_blocks * 512 < 24 << 20

    plain = tmp_path / "plain.bin"
    daemon.cli("vol-download", "--pool", "default", "up.img", str(plain)).ok()
    assert plain.read_bytes() == source.read_bytes()
    sparse = tmp_path / "sparse.bin"
    daemon.cli("vol-download", "--sparse", "--pool", "default", "up.img", str(sparse)).ok()
    assert sparse.read_bytes() == source.read_bytes()
    assert sparse.stat().st_blocks * 512 < 24 << 20  # the hole stayed a hole

    # Over existing data, plain and sparse: the hole must read back as zeros.
    for flags in ([], ["--sparse"]):
        (pool / "up.img").write_bytes(b"\xff" * size)
        daemon.cli("vol-upload", *flags, "up.img", str(source), "--pool", "default").ok()
        assert (pool / "up.img").read_bytes() == source.read_bytes()

    # --offset/--length on both sides.
    part = tmp_path / "part.bin"
    daemon.cli(
        "vol-download", "up.img", str(part), "--pool", "default", "--offset", "4096", "--length", "8192"
    ).ok()
    assert part.read_bytes() == source.read_bytes()[4096 : 4096 + 8192]
    small = tmp_path / "small.bin"
    small.write_bytes(b"hello")
    daemon.cli("vol-upload", "up.img", str(small), "--pool", "default", "--offset", "100").ok()
    assert (pool / "up.img").read_bytes()[100:105] == b"hello"

    # A qcow2 image uploaded into a volume is a qcow2 volume afterwards (the file is what it is).
    image = tmp_path / "img.qcow2"
    assert qemu_img("create", "-f", "qcow2", str(image), "32M").returncode == 0
    daemon.cli("vol-create-as", "default", "q.qcow2", "1M", "--allocation", "0").ok()
    daemon.cli("vol-upload", "q.qcow2", str(image), "--pool", "default").ok()
    assert "Capacity:       32.00 MiB" in daemon.cli("vol-info", "q.qcow2", "--pool", "default").ok().out
    assert_clean(pool / "q.qcow2")

    err = daemon.cli("vol-upload", "up.img", str(tmp_path / "nope"), "--pool", "default")
    assert err.rc == 1 and err.err == f"error: cannot read {tmp_path / 'nope'}\n"
    bad = daemon.cli("vol-download", "nosuch", str(tmp_path / "out"), "--pool", "default")
    assert bad.rc == 1 and not (tmp_path / "out").exists()


def _fails(daemon: Daemon, *args: str) -> str:
    result = daemon.cli(*args)
    assert result.rc == 1, result
    assert result.out == ""
    return result.err


def test_bad_volume_input(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    before = sorted(os.listdir(pool))
    for name, fragment in (
        ("../x", "cannot contain '/'"),
        ("a/b", "cannot contain '/'"),
        (".hidden", "cannot start with '.'"),
        ("..", "cannot start with '.'"),
        ("tab\tname", "control characters"),
    ):
        err = _fails(daemon, "vol-create-as", "default", name, "1M")
        assert err.startswith(f"error: Failed to create vol {name}\nerror: ") and fragment in err, err
    assert _fails(daemon, "vol-create-as", "default", "x", "12parsecs") == "error: Malformed size 12parsecs\n"
    assert "format 'vmdk' is not supported" in _fails(
        daemon, "vol-create-as", "default", "v", "1M", "--format", "vmdk"
    )
    err = _fails(
        daemon, "vol-create-as", "default", "t", "1M", "--format", "qcow2", "--backing-vol", "nosuch"
    )
    assert err == (
        "error: failed to get vol 'nosuch'\n"
        "error: Storage volume not found: no storage vol with matching path 'nosuch'\n"
    )
    err = _fails(daemon, "vol-create-as", "default", "huge.img", "1E")
    assert "Not enough space left in storage pool" in err
    assert sorted(os.listdir(pool)) == before

    daemon.cli("vol-create-as", "default", "v.img", "1M").ok()
    err = _fails(daemon, "vol-create-as", "default", "v.img", "1M")
    assert err == "error: Failed to create vol v.img\nerror: storage volume 'v.img' exists already\n"
    err = _fails(daemon, "vol-info", "nosuch", "--pool", "default")
    assert err == (
        "error: failed to get vol 'nosuch'\n"
        "error: Storage volume not found: no storage vol with matching path 'nosuch'\n"
    )
    err = _fails(daemon, "vol-info", "v.img")
    assert err.startswith("error: failed to get vol 'v.img', specifying --pool might help\n")
    err = _fails(daemon, "vol-resize", "v.img", "512K", "--pool", "default")
    assert "Can't shrink capacity below current capacity unless shrink flag explicitly specified" in err
    assert (
        _fails(daemon, "vol-resize", "v.img", "-1M", "--pool", "default")
        == "error: negative size requires --shrink\n"
    )
    err = _fails(daemon, "vol-clone", "v.img", "../escape", "--pool", "default")
    assert err.startswith("error: Failed to clone vol from v.img\nerror: ")
    assert not (pool.parent / "escape").exists()
    err = _fails(daemon, "-r", "vol-delete", "v.img", "--pool", "default")
    assert "read-only" in err
    assert (pool / "v.img").exists()

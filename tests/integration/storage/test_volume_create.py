"""``vol-create`` and ``vol-create-from`` through a real pyvirtd, with virsh 9.0's messages: every image
they make judged by the real ``qemu-img``, every refusal leaving the pool as it was."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.storage.volume_checks import (
    assert_clean_qcow2,
    fails,
    listing,
    qemu_info,
    same_content,
    xml_file,
)
from tests.support.daemon import Daemon


def test_vol_create_from_xml(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    q = xml_file(
        tmp_path,
        "q.xml",
        "<volume><name>q.qcow2</name><capacity unit='MiB'>64</capacity>"
        "<target><format type='qcow2'/><permissions><mode>0640</mode></permissions>"
        "<compat>1.1</compat><features><lazy_refcounts/></features></target></volume>",
    )
    assert daemon.cli("vol-create", "default", str(q)).ok().out == f"Vol q.qcow2 created from {q}\n\n"
    info = qemu_info(pool / "q.qcow2")
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 << 20
    assert info["format-specific"]["data"]["lazy-refcounts"] is True  # type: ignore[index]
    assert (pool / "q.qcow2").stat().st_mode & 0o777 == 0o640
    assert_clean_qcow2(pool / "q.qcow2")

    raw = xml_file(
        tmp_path,
        "r.xml",
        "<volume><name>r.img</name><capacity unit='G'>1</capacity><allocation>0</allocation></volume>",
    )
    daemon.cli("vol-create", "--pool", "default", "--file", str(raw)).ok()
    assert (pool / "r.img").stat().st_size == 1 << 30 and (pool / "r.img").stat().st_blocks == 0
    assert qemu_info(pool / "r.img")["format"] == "raw"

    top = xml_file(
        tmp_path,
        "top.xml",
        "<volume><name>top.qcow2</name><capacity unit='M'>128</capacity>"
        "<target><format type='qcow2'/></target>"
        f"<backingStore><path>{pool}/q.qcow2</path><format type='qcow2'/></backingStore></volume>",
    )
    daemon.cli("vol-create", "default", str(top)).ok()
    info = qemu_info(pool / "top.qcow2")
    assert info["virtual-size"] == 128 << 20 and info["backing-filename"] == str(pool / "q.qcow2")
    assert info["backing-filename-format"] == "qcow2"
    assert_clean_qcow2(pool / "top.qcow2")
    dump = daemon.cli("vol-dumpxml", "top.qcow2", "--pool", "default").ok().out
    assert f"<backingStore>\n    <path>{pool}/q.qcow2</path>\n    <format type='qcow2'/>" in dump
    assert not [name for name in listing(daemon) if name.startswith(".")]


def test_bad_vol_create_input(daemon: Daemon, tmp_path: Path) -> None:
    daemon.cli("vol-create-as", "default", "v.img", "1M").ok()
    (daemon.pool_dir / "v.img").write_bytes(b"keep" * (1 << 18))
    before = listing(daemon)
    dup = xml_file(tmp_path, "dup.xml", "<volume><name>v.img</name><capacity>4096</capacity></volume>")
    err = fails(daemon, "vol-create", "default", str(dup))
    assert err == f"error: Failed to create vol from {dup}\nerror: storage volume 'v.img' exists already\n"
    assert (daemon.pool_dir / "v.img").read_bytes() == b"keep" * (1 << 18)

    bad = xml_file(tmp_path, "bad.xml", "<volume><name>zz</name>")
    err = fails(daemon, "vol-create", "default", str(bad))
    assert err.startswith(f"error: Failed to create vol from {bad}\nerror: malformed XML"), err
    nocap = xml_file(tmp_path, "nocap.xml", "<volume><name>zz</name></volume>")
    err = fails(daemon, "vol-create", "default", str(nocap))
    assert err == f"error: Failed to create vol from {nocap}\nerror: XML error: missing capacity element\n"
    vmdk = xml_file(
        tmp_path,
        "vmdk.xml",
        "<volume><name>zz</name><capacity>1</capacity><target><format type='vmdk'/></target></volume>",
    )
    assert "volume format 'vmdk' is not supported" in fails(daemon, "vol-create", "default", str(vmdk))
    escape = xml_file(tmp_path, "esc.xml", "<volume><name>../zz</name><capacity>1</capacity></volume>")
    assert "cannot contain '/'" in fails(daemon, "vol-create", "default", str(escape))
    nobacking = xml_file(
        tmp_path,
        "nb.xml",
        "<volume><name>zz</name><capacity>1</capacity><target><format type='qcow2'/></target>"
        "<backingStore><path>nosuch</path></backingStore></volume>",
    )
    assert "no storage vol with matching path 'nosuch'" in fails(
        daemon, "vol-create", "default", str(nobacking)
    )

    err = fails(daemon, "vol-create", "nosuch", str(dup))
    assert err == (
        "error: failed to get pool 'nosuch'\n"
        "error: Storage pool not found: no storage pool with matching name 'nosuch'\n"
    )
    missing = tmp_path / "missing.xml"
    err = fails(daemon, "vol-create", "default", str(missing))
    assert err == f"error: Failed to open file '{missing}': No such file or directory\n"
    assert "read-only" in fails(daemon, "-r", "vol-create", "default", str(nocap))
    assert listing(daemon) == before


def test_vol_create_from_copies_the_input(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    daemon.cli("vol-create-as", "default", "src.img", "4M").ok()
    data = os.urandom(1 << 20)
    with open(pool / "src.img", "r+b") as fh:
        fh.seek(1 << 20)
        fh.write(data)

    as_qcow2 = xml_file(
        tmp_path,
        "q.xml",
        "<volume><name>copy.qcow2</name><capacity unit='M'>1</capacity>"
        "<target><format type='qcow2'/></target></volume>",
    )
    out = (
        daemon.cli("vol-create-from", "default", str(as_qcow2), "src.img", "--inputpool", "default").ok().out
    )
    assert out == "Vol copy.qcow2 created from input vol src.img\n\n"
    info = qemu_info(pool / "copy.qcow2")
    assert info["format"] == "qcow2" and info["virtual-size"] == 4 << 20  # never smaller than the input
    assert same_content(pool / "src.img", pool / "copy.qcow2")
    assert_clean_qcow2(pool / "copy.qcow2")

    # An overlay's chain is flattened into the copy; the input may be named by its path.
    daemon.cli(
        "vol-create-as", "default", "top.qcow2", "8M", "--format", "qcow2",
        "--backing-vol", "copy.qcow2", "--backing-vol-format", "qcow2",
    ).ok()  # fmt: skip
    as_raw = xml_file(
        tmp_path, "r.xml", "<volume><name>flat.img</name><capacity unit='M'>16</capacity></volume>"
    )
    out = daemon.cli("vol-create-from", "default", str(as_raw), str(pool / "top.qcow2")).ok().out
    assert out == "Vol flat.img created from input vol top.qcow2\n\n"
    flat = pool / "flat.img"
    assert qemu_info(flat)["format"] == "raw" and flat.stat().st_size == 16 << 20
    assert flat.read_bytes()[1 << 20 : 2 << 20] == data and flat.read_bytes()[4 << 20 :] == bytes(12 << 20)
    assert flat.stat().st_blocks * 512 >= 16 << 20  # allocated, as libvirt allocates a raw volume

    # Into another pool, from the default one.
    other = tmp_path / "other"
    other.mkdir()
    daemon.cli("pool-create-as", "other", "dir", "--target", str(other)).ok()
    nocap = xml_file(
        tmp_path, "n.xml", "<volume><name>n.qcow2</name><target><format type='qcow2'/></target></volume>"
    )
    daemon.cli("vol-create-from", "other", str(nocap), "top.qcow2", "--inputpool", "default").ok()
    assert "backing-filename" not in qemu_info(other / "n.qcow2")
    assert same_content(pool / "top.qcow2", other / "n.qcow2")
    assert_clean_qcow2(other / "n.qcow2")
    assert not [name for name in listing(daemon) + os.listdir(other) if name.startswith(".")]


def test_bad_vol_create_from_input(daemon: Daemon, tmp_path: Path) -> None:
    daemon.cli("vol-create-as", "default", "src.img", "1M").ok()
    daemon.cli("vol-create-as", "default", "taken.img", "1M").ok()
    before = listing(daemon)
    new = xml_file(tmp_path, "new.xml", "<volume><name>new.img</name><capacity>1</capacity></volume>")

    err = fails(daemon, "vol-create-from", "default", str(new), "nosuch")
    assert err == (
        "error: failed to get vol 'nosuch', specifying --inputpool might help\n"
        "error: Storage volume not found: no storage vol with matching path 'nosuch'\n"
    )
    err = fails(daemon, "vol-create-from", "default", str(new), "nosuch", "--inputpool", "default")
    assert err == (
        "error: failed to get vol 'nosuch'\n"
        "error: Storage volume not found: no storage vol with matching path 'nosuch'\n"
    )
    err = fails(daemon, "vol-create-from", "nosuch", str(new), "src.img", "--inputpool", "default")
    assert err.startswith("error: failed to get pool 'nosuch'\n")
    taken = xml_file(tmp_path, "taken.xml", "<volume><name>taken.img</name><capacity>1</capacity></volume>")
    err = fails(daemon, "vol-create-from", "default", str(taken), "src.img", "--inputpool", "default")
    assert err == (
        f"error: Failed to create vol from {taken}\n"
        "error: internal error: storage volume name 'taken.img' already in use.\n"
    )
    bad = xml_file(tmp_path, "bad.xml", "<volume><name>x")
    err = fails(daemon, "vol-create-from", "default", str(bad), "src.img", "--inputpool", "default")
    assert err.startswith(f"error: Failed to create vol from {bad}\nerror: malformed XML"), err
    assert listing(daemon) == before

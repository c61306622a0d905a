"""``vol-wipe`` through a real pyvirtd, with virsh 9.0's messages and libvirt's zero-fill, the refusals
leaving every volume as it was, a volume of a running domain (QEMU idling in its firmware, no guest
booted) refused; and the Python API of the new storage verbs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.storage.volume_checks import (
    fails,
    listing,
    qemu_info,
    same_content,
    xml_file,
)
from tests.support.daemon import Daemon


def test_vol_wipe_zeroes_volumes(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    daemon.cli("vol-create-as", "default", "full.img", "4M").ok()
    (pool / "full.img").write_bytes(os.urandom(4 << 20))
    assert daemon.cli("vol-wipe", "full.img", "--pool", "default").ok().out == "Vol full.img wiped\n\n"
    assert (pool / "full.img").read_bytes() == bytes(4 << 20)
    assert (pool / "full.img").stat().st_blocks * 512 >= 4 << 20  # overwritten in place, as libvirt

    daemon.cli("vol-create-as", "default", "sparse.img", "8M", "--allocation", "0").ok()
    with open(pool / "sparse.img", "r+b") as fh:
        fh.seek(3 << 20)
        fh.write(b"secret" * 100)
    key = str(pool / "sparse.img")
    assert daemon.cli("vol-wipe", key).ok().out == f"Vol {key} wiped\n\n"
    assert (pool / "sparse.img").stat().st_size == 8 << 20
    assert (pool / "sparse.img").read_bytes() == bytes(8 << 20)

    # libvirt zero-fills a qcow2 volume's file like any other: afterwards it is raw zeros.
    daemon.cli("vol-create-as", "default", "q.qcow2", "64M", "--format", "qcow2").ok()
    size = (pool / "q.qcow2").stat().st_size
    daemon.cli("vol-wipe", "q.qcow2", "--pool", "default", "--algorithm", "zero").ok()
    assert qemu_info(pool / "q.qcow2")["format"] == "raw"
    assert (pool / "q.qcow2").read_bytes() == bytes(size)
    assert (
        "Capacity:       " + str(size) + " bytes"
        in daemon.cli("vol-info", "--bytes", "q.qcow2", "--pool", "default").ok().out
    )


@pytest.mark.skipif(shutil.which("scrub") is None, reason="scrub is not installed")
def test_vol_wipe_with_a_scrub_pattern(daemon: Daemon) -> None:
    pool = daemon.pool_dir
    daemon.cli("vol-create-as", "default", "s.img", "1M").ok()
    original = os.urandom(1 << 20)
    (pool / "s.img").write_bytes(original)
    daemon.cli("vol-wipe", "s.img", "--pool", "default", "--algorithm", "dod").ok()
    assert (pool / "s.img").read_bytes()[: 1 << 20] != original


IDLE_DOMAIN = """<domain type='qemu'>
  <name>idle</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='default' volume='top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


def test_bad_vol_wipe_input(daemon: Daemon, tmp_path: Path) -> None:
    pool = daemon.pool_dir
    daemon.cli("vol-create-as", "default", "base.qcow2", "8M", "--format", "qcow2").ok()
    daemon.cli(
        "vol-create-as", "default", "top.qcow2", "8M", "--format", "qcow2",
        "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2",
    ).ok()  # fmt: skip
    daemon.cli("vol-create-as", "default", "v.img", "1M").ok()
    (pool / "v.img").write_bytes(b"keep" * (1 << 18))
    before = {name: (pool / name).read_bytes() for name in listing(daemon)}

    err = fails(daemon, "vol-wipe", "v.img", "--pool", "default", "--algorithm", "bogus")
    assert err == "error: Unsupported algorithm 'bogus'\n"
    err = fails(daemon, "vol-wipe", "v.img", "--pool", "default", "--algorithm", "trim")
    assert (
        err
        == "error: Failed to wipe vol v.img\nerror: argument unsupported: 'trim' algorithm not supported\n"
    )
    err = fails(daemon, "vol-wipe", "nosuch", "--pool", "default")
    assert err == (
        "error: failed to get vol 'nosuch'\n"
        "error: Storage volume not found: no storage vol with matching path 'nosuch'\n"
    )
    assert fails(daemon, "vol-wipe", "v.img").startswith(
        "error: failed to get vol 'v.img', specifying --pool might help\n"
    )
    assert "read-only" in fails(daemon, "-r", "vol-wipe", "v.img", "--pool", "default")

    domain = xml_file(tmp_path, "idle.xml", IDLE_DOMAIN)
    daemon.cli("create", str(domain)).ok()
    try:
        err = fails(daemon, "vol-wipe", "top.qcow2", "--pool", "default")
        assert err == (
            "error: Failed to wipe vol top.qcow2\n"
            "error: Requested operation is not valid: cannot wipe volume 'top.qcow2': "
            "it is in use by running domain 'idle'\n"
        )
        err = fails(daemon, "vol-wipe", "base.qcow2", "--pool", "default")
        assert f"in use by running domain 'idle' (as a backing file of {pool}/top.qcow2)" in err
        assert {name: (pool / name).read_bytes() for name in listing(daemon)} == before
    finally:
        daemon.cli("destroy", "idle").ok()
    daemon.cli("vol-wipe", "top.qcow2", "--pool", "default").ok()
    assert qemu_info(pool / "top.qcow2")["format"] == "raw"


def test_python_api(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "api"
    conn = daemon.connect()
    try:
        pool = conn.create_pool(
            f"<pool type='dir'><name>api</name><target><path>{target}</path></target></pool>", build=True
        )
        assert pool.info()["persistent"] is False and target.is_dir()
        src = pool.create_volume("src.img", 1 << 20, fmt="raw")
        (target / "src.img").write_bytes(b"\x01" * (1 << 20))
        copy_xml = "<volume><name>c.qcow2</name><target><format type='qcow2'/></target></volume>"
        copy = conn.pool("default").create_volume_from(copy_xml, src)
        assert copy.info()["format"] == "qcow2" and copy.info()["capacity"] == 1 << 20
        assert same_content(target / "src.img", daemon.pool_dir / "c.qcow2")
        assert src.wipe()["format"] == "raw"
        assert (target / "src.img").read_bytes() == bytes(1 << 20)
        pool.destroy()
        assert "api" not in [p["name"] for p in conn.list_pools()]
    finally:
        conn.close()

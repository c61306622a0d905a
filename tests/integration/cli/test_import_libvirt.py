"""``pyvirt import-libvirt`` on a real daemon (in a network namespace this test makes).

``--dir``: a folder laid out as /etc/libvirt holding what libvirt 9.0 itself wrote
(tests/data/libvirt-9.0: libvirtd defined a domain booting the test guest on a NAT network, a
virt-manager-style SPICE desktop, a floppy-booting ISA PC, the network and a directory pool, then its
files were copied), read without libvirt. Everything pyvirt can run is defined unchanged (UUIDs, MACs,
paths, autostart); the ISA PC (a machine type pyvirt does not run) is reported with the reason; what
libvirt's status files say runs is left alone and reported; a second run skips what exists; the
imported domain starts in pyvirt on the imported network. ``--uri``: libvirt's own test driver
(``test:///default``, inside virsh, no libvirtd) as the oracle of what virsh reports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon, netns_daemon
from tests.support.guest import REPO, guest_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.root]

DATA = REPO / "tests/data/libvirt-9.0/etc/libvirt"
WEB1_UUID = "5f939c51-dbcd-4c81-a4b8-3407131f7c27"


@pytest.fixture
def d() -> Iterator[Daemon]:
    with netns_daemon("pvi") as daemon:
        yield daemon


def libvirt_host(root: Path) -> Path:
    """``root`` as a libvirt host: etc/libvirt from the data (paths pointing into ``root/src``), the
    guest's kernel and disk in place, autostart links, and a status file saying the pool is active."""
    src = root / "src"
    (src / "pool").mkdir(parents=True)
    art = guest_artifacts()
    shutil.copyfile(art.kernel, src / "vmlinux")
    shutil.copyfile(art.initrd, src / "initrd.img")
    shutil.copyfile(art.disk, src / "pool/web1.qcow2")
    etc = root / "etc/libvirt"
    for path in DATA.rglob("*.xml"):
        target = etc / path.relative_to(DATA)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text().replace("@SRC@", str(src)))
    for folder, name in (("qemu", "web1"), ("qemu/networks", "lan"), ("storage", "imgs")):
        (etc / folder / "autostart").mkdir(exist_ok=True)
        (etc / folder / "autostart" / f"{name}.xml").symlink_to(f"/etc/libvirt/{folder}/{name}.xml")
    (root / "run/libvirt/storage").mkdir(parents=True)
    (root / "run/libvirt/storage/imgs.xml").write_text("<poolstate/>")
    return etc


def test_import_from_libvirts_files(d: Daemon, tmp_path: Path) -> None:
    etc = libvirt_host(tmp_path)
    dry = d.cli("import-libvirt", "--dir", str(etc), "--dry-run")
    assert dry.rc == 1, dry.out  # the ISA PC cannot be carried over
    assert re.search(r"^ domain\s+web1\s+would-import\s+autostart$", dry.out, re.M), dry.out
    assert re.search(r"^ domain\s+desktop\s+would-import\s+-$", dry.out, re.M), dry.out
    assert re.search(r"^ domain\s+legacy\s+failed\s+not imported: .*machine type 'isapc'", dry.out, re.M)
    assert re.search(r"^ pool\s+imgs\s+would-import\s+autostart; active under libvirt", dry.out, re.M)
    assert "4 would be imported" in dry.out and "1 not importable" in dry.out, dry.out
    assert "nothing was defined" in dry.out
    assert not {"web1", "desktop"} & set(d.cli("list", "--all", "--name").ok().out.split())
    assert "lan" not in d.cli("net-list", "--all", "--name").ok().out

    report = json.loads(d.cli("import-libvirt", "--dir", str(etc), "--json").out)
    status = {(o["kind"], o["name"]): o["status"] for o in report["objects"]}
    assert status == {
        ("pool", "imgs"): "imported",
        ("network", "lan"): "imported",
        ("domain", "web1"): "imported",
        ("domain", "desktop"): "imported",
        ("domain", "legacy"): "failed",
    }
    conn = d.connect()
    info = conn.domain("web1").info()
    assert info["uuid"] == WEB1_UUID and info["state"] == "shut off"
    xml = conn.domain("web1").xml(inactive=True)
    assert f"<source file='{tmp_path}/src/pool/web1.qcow2'/>" in xml and "52:54:00:5a:00:01" in xml
    assert "web1" in d.cli("list", "--all", "--autostart", "--name").ok().out.split()
    assert conn.network("lan").info()["autostart"] and not conn.network("lan").info()["active"]
    pool = conn.pool("imgs").info()
    assert pool["autostart"] and not pool["active"] and pool["path"] == str(tmp_path / "src/pool")

    again = d.cli("import-libvirt", "--dir", str(etc))
    assert re.search(r"^ domain\s+web1\s+skipped\s+pyvirt has one of that name already", again.out, re.M)
    assert "0 imported" in again.out

    d.cli("net-start", "lan").ok()
    d.cli("start", "web1").ok()
    console = Console(d, "web1")
    try:
        console.expect(r"eth0 lease 10\.92\.0\.\d+", 180)
    finally:
        console.close()
    d.cli("destroy", "web1").ok()


def test_bad_sources_are_refused(d: Daemon, tmp_path: Path) -> None:
    both = d.cli("import-libvirt", "--dir", str(tmp_path), "--uri", "qemu:///system")
    assert both.rc == 1 and "mutually exclusive" in both.err
    empty = d.cli("import-libvirt", "--dir", str(tmp_path))
    assert empty.rc == 1 and "is not laid out as /etc/libvirt" in empty.err
    (tmp_path / "qemu").mkdir()
    (tmp_path / "qemu/broken.xml").write_text("<domain><name>x</name>")
    broken = d.cli("import-libvirt", "--dir", str(tmp_path))
    assert broken.rc == 1 and re.search(r"domain\s+broken\s+failed\s+cannot read .*malformed XML", broken.out)
    no_virsh = d.cli("import-libvirt", "--uri", "qemu:///system", env={"PATH": str(tmp_path)})
    assert no_virsh.rc == 1 and "needs virsh" in no_virsh.err and "--dir /etc/libvirt" in no_virsh.err


@pytest.mark.skipif(shutil.which("virsh") is None, reason="virsh (libvirt-clients) is not installed")
def test_import_through_virsh_from_libvirts_test_driver(d: Daemon) -> None:
    out = d.cli("import-libvirt", "--uri", "test:///default", "--dry-run").out
    # What virsh itself lists is what the report covers.
    virsh = {
        kind: subprocess.run(["virsh", "-q", "-c", "test:///default", verb, "--all", "--name"],
                             capture_output=True, text=True, check=True).stdout.split()
        for kind, verb in (("domain", "list"), ("network", "net-list"), ("pool", "pool-list"))
    }  # fmt: skip
    for kind, names in virsh.items():
        for name in names:
            assert re.search(rf"^ {kind}\s+{re.escape(name)}\s+\S+", out, re.M), (kind, name, out)
    # The test driver's domain is running (and of type 'test', which pyvirt cannot run).
    assert re.search(r"^ domain\s+test\s+failed\s+not imported: ", out, re.M), out

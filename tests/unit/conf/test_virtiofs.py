"""virtiofs shares (pyvirt.conf.virtiofs): parsed, written back, refused as libvirt 9.0 refuses them,
the vhost-user-fs-pci device and virtiofsd's command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvirt.conf import virtiofs
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.conf.validate import validate_domain
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.support.argv import unplaced

XML = """<domain type='qemu'><name>f</name><uuid>2b6f0d8e-2f1c-4b1e-9d6a-1f0e2d3c4b5a</uuid>
<memory>65536</memory>{backing}<os><type machine='pc'>hvm</type></os>{cpu}
<devices>{fs}</devices></domain>"""
SHARED = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>"
SHARE = """<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs' queue='512'/>
<binary path='/opt/virtiofsd' xattr='off'><cache mode='none'/><sandbox mode='namespace'/>
<lock posix='on' flock='off'/><thread_pool size='0'/></binary>
<source dir='/srv/a,b'/><target dir='tag,1'/><boot order='2'/></filesystem>"""
PLAIN = "<filesystem><driver type='virtiofs'/><source dir='/srv/p'/><target dir='p'/></filesystem>"


def domain(fs: str = SHARE, backing: str = SHARED, cpu: str = "") -> str:
    return XML.format(fs=fs, backing=backing, cpu=cpu)


def test_the_share_round_trips_and_builds_its_device() -> None:
    dom = load_domain_xml(domain())
    validate_domain(dom)
    again = format_domain(dom)
    assert "<driver type='virtiofs' queue='512'/>" in again
    assert "<binary path='/opt/virtiofsd' xattr='off'>" in again
    for part in ("<cache mode='none'/>", "<sandbox mode='namespace'/>", "<lock posix='on' flock='off'/>"):
        assert part in again
    assert "<thread_pool size='0'/>" in again and "<boot order='2'/>" in again
    assert format_domain(load_domain_xml(again)) == again
    argv = build_argv(
        dom, RuntimeContext(accel="tcg", monitor_path="/x", virtiofs_sockets={0: "/r/fs0-fs.sock"})
    )
    assert "socket,id=chr-vu-fs0,path=/r/fs0-fs.sock" in argv
    assert "vhost-user-fs-pci,id=fs0,chardev=chr-vu-fs0,queue-size=512,tag=tag,,1,bootindex=2" in unplaced(
        argv
    )
    assert "-fsdev" not in argv


def test_virtiofsd_command_line() -> None:
    fs = load_domain_xml(domain()).devices.filesystems[0]
    assert virtiofs.daemon_argv(fs, "/opt/virtiofsd", 7) == [
        "/opt/virtiofsd",
        "--fd=7",
        "-o",
        "source=/srv/a,,b,cache=none,sandbox=namespace,no_xattr,no_flock,posix_lock",
        "--thread-pool-size=0",
    ]
    plain = load_domain_xml(domain(PLAIN)).devices.filesystems[0]
    assert virtiofs.daemon_argv(plain, "/v", 3) == ["/v", "--fd=3", "-o", "source=/srv/p"]
    assert format_domain(load_domain_xml(domain(PLAIN))).count("<binary") == 0


def test_a_virtiofsd_someone_else_runs() -> None:
    """<source socket>: QEMU connects to that socket, as libvirt 9.0's domxml-to-native shows it."""
    xml = domain(PLAIN.replace("<driver type='virtiofs'/>", "<driver type='virtiofs' queue='1024'/>"))
    dom = load_domain_xml(xml.replace("<source dir='/srv/p'/>", "<source socket='/run/vfs.sock'/>"))
    validate_domain(dom)
    again = format_domain(dom)
    assert "<source socket='/run/vfs.sock'/>" in again and "dir=" not in again.split("<target")[0][-60:]
    assert format_domain(load_domain_xml(again)) == again
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert "socket,id=chr-vu-fs0,path=/run/vfs.sock" in argv
    assert "vhost-user-fs-pci,id=fs0,chardev=chr-vu-fs0,queue-size=1024,tag=p" in unplaced(argv)


def test_no_socket_no_device() -> None:
    with pytest.raises(PyvirtError, match="no virtiofsd serves filesystem 'p'"):
        build_argv(load_domain_xml(domain(PLAIN)), RuntimeContext(accel="tcg", monitor_path="/x"))


@pytest.mark.parametrize(
    ("fs", "reason"),
    [
        (PLAIN.replace("</filesystem>", "<readonly/></filesystem>"), "does not yet support read-only"),
        (PLAIN.replace("<filesystem>", "<filesystem accessmode='mapped'>"), "only supports passthrough"),
        (PLAIN.replace("<filesystem>", "<filesystem accessmode='squash'>"), "only supports passthrough"),
        (PLAIN.replace("<filesystem>", "<filesystem multidevs='remap'>"), "does not support multidevs"),
        (
            PLAIN.replace("type='virtiofs'", "type='virtiofs' wrpolicy='immediate'"),
            "does not support wrpolicy",
        ),
        (PLAIN.replace("<source dir='/srv/p'/>", "<source socket='s.sock'/>"), "must be an absolute path"),
        (PLAIN.replace("<source dir='/srv/p'/>", "<source dir='/p' socket='/s'/>"), "either 'dir' or"),
        (
            SHARE.replace("<source dir='/srv/a,b'/>", "<source socket='/s.sock'/>"),
            "<binary> with <source socket>: the virtiofsd listening on /s.sock is run by someone else",
        ),
        (
            "<filesystem><source socket='/s.sock'/><target dir='p'/></filesystem>",  # 9p has no socket
            "missing attribute 'dir'",
        ),
        (PLAIN.replace("</filesystem>", "<idmap/></filesystem>"), "idmap"),
        (
            PLAIN.replace("<driver type='virtiofs'/>", "<driver type='virtiofs'/><binary path='v'/>"),
            "absolute",
        ),
        (SHARE.replace("mode='none'", "mode='auto'"), "mode"),
        (SHARE.replace("sandbox mode='namespace'", "sandbox mode='none'"), "mode"),
        (SHARE.replace("xattr='off'", "xattr='yes'"), "xattr"),
        (SHARE.replace("<thread_pool size='0'/>", "<thread_pool size='-1'/>"), "size"),
        (SHARE.replace("</binary>", "<rlimit_nofile/></binary>"), "rlimit_nofile"),
    ],
)
def test_refused_by_name(fs: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        validate_domain(load_domain_xml(domain(fs)))


@pytest.mark.parametrize(
    ("backing", "cpu"),
    [
        ("", ""),
        ("<memoryBacking><source type='memfd'/></memoryBacking>", ""),
        ("<memoryBacking><access mode='private'/></memoryBacking>", ""),
        (SHARED, "<cpu><numa><cell id='0' cpus='0' memory='65536' memAccess='private'/></numa></cpu>"),
        ("", "<cpu><numa><cell id='0' cpus='0' memory='65536'/></numa></cpu>"),
    ],
)
def test_memory_must_be_shared(backing: str, cpu: str) -> None:
    with pytest.raises(PyvirtError, match="'virtiofs' requires shared memory"):
        validate_domain(load_domain_xml(domain(PLAIN, backing, cpu)))


def test_shared_numa_cells_will_do() -> None:
    cpu = "<cpu><numa><cell id='0' cpus='0' memory='65536' memAccess='shared'/></numa></cpu>"
    validate_domain(
        load_domain_xml(domain(PLAIN, "<memoryBacking><source type='memfd'/></memoryBacking>", cpu))
    )
    default_cell = cpu.replace(" memAccess='shared'", "")
    validate_domain(load_domain_xml(domain(PLAIN, SHARED, default_cell)))


def test_the_default_binary_is_the_descriptors(tmp_path: Path) -> None:
    etc, share = tmp_path / "etc", tmp_path / "share"
    for folder in (etc, share):
        folder.mkdir()
    (share / "50-qemu-virtiofsd.json").write_text(
        json.dumps({"type": "fs", "binary": "/usr/lib/qemu/virtiofsd"})
    )
    (share / "40-gpu.json").write_text(json.dumps({"type": "gpu", "binary": "/usr/lib/qemu/vhost-user-gpu"}))
    assert virtiofs.default_binary((str(etc), str(share))) == "/usr/lib/qemu/virtiofsd"
    (etc / "50-qemu-virtiofsd.json").write_text(json.dumps({"type": "fs", "binary": "/usr/local/virtiofsd"}))
    assert virtiofs.default_binary((str(etc), str(share))) == "/usr/local/virtiofsd"
    assert virtiofs.default_binary((str(tmp_path / "none"),)) is None

"""copy_on_read, metadata_cache and <transient/> of a disk (pyvirt.conf.disk_layers): parsed, written
back, refused where libvirt refuses them, and what they add to the command line (the golden case
libvirt-disk-layers has the whole of it; tests/integration/daemon/test_disk_sources.py runs them)."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.daemon.transient_disks import check_start, overlay_path
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from pyvirt.qemu.hotplug import disk_nodes

XML = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='{kind}' device='disk'><driver name='qemu' type='{fmt}'{driver}</driver>{src}
<target dev='vda' bus='virtio'/>{extra}</disk></devices></domain>"""


def disk_xml(fmt: str = "qcow2", driver: str = ">", extra: str = "", kind: str = "file") -> str:
    src = "<source file='/i.img'/>"
    if kind == "network":
        src = "<source protocol='http' name='i'><host name='h'/></source>"
    return XML.format(fmt=fmt, driver=driver, extra=extra, kind=kind, src=src)


def test_copy_on_read_puts_a_filter_node_under_the_device() -> None:
    dom = load_domain_xml(disk_xml(driver=" copy_on_read='on'>"))
    assert "copy_on_read='on'" in format_domain(dom)
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    cor = '{"driver":"copy-on-read","node-name":"pyvirt-CoR-vda","file":"pyvirt-1-format","discard":"unmap"}'
    assert argv[argv.index(cor) - 1] == "-blockdev"
    assert any("drive=pyvirt-CoR-vda" in arg for arg in argv)
    plain = build_argv(
        load_domain_xml(disk_xml(driver=" copy_on_read='off'>")),
        RuntimeContext(accel="tcg", monitor_path="/x"),
    )
    assert not any("copy-on-read" in arg for arg in plain)


def test_metadata_cache_is_the_qcow2_cache_size() -> None:
    cache = "><metadata_cache><max_size unit='MiB'>4</max_size></metadata_cache>"
    dom = load_domain_xml(disk_xml(driver=cache))
    text = format_domain(dom)
    assert "<metadata_cache>" in text and "<max_size unit='bytes'>4194304</max_size>" in text
    assert load_domain_xml(text).devices.disks[0].layers == dom.devices.disks[0].layers
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert any('"driver":"qcow2","file":"pyvirt-1-storage","cache-size":4194304' in arg for arg in argv)
    with pytest.raises(PyvirtError, match="metadata_cache is only supported with the qcow2 format"):
        load_domain_xml(disk_xml(fmt="raw", driver=cache))


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (disk_xml(extra="<transient/><readonly/>"), "not supported with read-only disks"),
        (disk_xml(fmt="raw", kind="network", extra="<transient/>"), "needs a local raw or qcow2 image"),
        (disk_xml(driver=" copy_on_read='maybe'>"), "copy_on_read"),
        (disk_xml(driver=" copy_on_read='on'>", extra="<transient/>"), "needs shareBacking='yes'"),
    ],
)
def test_refused_with_the_reason(xml: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(xml)


def test_transient_written_back_and_refused_where_no_overlay_is_made() -> None:
    dom = load_domain_xml(disk_xml(extra="<transient shareBacking='no'/>"))
    assert "<transient/>" in format_domain(dom)
    assert overlay_path("/var/lib/x.qcow2", "web") == "/var/lib/x.qcow2.TRANSIENT-web"
    check_start(dom, incoming=False)
    with pytest.raises(PyvirtError, match="cannot be restored or migrated"):
        check_start(dom, incoming=True)
    with pytest.raises(PyvirtError, match="hot-plugging disk 'vda' with copy_on_read or <transient/>"):
        disk_nodes(dom.devices.disks[0], ["pyvirt-9"], [("/dev/fdset/1", "qcow2")])


def test_a_shared_image_is_read_only_under_the_overlay_start_makes() -> None:
    dom = load_domain_xml(disk_xml(driver=" copy_on_read='on'>", extra="<transient shareBacking='yes'/>"))
    assert "<transient shareBacking='yes'/>" in format_domain(dom)
    with pytest.raises(PyvirtError, match="its overlay is made when the domain starts"):
        build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    ctx = RuntimeContext(accel="tcg", monitor_path="/x", shared_overlays={0: "/i.img.TRANSIENT-n"})
    argv = build_argv(dom, ctx)
    nodes = [arg for arg in argv if arg.startswith("{") and '"node-name"' in arg]
    assert '"node-name":"pyvirt-1-format","read-only":true' in nodes[1]
    assert nodes[2].startswith(
        '{"driver":"file","filename":"/i.img.TRANSIENT-n","node-name":"pyvirt-1-o1-storage"'
    )
    assert '"driver":"qcow2","file":"pyvirt-1-o1-storage","backing":"pyvirt-1-format"' in nodes[3]
    assert '"file":"pyvirt-1-o1-format"' in nodes[4]  # copy-on-read above the overlay

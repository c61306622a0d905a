"""Network disks on the protocols other than NBD (pyvirt.conf.network_disk): parse-time checks, the
protocol node QEMU gets, credentials and cookies only as encrypted secret objects, and the XML
written back. The full command line of each protocol is the golden libvirt-network-disks case."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf import network_disk
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.daemon.disk_secrets import pretend_all
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='network' device='disk'>{outer}<source protocol='{proto}' name='{name}'{attrs}>{inner}</source>
<target dev='vda' bus='virtio'/><readonly/></disk></devices></domain>"""
HOST = "<host name='h.example'/>"


def disk_xml(proto: str, name: str = "pool/img", inner: str = HOST, outer: str = "", attrs: str = "") -> str:
    return XML.format(proto=proto, name=name, inner=inner, outer=outer, attrs=attrs)


def argv_of(xml: str, values: dict[str, bytes] | None = None) -> list[str]:
    dom = load_domain_xml(xml)
    ctx = RuntimeContext(accel="tcg", monitor_path="/x")
    if values is not None:
        ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, values, Path("/run/x"))
    return build_argv(dom, ctx)


def storage(argv: list[str]) -> str:
    return next(arg for arg in argv if '"node-name":"pyvirt-1-storage"' in arg)


def test_default_ports_as_libvirt_assigns_them() -> None:
    assert '"url":"https://h.example:443/pool/img"' in storage(argv_of(disk_xml("https")))
    assert '"url":"ftps://h.example:990/pool/img"' in storage(argv_of(disk_xml("ftps")))
    assert '"portal":"h.example:3260","target":"pool","lun":0' in storage(argv_of(disk_xml("iscsi", "pool")))
    gluster = storage(argv_of(disk_xml("gluster")))
    assert '"server":[{"type":"inet","host":"h.example","port":"24007"}]' in gluster
    assert '"server":[{"host":"h.example","port":"0"}]' in storage(argv_of(disk_xml("rbd")))  # libvirt's 0
    assert '"server":{"host":"h.example","port":"22"}' in storage(argv_of(disk_xml("ssh", "/i.img")))


def test_ipv6_hosts_are_bracketed_in_urls_and_portals() -> None:
    six = "<host name='2001:db8::1' port='8080'/>"
    assert '"url":"http://[2001:db8::1]:8080/a"' in storage(argv_of(disk_xml("http", "a", six)))
    assert '"portal":"[2001:db8::1]:8080"' in storage(argv_of(disk_xml("iscsi", "t/1", six)))


def test_rbd_namespace_and_nfs_identity() -> None:
    rbd = storage(argv_of(disk_xml("rbd", "pool/ns/image")))
    assert '"pool":"pool","namespace":"ns","image":"image"' in rbd
    ident = HOST + "<identity user='+1234' group='root'/>"
    nfs = storage(argv_of(disk_xml("nfs", "/srv/x.img", ident)))
    assert '"path":"/srv/x.img","user":1234,"group":0' in nfs


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (disk_xml("http", "", HOST), "missing name for disk source"),
        (
            disk_xml("http", "a", HOST + HOST),
            "protocol 'http' of 'devices/disk/source' needs exactly one <host>",
        ),
        (disk_xml("gluster", "novolume"), "missing volume name or file name in gluster source name"),
        (disk_xml("rbd", "noimage", ""), "missing pool or image name in rbd source name"),
        (disk_xml("gluster", "v/p", ""), "needs at least one <host>"),
        (disk_xml("nfs", "/a", "<host name='h' port='2049'/>"), "portmapper"),
        (disk_xml("iscsi", "t", "<host transport='unix' socket='/s'/>"), "protocol 'iscsi' has only tcp"),
        (disk_xml("gluster", "v/p", "<host transport='rdma' name='h'/>"), "transport 'rdma'"),
        (disk_xml("tftp", "a"), "disk source protocol 'tftp'"),
        (disk_xml("http", "a", HOST + "<snapshot name='s'/>"), "element 'devices/disk/source/snapshot'"),
        (disk_xml("https", "a", HOST + "<cookies><cookie name='a;b'>v</cookie></cookies>"), "HTTP forbids"),
        (disk_xml("nfs", "/a", HOST + "<identity user='no-such-user-here'/>"), "no user 'no-such-user-here'"),
        (disk_xml("iscsi", "t/x"), "invalid LUN 'x'"),
    ],
)
def test_refused_with_the_reason(xml: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message.replace("(", r"\(").replace("<", "<")):
        argv_of(xml)


AUTH = "<auth username='admin'><secret type='{kind}' usage='u1'/></auth>"


@pytest.mark.parametrize(
    ("proto", "kind", "message"),
    [
        ("iscsi", "ceph", "invalid secret type 'ceph'"),
        ("rbd", "iscsi", "invalid secret type 'iscsi'"),
        ("iscsi", "volume", "unknown secret type 'volume'"),
        ("nfs", "iscsi", "libvirt gives QEMU no credentials for it"),
    ],
)
def test_the_secret_type_must_fit_the_protocol(proto: str, kind: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        load_domain_xml(disk_xml(proto, "pool/img", HOST + AUTH.format(kind=kind)))


def test_auth_in_both_places_is_refused() -> None:
    auth = AUTH.format(kind="iscsi")
    with pytest.raises(PyvirtError, match="an <auth> definition already found for disk source"):
        load_domain_xml(disk_xml("iscsi", "t/1", HOST + auth, outer=auth))


def test_credentials_and_cookies_reach_qemu_encrypted_only() -> None:
    cookies = "<cookies><cookie name='session'>s3cr3t-cookie</cookie><cookie name='b'>two</cookie></cookies>"
    xml = disk_xml("https", "a", HOST + AUTH.format(kind="iscsi") + cookies)
    with pytest.raises(PyvirtError, match="given to QEMU only when the domain starts"):
        argv_of(xml)
    dom = load_domain_xml(xml)
    assert dom.devices.disks[0].net is not None
    assert network_disk.cookie_string(dom.devices.disks[0].net) == "session=s3cr3t-cookie; b=two"
    values = {"pyvirt-1-storage-auth-secret0": b"p4ssw0rd", "pyvirt-1-storage-httpcookie-secret0": b"c"}
    argv = argv_of(xml, values)
    line = " ".join(argv)
    assert "p4ssw0rd" not in line and "s3cr3t-cookie" not in line
    secrets = [arg for arg in argv if '"qom-type":"secret"' in arg and "masterKey0" not in arg.split(",")[1]]
    assert [s.split('"id":"')[1].split('"')[0] for s in secrets] == list(values)
    assert all('"keyid":"masterKey0"' in s and '"format":"base64"' in s for s in secrets)
    node = storage(argv)
    assert '"username":"admin","password-secret":"pyvirt-1-storage-auth-secret0"' in node
    assert '"cookie-secret":"pyvirt-1-storage-httpcookie-secret0"' in node
    rbd = argv_of(
        disk_xml("rbd", "p/i", HOST + AUTH.format(kind="ceph")), {"pyvirt-1-storage-auth-secret0": b"k"}
    )
    assert (
        '"user":"admin","auth-client-required":["cephx","none"],"key-secret":"pyvirt-1-storage-auth-secret0"'
        in (storage(rbd))
    )


def test_written_back_as_parsed() -> None:
    xml = disk_xml(
        "rbd", "p/i", "<host name='m'/><snapshot name='s'/><config file='/c'/>" + AUTH.format(kind="ceph")
    )
    text = format_domain(load_domain_xml(xml))
    assert "<source protocol='rbd' name='p/i'>" in text and "<host name='m'/>" in text
    assert "<snapshot name='s'/>" in text and "<config file='/c'/>" in text
    assert "<auth username='admin'>" in text and "<secret type='ceph' usage='u1'/>" in text
    again = load_domain_xml(text)
    assert again.devices.disks[0].net == load_domain_xml(xml).devices.disks[0].net
    outer = disk_xml(
        "iscsi", "t/1", HOST + "<initiator><iqn name='iqn.x'/></initiator>", outer=AUTH.format(kind="iscsi")
    )
    text = format_domain(load_domain_xml(outer))
    assert text.index("<auth username='admin'>") < text.index("<source protocol='iscsi'")  # kept in <disk>
    assert "<iqn name='iqn.x'/>" in text
    http = disk_xml(
        "https",
        "a",
        HOST + "<ssl verify='no'/><cookies><cookie name='c'>v</cookie></cookies>"
        "<readahead size='9'/><timeout seconds='3'/>",
        attrs=" query='x=1&amp;y=2'",
    )
    dom = load_domain_xml(format_domain(load_domain_xml(http)))
    assert dom.devices.disks[0].net == load_domain_xml(http).devices.disks[0].net

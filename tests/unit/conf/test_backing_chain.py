"""A disk's given ``<backingStore>`` chain: parsed, written back, checked, followed when the source
moves, and the files it hands QEMU (conf.backing_chain, qemu.backing_nodes, daemon.confinement)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf import backing_chain
from pyvirt.conf.domain import BackingLayer, DiskConfig
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.backing_nodes import layer_nodes

LAYER = "<backingStore type='file'><format type='{fmt}'/><source file='{path}'/>{below}</backingStore>"


def domain(backing: str, *, fmt: str = "qcow2", disk_type: str = "file") -> str:
    source = "<source file='/img/top.qcow2'/>" if disk_type == "file" else "<source dev='/dev/vg/top'/>"
    return (
        "<domain type='qemu'><name>c</name><memory>65536</memory>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
        f"<disk type='{disk_type}' device='disk'><driver name='qemu' type='{fmt}'/>{source}{backing}"
        "<target dev='vda' bus='virtio'/></disk></devices></domain>"
    )


def chain_xml(*layers: tuple[str, str], closed: bool = True) -> str:
    below = "<backingStore/>" if closed else ""
    for path, fmt in reversed(layers):
        below = LAYER.format(fmt=fmt, path=path, below=below)
    return below


def disk_of(xml: str) -> DiskConfig:
    return load_domain_xml(xml).devices.disks[0]


def test_a_closed_chain_is_kept_as_given_and_written_back() -> None:
    xml = domain(chain_xml(("/img/mid.qcow2", "qcow2"), ("/img/base.img", "raw")))
    disk = disk_of(xml)
    assert disk.backing_given == backing_chain.CLOSED
    assert disk.backing == [BackingLayer("/img/mid.qcow2", "qcow2"), BackingLayer("/img/base.img", "raw")]
    text = format_domain(load_domain_xml(xml))
    assert disk_of(text).backing == disk.backing  # dumpxml shows it, and it reads back the same
    assert text.count("<backingStore") == 3 and "<backingStore/>" in text


def test_an_empty_backing_store_means_no_backing() -> None:
    disk = disk_of(domain("<backingStore/>"))
    assert (disk.backing, disk.backing_given) == ([], backing_chain.CLOSED)
    storage, top = layer_nodes(disk, "pyvirt-1")
    assert storage == [] and top == {"backing": None}
    assert "<backingStore/>" in format_domain(load_domain_xml(domain("<backingStore/>")))


def test_an_open_chain_leaves_the_rest_to_the_header() -> None:
    xml = domain(chain_xml(("/img/mid.qcow2", "qcow2"), closed=False))
    disk = disk_of(xml)
    assert disk.backing_given == backing_chain.OPEN
    nodes, top = layer_nodes(disk, "pyvirt-1")
    assert top == {"backing": "pyvirt-1-b1-format"}
    assert "backing" not in nodes[1]  # QEMU opens what mid.qcow2 names
    assert "<backingStore/>" not in format_domain(load_domain_xml(xml))


def test_no_backing_store_is_read_from_the_images() -> None:
    disk = disk_of(domain(""))
    assert (disk.backing, disk.backing_given) == (None, None)
    assert layer_nodes(disk, "pyvirt-1") == ([], {})


def test_layer_nodes_bottom_first_each_naming_the_one_below() -> None:
    xml = domain(
        chain_xml(("/img/mid.qcow2", "qcow2"), ("/dev/vg/base", "qcow2")).replace(
            "type='file'><format type='qcow2'/><source file='/dev/vg/base'/>",
            "type='block'><format type='qcow2'/><source dev='/dev/vg/base'/>",
        )
    )
    nodes, top = layer_nodes(disk_of(xml), "pyvirt-3")
    assert [n["node-name"] for n in nodes] == [
        "pyvirt-3-b2-storage", "pyvirt-3-b2-format", "pyvirt-3-b1-storage", "pyvirt-3-b1-format",
    ]  # fmt: skip
    assert nodes[0]["driver"] == "host_device" and nodes[2]["driver"] == "file"
    assert nodes[1]["backing"] is None and nodes[3]["backing"] == "pyvirt-3-b2-format"
    assert all(n["read-only"] for n in nodes[1::2])
    assert top == {"backing": "pyvirt-3-b1-format"}


def test_metadata_cache_of_a_layer() -> None:
    layer = (
        "<backingStore type='file'><format type='qcow2'><metadata_cache><max_size unit='KiB'>64"
        "</max_size></metadata_cache></format><source file='/img/b.qcow2'/><backingStore/></backingStore>"
    )
    disk = disk_of(domain(layer))
    assert disk.backing is not None and disk.backing[0].metadata_cache == 65536
    assert layer_nodes(disk, "pyvirt-1")[0][1]["cache-size"] == 65536
    assert "<max_size unit='bytes'>65536</max_size>" in format_domain(load_domain_xml(domain(layer)))
    with pytest.raises(PyvirtError, match="metadata_cache is only supported with the qcow2 format"):
        disk_of(domain(layer.replace("type='qcow2'", "type='raw'")))


@pytest.mark.parametrize(
    ("backing", "fmt", "message"),
    [
        (
            "<backingStore type='network'><format type='qcow2'/><source protocol='nbd' name='x'>"
            "<host name='h'/><auth username='u'><secret type='iscsi' usage='s'/></auth></source>"
            "<backingStore/></backingStore>",
            "qcow2",
            "'devices/disk/backingStore/source/auth'",
        ),
        (
            "<backingStore type='volume'><format type='qcow2'/><source pool='p'/></backingStore>",
            "qcow2",
            "'volume'",
        ),
        (chain_xml(("/img/b.qcow2", "qcow2")), "raw", "needs an image of a format with backing files"),
        (chain_xml(("/img/b.img", "raw"), ("/img/c.img", "raw")), "qcow2", "cannot have a backing store"),
        ("<backingStore type='file'><source file='/img/b'/></backingStore>", "qcow2", "needs <format>"),
        (chain_xml(("/img/b", "qed")), "qcow2", "attribute 'type' = 'qed'"),
        (
            "<backingStore type='file'><format type='qcow2'/><source file='/b' bogus='1'/></backingStore>",
            "qcow2",
            "attribute 'bogus'",
        ),
    ],
)
def test_refused_by_name(backing: str, fmt: str, message: str) -> None:
    with pytest.raises(PyvirtError, match=message):
        disk_of(domain(backing, fmt=fmt))


def test_live_xml_chain_is_the_running_one() -> None:
    """In a running domain's XML the chain is what QEMU has open: read back, not a given one."""
    from pyvirt.conf.domain_xml import parse_domain

    xml = domain(chain_xml(("/img/mid.qcow2", "qcow2")))
    disk = parse_domain(xml, live=True).devices.disks[0]
    assert disk.backing == [BackingLayer("/img/mid.qcow2", "qcow2")] and disk.backing_given is None


def test_a_given_chain_follows_its_source() -> None:
    disk = disk_of(domain(chain_xml(("/img/mid.qcow2", "qcow2"), ("/img/base.qcow2", "qcow2"))))
    backing_chain.moved(disk, "/img/snap.qcow2")  # a new overlay over the old source
    assert [layer.source for layer in disk.backing or []] == [
        "/img/top.qcow2",
        "/img/mid.qcow2",
        "/img/base.qcow2",
    ]
    disk.source = "/img/snap.qcow2"
    backing_chain.moved(disk, "/img/mid.qcow2")  # committed down to mid
    assert [layer.source for layer in disk.backing or []] == ["/img/base.qcow2"]
    assert disk.backing_given == backing_chain.CLOSED
    open_disk = disk_of(domain(chain_xml(("/img/mid.qcow2", "qcow2"), closed=False)))
    backing_chain.moved(open_disk, "/img/snap.qcow2")  # what an open chain's end holds is in doubt
    assert (open_disk.backing, open_disk.backing_given) == (None, None)


def test_the_files_handed_to_qemu_are_the_given_layers(tmp_path: Path) -> None:
    """Confinement hands over each given layer (and what an open chain's last layer names), never
    what the top's header names instead."""
    from pyvirt.daemon.confinement import _image_files
    from pyvirt.image.create import create_image

    base, other, mid, top = (
        str(tmp_path / name) for name in ("base.qcow2", "other.qcow2", "mid.qcow2", "top.qcow2")
    )
    create_image(base, "qcow2", 1 << 20)
    create_image(other, "qcow2", 1 << 20)
    create_image(mid, "qcow2", 1 << 20, backing=base, backing_fmt="qcow2")
    create_image(top, "qcow2", 1 << 20, backing=other, backing_fmt="qcow2")  # the header says other
    closed = disk_of(domain(chain_xml((mid, "qcow2"))))
    assert _image_files(top, "qcow2", closed) == ([], [mid])
    open_chain = disk_of(domain(chain_xml((mid, "qcow2"), closed=False)))
    assert _image_files(top, "qcow2", open_chain) == ([], [mid, base])
    assert _image_files(top, "qcow2", disk_of(domain(""))) == ([], [other])


def test_a_layer_on_a_server() -> None:
    """A network layer: its protocol node as a network disk's, written back as libvirt has it."""
    layer = (
        "<backingStore type='network'><format type='qcow2'/><source protocol='http' name='base.qcow2'>"
        "<host name='127.0.0.1' port='8080'/></source><backingStore/></backingStore>"
    )
    disk = disk_of(domain(layer))
    assert disk.backing is not None and disk.backing[0].type == "network"
    nodes, top = layer_nodes(disk, "pyvirt-1")
    assert nodes[0]["driver"] == "http" and nodes[0]["url"] == "http://127.0.0.1:8080/base.qcow2"
    assert nodes[1]["backing"] is None and top == {"backing": "pyvirt-1-b1-format"}
    text = format_domain(load_domain_xml(domain(layer)))
    assert "<backingStore type='network'>" in text and "<source protocol='http' name='base.qcow2'>" in text
    assert disk_of(text).backing == disk.backing
    network_top = domain(layer).replace(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/img/top.qcow2'/>",
        "<disk type='network' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source protocol='nbd' name='top'><host name='h.example'/></source>",
    )
    assert disk_of(network_top).backing_given == backing_chain.CLOSED  # a server's image may have one too


SERVED = (
    "<backingStore type='network'><format type='qcow2'/><source protocol='https' name='mid.qcow2'>"
    "<host name='127.0.0.1' port='8443'/><auth username='admin'><secret type='iscsi' usage='web'/></auth>"
    "<cookies><cookie name='session'>s3cr3t</cookie></cookies></source>"
    "<backingStore type='network'><format type='qcow2'/>"
    "<source protocol='nbd' name='base' tls='yes' tlsHostname='nbd.test'>"
    "<host name='127.0.0.1' port='10809'/></source><backingStore/></backingStore></backingStore>"
)


def test_credentials_and_tls_of_layers_on_servers() -> None:
    """A layer on a server gets what a network disk's own source gets, named after the layer's nodes:
    its password and cookies only as secret objects encrypted with the master key, and the NBD TLS
    client credentials object its node names."""
    from pyvirt.conf import nbd_tls
    from pyvirt.daemon.disk_secrets import pretend_all
    from pyvirt.qemu.command import RuntimeContext, build_argv

    dom = load_domain_xml(domain(SERVED))
    assert nbd_tls.in_use(dom)  # its credentials are handed to QEMU and checked before a start
    ctx = RuntimeContext(accel="tcg", monitor_path="/x", nbd_tls_dir="/pki/qemu")
    with pytest.raises(PyvirtError, match="given to QEMU only when the domain starts"):
        build_argv(dom, ctx)
    values = {"pyvirt-1-b1-storage-auth-secret0": b"p4ssw0rd", "pyvirt-1-b1-storage-httpcookie-secret0": b"c"}
    ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, values, Path("/run/x"))
    argv = build_argv(dom, ctx)
    line = " ".join(argv)
    assert "p4ssw0rd" not in line and "s3cr3t" not in line
    objects = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-object"]
    secrets = [o for o in objects if '"qom-type":"secret"' in o and '"keyid":"masterKey0"' in o]
    assert [o.split('"id":"')[1].split('"')[0] for o in secrets] == list(values)
    tls = '{"qom-type":"tls-creds-x509","id":"pyvirt-1-b2-storage-tls0","dir":"/pki/qemu","endpoint":"client"'
    assert any(o.startswith(tls) for o in objects), objects
    nodes = {n["node-name"]: n for n in layer_nodes(dom.devices.disks[0], "pyvirt-1")[0]}
    served = nodes["pyvirt-1-b1-storage"]
    assert (served["username"], served["password-secret"]) == ("admin", "pyvirt-1-b1-storage-auth-secret0")
    assert served["cookie-secret"] == "pyvirt-1-b1-storage-httpcookie-secret0"
    nbd = nodes["pyvirt-1-b2-storage"]
    assert (nbd["tls-creds"], nbd["tls-hostname"]) == ("pyvirt-1-b2-storage-tls0", "nbd.test")
    text = format_domain(dom)
    assert "<auth username='admin'>" in text and "tls='yes' tlsHostname='nbd.test'" in text
    assert disk_of(text).backing == dom.devices.disks[0].backing


def test_the_secrets_of_layers_on_servers_are_looked_up_before_a_start() -> None:
    from types import SimpleNamespace

    from pyvirt.daemon.disk_secrets import network_values

    class Secrets:
        def by_usage(self, kind: str, usage: str) -> str:
            assert (kind, usage) == ("iscsi", "web")
            return "the secret"

        def value(self, secret: str) -> bytes:
            return b"p4ssw0rd" if secret == "the secret" else b""

    reg = SimpleNamespace(secrets=Secrets())
    values = network_values(reg, load_domain_xml(domain(SERVED)))  # type: ignore[arg-type]
    assert values == {
        "pyvirt-1-b1-storage-auth-secret0": b"p4ssw0rd",
        "pyvirt-1-b1-storage-httpcookie-secret0": b"session=s3cr3t",
    }


def test_a_running_given_chain_stays_given_when_the_live_xml_is_read_again() -> None:
    """The live XML writes every running chain whole; the run record says which were given, so that
    a daemon reading them again (a restart) keeps them given: in a save image's or a snapshot's
    definition (the inactive XML of the running domain) they stay as they were."""
    from pyvirt.conf.domain_xml import parse_domain

    running = load_domain_xml(domain(chain_xml(("/img/mid.qcow2", "qcow2"))))
    running.devices.disks.append(DiskConfig(source="/img/other.qcow2", driver_type="qcow2", target_dev="vdb"))
    running.devices.disks[1].backing = [BackingLayer("/img/read.qcow2", "qcow2")]  # from its header
    given = backing_chain.given_of(running)
    assert given == {"vda": backing_chain.CLOSED}
    again = parse_domain(format_domain(running, live=True), live=True)
    assert [d.backing_given for d in again.devices.disks] == [None, None]
    backing_chain.mark_given(again, given)
    assert [d.backing_given for d in again.devices.disks] == [backing_chain.CLOSED, None]
    assert format_domain(again) == format_domain(running)
    assert "/img/mid.qcow2" in format_domain(again) and "/img/read.qcow2" not in format_domain(again)


def test_a_plugged_layer_gets_its_metadata_cache() -> None:
    """As at start: each qcow2 layer's <metadata_cache> is its format node's cache-size."""
    from pyvirt.qemu.hotplug import disk_nodes

    layer = LAYER.format(fmt="qcow2", path="/img/mid.qcow2", below="<backingStore/>").replace(
        "<format type='qcow2'/>",
        "<format type='qcow2'><metadata_cache><max_size unit='KiB'>512</max_size></metadata_cache></format>",
    )
    disk = disk_of(domain(layer))
    nodes = disk_nodes(disk, ["pyvirt-4", "pyvirt-5"], [("/dev/fdset/1", "qcow2"), ("/dev/fdset/2", "qcow2")])
    formats = {n["node-name"]: n for n in nodes if "driver" in n and n["driver"] == "qcow2"}
    assert formats["pyvirt-5-format"]["cache-size"] == 512 * 1024
    assert "cache-size" not in formats["pyvirt-4-format"]


def test_a_plugged_chain_on_servers_is_connected_to_by_qemu() -> None:
    """Hot-plug: a layer on a server is its protocol node (no file handed over), its credentials and
    TLS objects named after the layer's own node prefix; an open chain's last layer on a server names
    no backing (QEMU opens what its header names, as at start)."""
    from pyvirt.qemu.hotplug import disk_nodes

    disk = disk_of(domain(SERVED))
    prefixes = ["pyvirt-4", "pyvirt-5", "pyvirt-6"]
    nodes = disk_nodes(disk, prefixes, [("/dev/fdset/1", "qcow2"), ("", "qcow2"), ("", "qcow2")])
    by_name = {n["node-name"]: n for n in nodes}
    assert by_name["pyvirt-5-storage"]["driver"] == "https"
    assert by_name["pyvirt-5-storage"]["password-secret"] == "pyvirt-5-storage-auth-secret0"
    assert by_name["pyvirt-6-storage"]["driver"] == "nbd"
    assert by_name["pyvirt-6-storage"]["tls-creds"] == "pyvirt-6-storage-tls0"
    assert by_name["pyvirt-6-format"]["backing"] is None  # a closed chain ends here
    assert by_name["pyvirt-5-format"]["backing"] == "pyvirt-6-format"
    assert by_name["pyvirt-4-format"]["backing"] == "pyvirt-5-format"
    open_disk = disk_of(
        domain(
            SERVED.replace("<backingStore/></backingStore></backingStore>", "</backingStore></backingStore>")
        )
    )
    assert open_disk.backing_given == backing_chain.OPEN
    nodes = disk_nodes(open_disk, prefixes, [("/dev/fdset/1", "qcow2"), ("", "qcow2"), ("", "qcow2")])
    assert "backing" not in {n["node-name"]: n for n in nodes}["pyvirt-6-format"]

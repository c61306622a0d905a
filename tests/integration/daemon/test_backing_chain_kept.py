"""A given ``<backingStore>`` chain is the one a domain keeps running on: after a daemon restart, a
save and restore, a snapshot's revert and a managed save, on a real QEMU through a real pyvirtd.

The chain differs from what the images' headers say: the top's and the middle layer's headers name
a file that is gone (a decoy), the middle layer is served over HTTP by a server that answers only
the user and password of the layer's ``<auth>`` (a pyvirt secret, handed to QEMU encrypted), and the
base by qemu-nbd over TLS (the layer's ``tls='yes'``: the daemon's NBD client credentials). A daemon
or a QEMU that read the chain from the headers, or that lost a layer's credentials, fails to open
it. One domain, started paused (opening the images is what is tested, not the guest's boot), goes
through it all with a second disk plugged while it runs with the same kind of chain (the layers'
secret and TLS objects added over QMP); each time its live XML and QEMU's block nodes still show the
given chains.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pyvirt.image.create import create_image
from tests.support.daemon import Daemon
from tests.support.guest import domain_xml
from tests.support.nbdtls import SERVER_NAME, credentials, serve
from tests.support.rangehttp import serving

pytestmark = pytest.mark.slow
MIB = 1 << 20
USER, PASSWORD = "chain-reader", "s3cret-Pa55"
SECRET_UUID = "6c0a1e40-3f7e-4a44-9d1b-5b8a0c3e7f21"


def _nodes(d: Daemon, name: str) -> dict[str, dict[str, Any]]:
    out = d.cli("qemu-monitor-command", name, json.dumps({"execute": "query-named-block-nodes"})).ok().out
    return {str(n["node-name"]): n for n in json.loads(out)["return"]}


def _layers(xml: str, target: str) -> list[dict[str, str]]:
    """The ``<backingStore>`` layers of disk ``target`` in domain XML ``xml``: each one's type, format,
    source attributes and those of its host and of its auth's secret."""
    root = ET.fromstring(xml)
    disk = next(d for d in root.iter("disk") if d.find(f"target[@dev='{target}']") is not None)
    out = []
    layer = disk.find("backingStore")
    while layer is not None and layer.get("type") is not None:
        entry = {"type": layer.get("type", ""), "format": layer.findall("format")[0].get("type", "")}
        for path in ("source", "source/host", "source/auth", "source/auth/secret"):
            if (node := layer.find(path)) is not None:
                entry.update({f"{path}@{k}": v for k, v in node.attrib.items()})
        out.append(entry)
        layer = layer.find("backingStore")
    assert layer is not None, "the chain ends with an empty <backingStore/>"
    return out


def _check(d: Daemon, top: Path, http_port: int, nbd_port: int, when: str) -> None:
    """The running chain of vdb (the domain's only disk, nodes pyvirt-1-*) is the given one."""
    live = d.cli("dumpxml", "kept").ok().out
    assert f"<source file='{top}'/>" in live and "decoy" not in live, (when, live)
    mid, base = _layers(live, "vdb")
    assert mid == {
        "type": "network", "format": "qcow2", "source@protocol": "http", "source@name": "mid.qcow2",
        "source/host@name": "127.0.0.1", "source/host@port": str(http_port), "source/auth@username": USER,
        "source/auth/secret@type": "iscsi", "source/auth/secret@uuid": SECRET_UUID,
    }, when  # fmt: skip
    assert base == {
        "type": "network", "format": "qcow2", "source@protocol": "nbd", "source@name": "base",
        "source@tls": "yes", "source@tlsHostname": SERVER_NAME, "source/host@name": "127.0.0.1",
        "source/host@port": str(nbd_port),
    }, when  # fmt: skip
    nodes = _nodes(d, "kept")
    top_node = nodes["pyvirt-1-format"]
    assert top_node["file"] == str(top) or str(top) in top_node["file"], (when, top_node)
    mid, base = nodes["pyvirt-1-b1-storage"], nodes["pyvirt-1-b2-storage"]
    assert mid["drv"] == "http" and f"127.0.0.1:{http_port}/mid.qcow2" in mid["file"], (when, mid)
    assert base["drv"] == "nbd" and f"127.0.0.1:{nbd_port}" in base["file"], (when, base)
    assert nodes["pyvirt-1-b1-format"]["drv"] == nodes["pyvirt-1-b2-format"]["drv"] == "qcow2", when
    chain, image = [], top_node["image"]
    while image is not None:
        chain.append(image["format"])
        image = image.get("backing-image")
    assert chain == ["qcow2"] * 3, (when, top_node["image"])


def _device_chain(d: Daemon, device: str) -> list[tuple[str, str]]:
    """(file, format) of QEMU device ``device``'s image and each one under it (query-block)."""
    out = d.cli("qemu-monitor-command", "kept", json.dumps({"execute": "query-block"})).ok().out
    (block,) = [b for b in json.loads(out)["return"] if f"/{device}/" in b.get("qdev", "")]
    chain, image = [], block["inserted"]["image"]
    while image is not None:
        chain.append((str(image["filename"]), str(image["format"])))
        image = image.get("backing-image")
    return chain


def _check_plugged(d: Daemon, http_port: int, nbd_port: int, when: str) -> None:
    """vdc, plugged with a given chain like vdb's (its own top; the same layers on the servers)."""
    chain = _device_chain(d, "virtio-disk2")
    assert [fmt for _, fmt in chain] == ["qcow2"] * 3, (when, chain)
    assert f"127.0.0.1:{http_port}/mid.qcow2" in chain[1][0] and f"127.0.0.1:{nbd_port}" in chain[2][0], (
        when,
        chain,
    )


def test_a_given_chain_survives_restart_save_and_revert(module_daemon: Daemon, tmp_path: Path) -> None:
    d = module_daemon
    served = tmp_path / "served"
    served.mkdir()
    decoy, base, top, top2 = (tmp_path / f"{n}.qcow2" for n in ("decoy", "base", "top", "top2"))
    create_image(str(decoy), "qcow2", 16 * MIB)
    create_image(str(base), "qcow2", 16 * MIB)
    create_image(str(served / "mid.qcow2"), "qcow2", 16 * MIB, backing=str(decoy), backing_fmt="qcow2")
    create_image(str(top), "qcow2", 16 * MIB, backing=str(decoy), backing_fmt="qcow2")
    create_image(str(top2), "qcow2", 16 * MIB, backing=str(decoy), backing_fmt="qcow2")
    decoy.unlink()
    (tmp_path / "secret.xml").write_text(
        f"<secret ephemeral='no' private='yes'><uuid>{SECRET_UUID}</uuid>"
        "<usage type='iscsi'><target>chain-web</target></usage></secret>"
    )
    d.cli("secret-define", str(tmp_path / "secret.xml")).ok()
    (tmp_path / "password").write_text(PASSWORD)
    d.cli("secret-set-value", SECRET_UUID, "--file", str(tmp_path / "password"), "--plain").ok()
    server_dir = tmp_path / "nbd-server"
    credentials(tmp_path / "ca", server_dir, d.root / "etc/pki/pyvirt/qemu")
    with (
        serving(served, auth=(USER, PASSWORD)) as (http_port, requests),
        serve(server_dir, base, "raw", "base", readonly=True, clients=4) as nbd_port,
    ):
        chain = (
            "<backingStore type='network'><format type='qcow2'/><source protocol='http' name='mid.qcow2'>"
            f"<host name='127.0.0.1' port='{http_port}'/>"
            f"<auth username='{USER}'><secret type='iscsi' uuid='{SECRET_UUID}'/></auth></source>"
            "<backingStore type='network'><format type='qcow2'/>"
            f"<source protocol='nbd' name='base' tls='yes' tlsHostname='{SERVER_NAME}'>"
            f"<host name='127.0.0.1' port='{nbd_port}'/></source><backingStore/></backingStore>"
            "</backingStore>"
        )
        disk = (
            f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{top}'/>"
            f"{chain}<target dev='vdb' bus='virtio'/></disk>"
        )
        (tmp_path / "kept.xml").write_text(domain_xml("kept", extra_devices=disk))
        d.cli("define", str(tmp_path / "kept.xml")).ok()
        d.cli("start", "kept", "--paused").ok()
        _check(d, top, http_port, nbd_port, "started")
        with pytest.raises(urllib.error.HTTPError, match="401"):  # the server checks the credentials
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/mid.qcow2", timeout=10)
        assert any(r.startswith("GET /mid.qcow2") for r in requests), requests  # QEMU read the layer
        qemu_log = (d.root / "var/log/pyvirt/qemu/kept.log").read_text()
        assert "pyvirt-1-b1-storage-auth-secret0" in qemu_log and PASSWORD not in qemu_log

        # A disk plugged with such a chain: the layers' credentials and TLS objects added as at start.
        (tmp_path / "vdc.xml").write_text(disk.replace(str(top), str(top2)).replace("'vdb'", "'vdc'"))
        d.cli("attach-device", "kept", str(tmp_path / "vdc.xml")).ok()
        _check_plugged(d, http_port, nbd_port, "plugged")

        d.restart()  # the QEMU runs on; the new daemon reads its live XML and run record again
        _check(d, top, http_port, nbd_port, "after a daemon restart")
        _check_plugged(d, http_port, nbd_port, "after a daemon restart")

        image = tmp_path / "kept.save"
        d.cli("save", "kept", str(image)).ok()
        saved = d.cli("save-image-dumpxml", str(image)).ok().out
        assert "<backingStore type='network'>" in saved and "decoy" not in saved, saved
        d.cli("restore", str(image)).ok()
        _check(d, top, http_port, nbd_port, "after a save and restore")
        _check_plugged(d, http_port, nbd_port, "after a save and restore")

        d.cli("snapshot-create-as", "kept", "s1").ok()  # its definition: the running chain as given
        d.cli("destroy", "kept").ok()
        d.cli("snapshot-revert", "kept", "s1").ok()  # a new QEMU for the snapshot's memory
        _check(d, top, http_port, nbd_port, "after a snapshot's revert")

        d.cli("managedsave", "kept").ok()
        d.cli("start", "kept").ok()
        _check(d, top, http_port, nbd_port, "after a managed save and start")
        d.cli("destroy", "kept").ok()

"""A given ``<backingStore>`` chain on a real QEMU through a real pyvirtd (conf.backing_chain).

The images' headers name a file that is gone (a decoy), so a QEMU or a daemon that read the chain
from the headers instead of the one given would fail: the started domain opens the 3-layer qcow2
chain as given (QEMU's query-named-block-nodes), confined to exactly those files, and an empty
``<backingStore/>`` opens the image alone. The domain is started paused: opening the images is what
is tested, not the guest's boot. A disk plugged with a given chain gets it too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pyvirt.image.create import create_image
from tests.support.daemon import Daemon
from tests.support.guest import domain_xml
from tests.support.rangehttp import serving

pytestmark = pytest.mark.slow
MIB = 1 << 20


def _qmp(d: Daemon, name: str, command: str) -> Any:
    out = d.cli("qemu-monitor-command", name, json.dumps({"execute": command})).ok().out
    return json.loads(out)["return"]


def _plain(filename: str) -> str:
    """The file of an image QEMU names by its options (``json:{...}``: it has an explicit backing)."""
    return str(json.loads(filename[5:])["file"]["filename"]) if filename.startswith("json:") else filename


def _chain_of(d: Daemon, name: str, device: str) -> list[tuple[str, str]]:
    """(file, format) of the image of QEMU device ``device`` and of each one under it, as QEMU has them
    open (a hot-plugged disk's files are the daemon's descriptors, /dev/fdset/N)."""
    (block,) = [b for b in _qmp(d, name, "query-block") if f"/{device}/" in b.get("qdev", "")]
    out = []
    image = block["inserted"]["image"]
    while image is not None:
        out.append((_plain(image["filename"]), image["format"]))
        image = image.get("backing-image")
    return out


def _images(folder: Path, tag: str) -> tuple[Path, Path, Path]:
    """base ← mid ← top, each qcow2; the headers of top and mid name a decoy, deleted afterwards."""
    base, mid, top, decoy = (folder / f"{tag}-{n}.qcow2" for n in ("base", "mid", "top", "decoy"))
    create_image(str(decoy), "qcow2", 16 * MIB)
    create_image(str(base), "qcow2", 16 * MIB)
    create_image(str(mid), "qcow2", 16 * MIB, backing=str(decoy), backing_fmt="qcow2")
    create_image(str(top), "qcow2", 16 * MIB, backing=str(decoy), backing_fmt="qcow2")
    decoy.unlink()
    return base, mid, top


def _disk(top: Path, target: str, backing: str) -> str:
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{top}'/>"
        f"{backing}<target dev='{target}' bus='virtio'/></disk>"
    )


def _given(mid: Path, base: Path) -> str:
    return (
        f"<backingStore type='file'><format type='qcow2'/><source file='{mid}'/>"
        f"<backingStore type='file'><format type='qcow2'/><source file='{base}'/><backingStore/>"
        "</backingStore></backingStore>"
    )


def test_a_given_chain_is_what_qemu_opens(module_daemon: Daemon, tmp_path: Path) -> None:
    d = module_daemon
    base, mid, top = _images(tmp_path, "a")
    alone = tmp_path / "alone.qcow2"
    create_image(str(alone), "qcow2", 16 * MIB, backing=str(base), backing_fmt="qcow2")  # named, not used
    devices = _disk(top, "vdb", _given(mid, base)) + _disk(alone, "vdc", "<backingStore/>")
    (tmp_path / "chain.xml").write_text(domain_xml("chain", extra_devices=devices))
    d.cli("define", str(tmp_path / "chain.xml")).ok()
    inactive = d.cli("dumpxml", "chain", "--inactive").ok().out
    assert inactive.count("<backingStore") == 4 and f"<source file='{mid}'/>" in inactive, inactive
    d.cli("start", "chain", "--paused").ok()
    chain = [(str(top), "qcow2"), (str(mid), "qcow2"), (str(base), "qcow2")]
    assert _chain_of(d, "chain", "virtio-disk1") == chain
    assert _chain_of(d, "chain", "virtio-disk2") == [(str(alone), "qcow2")]
    record = json.loads((d.run_dir / "chain.json").read_text())  # what Landlock lets QEMU open
    assert record["credentials"][0] != 0, record  # QEMU runs as its own user
    assert (record["access"][str(top)], record["access"][str(mid)], record["access"][str(base)]) == (
        "rw", "ro", "ro",
    )  # fmt: skip
    live = d.cli("dumpxml", "chain").ok().out
    assert f"<source file='{base}'/>" in live and "<backingStore/>" in live, live

    # A disk plugged with a given chain: its layers, not its header's, each with its metadata_cache
    # (QEMU refuses a cache too big to hold: proof that the layer's cache-size reached it) and the
    # disk's cache mode, as at start.
    base2, mid2, top2 = _images(tmp_path, "b")
    cache = "<format type='qcow2'><metadata_cache><max_size unit='{unit}'>{size}</max_size></metadata_cache>"
    plug = _disk(top2, "vdd", _given(mid2, base2)).replace("<format type='qcow2'/>", cache + "</format>", 1)
    plug = plug.replace("type='qcow2'/>", "type='qcow2' cache='unsafe'/>", 1)  # the disk's <driver>
    (tmp_path / "plug.xml").write_text(plug.format(unit="TiB", size=256))
    refused = d.cli("attach-device", "chain", str(tmp_path / "plug.xml"))
    assert refused.rc == 1 and "cache size too big" in refused.err, refused
    (tmp_path / "plug.xml").write_text(plug.format(unit="KiB", size=512))
    d.cli("attach-device", "chain", str(tmp_path / "plug.xml")).ok()
    plugged = _chain_of(d, "chain", "virtio-disk3")
    assert [fmt for _, fmt in plugged] == ["qcow2"] * 3, plugged  # the decoy is gone: the given layers
    assert all(path.startswith("/dev/fdset/") for path, _ in plugged), plugged
    nodes = [n for n in _qmp(d, "chain", "query-named-block-nodes") if "/dev/fdset/" in n["file"]]
    assert len(nodes) == 6 and all(n["cache"]["no-flush"] for n in nodes), nodes  # layers too
    live = d.cli("dumpxml", "chain").ok().out
    assert f"<source file='{base2}'/>" in live and f"<source file='{mid2}'/>" in live, live
    assert "<max_size unit='bytes'>524288</max_size>" in live, live
    tls = (  # QEMU, confined to the files it started with, could not read the NBD client credentials
        "<backingStore type='network'><format type='qcow2'/><source protocol='nbd' name='b' tls='yes'>"
        "<host name='127.0.0.1' port='10809'/></source><backingStore/></backingStore>"
    )
    create_image(str(tmp_path / "t.qcow2"), "qcow2", 16 * MIB)
    (tmp_path / "tls.xml").write_text(_disk(tmp_path / "t.qcow2", "vde", tls))
    refused = d.cli("attach-device", "chain", str(tmp_path / "tls.xml"))
    assert refused.rc == 1 and "only when the domain started with an NBD disk over TLS" in refused.err
    d.cli("destroy", "chain").ok()
    for path in (base, mid, top, base2, mid2, top2):
        assert os.stat(path).st_uid == 0, path  # given back to their owner


def test_a_missing_layer_is_refused_by_name(module_daemon: Daemon, tmp_path: Path) -> None:
    base, mid, top = _images(tmp_path, "c")
    mid.unlink()
    (tmp_path / "gone.xml").write_text(domain_xml("gone", extra_devices=_disk(top, "vdb", _given(mid, base))))
    module_daemon.cli("define", str(tmp_path / "gone.xml")).ok()
    result = module_daemon.cli("start", "gone", "--paused")
    assert result.rc == 1 and f"Cannot access backing file '{mid}'" in result.err, result


def test_a_layer_on_a_server(module_daemon: Daemon, tmp_path: Path) -> None:
    """A network layer (HTTP, QEMU's curl driver, from a server on the loopback) under a local image."""
    served = tmp_path / "served"
    served.mkdir()
    base, _mid, top = _images(tmp_path, "d")
    shutil.move(base, served / "base.qcow2")
    with serving(served) as (port, requests):
        layer = (
            "<backingStore type='network'><format type='qcow2'/><source protocol='http' name='base.qcow2'>"
            f"<host name='127.0.0.1' port='{port}'/></source><backingStore/></backingStore>"
        )
        (tmp_path / "net.xml").write_text(domain_xml("netchain", extra_devices=_disk(top, "vdb", layer)))
        module_daemon.cli("define", str(tmp_path / "net.xml")).ok()
        assert (
            "<backingStore type='network'>" in module_daemon.cli("dumpxml", "netchain", "--inactive").ok().out
        )
        module_daemon.cli("start", "netchain", "--paused").ok()
        url = f"http://127.0.0.1:{port}/base.qcow2"
        chain = _chain_of(module_daemon, "netchain", "virtio-disk1")
        assert chain[0] == (str(top), "qcow2") and chain[1][1] == "qcow2" and len(chain) == 2, chain
        assert url in json.dumps(chain[1]), chain
        assert any(r.startswith("GET /base.qcow2") for r in requests), requests  # QEMU read its header
        result = module_daemon.cli("blockpull", "netchain", "vdb")
        assert result.rc == 1 and "has an image on a server" in result.err, result
        module_daemon.cli("destroy", "netchain").ok()


def test_a_given_chain_follows_snapshots_and_commits(module_daemon: Daemon, tmp_path: Path) -> None:
    """An external snapshot puts its overlay over the given chain in the definition (the next start
    opens overlay, top, mid, base: never what the headers' decoy names), and an active commit back
    into the top takes the overlay out again (the next start opens top, mid, base)."""
    d = module_daemon
    base, mid, top = _images(tmp_path, "e")
    overlay = tmp_path / "e-snap.qcow2"
    (tmp_path / "snap.xml").write_text(
        domain_xml("snapchain", extra_devices=_disk(top, "vdb", _given(mid, base)))
    )
    d.cli("define", str(tmp_path / "snap.xml")).ok()
    d.cli("start", "snapchain", "--paused").ok()
    d.cli(
        "snapshot-create-as", "snapchain", "s1", "--disk-only", "--atomic",
        "--diskspec", f"vdb,file={overlay}",
    ).ok()  # fmt: skip
    inactive = d.cli("dumpxml", "snapchain", "--inactive").ok().out
    assert f"<source file='{overlay}'/>" in inactive and f"<source file='{top}'/>" in inactive, inactive
    d.cli("destroy", "snapchain").ok()
    d.cli("start", "snapchain", "--paused").ok()
    chain = [(str(p), "qcow2") for p in (overlay, top, mid, base)]
    assert _chain_of(d, "snapchain", "virtio-disk1") == chain
    # (the daemon opens the chain again by descriptor for the job: QEMU opened it by path)
    d.cli("blockcommit", "snapchain", "vdb", "--active", "--pivot", "--wait", "--base", str(top)).ok()
    assert len(_chain_of(d, "snapchain", "virtio-disk1")) == 3
    inactive = d.cli("dumpxml", "snapchain", "--inactive").ok().out
    assert f"<source file='{top}'/>" in inactive and str(overlay) not in inactive, inactive
    d.cli("destroy", "snapchain").ok()
    d.cli("start", "snapchain", "--paused").ok()
    assert _chain_of(d, "snapchain", "virtio-disk1") == chain[1:]
    d.cli("destroy", "snapchain").ok()

"""Network disks with credentials or TLS hot-plugged into a running guest (issue 17), on a real QEMU
through a real pyvirtd: an HTTP disk whose ``<auth>`` names a pyvirt secret, served on the loopback by a
server that answers only that user and password, and an NBD disk over TLS (qemu-nbd with x509
credentials). The guest reads each disk's known data. A wrong secret fails the plug with QEMU's
reason and leaves no secret object behind; an unplug deletes the disk's objects; the password is in
neither QEMU's log nor the daemon's. The domain starts with an NBD disk over TLS: QEMU may read the
NBD client credentials only if it started with them (Landlock), as the TLS plug needs. libvirt 9.0 is
the oracle of the objects a plug adds and a failed plug leaves (a private libvirtd; skipped without it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml
from tests.support.nbdtls import SERVER_NAME, credentials, serve
from tests.support.rangehttp import serving

pytestmark = pytest.mark.slow
MIB = 1 << 20
USER, PASSWORD, WRONG = "disk-reader", "Hot-Pa55-w0rd", "not-the-Pa55"
SECRET_UUID = "2f0c9a61-8e1d-4c5b-b7a2-93d4e6f1a0c8"


def _image(path: Path, marker: str) -> None:
    """A raw image of 1 MiB starting with ``marker`` (what the guest reads back)."""
    path.write_bytes(marker.encode().ljust(MIB, b"\0"))


def _objects(d: Daemon, name: str) -> dict[str, str]:
    """QEMU's user-created objects (qom-list /objects): id → type."""
    query = {"execute": "qom-list", "arguments": {"path": "/objects"}}
    out = d.cli("qemu-monitor-command", name, json.dumps(query)).ok().out
    return {str(o["name"]): str(o["type"]) for o in json.loads(out)["return"]}


def _secrets(d: Daemon, name: str) -> list[str]:
    return sorted(ident for ident, kind in _objects(d, name).items() if kind == "child<secret>")


def _read(console: Console, serial: str, size: int) -> str:
    dev = console.virtio_disk(serial)
    return console.run(f"dd if=/dev/{dev} bs=512 count=1 2>/dev/null | head -c {size}")


def test_plug_http_with_auth_and_nbd_over_tls(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    served = tmp_path / "served"
    served.mkdir()
    _image(served / "web.raw", "pyvirt-web-disk")
    _image(tmp_path / "boot.raw", "pyvirt-nbd-start")
    _image(tmp_path / "plug.raw", "pyvirt-nbd-plugged")
    (tmp_path / "secret.xml").write_text(
        f"<secret ephemeral='no' private='yes'><uuid>{SECRET_UUID}</uuid>"
        "<usage type='iscsi'><target>hot-web</target></usage></secret>"
    )
    d.cli("secret-define", str(tmp_path / "secret.xml")).ok()
    (tmp_path / "password").write_text(WRONG)
    d.cli("secret-set-value", SECRET_UUID, "--file", str(tmp_path / "password"), "--plain").ok()
    server_dir = tmp_path / "nbd-server"
    credentials(tmp_path / "ca", server_dir, d.root / "etc/pki/pyvirt/qemu")

    def nbd(port: int, export: str, target: str, serial: str) -> str:
        return (
            "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
            f"<source protocol='nbd' name='{export}' tls='yes' tlsHostname='{SERVER_NAME}'>"
            f"<host name='127.0.0.1' port='{port}'/></source><target dev='{target}' bus='virtio'/>"
            f"<serial>{serial}</serial><readonly/></disk>"
        )

    with (
        serving(served, auth=(USER, PASSWORD)) as (http_port, requests),
        serve(server_dir, tmp_path / "boot.raw", "raw", "boot", readonly=True) as boot_port,
        serve(server_dir, tmp_path / "plug.raw", "raw", "plug", readonly=True) as plug_port,
    ):
        (tmp_path / "hotnet.xml").write_text(
            domain_xml("hotnet", extra_devices=nbd(boot_port, "boot", "vdb", "NBD0"))
        )
        d.cli("define", str(tmp_path / "hotnet.xml")).ok()
        d.cli("start", "hotnet").ok()
        console = Console(d, "hotnet")
        console.expect("pyvirt-guest: ready")
        assert _read(console, "NBD0", 16) == "pyvirt-nbd-start"
        assert _secrets(d, "hotnet") == []  # started without any secret, master key included

        web = (
            "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
            f"<source protocol='http' name='/web.raw'><host name='127.0.0.1' port='{http_port}'/>"
            f"<auth username='{USER}'><secret type='iscsi' uuid='{SECRET_UUID}'/></auth></source>"
            "<target dev='vdc' bus='virtio'/><serial>WEB1</serial><readonly/></disk>"
        )
        (tmp_path / "web.xml").write_text(web)
        (tmp_path / "plug.xml").write_text(nbd(plug_port, "plug", "vdd", "NBD1"))

        # The wrong password: QEMU's reason, and nothing left (no node, no secret, not the master key).
        refused = d.cli("attach-device", "hotnet", str(tmp_path / "web.xml"), "--live")
        assert refused.rc == 1 and "401" in refused.err, refused
        assert any(r.startswith("HEAD /web.raw") for r in requests), requests  # QEMU did ask
        assert _secrets(d, "hotnet") == []
        assert "vdc" not in d.cli("domblklist", "hotnet").ok().out

        (tmp_path / "password").write_text(PASSWORD)
        d.cli("secret-set-value", SECRET_UUID, "--file", str(tmp_path / "password"), "--plain").ok()
        d.cli("attach-device", "hotnet", str(tmp_path / "web.xml"), "--live").ok()
        secrets = _secrets(d, "hotnet")
        assert len(secrets) == 2 and "masterKey0" in secrets, secrets  # the key, and the password
        (auth_secret,) = [s for s in secrets if s != "masterKey0"]
        assert auth_secret.endswith("-storage-auth-secret0"), secrets
        assert _read(console, "WEB1", 15) == "pyvirt-web-disk"

        before = set(_objects(d, "hotnet"))
        d.cli("attach-device", "hotnet", str(tmp_path / "plug.xml"), "--live").ok()
        (tls,) = set(_objects(d, "hotnet")) - before
        assert _objects(d, "hotnet")[tls] == "child<tls-creds-x509>" and tls.endswith("-storage-tls0")
        assert _read(console, "NBD1", 18) == "pyvirt-nbd-plugged"
        live = d.cli("dumpxml", "hotnet").ok().out
        assert f"<secret type='iscsi' uuid='{SECRET_UUID}'/>" in live and "tls='yes'" in live

        # Unplugged: their objects go; the started disk's TLS object and the master key stay.
        d.cli("detach-device", "hotnet", str(tmp_path / "web.xml"), "--live").ok()
        d.cli("detach-device", "hotnet", str(tmp_path / "plug.xml"), "--live").ok()
        console.virtio_disk("WEB1", present=False)
        console.virtio_disk("NBD1", present=False)
        left = _objects(d, "hotnet")
        assert auth_secret not in left and tls not in left, left
        assert _secrets(d, "hotnet") == ["masterKey0"]
        assert sum(kind == "child<tls-creds-x509>" for kind in left.values()) == 1, left
        assert _read(console, "NBD0", 16) == "pyvirt-nbd-start"

        qemu_log = (d.root / "var/log/pyvirt/qemu/hotnet.log").read_text()
        for log in (qemu_log, d.log.read_text()):
            assert PASSWORD not in log and WRONG not in log
        d.cli("destroy", "hotnet").ok()


# libvirt 9.0 as the oracle of the objects a plug adds and an unplug or a failed plug removes.
ORACLE_QEMU_CONF = """
stdio_handler = "file"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
"""
SERVE = """
import sys, time
from pathlib import Path
from tests.support.rangehttp import serving
with serving(Path(sys.argv[1]), auth=(sys.argv[2], sys.argv[3])) as (port, _):
    print(port, flush=True)
    time.sleep(3600)
"""


def test_libvirt_adds_and_removes_the_same_objects(tmp_path: Path) -> None:
    """A paused domain of a private libvirtd 9.0 gets the same disk (``<auth>`` and ``<cookies>``)
    plugged: with a wrong password it fails and leaves no object; with the right one the objects it
    adds are those pyvirt adds (the same names under the disk's node name). (Its unplug, which waits
    for a guest that releases the device, is not run here: libvirt's qemuBlockStorageSourceChainDetach
    deletes the nodes, then these objects, as pyvirt's does.) The HTTP server runs in the oracle's
    network namespace."""
    import os
    import subprocess
    import sys

    from pyvirt.conf.domain_xml import load_domain_xml
    from pyvirt.daemon.blockdevs import _server_objects
    from tests.support.virtinstall import REPO, Oracle

    reason = Oracle.missing()
    if reason:
        pytest.skip(f"libvirt 9.0 is not the oracle here: {reason}")
    served = tmp_path / "served"
    served.mkdir()
    _image(served / "web.raw", "pyvirt-web-disk")
    oracle = Oracle(qemu_conf=ORACLE_QEMU_CONF)
    oracle.start()
    server = None
    try:
        server = subprocess.Popen(
            [*oracle._enter(), sys.executable, "-c", SERVE, str(served), USER, PASSWORD],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        port = int(server.stdout.readline())
        (tmp_path / "secret.xml").write_text(
            f"<secret ephemeral='no' private='yes'><uuid>{SECRET_UUID}</uuid>"
            "<usage type='iscsi'><target>hot-web</target></usage></secret>"
        )
        oracle.virsh("secret-define", str(tmp_path / "secret.xml"))
        oracle.virsh("secret-set-value", SECRET_UUID, "--base64", _b64(WRONG))
        (tmp_path / "lv.xml").write_text(domain_xml("lvhot"))
        oracle.virsh("define", str(tmp_path / "lv.xml"))
        oracle.virsh("start", "--paused", "lvhot")
        web = (
            "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
            f"<source protocol='http' name='/web.raw'><host name='127.0.0.1' port='{port}'/>"
            f"<auth username='{USER}'><secret type='iscsi' uuid='{SECRET_UUID}'/></auth>"
            "<cookies><cookie name='session'>c00kie-value</cookie></cookies></source>"
            "<target dev='vdc' bus='virtio'/><readonly/></disk>"
        )
        (tmp_path / "web.xml").write_text(web)

        def objects() -> dict[str, str]:
            query = '{"execute":"qom-list","arguments":{"path":"/objects"}}'
            reply = json.loads(oracle.virsh("qemu-monitor-command", "lvhot", query))
            return {str(o["name"]): str(o["type"]) for o in reply["return"]}

        before = objects()
        failed = oracle._virsh("attach-device", "lvhot", str(tmp_path / "web.xml"), "--live")
        assert failed.returncode != 0 and "401" in failed.stderr, failed
        assert objects() == before  # nothing left, as pyvirt (whose master key also goes)

        oracle.virsh("secret-set-value", SECRET_UUID, "--base64", _b64(PASSWORD))
        oracle.virsh("attach-device", "lvhot", str(tmp_path / "web.xml"), "--live")
        added = {name: kind for name, kind in objects().items() if name not in before}
        disk = load_domain_xml(domain_xml("x", extra_devices=web)).devices.disks[-1]
        ours = {ident.removeprefix("NODE") for ident in _server_objects("NODE", disk)}
        node = next(iter(added)).split("-storage-")[0]  # libvirt's node name (libvirt-N)
        assert {name.removeprefix(node) for name in added} == ours, added
        assert set(added.values()) == {"child<secret>"}
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        oracle._virsh("destroy", "lvhot")
        oracle.stop()


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()

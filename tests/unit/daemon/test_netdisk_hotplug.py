"""Hot-plug of a network disk whose own source has ``<auth>``, ``<cookies>`` or NBD ``tls='yes'``
(daemon.blockdevs, daemon.disk_secrets) against a scripted QEMU: its secret objects (encrypted with the
master key, added first when the domain started without one) and its TLS credentials object go over
QMP before its nodes, are deleted after them at unplug, and a plug that fails leaves no object (the
master key it brought included); the values never appear in clear. A TLS plug into a domain that did
not start with NBD TLS is refused by name before anything is sent. tests/integration/daemon/
test_netdisk_hotplug.py does the same on a real QEMU."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from pyvirt.daemon import devices
from pyvirt.daemon.secrets import SecretStore
from pyvirt.errors import NotFound, OperationFailed, UnsupportedConfig
from tests.support.fakeqmp import Bench, FakeQemu, QmpError, run_bench

PASSWORD = b"s3cret-http-password"
HTTP = """<disk type='network' device='disk'><driver name='qemu' type='raw'/>
<source protocol='http' name='/disk.raw'><host name='127.0.0.1' port='8080'/>
<auth username='alice'><secret type='iscsi' usage='web'/></auth>
<cookies><cookie name='session'>c00kie-value</cookie></cookies></source>
<target dev='vdb' bus='virtio'/><readonly/></disk>"""
NBD = """<disk type='network' device='disk'><driver name='qemu' type='raw'/>
<source protocol='nbd' name='export' tls='yes'><host name='127.0.0.1' port='10809'/></source>
<target dev='vdc' bus='virtio'/></disk>"""
AUTH_ID, COOKIE_ID = "pyvirt-1-storage-auth-secret0", "pyvirt-1-storage-httpcookie-secret0"


def _objects(qemu: FakeQemu) -> set[str]:
    """The fake's object-add/object-del model: the ids of the objects it holds."""
    held: set[str] = set()

    async def add(args: dict[str, Any]) -> Any:
        if args["id"] in held:
            raise QmpError(f"attempt to add duplicate property '{args['id']}' to object (type 'container')")
        held.add(str(args["id"]))
        return {}

    async def delete(args: dict[str, Any]) -> Any:
        if args["id"] not in held:
            raise QmpError(f"object '{args['id']}' not found")
        held.discard(str(args["id"]))
        return {}

    qemu.handle("object-add", add)
    qemu.handle("object-del", delete)
    return held


def _secret(b: Bench, root: Path) -> None:
    b.reg.secrets = SecretStore(root / "secrets")
    secret = b.reg.secrets.define(
        "<secret ephemeral='no'><usage type='iscsi'><target>web</target></usage></secret>"
    )
    b.reg.secrets.set_value(secret, PASSWORD)


def _names(qemu: FakeQemu) -> list[str]:
    """Each command with what it names (object id, node name, device id)."""
    out = []
    for name, args in qemu.commands:
        what = args.get("id") or args.get("node-name") if isinstance(args, dict) else None
        out.append(f"{name} {what}" if what else name)
    return out


def test_credentials_go_before_the_nodes_and_after_them(root: Path, errors: list[logging.LogRecord]) -> None:
    sets: list[set[str]] = []

    def script(qemu: FakeQemu) -> None:
        sets.append(_objects(qemu))

    async def body(b: Bench) -> None:
        _secret(b, root)
        await b.define("d1")
        await b.reg.start("d1")
        qemu, objects = b.host["d1"], sets[0]
        qemu.commands.clear()
        await devices.attach(b.reg, "d1", HTTP, live=True, config=False)
        names = [n for n in _names(qemu) if not n.startswith("query")]
        assert names == [
            "object-add masterKey0",  # the domain started without one
            f"object-add {AUTH_ID}",
            f"object-add {COOKIE_ID}",
            "blockdev-add pyvirt-1-storage",
            "blockdev-add pyvirt-1-format",
            "device_add virtio-disk1",
        ]
        sent = repr(qemu.commands)
        assert PASSWORD.decode() not in sent and "c00kie-value" not in sent
        added = {args["id"]: args for name, args in qemu.commands if name == "object-add"}
        assert all(
            added[i]["keyid"] == "masterKey0" and added[i]["format"] == "base64" for i in (AUTH_ID, COOKIE_ID)
        )
        storage = next(args for name, args in qemu.commands if name == "blockdev-add")
        assert (storage["driver"], storage["username"]) == ("http", "alice")
        assert (storage["password-secret"], storage["cookie-secret"]) == (AUTH_ID, COOKIE_ID)
        assert objects == {"masterKey0", AUTH_ID, COOKIE_ID}
        qemu.commands.clear()
        await devices.detach(b.reg, "d1", HTTP, live=True, config=False)
        await b.event("device-removed", "virtio-disk1")
        names = [n for n in _names(qemu) if n.startswith(("blockdev-del", "object-del"))]
        assert names == [
            "blockdev-del pyvirt-1-format",
            "blockdev-del pyvirt-1-storage",
            f"object-del {AUTH_ID}",
            f"object-del {COOKIE_ID}",
        ]
        assert objects == {"masterKey0"}  # kept for the next plug, as libvirt keeps its own

    run_bench(root, body, script)


def test_a_failed_plug_leaves_no_object(root: Path, errors: list[logging.LogRecord]) -> None:
    sets: list[set[str]] = []

    def script(qemu: FakeQemu) -> None:
        sets.append(_objects(qemu))

        async def refuse(args: dict[str, Any]) -> Any:
            raise QmpError("CURL: The requested URL returned error: 401")

        qemu.handle("blockdev-add", refuse)

    async def body(b: Bench) -> None:
        _secret(b, root)
        await b.define("d1")
        await b.reg.start("d1")
        qemu, objects = b.host["d1"], sets[0]
        with pytest.raises(OperationFailed, match="401"):
            await devices.attach(b.reg, "d1", HTTP, live=True, config=False)
        deleted = [n for n in _names(qemu) if n.startswith("object-del")]
        assert deleted == [f"object-del {COOKIE_ID}", f"object-del {AUTH_ID}", "object-del masterKey0"]
        assert objects == set()
        assert not list(b.layout.qemu_run_dir.glob("d1.channels/master-key.aes"))
        obj = b.reg.lookup("d1")
        assert obj.live is not None and obj.live.devices.disks == []
        assert obj.proc is not None and "vdb" not in obj.proc.record.blockdevs
        # the next plug brings the key again
        qemu.handle("blockdev-add", lambda args: _ok())
        await devices.attach(b.reg, "d1", HTTP, live=True, config=False)
        assert objects == {
            "masterKey0",
            "pyvirt-2-storage-auth-secret0",
            "pyvirt-2-storage-httpcookie-secret0",
        }

    run_bench(root, body, script)


async def _ok() -> Any:
    return {}


def test_a_missing_secret_is_refused_before_anything(root: Path, errors: list[logging.LogRecord]) -> None:
    async def body(b: Bench) -> None:
        b.reg.secrets = SecretStore(root / "secrets")
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        qemu.commands.clear()
        with pytest.raises(NotFound, match="no secret with matching usage 'web'"):
            await devices.attach(b.reg, "d1", HTTP, live=True, config=False)
        assert not any(name in ("object-add", "blockdev-add", "device_add") for name, _ in qemu.commands)

    run_bench(root, body)


def test_nbd_tls_plugs_its_credentials_object(root: Path, errors: list[logging.LogRecord]) -> None:
    sets: list[set[str]] = []

    def script(qemu: FakeQemu) -> None:
        sets.append(_objects(qemu))

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu, objects, obj = b.host["d1"], sets[0], b.reg.lookup("d1")
        qemu.commands.clear()
        with pytest.raises(
            UnsupportedConfig, match=r"hot-plugging disk 'vdc' over NBD TLS.*started with an NBD"
        ):
            await devices.attach(b.reg, "d1", NBD, live=True, config=False)
        assert not any(name in ("object-add", "blockdev-add", "device_add") for name, _ in qemu.commands)
        assert obj.proc is not None  # as if it started with NBD TLS: QEMU may read the credentials
        directory = b.layout.pki_dir / "qemu"
        obj.proc.record.access[str(directory / "client-key.pem")] = "r"
        reply = await devices.attach(b.reg, "d1", NBD, live=True, config=False)
        tls = "pyvirt-2-storage-tls0"  # the refused plug took pyvirt-1
        names = [n for n in _names(qemu) if n.startswith(("object-add", "blockdev-add"))]
        assert names == [f"object-add {tls}", "blockdev-add pyvirt-2-storage", "blockdev-add pyvirt-2-format"]
        creds = next(args for name, args in qemu.commands if name == "object-add")
        assert creds == {
            "qom-type": "tls-creds-x509",
            "id": tls,
            "dir": str(directory),
            "endpoint": "client",
            "verify-peer": True,
        }
        storage = next(args for name, args in qemu.commands if name == "blockdev-add")
        assert (storage["driver"], storage["tls-creds"]) == ("nbd", tls)
        qemu.commands.clear()
        await devices.detach(b.reg, "d1", NBD, live=True, config=False)
        await b.event("device-removed", reply["alias"])
        names = [n for n in _names(qemu) if n.startswith(("blockdev-del", "object-del"))]
        assert names == ["blockdev-del pyvirt-2-format", "blockdev-del pyvirt-2-storage", f"object-del {tls}"]
        assert objects == set()

    run_bench(root, body, script)

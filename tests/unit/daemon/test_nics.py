"""NIC hot-plug against a scripted QEMU: a detach waits for the guest without holding the domain, a
destroy ends that wait, and each NIC's netdev is the one it was started or plugged with."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pyvirt.conf.domain import InterfaceConfig
from pyvirt.daemon import nics
from pyvirt.errors import InvalidState, OperationFailed, PyvirtError
from tests.support.argv import unplaced
from tests.support.fakeqmp import DOMAIN_XML, Bench, FakeQemu, run_bench


def test_detach_waits_without_the_lock_and_destroy_ends_the_wait(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    def script(qemu: FakeQemu) -> None:
        qemu.auto_release = False  # the guest never answers the unplug request

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        detach = asyncio.ensure_future(
            nics.detach_interface(b.reg, "d1", "52:54:00:aa:00:01", live=True, config=False)
        )
        await qemu.received("device_del").wait()
        # While the guest takes its time, the domain is free for other operations.
        await b.reg.suspend("d1")
        await b.reg.resume("d1")
        assert not detach.done()
        await b.reg.destroy("d1")
        assert b.state("d1") == "shut off (destroyed)"
        with pytest.raises(InvalidState, match="domain is not running"):
            await detach

    run_bench(root, body, script)


def test_detach_completes_when_the_guest_releases_the_device(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    from pyvirt.daemon import nics

    def script(qemu: FakeQemu) -> None:
        qemu.auto_release = False

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        obj = b.reg.lookup("d1")
        assert obj.live is not None and obj.config is not None
        mac = "52:54:00:aa:00:01"
        with pytest.raises(OperationFailed, match="it is removed when the guest releases it"):
            await nics.detach_interface(b.reg, "d1", mac, live=True, config=True, timeout=0.01)
        assert len(obj.config.devices.interfaces) == 0  # the config changed at once
        assert len(obj.live.devices.interfaces) == 1  # the guest still has it
        # A second request waits for the same removal instead of asking QEMU again.
        again = asyncio.ensure_future(nics.detach_interface(b.reg, "d1", mac, live=True, config=False))
        await asyncio.sleep(0.05)
        assert qemu.count("device_del") == 1 and not again.done()
        qemu.guest_release("net0")
        await again
        assert obj.live.devices.interfaces == []
        assert ("netdev_del", {"id": "hostnet0"}) in qemu.commands
        assert "52:54:00:aa:00:01" not in (b.layout.qemu_run_dir / "d1.xml").read_text()

    run_bench(root, body, script)


def test_nics_with_user_aliases_hotplug_and_unplug_with_their_own_netdevs(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    """A NIC's netdev is hostnetN by its place at start, whatever its alias: a detach removes that
    netdev, and a hot-plugged NIC never takes a netdev id already in use."""

    async def body(b: Bench) -> None:
        xml = DOMAIN_XML.format(name="d1", on_poweroff="destroy", on_crash="destroy")
        xml = xml.replace("<model type='virtio'/>", "<model type='virtio'/><alias name='ua-lan'/>")
        await b.reg.define(xml)
        await b.reg.start("d1")
        qemu = b.host["d1"]
        assert "virtio-net-pci,netdev=hostnet0,id=ua-lan,mac=52:54:00:aa:00:01" in unplaced(
            b.host.argvs["d1"]
        )
        added = await nics.attach_interface(
            b.reg, "d1", {"type": "user", "mac": "52:54:00:aa:00:02"}, live=True, config=False
        )
        assert added["mac"] == "52:54:00:aa:00:02"
        netdevs = [args["id"] for name, args in qemu.commands if name == "netdev_add"]
        assert netdevs == ["hostnet1"]
        await nics.detach_interface(b.reg, "d1", "52:54:00:aa:00:01", live=True, config=False)
        assert ("netdev_del", {"id": "hostnet0"}) in qemu.commands
        await nics.attach_interface(b.reg, "d1", {"type": "user"}, live=True, config=False)
        netdevs = [args["id"] for name, args in qemu.commands if name == "netdev_add"]
        assert netdevs == ["hostnet1", "hostnet2"]
        assert ("netdev_del", {"id": "hostnet1"}) not in qemu.commands
        assert b.record("d1")["netdevs"] == {"net1": "hostnet1", "net2": "hostnet2"}

    run_bench(root, body)


def test_a_vhostuser_nic_plugs_its_socket_as_a_chardev_and_unplugs_it(
    root: Path, errors: list[logging.LogRecord]
) -> None:
    """vhostuser, live: chardev-add of the socket (QEMU the client), its vhost-user netdev on it, the
    device; once the guest releases it, the netdev and then the chardev go. Mode server is refused
    before QEMU is asked anything."""
    import socket

    def script(qemu: FakeQemu) -> None:
        async def ok(args: dict[str, object]) -> object:
            return {}

        qemu.handle("chardev-add", ok)
        qemu.handle("chardev-remove", ok)

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        qemu = b.host["d1"]
        path = root / "vhu.sock"
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        backend.bind(str(path))
        backend.listen(4)  # the daemon's probe only connects
        spec = {"type": "vhostuser", "socket": {"path": str(path), "mode": "server"}, "model": "virtio"}
        server = InterfaceConfig(**spec)  # type: ignore[arg-type]
        with pytest.raises(PyvirtError, match="in mode 'server'"):
            await nics.attach_nic(b.reg, "d1", server, live=True, config=False)
        assert not any(name == "chardev-add" for name, _ in qemu.commands)
        client = InterfaceConfig(**{**spec, "socket": {"path": str(path), "mode": "client"}})  # type: ignore[arg-type]
        added = await nics.attach_nic(b.reg, "d1", client, live=True, config=False)
        plugged = [(name, args) for name, args in qemu.commands if name in ("chardev-add", "netdev_add")]
        assert plugged == [
            (
                "chardev-add",
                {
                    "id": "charnet1",
                    "backend": {
                        "type": "socket",
                        "data": {"addr": {"type": "unix", "data": {"path": str(path)}}, "server": False},
                    },
                },
            ),
            ("netdev_add", {"type": "vhost-user", "id": "hostnet1", "chardev": "charnet1"}),
        ]
        await nics.detach_interface(b.reg, "d1", added["mac"], live=True, config=False)
        names = [name for name, _ in qemu.commands]
        assert names[-2:] == ["netdev_del", "chardev-remove"], names
        assert ("chardev-remove", {"id": "charnet1"}) in qemu.commands
        backend.close()

    run_bench(root, body, script)

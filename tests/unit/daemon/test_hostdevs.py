"""Host devices given to a domain (pyvirt.daemon.hostdevs) by a daemon over a scripted QEMU
(tests/support/fakeqmp.py) and a fake sysfs/devfs tree and kernel (tests/support/fakesysfs.py): what a
start writes to move a managed PCI device to vfio-pci, the device nodes handed to QEMU's user, the
memlock limit, what a stop or a failed start gives back, the refusals (each before any write), and
hot-plug and unplug through the same steps. What a real host does is in the integration tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.daemon import devices, hostdevs, saves
from pyvirt.daemon.confinement import Confinement
from pyvirt.daemon.domains import DomainRegistry
from pyvirt.daemon.hostdevs import HostdevState
from pyvirt.errors import InvalidState, PyvirtError, UnsupportedConfig
from pyvirt.qemu.ownership import Identity
from pyvirt.qemu.process import RunRecord
from pyvirt.revert import Revert
from tests.support.fakeqmp import DOMAIN_XML, Bench, FakeQemu, QmpError, run_bench
from tests.support.fakesysfs import FakeKernel

NIC = "0000:06:12.5"
QEMU_USER = Identity("nobody", "nogroup", 65534, 65534, ())
MEMORY_KIB = 131072  # DOMAIN_XML's
VFIO_LIMIT = (MEMORY_KIB + 1024 * 1024) * 1024  # libvirt's RLIMIT_MEMLOCK for VFIO: memory + 1 GiB


def pci(name: str = NIC, managed: str = "yes") -> str:
    domain, bus, rest = name.split(":")
    slot, function = rest.split(".")
    return (
        f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source><address domain='0x{domain}' "
        f"bus='0x{bus}' slot='0x{slot}' function='0x{function}'/></source></hostdev>"
    )


USB = (
    "<hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/><product id='0xc52b'/></source>"
    "</hostdev>"
)
VDPA = "<interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/><model type='virtio'/></interface>"
MDEV_UUID = "c2177883-f1bb-47f0-914d-32a22e3a8804"
MDEV = (
    f"<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{MDEV_UUID}'/>"
    "</source></hostdev>"
)


def domain(name: str, devices_xml: str = "", extra: str = "") -> str:
    xml = DOMAIN_XML.format(name=name, on_poweroff="destroy", on_crash="destroy")
    return xml.replace("</devices>", devices_xml + "</devices>").replace("<os>", extra + "<os>")


@pytest.fixture(autouse=True)
def limits(monkeypatch: pytest.MonkeyPatch) -> dict[int, tuple[int, int]]:
    """The daemon may give QEMU any locked-memory limit (it needs CAP_SYS_RESOURCE, which this host
    may lack: the real setrlimit is tested in tests/unit/qemu/test_process_memlock.py); a running
    QEMU's limit, set by prlimit, is kept here by pid."""
    monkeypatch.setattr(hostdevs, "memlock_ceiling", lambda: None)
    limits: dict[int, tuple[int, int]] = {}
    monkeypatch.setattr(hostdevs, "get_memlock", lambda pid: limits.get(pid, (8 << 20, 8 << 20)))
    monkeypatch.setattr(hostdevs, "set_memlock", limits.__setitem__)
    return limits


@pytest.fixture
def kernel(root: Path) -> FakeKernel:
    os.chmod(root, 0o755)  # QEMU's user goes through it to its device nodes, as through /dev
    kernel = FakeKernel(root / "host").with_vfio()
    kernel.add_pci(NIC, driver="e1000e", group="12")
    return kernel


def run(
    root: Path,
    kernel: FakeKernel,
    body: Callable[[Bench], Awaitable[None]],
    script: Callable[[FakeQemu], None] | None = None,
) -> None:
    async def with_host(b: Bench) -> None:
        b.reg.hostdevs.host = kernel
        b.reg.confinement = Confinement(QEMU_USER, None, "")
        await body(b)

    run_bench(root, with_host, script)


def owner(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid, st.st_mode & 0o777


def device_args(b: Bench, name: str, driver: str) -> str:
    argv = b.host.argvs[name]
    found = [arg for arg in argv if arg.startswith(driver + ",")]
    assert len(found) == 1, argv
    return found[0]


def run_files(b: Bench, name: str) -> list[str]:
    return sorted(p.name for p in b.layout.qemu_run_dir.glob(f"{name}.*"))


# ------------------------------------------------------------------------------------------ start


def test_a_managed_pci_device_goes_to_vfio_pci_for_the_run_and_back_at_stop(
    root: Path, kernel: FakeKernel
) -> None:
    group_node = kernel.dev / "vfio/12"

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", pci()))
        await b.reg.start("d1")
        assert f"host={NIC},id=hostdev0" in device_args(b, "d1", "vfio-pci")
        assert kernel.pci_driver(NIC) == "vfio-pci"
        record = b.record("d1")
        assert record["hostdevs"] == [
            {
                "type": "pci",
                "name": NIC,
                "alias": "hostdev0",
                "managed": True,
                "group": "12",
                "driver": "e1000e",
                "bound": True,
                "nodes": [str(group_node)],
            }
        ]
        assert record["memlock_bytes"] == VFIO_LIMIT
        assert owner(group_node) == (65534, 65534, 0o600)  # QEMU's user opens the group
        assert record["owners"][str(group_node)] == [0, 0, 0o600]
        assert record["access"][str(group_node)] == "rw"  # Landlock
        assert owner(kernel.dev / "vfio/vfio") == (0, 0, 0o666)  # already open to all: left as it is
        live = b.reg.lookup("d1").live
        assert live is not None and live.devices.hostdevs[0].alias == "hostdev0"

        await b.reg.destroy("d1")
        assert kernel.pci_driver(NIC) == "e1000e" and kernel.override(NIC) == "(null)"
        assert owner(group_node) == (0, 0, 0o600)
        assert b.reg.hostdevs.holders == {}

    run(root, kernel, body)


def test_a_failed_start_gives_everything_back(root: Path, kernel: FakeKernel) -> None:
    async def refuse(args: dict[str, Any]) -> Any:
        raise QmpError("the guest cannot run")

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", pci() + USB))
        kernel.add_usb("1-1", 1, 4, 0x046D, 0xC52B)
        with pytest.raises(PyvirtError, match="the guest cannot run"):
            await b.reg.start("d1")
        assert kernel.pci_driver(NIC) == "e1000e" and kernel.override(NIC) == "(null)"
        assert owner(kernel.dev / "vfio/12") == (0, 0, 0o600)
        assert owner(kernel.dev / "bus/usb/001/004") == (0, 0, 0o664)
        assert run_files(b, "d1") == []
        assert b.reg.hostdevs.holders == {}
        assert b.state("d1").startswith("shut off")

    run(root, kernel, body, script=lambda qemu: qemu.handle("cont", refuse))


@pytest.mark.parametrize(
    ("setup", "hostdev", "message"),
    [
        (
            lambda k: k.add_pci("0000:06:12.6", driver="snd_hda_intel", group="12"),
            pci(),
            "PCI device 0000:06:12.6, in IOMMU group 12 with host PCI device 0000:06:12.5, is on driver "
            "'snd_hda_intel': every endpoint of the group must be on vfio-pci or on no driver",
        ),
        (lambda k: None, pci(managed="no"), "is on 'e1000e', not on vfio-pci: with managed='no'"),
        (
            lambda k: k.add_pci("0000:07:00.0", driver="igb"),
            pci("0000:07:00.0"),
            "host PCI device 0000:07:00.0 has no IOMMU group",
        ),
        (lambda k: None, pci("0000:08:00.0"), "host PCI device 0000:08:00.0 does not exist"),
        (
            lambda k: (k.dev / "vfio/vfio").unlink(),
            pci(),
            f"host PCI device {NIC}: no VFIO on this host",
        ),
        (lambda k: None, MDEV, f"mediated device {MDEV_UUID} does not exist"),
        (lambda k: None, USB, "Did not find USB device 046d:c52b"),
    ],
)
def test_a_device_that_cannot_be_given_is_refused_by_name_before_any_change(
    root: Path, kernel: FakeKernel, setup: Callable[[FakeKernel], None], hostdev: str, message: str
) -> None:
    setup(kernel)

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", "<controller type='usb' model='qemu-xhci'/>" + hostdev))
        with pytest.raises(PyvirtError) as raised:
            await b.reg.start("d1")
        assert message in str(raised.value)
        assert kernel.writes == []
        assert owner(kernel.dev / "vfio/12") == (0, 0, 0o600)
        assert run_files(b, "d1") == []
        assert "d1" not in b.host.argvs  # no QEMU was started

    run(root, kernel, body)


def test_the_group_may_hold_bridges_unbound_devices_and_the_domains_own(
    root: Path, kernel: FakeKernel
) -> None:
    kernel.add_pci("0000:00:1c.0", driver="pcieport", group="12", klass=0x060400)  # a bridge
    kernel.add_pci("0000:06:12.6", driver="snd_hda_intel", group="12")  # given to the domain too
    kernel.add_pci("0000:06:12.7", group="12")  # on no driver

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", pci() + pci("0000:06:12.6")))
        await b.reg.start("d1")
        assert kernel.pci_driver("0000:06:12.6") == "vfio-pci"
        assert kernel.pci_driver("0000:00:1c.0") == "pcieport"
        assert [c["nodes"] for c in b.record("d1")["hostdevs"]] == [[str(kernel.dev / "vfio/12")]] * 2
        await b.reg.destroy("d1")
        assert kernel.pci_driver("0000:06:12.6") == "snd_hda_intel"
        assert kernel.pci_driver("0000:06:12.7") is None
        assert owner(kernel.dev / "vfio/12") == (0, 0, 0o600)

    run(root, kernel, body)


def test_two_domains_cannot_hold_one_device_nor_one_group_even_across_a_daemon_restart(
    root: Path, kernel: FakeKernel
) -> None:
    kernel.add_pci("0000:06:12.6", group="12")

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", pci()))
        await b.reg.define(domain("d2", pci()))
        await b.reg.define(domain("d3", pci("0000:06:12.6")))
        await b.reg.start("d1")
        for reg in (b.reg, await restarted(b, kernel)):
            with pytest.raises(InvalidState, match=f"PCI device {NIC} is in use by driver QEMU, domain d1"):
                await reg.start("d2")
            with pytest.raises(
                InvalidState,
                match=r"IOMMU group 12 of PCI device 0000:06:12\.6 is in use by driver QEMU, domain d1",
            ):
                await reg.start("d3")
        await b.reg.destroy("d1")
        assert kernel.pci_driver(NIC) == "e1000e"  # the new daemon reattached it
        await b.reg.start("d2")  # free again
        assert kernel.pci_driver(NIC) == "vfio-pci"
        await b.reg.destroy("d2")

    run(root, kernel, body)


async def restarted(b: Bench, kernel: FakeKernel) -> DomainRegistry:
    """A new daemon on the same host (and the same fake tree) re-adopting the running domains."""
    await b.reg.shutdown_all()
    b.reg = DomainRegistry(b.layout, b.bus, accel_check=lambda: (False, "no KVM"), spawn=b.host.spawn)
    b.reg.hostdevs.host = kernel
    b.reg.confinement = Confinement(QEMU_USER, None, "")
    b.reg.load_configs()
    await b.reg.reattach_all()
    return b.reg


def test_an_unmanaged_device_must_be_on_vfio_pci_and_stays_there(root: Path, kernel: FakeKernel) -> None:
    kernel.bind_vfio(NIC)  # virsh nodedev-detach, done by the user
    kernel.writes.clear()

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", pci(managed="no")))
        await b.reg.start("d1")
        assert b.record("d1")["hostdevs"][0]["bound"] is False
        await b.reg.destroy("d1")
        assert kernel.writes == []
        assert kernel.pci_driver(NIC) == "vfio-pci"

    run(root, kernel, body)


def test_a_usb_device_is_found_by_vendor_and_its_node_handed_over(root: Path, kernel: FakeKernel) -> None:
    kernel.add_usb("1-1", 1, 4, 0x046D, 0xC52B)
    node = kernel.dev / "bus/usb/001/004"

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", "<controller type='usb' model='qemu-xhci'/>" + USB))
        await b.reg.start("d1")
        assert "hostdevice=/dev/bus/usb/001/004,id=hostdev0" in device_args(b, "d1", "usb-host")
        live = b.reg.lookup("d1").live
        assert live is not None and live.devices.hostdevs[0].source == {"bus": 1, "device": 4}
        assert owner(node) == (65534, 65534, 0o664)
        assert b.record("d1")["memlock_bytes"] == 0  # no VFIO
        await b.reg.destroy("d1")
        assert owner(node) == (0, 0, 0o664)

    run(root, kernel, body)


def test_a_mediated_device_hands_its_group_over(root: Path, kernel: FakeKernel) -> None:
    kernel.add_mdev(MDEV_UUID, "30")

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", MDEV))
        await b.reg.start("d1")
        assert f"sysfsdev=/sys/bus/mdev/devices/{MDEV_UUID}" in device_args(b, "d1", "vfio-pci")
        assert owner(kernel.dev / "vfio/30") == (65534, 65534, 0o600)
        assert b.record("d1")["memlock_bytes"] == VFIO_LIMIT
        with pytest.raises(
            InvalidState, match="cannot migrate a domain with <hostdev mode='subsystem' type='mdev'>"
        ):
            await saves.save(b.reg, "d1", str(root / "d1.save"))
        await b.reg.destroy("d1")
        assert owner(kernel.dev / "vfio/30") == (0, 0, 0o600)
        assert kernel.writes == []

    run(root, kernel, body)


@pytest.mark.parametrize(
    ("devices_xml", "extra", "expected"),
    [
        (pci(), "", (MEMORY_KIB + 1024 * 1024) * 1024),
        (pci(), "<memtune><hard_limit unit='KiB'>4194304</hard_limit></memtune>", 4194304 * 1024),
        (pci(), "<memoryBacking><locked/></memoryBacking>", None),  # no limit at all (record.memlock)
        ("<controller type='usb' model='qemu-xhci'/>" + USB, "", None),
        (VDPA, "", VFIO_LIMIT),  # vhost-vdpa pins guest memory too (libvirt's same rule)
        ("", "", None),
    ],
)
def test_the_memlock_limit_is_libvirts(devices_xml: str, extra: str, expected: int | None) -> None:
    assert hostdevs.memlock_bytes(load_domain_xml(domain("d1", devices_xml, extra))) == expected


def test_a_vdpa_only_domain_gets_the_limit_too(root: Path, kernel: FakeKernel) -> None:
    """No host device to hand over, but QEMU's limit (vhost-vdpa pins the guest's memory)."""
    dom = load_domain_xml(domain("d1", VDPA))
    assert hostdevs.check(HostdevState(kernel), "d1", dom) == []
    record = RunRecord(name="d1", uuid=dom.uuid, pid=0, id=1, monitor="", started_at=0, accel="tcg")
    asyncio.run(hostdevs.prepare(None, dom, record, [], Revert()))  # type: ignore[arg-type]
    assert record.memlock_bytes == VFIO_LIMIT and record.hostdevs == []


def test_a_limit_the_daemon_cannot_give_is_refused_by_name(
    root: Path, kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hostdevs, "memlock_ceiling", lambda: 8 << 20)  # no CAP_SYS_RESOURCE, 8 MiB hard

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", pci(), extra=""))
        with pytest.raises(UnsupportedConfig) as raised:
            await b.reg.start("d1")
        want = MEMORY_KIB + 1024 * 1024
        assert f"VFIO needs QEMU's locked-memory limit at {want} KiB" in str(raised.value)
        assert "RLIMIT_MEMLOCK 8192 KiB, and no CAP_SYS_RESOURCE" in str(raised.value)
        assert kernel.writes == []

    run(root, kernel, body)


# ---------------------------------------------------------------------------------------- hot-plug


def test_a_pci_device_is_plugged_and_unplugged_through_the_same_steps(
    root: Path, kernel: FakeKernel, limits: dict[int, tuple[int, int]]
) -> None:
    group_node = kernel.dev / "vfio/12"

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1"))
        await b.reg.start("d1")
        qemu = b.host["d1"]
        reply = await devices.attach(b.reg, "d1", pci(), live=True, config=False)
        assert reply["alias"] == "hostdev0"
        added = [args for name, args in qemu.commands if name == "device_add"]
        assert added == [{"driver": "vfio-pci", "host": NIC, "id": "hostdev0"}]
        assert kernel.pci_driver(NIC) == "vfio-pci"
        assert owner(group_node) == (65534, 65534, 0o600)
        assert limits[qemu.pid] == (VFIO_LIMIT, VFIO_LIMIT)
        assert b.record("d1")["memlock_bytes"] == VFIO_LIMIT
        assert [c["name"] for c in b.record("d1")["hostdevs"]] == [NIC]
        with pytest.raises(InvalidState, match=f"PCI device {NIC} is already given to the domain"):
            await devices.attach(b.reg, "d1", pci(), live=True, config=False)

        await devices.detach(b.reg, "d1", pci(), live=True, config=False)
        assert kernel.pci_driver(NIC) == "e1000e"
        assert owner(group_node) == (0, 0, 0o600)
        assert b.record("d1")["hostdevs"] == [] and b.reg.hostdevs.holders == {}
        live = b.reg.lookup("d1").live
        assert live is not None and live.devices.hostdevs == []
        assert limits[qemu.pid] == (8 << 20, 8 << 20)  # the last VFIO device gone: as it was
        assert b.record("d1")["memlock_bytes"] == 0

    run(root, kernel, body)


def test_a_plug_qemu_refuses_is_undone(
    root: Path, kernel: FakeKernel, limits: dict[int, tuple[int, int]]
) -> None:
    async def refuse(args: dict[str, Any]) -> Any:
        raise QmpError("vfio 0000:06:12.5: group 12 is not viable")

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1"))
        await b.reg.start("d1")
        qemu = b.host["d1"]
        qemu.handle("device_add", refuse)
        with pytest.raises(PyvirtError, match="group 12 is not viable"):
            await devices.attach(b.reg, "d1", pci(), live=True, config=False)
        assert kernel.pci_driver(NIC) == "e1000e" and kernel.override(NIC) == "(null)"
        assert owner(kernel.dev / "vfio/12") == (0, 0, 0o600)
        assert limits[qemu.pid] == (8 << 20, 8 << 20)  # raised for the plug, then back
        assert b.record("d1")["memlock_bytes"] == 0
        record = b.record("d1")
        assert record["hostdevs"] == [] and str(kernel.dev / "vfio/12") not in record["owners"]
        assert str(kernel.dev / "vfio/12") not in record["access"]
        assert b.reg.hostdevs.holders == {}

    run(root, kernel, body)


def test_a_usb_plug_needs_a_usb_controller(root: Path, kernel: FakeKernel) -> None:
    kernel.add_usb("1-1", 1, 4, 0x046D, 0xC52B)

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", "<controller type='usb' model='none'/>"))
        await b.reg.start("d1")
        with pytest.raises(UnsupportedConfig, match="a USB <hostdev> needs a USB controller"):
            await devices.attach(b.reg, "d1", USB, live=True, config=False)

    run(root, kernel, body)


def test_a_usb_device_is_plugged_by_vendor_and_unplugged_by_it(root: Path, kernel: FakeKernel) -> None:
    kernel.add_usb("1-1", 1, 4, 0x046D, 0xC52B)
    node = kernel.dev / "bus/usb/001/004"

    async def body(b: Bench) -> None:
        await b.reg.define(domain("d1", "<controller type='usb' model='qemu-xhci'/>"))
        await b.reg.start("d1")
        qemu = b.host["d1"]
        assert (await devices.attach(b.reg, "d1", USB, live=True, config=False))["alias"] == "hostdev0"
        added = [args for name, args in qemu.commands if name == "device_add"]
        assert added == [
            {"driver": "usb-host", "bus": "usb.0", "hostdevice": "/dev/bus/usb/001/004", "id": "hostdev0"}
        ]
        assert owner(node) == (65534, 65534, 0o664)
        assert b.record("d1")["memlock_bytes"] == 0
        live = b.reg.lookup("d1").live
        assert live is not None and live.devices.hostdevs[0].source == {"bus": 1, "device": 4}
        await devices.detach(b.reg, "d1", USB, live=True, config=False)  # found by its vendor/product
        assert owner(node) == (0, 0, 0o664)
        assert b.record("d1")["hostdevs"] == [] and b.reg.hostdevs.holders == {}

    run(root, kernel, body)


def test_a_mediated_device_is_plugged_on_a_free_root_port_of_q35(root: Path, kernel: FakeKernel) -> None:
    kernel.add_mdev(MDEV_UUID, "30")
    # spare root ports: the definition's devices take the first ones (pyvirt.conf.pci_assign)
    q35 = domain(
        "d1",
        "<controller type='pci' model='pcie-root'/>" + "<controller type='pci' model='pcie-root-port'/>" * 4,
    )
    q35 = q35.replace("machine='pc'", "machine='q35'")

    async def body(b: Bench) -> None:
        await b.reg.define(q35)
        await b.reg.start("d1")
        qemu = b.host["d1"]
        await devices.attach(b.reg, "d1", MDEV, live=True, config=False)
        (added,) = [args for name, args in qemu.commands if name == "device_add"]
        assert added["driver"] == "vfio-pci" and added["sysfsdev"] == f"/sys/bus/mdev/devices/{MDEV_UUID}"
        assert added["bus"].startswith("pci.") and added["addr"] == "0x0"  # the root port's slot 0
        assert owner(kernel.dev / "vfio/30") == (65534, 65534, 0o600)
        await devices.detach(b.reg, "d1", MDEV, live=True, config=False)
        assert owner(kernel.dev / "vfio/30") == (0, 0, 0o600)
        assert kernel.writes == []  # nothing to detach from a host driver

    run(root, kernel, body)

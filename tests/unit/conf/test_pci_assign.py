"""PCI addresses assigned at define as libvirt 9.0 assigns them (pyvirt.conf.pci_assign), rule by rule.

The expected layouts are libvirt's: tests/integration/qemu/test_pci_assign_oracle.py defines the same
kinds of domains in libvirt 9.0 and compares the whole layout.
"""

from __future__ import annotations

import pytest

from pyvirt.conf.addresses import number, placed_devices
from pyvirt.conf.domain import ControllerConfig, Domain, PCIAddress
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import InvalidArgument

Where = tuple[int, int, int]


def define(devices: str, machine: str = "q35") -> Domain:
    return load_domain_xml(
        f"<domain type='qemu'><name>pa</name><memory unit='MiB'>256</memory>"
        f"<os><type arch='x86_64' machine='{machine}'>hvm</type></os><devices>{devices}</devices></domain>"
    )


def at(addr: PCIAddress | None) -> Where:
    assert addr is not None and addr.type == "pci"
    return number(addr, "bus"), number(addr, "slot"), number(addr, "function")


def disk(dev: str, address: str = "") -> str:
    return f"<disk type='file'><source file='/tmp/{dev}'/><target dev='{dev}' bus='virtio'/>{address}</disk>"


def nic(model: str) -> str:
    return f"<interface type='user'><model type='{model}'/></interface>"


def ports(dom: Domain) -> dict[int, ControllerConfig]:
    return {c.index: c for c in dom.devices.controllers if c.type == "pci" and c.model == "pcie-root-port"}


def test_q35_puts_each_pcie_device_on_a_root_port_of_its_own_and_adds_one_spare() -> None:
    dom = define(disk("vda") + disk("vdb") + nic("virtio") + nic("e1000e"))
    rp = ports(dom)
    # nets, the USB controller, disks, the balloon: 6 devices, and one empty port for hot-plug
    assert sorted(rp) == [1, 2, 3, 4, 5, 6, 7]
    # no video: slot 1 is free; the ports share it, function by function
    assert [at(rp[i].address) for i in sorted(rp)] == [(0, 1, f) for f in range(7)]
    assert rp[1].address is not None and rp[1].address.attrs["multifunction"] == "on"
    assert all("multifunction" not in (rp[i].address.attrs if rp[i].address else {}) for i in range(2, 8))
    assert [at(n.address) for n in dom.devices.interfaces] == [(1, 0, 0), (2, 0, 0)]
    usb = next(c for c in dom.devices.controllers if c.type == "usb")
    assert at(usb.address) == (3, 0, 0)
    assert [at(d.address) for d in dom.devices.disks] == [(4, 0, 0), (5, 0, 0)]
    assert dom.devices.memballoon is not None and at(dom.devices.memballoon.address) == (6, 0, 0)
    used = {
        at(p.address)[0] for p in (*dom.devices.disks, *dom.devices.interfaces, usb, dom.devices.memballoon)
    }
    assert set(rp) - used == {7}
    # libvirt's model name, chassis = the index, port = slot * 8 + function
    assert rp[3].extra == {"model.name": "pcie-root-port", "target.chassis": "3", "target.port": "0xa"}


def test_q35_root_ports_fill_a_slot_then_the_next() -> None:
    dom = define("".join(disk(f"vd{chr(ord('a') + i)}") for i in range(9)))
    rp = ports(dom)
    assert len(rp) == 12  # 9 disks, USB, balloon, the spare
    assert [at(rp[i].address) for i in sorted(rp)] == [(0, 1, f) for f in range(8)] + [
        (0, 2, f) for f in range(4)
    ]
    assert rp[9].address is not None and rp[9].address.attrs["multifunction"] == "on"
    assert rp[12].extra["target.port"] == "0x13"


def test_q35_conventional_pci_devices_go_behind_a_pcie_to_pci_bridge() -> None:
    dom = define(nic("e1000") + nic("rtl8139") + disk("vda"))
    pci = {c.index: c for c in dom.devices.controllers if c.type == "pci"}
    bridge = [c for c in pci.values() if c.model == "pcie-to-pci-bridge"]
    assert len(bridge) == 1 and bridge[0].extra == {"model.name": "pcie-pci-bridge"}
    assert at(bridge[0].address) == (1, 0, 0)  # in the first root port
    assert [at(n.address) for n in dom.devices.interfaces] == [
        (bridge[0].index, 1, 0),
        (bridge[0].index, 2, 0),
    ]
    assert at(dom.devices.disks[0].address)[1:] == (0, 0)


def test_q35_chipset_places() -> None:
    dom = define(
        "<controller type='sata' index='0'/><sound model='ich9'/><video><model type='vga'/></video>"
        "<controller type='usb' index='0' model='ich9-ehci1'/>"
        "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>"
        "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>"
    )
    ctls = {(c.type, c.model): c for c in dom.devices.controllers}
    assert at(ctls["sata", None].address) == (0, 0x1F, 2)
    assert at(dom.devices.sounds[0].address) == (0, 0x1B, 0)
    assert at(dom.devices.videos[0].address) == (0, 1, 0)  # the primary video, integrated
    uhci1 = ctls["usb", "ich9-uhci1"].address
    assert at(uhci1) == (0, 0x1D, 0) and uhci1 is not None and uhci1.attrs["multifunction"] == "on"
    assert at(ctls["usb", "ich9-ehci1"].address) == (0, 0x1D, 7)
    assert at(ctls["usb", "ich9-uhci2"].address) == (0, 0x1D, 1)


def test_q35_uses_the_spare_root_ports_a_definition_has_and_adds_none() -> None:
    spare = (
        "<controller type='pci' model='pcie-root'/>" + "<controller type='pci' model='pcie-root-port'/>" * 14
    )
    dom = define(spare + disk("vda") + nic("virtio"))
    rp = ports(dom)
    assert sorted(rp) == list(range(1, 15))
    assert [at(rp[i].address) for i in sorted(rp)] == [(0, 1, f) for f in range(8)] + [
        (0, 2, f) for f in range(6)
    ]
    assert at(dom.devices.interfaces[0].address) == (1, 0, 0)
    assert at(dom.devices.disks[0].address) == (3, 0, 0)  # after the USB controller on port 2


def test_addresses_given_are_kept_and_the_rest_go_around_them() -> None:
    dom = define(
        "<controller type='pci' index='1' model='pcie-root-port'/>"
        "<controller type='pci' index='2' model='pcie-root-port'>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller>"
        + disk("vda", "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>")
        + disk("vdb")
    )
    rp = ports(dom)
    assert at(rp[2].address) == (0, 5, 0) and rp[2].extra["target.port"] == "0x28"
    assert at(rp[1].address) == (0, 1, 0)  # no video: slot 1 is free
    assert at(dom.devices.disks[0].address) == (2, 0, 0)
    assert at(dom.devices.disks[1].address)[0] not in (1, 2)  # port 1 took the USB controller
    assert sorted(rp) == [1, 2, 3, 4]  # ports were in the definition: no spare added


def test_the_display_keeps_its_default_video_slot() -> None:
    dom = define("<graphics type='vnc'/>" + disk("vda"))
    assert all(at(c.address) != (0, 1, 0) for c in ports(dom).values())
    assert at(ports(dom)[1].address) == (0, 2, 0)
    pc = define("<graphics type='vnc'/>" + disk("vda"), machine="pc")
    assert at(pc.devices.disks[0].address) == (0, 3, 0)


def test_a_virtio_channel_brings_its_virtio_serial_controller() -> None:
    dom = define("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>")
    serial = [c for c in dom.devices.controllers if c.type == "virtio-serial"]
    assert len(serial) == 1 and serial[0].index == 0
    assert at(serial[0].address)[1:] == (0, 0)  # on a root port


def test_pc_places_video_then_devices_in_libvirts_order() -> None:
    dom = define(
        disk("vda") + "<controller type='scsi' index='0' model='virtio-scsi'/>" + nic("e1000")
        + "<sound model='ac97'/><video><model type='vga'/></video><watchdog model='i6300esb'/>",
        machine="pc",
    )  # fmt: skip
    usb = next(c for c in dom.devices.controllers if c.type == "usb")
    scsi = next(c for c in dom.devices.controllers if c.type == "scsi")
    assert at(usb.address) == (0, 1, 2)  # PIIX3's
    assert at(dom.devices.videos[0].address) == (0, 2, 0)
    assert at(dom.devices.interfaces[0].address) == (0, 3, 0)
    assert at(dom.devices.sounds[0].address) == (0, 4, 0)
    assert at(scsi.address) == (0, 5, 0)
    assert at(dom.devices.disks[0].address) == (0, 6, 0)
    assert dom.devices.memballoon is not None and at(dom.devices.memballoon.address) == (0, 7, 0)
    assert at(dom.devices.watchdogs[0].address) == (0, 8, 0)
    assert not any(c.type == "pci" for c in dom.devices.controllers)


def test_a_sata_disk_on_pc_brings_an_addressed_ahci_controller() -> None:
    from pyvirt.qemu.command import RuntimeContext, build_argv

    dom = define(
        "<disk type='file'><source file='/tmp/a'/><target dev='sda' bus='sata'/></disk>", machine="pc"
    )
    (sata,) = [c for c in dom.devices.controllers if c.type == "sata"]
    assert sata.index == 0 and at(sata.address) == (0, 2, 0)
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert "ahci,bus=pci.0,addr=0x2,id=sata0" in argv  # not left to QEMU, whose choice could clash


def test_pc_adds_a_pci_bridge_when_its_slots_run_out() -> None:
    names = [f"vd{chr(ord('a') + i // 26 - 1) if i >= 26 else ''}{chr(ord('a') + i % 26)}" for i in range(29)]
    dom = define("".join(disk(n) for n in names), machine="pc")
    bridges = [c for c in dom.devices.controllers if c.type == "pci"]
    assert [(b.index, b.model) for b in bridges] == [(1, "pci-bridge")]
    assert bridges[0].extra == {"model.name": "pci-bridge", "target.chassisNr": "1"}
    assert at(bridges[0].address) == (0, 2, 0)  # the slot kept back for it
    slots = [at(d.address) for d in dom.devices.disks]
    assert slots[:29] == [(0, s, 0) for s in range(3, 32)]
    assert dom.devices.memballoon is not None and at(dom.devices.memballoon.address) == (1, 1, 0)


def test_assignment_is_idempotent_and_new_devices_take_the_next_place() -> None:
    dom = define(disk("vda") + nic("virtio"))
    text = format_domain(dom)
    again = load_domain_xml(text)
    assert format_domain(again) == text
    used = {at(p.address)[0] for p in placed_devices(again) if p.address.type == "pci"}
    (spare,) = set(ports(again)) - used
    added = load_domain_xml(text.replace("</devices>", disk("vdb") + disk("vdc") + "</devices>"))
    assert at(added.devices.disks[1].address) == (spare, 0, 0)  # the spare port first
    new_port = max(ports(added))
    assert at(added.devices.disks[2].address) == (new_port, 0, 0)  # then a port added for it
    assert len(ports(added)) == len(ports(again)) + 1  # and no new spare: the definition has ports


def test_an_address_on_a_bus_the_definition_lacks_brings_the_controllers() -> None:
    rng = "<rng model='virtio'><backend model='random'>/dev/urandom</backend>{}</rng>"
    where = "<address type='pci' domain='0x0000' bus='2' slot='3' function='0'/>"
    dom = define(rng.format(where), machine="pc")
    bridges = {c.index: c for c in dom.devices.controllers if c.type == "pci"}
    assert {i: (c.model, at(c.address)) for i, c in bridges.items()} == {
        1: ("pci-bridge", (0, 2, 0)),
        2: ("pci-bridge", (0, 3, 0)),
    }
    assert at(dom.devices.rngs[0].address) == (2, 3, 0)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (
            "<controller type='pci' index='1' model='pcie-root-port'/>"
            + disk("vda", "<address type='pci' domain='0x0000' bus='0x01' slot='0x03' function='0x0'/>"),
            "slot must be <= 0",
        ),
        (
            "<controller type='sata' index='0'>"
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></controller>",
            "Primary SATA controller must have PCI address 0:0:1f.2",
        ),
        (
            "<controller type='pci' index='1' model='pci-bridge'>"
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x00' function='0x0'/></controller>"
            + disk("vda", "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>"),
            "slot must be >= 1",
        ),
    ],
)
def test_addresses_a_bus_cannot_take_are_refused(devices: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        define(devices)


def test_other_machines_and_architectures_are_left_alone() -> None:
    from pyvirt.conf import pci_assign

    dom = Domain(name="x")
    dom.os.machine = "microvm"
    pci_assign.assign(dom)
    assert dom.devices.controllers == []

"""The host's devices in sysfs (pyvirt.qemu.host_devices), against a fake tree and kernel
(tests/support/fakesysfs.py): what is written to move a PCI device to vfio-pci and back, in which
order, the way back when a step fails, and the USB lookup with libvirt's messages."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.qemu.host_devices import ANY_DRIVER
from tests.support.fakesysfs import FakeKernel

NIC = "0000:06:12.5"


@pytest.fixture
def kernel(tmp_path: Path) -> FakeKernel:
    kernel = FakeKernel(tmp_path).with_vfio()
    kernel.add_pci(NIC, driver="e1000e", group="12")
    return kernel


def test_a_device_goes_to_vfio_pci_and_back_as_libvirt_moves_it(kernel: FakeKernel) -> None:
    base = f"sys/bus/pci/devices/{NIC}"
    assert kernel.bind_vfio(NIC) == "e1000e"
    assert kernel.pci_driver(NIC) == "vfio-pci"
    assert kernel.writes == [
        (f"{base}/driver_override", "vfio-pci"),
        ("sys/bus/pci/drivers/e1000e/unbind", NIC),
        ("sys/bus/pci/drivers_probe", NIC),
    ]
    kernel.writes.clear()
    assert kernel.reattach(NIC, "e1000e") == "e1000e"
    assert kernel.writes == [
        ("sys/bus/pci/drivers/vfio-pci/unbind", NIC),
        (f"{base}/driver_override", "\n"),
        ("sys/bus/pci/drivers_probe", NIC),
    ]
    assert kernel.override(NIC) == "(null)"


def test_a_device_already_on_vfio_pci_is_left_alone(kernel: FakeKernel) -> None:
    kernel.bind_vfio(NIC)
    kernel.writes.clear()
    assert kernel.bind_vfio(NIC) == "vfio-pci"
    assert kernel.writes == []


def test_a_device_that_had_no_driver_stays_unbound_after_its_reattach(kernel: FakeKernel) -> None:
    kernel.add_pci("0000:07:00.0", group="13")
    assert kernel.bind_vfio("0000:07:00.0") is None
    assert ("sys/bus/pci/drivers_probe", "0000:07:00.0") in kernel.writes
    kernel.writes.clear()
    assert kernel.reattach("0000:07:00.0", None) is None
    assert kernel.writes == [
        ("sys/bus/pci/drivers/vfio-pci/unbind", "0000:07:00.0"),
        ("sys/bus/pci/devices/0000:07:00.0/driver_override", "\n"),
    ]


def test_nodedev_reattach_takes_whichever_driver_probes_it(kernel: FakeKernel) -> None:
    kernel.bind_vfio(NIC)
    assert kernel.reattach(NIC, ANY_DRIVER) == "e1000e"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("sys/bus/pci/drivers/e1000e/unbind", f"cannot unbind PCI device {NIC} from its driver 'e1000e'"),
        ("sys/bus/pci/drivers_probe", f"cannot bind PCI device {NIC} to vfio-pci"),
    ],
)
def test_a_failed_step_gives_the_device_back_to_its_driver(
    kernel: FakeKernel, step: str, message: str
) -> None:
    kernel.fail[step] = OSError(errno.EIO, "Input/output error")
    with pytest.raises(OperationFailed, match=message) as raised:
        kernel.bind_vfio(NIC)
    assert "Input/output error" in str(raised.value)
    assert kernel.pci_driver(NIC) == "e1000e"  # after a failed probe, the way back probes again
    assert kernel.override(NIC) == "(null)"


def test_a_probe_that_does_not_reach_vfio_pci_is_refused_and_undone(kernel: FakeKernel) -> None:
    kernel.override_wins = False  # e1000e takes the device back whatever its override says
    with pytest.raises(
        OperationFailed, match=f"PCI device {NIC} is on 'e1000e' after probing, not on vfio-pci"
    ):
        kernel.bind_vfio(NIC)
    assert kernel.pci_driver(NIC) == "e1000e"
    assert kernel.override(NIC) == "(null)"


def test_no_vfio_pci_driver_is_refused_by_name_before_any_write(tmp_path: Path) -> None:
    kernel = FakeKernel(tmp_path)
    kernel.add_pci(NIC, driver="e1000e", group="12")
    with pytest.raises(UnsupportedConfig, match="the vfio-pci driver is not loaded on this host"):
        kernel.bind_vfio(NIC)
    assert kernel.writes == []
    assert kernel.pci_driver(NIC) == "e1000e"


def test_reset_writes_the_kernels_reset_attribute(kernel: FakeKernel) -> None:
    kernel.reset(NIC)
    assert kernel.writes == [(f"sys/bus/pci/devices/{NIC}/reset", "1")]
    (kernel.pci_dir(NIC) / "reset").unlink()
    with pytest.raises(OperationFailed, match=f"PCI device {NIC} has no reset method"):
        kernel.reset(NIC)


def test_groups_bridges_and_mediated_devices(kernel: FakeKernel) -> None:
    kernel.add_pci("0000:00:1c.0", driver="pcieport", group="12", klass=0x060400)
    assert kernel.pci_group(NIC) == "12"
    assert kernel.group_devices("12") == ["0000:00:1c.0", NIC]
    assert kernel.pci_is_bridge("0000:00:1c.0") and not kernel.pci_is_bridge(NIC)
    kernel.add_mdev("c2177883-f1bb-47f0-914d-32a22e3a8804", "30")
    assert kernel.mdev_group("c2177883-f1bb-47f0-914d-32a22e3a8804") == "30"
    assert kernel.group_node("30") == kernel.dev / "vfio/30"


def test_usb_devices_are_found_as_libvirt_finds_them(kernel: FakeKernel) -> None:
    kernel.add_usb("1-1", 1, 4, 0x046D, 0xC52B)
    kernel.add_usb("2-3", 2, 7, 0x0781, 0x5567)
    kernel.add_usb("2-4", 2, 9, 0x0781, 0x5567)
    assert [(u.bus, u.device) for u in kernel.usb_devices()] == [(1, 4), (2, 7), (2, 9)]  # not interfaces
    found = kernel.find_usb(0x046D, 0xC52B, None, None)
    assert (found.bus, found.device) == (1, 4)
    assert kernel.usb_node(1, 4) == kernel.dev / "bus/usb/001/004"
    found = kernel.find_usb(0x0781, 0x5567, 2, 9)
    assert (found.bus, found.device) == (2, 9)
    with pytest.raises(
        OperationFailed, match="Multiple USB devices for 0781:5567, use <address> to specify one"
    ):
        kernel.find_usb(0x0781, 0x5567, None, None)
    with pytest.raises(OperationFailed, match=r"Did not find USB device 0781:5568$"):
        kernel.find_usb(0x0781, 0x5568, None, None)
    with pytest.raises(OperationFailed, match="Did not find USB device 0781:5567 bus:1 device:4"):
        kernel.find_usb(0x0781, 0x5567, 1, 4)

"""nodedev-detach, nodedev-reattach and nodedev-reset (pyvirt.daemon.nodedevs) against a fake sysfs
tree and kernel (tests/support/fakesysfs.py): libvirt's device names, the moves, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.daemon import nodedevs
from pyvirt.daemon.hostdevs import HostdevState
from pyvirt.errors import InvalidArgument, InvalidState, NotFound
from tests.support.fakesysfs import FakeKernel

NIC = "0000:06:12.5"


@pytest.fixture
def state(tmp_path: Path) -> HostdevState:
    kernel = FakeKernel(tmp_path).with_vfio()
    kernel.add_pci(NIC, driver="e1000e", group="12")
    return HostdevState(kernel)


def test_detach_reattach_and_reset_by_libvirts_name(state: HostdevState) -> None:
    nodedevs.detach(state, "pci_0000_06_12_5", "vfio")
    assert state.host.pci_driver(NIC) == "vfio-pci"
    nodedevs.reset(state, "pci_0000_06_12_5")
    nodedevs.reattach(state, "pci_0000_06_12_5")
    assert state.host.pci_driver(NIC) == "e1000e"
    assert isinstance(state.host, FakeKernel)
    assert (f"sys/bus/pci/devices/{NIC}/reset", "1") in state.host.writes


def test_refusals(state: HostdevState) -> None:
    assert isinstance(state.host, FakeKernel)
    with pytest.raises(NotFound, match="no node device with matching name 'pci_0000_06_12_6'"):
        nodedevs.detach(state, "pci_0000_06_12_6")
    with pytest.raises(NotFound, match="no node device with matching name 'usb_1_2'"):
        nodedevs.reset(state, "usb_1_2")
    with pytest.raises(InvalidArgument, match="unknown driver name 'kvm'"):
        nodedevs.detach(state, "pci_0000_06_12_5", "kvm")
    state.holders[f"pci:{NIC}"] = "web1"
    for verb in (nodedevs.detach, nodedevs.reattach, nodedevs.reset):
        with pytest.raises(InvalidState, match=f"PCI device {NIC} is in use by driver QEMU, domain web1"):
            verb(state, "pci_0000_06_12_5")
    assert state.host.writes == []

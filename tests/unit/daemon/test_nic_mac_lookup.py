"""Two NICs with one MAC address (libvirt's devices-acpi-index): defined and run as libvirt does; the
daemon's lookups of a NIC by MAC (detach-interface, domif-setlink, domiftune, update-device) refuse
the ambiguity in libvirt's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.conf.validate import validate_domain
from pyvirt.daemon import devices, iftune, nics
from pyvirt.errors import OperationFailed
from pyvirt.qemu.command import RuntimeContext, build_argv

MINIMAL = (Path(__file__).resolve().parents[2] / "data" / "domain" / "minimal.xml").read_text()
NIC = "<interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>"
AMBIGUOUS = "multiple devices matching MAC address 52:54:00:00:00:01 found"


def test_two_nics_may_share_a_mac_address_and_lookups_refuse_the_ambiguity() -> None:
    dom = load_domain_xml(MINIMAL.replace("</domain>", f"<devices>{NIC * 2}</devices></domain>"))
    validate_domain(dom)
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    assert sum("mac=52:54:00:00:00:01" in a for a in argv) == 2
    with pytest.raises(OperationFailed, match=AMBIGUOUS):
        nics._find(dom.devices.interfaces, "52:54:00:00:00:01")
    with pytest.raises(OperationFailed, match=AMBIGUOUS):
        iftune.find(dom, "52:54:00:00:00:01")
    with pytest.raises(OperationFailed, match=AMBIGUOUS):
        devices._find_nic(dom, dom.devices.interfaces[0])
    dom.devices.interfaces[1].mac = "52:54:00:00:00:02"
    assert nics._find(dom.devices.interfaces, "52:54:00:00:00:02") == 1

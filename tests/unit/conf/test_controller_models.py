"""Controller models (pyvirt.conf.controller_models): SCSI HBAs, PCIe switches, the DMI bridge, NEC xHCI,
virtio-scsi tuning, and ACPI hotplug of pc's root bus."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>c</name><memory>65536</memory><iothreads>2</iothreads>
<os><type machine='{machine}'>hvm</type></os><devices>{devices}</devices></domain>"""


def devices(devs: str, machine: str = "pc") -> list[str]:
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(machine=machine, devices=devs))))
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x"))
    return [argv[i + 1] for i, arg in enumerate(argv) if arg in ("-device", "-global")]


@pytest.mark.parametrize(
    ("model", "driver"),
    [("lsilogic", "lsi"), ("lsisas1068", "mptsas1068"), ("lsisas1078", "megasas"), ("vmpvscsi", "pvscsi")],
)
def test_scsi_hbas(model: str, driver: str) -> None:
    assert f"{driver},bus=pci.0,addr=0x2,id=scsi0" in devices(
        f"<controller type='scsi' index='0' model='{model}'/>"
    )


def test_virtio_scsi_tuning_round_trips() -> None:
    xml = "<controller type='scsi' model='virtio-scsi'><driver queues='2' iothread='2' ioeventfd='off'/>"
    xml += "</controller>"
    tuned = "virtio-scsi-pci,bus=pci.0,addr=0x2,id=scsi0,num_queues=2,ioeventfd=off,iothread=iothread2"
    assert tuned in devices(xml)
    with pytest.raises(PyvirtError, match="'queues'"):  # an LSI HBA has no queues
        devices(xml.replace("virtio-scsi", "lsilogic"))


def test_pcie_switch_dmi_bridge_and_root_hotplug() -> None:
    q35 = devices(
        "<controller type='pci' index='1' model='pcie-root-port'/>"
        "<controller type='pci' index='2' model='pcie-switch-upstream-port'>"
        "<address type='pci' bus='1' slot='0'/></controller>"
        "<controller type='pci' index='3' model='pcie-switch-downstream-port'>"
        "<target hotplug='off' port='4'/>"
        "<address type='pci' bus='2' slot='0'/></controller>"
        "<controller type='pci' index='4' model='dmi-to-pci-bridge'/>"
        "<controller type='usb' model='nec-xhci'/>",
        machine="q35",
    )
    assert "x3130-upstream,bus=pci.1,addr=0x0,id=pci.2" in q35
    assert "xio3130-downstream,bus=pci.2,addr=0x0,port=4,chassis=3,hotplug=off,id=pci.3" in q35
    # libvirt's places: the DMI bridge at 00:1e, the xHCI in the switch's downstream port
    assert "i82801b11-bridge,bus=pcie.0,addr=0x1e,id=pci.4" in q35
    assert "nec-usb-xhci,bus=pci.3,addr=0x0,id=usb" in q35
    pc = devices("<controller type='pci' index='0' model='pci-root'><target hotplug='on'/></controller>")
    assert "PIIX4_PM.acpi-root-pci-hotplug=on" in pc


def test_refused_by_name() -> None:
    with pytest.raises(PyvirtError, match="'model' = 'buslogic'"):
        devices("<controller type='scsi' model='buslogic'/>")
    with pytest.raises(PyvirtError, match="target port of controller 'pci' index 4"):
        devices(
            "<controller type='pci' index='4' model='dmi-to-pci-bridge'><target port='1'/></controller>",
            "q35",
        )

"""Small things libvirt writes: <pvspinlock>, <panic model=hyperv>, the builtin RNG, <listen type=none>."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.support.argv import unplaced

XML = """<domain type='kvm'><name>x</name><memory>65536</memory><os><type>hvm</type></os>
<features>{features}</features><devices>{devices}</devices></domain>"""


def argv(features: str = "", devices: str = "") -> list[str]:
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(features=features, devices=devices))))
    return build_argv(dom, RuntimeContext(accel="kvm", monitor_path="/x"))


def test_pvspinlock_and_hyperv_panic_are_cpu_flags() -> None:
    out = argv("<pvspinlock state='off'/>", "<panic model='hyperv'/>")
    assert out[out.index("-cpu") + 1] == "qemu64,kvm-pv-unhalt=off,hv-crash"
    assert not any(arg.startswith("pvpanic") for arg in out)


def test_the_builtin_rng_and_displays_that_listen_nowhere() -> None:
    out = argv(devices="<rng model='virtio'><backend model='builtin'/></rng>")
    assert '{"qom-type":"rng-builtin","id":"objrng0"}' in out
    vnc = argv(devices="<graphics type='vnc'><listen type='none'/></graphics>")
    assert vnc[vnc.index("-vnc") + 1] == "none"
    spice = argv(devices="<graphics type='spice'><listen type='none'/></graphics>")
    assert spice[spice.index("-spice") + 1].startswith("port=0,")


@pytest.mark.parametrize(
    ("features", "devices", "reason"),
    [
        ("<pvspinlock state='maybe'/>", "", "'state' = 'maybe'"),
        ("", "<panic model='hyperv'><address type='isa' iobase='0x505'/></panic>", "takes no address"),
        (
            "",
            "<rng model='virtio'><backend model='builtin'>/dev/random</backend></rng>",
            "takes no device path",
        ),
        ("", "<rng model='virtio'><backend model='egd' type='tcp'/></rng>", "of type 'tcp' needs a <source>"),
        (
            "",
            "<graphics type='vnc'><listen type='network' network='default'/></graphics>",
            "'type' = 'network'",
        ),
    ],
)
def test_refused_by_name(features: str, devices: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(features, devices)


def test_a_host_input_device_passed_through_on_virtio() -> None:
    evdev = "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event3'/></input>"
    out = argv(devices=evdev)
    assert "virtio-input-host-pci,id=input0,evdev=/dev/input/event3" in unplaced(out)
    with pytest.raises(PyvirtError, match="input type 'passthrough' on bus 'usb'"):
        argv(devices=evdev.replace("virtio", "usb"))
    with pytest.raises(PyvirtError, match="must be a device under /dev/input"):
        argv(devices=evdev.replace("/dev/input/event3", "/etc/shadow"))


def test_ramfb_free_page_reporting_and_a_boot_kind_without_devices() -> None:
    balloon = "<memballoon model='virtio' freePageReporting='on'/>"
    out = argv(devices=f"<video><model type='ramfb'/></video>{balloon}")
    assert "ramfb,id=video0" in out
    assert any(arg.startswith("virtio-balloon-pci,") and "free-page-reporting=on" in arg for arg in out)
    with pytest.raises(PyvirtError, match="video model 'ramfb' is no PCI device"):
        argv(devices="<video><model type='ramfb'/><address type='pci' bus='0' slot='5'/></video>")
    text = XML.format(features="", devices="").replace("<type>hvm</type>", "<type>hvm</type><boot dev='fd'/>")
    assert load_domain_xml(text).os.boot == ["fd"]  # nothing to boot from that kind: orders nothing


def test_a_file_audio_backend_without_a_path_is_qemus_default() -> None:
    out = argv(devices="<audio id='1' type='file'/>")
    assert out[out.index("-audiodev") + 1] == "wav,id=audio1"


def test_vcpus_beyond_255_need_q35_and_an_intel_iommu_with_eim() -> None:
    base = XML.format(features="<ioapic driver='qemu'/>", devices="{iommu}").replace("<vcpu>", "")
    base = base.replace("<memory>", "<vcpu>288</vcpu><memory>")
    base = base.replace("<type>hvm", "<type machine='q35'>hvm")
    eim = "<iommu model='intel'><driver intremap='on' eim='on'/></iommu>"
    assert load_domain_xml(base.format(iommu=eim)).vcpus == 288
    with pytest.raises(PyvirtError, match=r"\(1-255; up to 288 on q35 with an Intel IOMMU's eim"):
        load_domain_xml(base.format(iommu=""))
    with pytest.raises(PyvirtError, match=r"out of range \(1-288\)"):
        load_domain_xml(base.format(iommu=eim).replace("288", "289"))


def test_an_egd_rng_and_a_usb_redirection_on_sockets() -> None:
    egd = "<rng model='virtio'><backend model='egd' type='unix'><source mode='connect' path='/run/egd'/>"
    egd += "<protocol type='raw'/></backend></rng>"
    redir = (
        "<redirdev bus='usb' type='tcp'><source mode='connect' host='127.0.0.1' service='4000'/></redirdev>"
    )
    usb = "<controller type='usb' model='qemu-xhci'/>"
    text = format_domain(load_domain_xml(XML.format(features="", devices=egd + redir + usb)))
    assert "<backend model='egd' type='unix'>" in text and "<source mode='connect' path='/run/egd'/>" in text
    assert "<redirdev bus='usb' type='tcp'>" in text
    out = argv(devices=egd + redir + usb)
    assert "socket,id=charrng0,path=/run/egd" in out
    assert '{"qom-type":"rng-egd","id":"objrng0","chardev":"charrng0"}' in out
    assert any(arg.startswith("socket,id=charredir0,host=127.0.0.1,port=4000") for arg in out)
    assert any(arg.startswith("usb-redir,chardev=charredir0") for arg in out)  # no SPICE needed
    with pytest.raises(PyvirtError, match="'type' = 'spicevmc'"):
        argv(devices=egd.replace("type='unix'", "type='spicevmc'"))


def test_a_tray_state_is_kept_and_the_medium_still_inserted() -> None:
    cdrom = "<disk type='file' device='{dev}'><source file='/x.iso'/>"
    cdrom += "<target dev='{t}' bus='{bus}' tray='{tray}'/></disk>"
    dom = load_domain_xml(
        XML.format(features="", devices=cdrom.format(dev="cdrom", t="hdc", bus="ide", tray="open"))
    )
    assert dom.devices.disks[0].tray == "open" and "tray='open'" in format_domain(dom)
    closed = cdrom.format(dev="floppy", t="fda", bus="fdc", tray="closed")
    assert "tray=" not in format_domain(load_domain_xml(XML.format(features="", devices=closed)))
    out = argv(devices=cdrom.format(dev="cdrom", t="hdc", bus="ide", tray="open"))
    assert any('"filename":"/x.iso"' in arg for arg in out)
    with pytest.raises(PyvirtError, match="'tray'"):
        argv(devices=cdrom.format(dev="disk", t="hda", bus="ide", tray="open"))


def test_nvram_of_type_file() -> None:
    text = XML.format(features="", devices="").replace(
        "<type>hvm</type>",
        "<type>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
        "<nvram type='file'><source file='/var/lib/pyvirt/nvram/x_VARS.fd'/></nvram>",
    )
    dom = load_domain_xml(text)
    assert dom.os.nvram == "/var/lib/pyvirt/nvram/x_VARS.fd"
    assert "<nvram type='file'>\n      <source file='/var/lib/pyvirt/nvram/x_VARS.fd'/>" in format_domain(dom)
    with pytest.raises(PyvirtError, match="of type 'file' takes its source in <source> only"):
        load_domain_xml(text.replace("<source file", "/x<source file"))


def test_a_host_scsi_lun_and_a_vdpa_nic() -> None:
    lun = "<disk type='block' device='lun'><source dev='/dev/sdz'/><target dev='sda' bus='scsi'/></disk>"
    lun += "<controller type='scsi' model='virtio-scsi'/>"
    out = argv(devices=lun)
    assert any(arg.startswith("scsi-block,bus=scsi0.0,") for arg in out)
    vdpa = "<interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/><driver queues='4'/></interface>"
    out = argv(devices=vdpa)
    assert '{"type":"vhost-vdpa","vhostdev":"/dev/vhost-vdpa-0","queues":4,"id":"hostnet0"}' in out
    assert any(arg.startswith("virtio-net-pci,mq=on,vectors=10,netdev=hostnet0") for arg in unplaced(out))


@pytest.mark.parametrize(
    ("devices", "reason"),
    [
        (
            "<disk type='block' device='lun'><source dev='/dev/sdz'/><target dev='vda' bus='virtio'/></disk>",
            "only on a legacy virtio 0.9 device",
        ),
        (
            "<disk type='file' device='lun'><source file='/x.img'/><target dev='sda' bus='scsi'/></disk>",
            "must be of type 'block'",
        ),
        (
            "<disk type='block' device='lun'><source dev='/dev/sdz'/><target dev='sda' bus='scsi'/>"
            "<serial>X1</serial></disk>",
            "serial of disk 'sda' of device 'lun'",
        ),
        (
            "<interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/><model type='e1000'/></interface>",
            "only virtio",
        ),
        ("<interface type='user'><driver queues='2'/></interface>", "multiqueue only on vdpa"),
        ("<interface type='vdpa'><source dev='vhost-vdpa-0'/></interface>", "device node under /dev"),
    ],
)
def test_luns_and_vdpa_refused_by_name(devices: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        argv(devices=devices)


def test_a_vdpa_nic_is_refused_at_start_on_a_host_without_the_device(tmp_path: Path) -> None:
    from pyvirt.conf import net_vdpa

    missing = tmp_path / "vhost-vdpa-9"
    dom = load_domain_xml(
        XML.format(features="", devices="<interface type='vdpa'><source dev='/dev/x'/></interface>")
    )
    dom.devices.interfaces[0].source_dev = str(missing)
    with pytest.raises(PyvirtError, match=f"this host has no {missing}"):
        net_vdpa.require_host(dom)
    missing.touch()
    net_vdpa.require_host(dom)


def test_a_directory_as_a_read_only_fat_floppy() -> None:
    floppy = "<disk type='dir' device='floppy'><driver name='qemu' type='fat'/><source dir='/srv/files'/>"
    floppy += "<target dev='fda' bus='fdc'/><readonly/></disk>"
    dom = load_domain_xml(XML.format(features="", devices=floppy))
    assert "<source dir='/srv/files'/>" in format_domain(dom)
    out = argv(devices=floppy)
    blockdevs = [out[i + 1] for i, arg in enumerate(out) if arg == "-blockdev"]
    assert blockdevs[0].startswith('{"driver":"vvfat","dir":"/srv/files","floppy":true,"rw":false,')
    assert '"read-only":true' in blockdevs[1]
    for wrong in (floppy.replace("type='fat'", "type='raw'"), floppy.replace("<readonly/>", "")):
        with pytest.raises(PyvirtError, match="a disk of type 'dir' is the FAT image"):
            argv(devices=wrong)


def test_a_disks_snapshot_attribute_round_trips() -> None:
    disk = "<disk type='file' device='disk' snapshot='external'><source file='/x.qcow2'/>"
    disk += "<target dev='vda'/></disk>"
    dom = load_domain_xml(format_domain(load_domain_xml(XML.format(features="", devices=disk))))
    assert dom.devices.disks[0].snapshot == "external"
    with pytest.raises(PyvirtError, match="'snapshot' = 'sometimes'"):
        load_domain_xml(XML.format(features="", devices=disk.replace("external", "sometimes")))


def test_an_interface_without_a_model_is_libvirts_default() -> None:
    # libvirt 9.0 gives an x86 guest's NIC rtl8139 and writes it into the definition; a vdpa NIC virtio
    nic = "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>"
    xml = format_domain(load_domain_xml(XML.format(features="", devices=nic)))
    assert "<model type='rtl8139'/>" in xml
    assert any(arg.startswith("rtl8139,") and "netdev=hostnet0" in arg for arg in argv(devices=nic))
    vdpa = "<interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>"
    assert "<model type='virtio'/>" in format_domain(load_domain_xml(XML.format(features="", devices=vdpa)))

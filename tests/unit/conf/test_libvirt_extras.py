"""Small things libvirt writes: <pvspinlock>, <panic model=hyperv>, the builtin RNG, <listen type=none>."""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

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
        ("", "<rng model='virtio'><backend model='egd' type='tcp'/></rng>", "'model' = 'egd'"),
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
    assert "virtio-input-host-pci,id=input0,evdev=/dev/input/event3" in out
    with pytest.raises(PyvirtError, match="input type 'passthrough' on bus 'usb'"):
        argv(devices=evdev.replace("virtio", "usb"))
    with pytest.raises(PyvirtError, match="must be a device under /dev/input"):
        argv(devices=evdev.replace("/dev/input/event3", "/etc/shadow"))

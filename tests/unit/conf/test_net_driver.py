"""A virtio NIC's <driver> tuning (pyvirt.conf.net_driver): parsed, written back, on virtio-net-pci.

(libvirt's domxml-to-native rebuilds interfaces without their <driver>, so it cannot be the oracle
here: the golden tests/data/domain/libvirt-net-driver.args is run by the real QEMU instead.)"""

from __future__ import annotations

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.support.argv import unplaced

XML = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<interface type='{kind}'><mac address='52:54:00:00:00:01'/>{source}<model type='{model}'/>{driver}</interface>
</devices></domain>"""


def nic(driver: str, kind: str = "user", model: str = "virtio") -> str:
    source = "<source bridge='br0'/>" if kind == "bridge" else ""
    dom = load_domain_xml(
        format_domain(load_domain_xml(XML.format(kind=kind, source=source, model=model, driver=driver)))
    )
    ctx = RuntimeContext(accel="tcg", monitor_path="/x", taps={0: "vnet0"})
    argv = build_argv(dom, ctx)
    argv = unplaced(argv)
    return next(argv[i + 1] for i, a in enumerate(argv) if a == "-device" and "netdev=" in argv[i + 1])


def test_tuning_reaches_virtio_net() -> None:
    spec = nic("<driver name='qemu' txmode='iothread' ioeventfd='on' rx_queue_size='1024' rss='off'/>")
    assert spec.startswith("virtio-net-pci,tx=bh,ioeventfd=on,rss=off,rx_queue_size=1024,netdev=hostnet0")
    assert nic("<driver name='vhost' event_idx='off'/>").startswith("virtio-net-pci,event_idx=off,")
    assert nic("<driver name='qemu'/>", kind="bridge").startswith("virtio-net-pci,netdev=hostnet0")


@pytest.mark.parametrize(
    ("driver", "kind", "model", "reason"),
    [
        ("<driver name='vhost'/>", "bridge", "virtio", "pyvirt's taps do not use vhost-net"),
        ("<driver txmode='timer'/>", "user", "e1000", "driver txmode of a 'e1000' NIC"),
        ("<driver queues='4'/>", "user", "virtio", "<driver queues> of interface type 'user'"),
        ("<driver rx_queue_size='300'/>", "user", "virtio", "must be a power of two"),
        ("<driver name='vfio'/>", "user", "virtio", "'name' = 'vfio'"),
    ],
)
def test_refused_by_name(driver: str, kind: str, model: str, reason: str) -> None:
    with pytest.raises(PyvirtError, match=reason):
        nic(driver, kind, model)

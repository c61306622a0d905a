"""Memory modules and the hotplug space (pyvirt.conf.memory_devices): parsed, written back, checked as
libvirt checks them, and given to QEMU as libvirt gives them."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from pyvirt.conf import memory_devices
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

LAB = (Path(__file__).resolve().parents[2] / "data" / "domain" / "libvirt-memory-devices.xml").read_text()


def _devices(argv: list[str]) -> list[dict[str, object]]:
    return [json.loads(v) for a, v in itertools.pairwise(argv) if a in ("-device", "-object")]


def test_the_lab_round_trips_with_libvirts_totals() -> None:
    dom = load_domain_xml(LAB)
    assert [m.model for m in dom.devices.memory] == ["dimm", "nvdimm", "virtio-pmem", "virtio-mem"]
    # <memory> is the cells and the modules, as libvirt's define makes it; -m gets the cells only
    assert dom.memory_kib == 2 * 131072 + 32768 + 16384 + 16384 + 65536
    assert memory_devices.memory_option(dom) == "size=262144k,slots=4,maxmem=4194304k"
    out = format_domain(dom)
    assert "<maxMemory slots='4' unit='KiB'>4194304</maxMemory>" in out
    again = load_domain_xml(out)
    assert again.devices.memory == dom.devices.memory
    assert format_domain(again) == out


def test_modules_become_libvirts_backends_and_devices() -> None:
    dom = load_domain_xml(LAB)
    objs = _devices(memory_devices.options(dom, {}, {2: {"bus": "pci.0", "addr": "0x5"}}))
    by_id = {str(o.get("id")): o for o in objs}
    assert by_id["dimm1"] == {"driver": "pc-dimm", "node": 1, "memdev": "memdimm1", "id": "dimm1", "slot": 1}
    assert by_id["memnvdimm0"]["prealloc"] is True and by_id["memnvdimm0"]["share"] is False
    assert by_id["nvdimm0"]["label-size"] == 131072 and by_id["nvdimm0"]["unarmed"] is True
    assert by_id["memvirtiopmem0"]["share"] is True and by_id["virtiopmem0"]["addr"] == "0x5"
    assert by_id["memvirtiomem0"]["reserve"] is False
    assert by_id["virtiomem0"]["requested-size"] == 32 << 20 and by_id["virtiomem0"]["block-size"] == 2 << 20
    assert memory_devices.machine_options(dom) == {"nvdimm": "on"}


def test_a_dimm_without_slot_gets_the_lowest_free_one() -> None:
    dom = load_domain_xml(re.sub(r"<address type='dimm' slot='1'/>", "", LAB))
    assert memory_devices.dimm_slots(dom) == {0: 1, 1: 0}


def _lab(change: tuple[str, str]) -> str:
    old, new = change
    assert old in LAB, old
    return LAB.replace(old, new, 1)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (("<maxMemory slots='4' unit='KiB'>4194304</maxMemory>", ""), UnsupportedConfig, "'maxMemory'"),
        (("<features>\n    <acpi/>\n  </features>", ""), UnsupportedConfig, "need <features><acpi/>"),
        (("slots='4'", "slots='1'"), InvalidArgument, "memory device count '2' exceeds slots count '1'"),
        (("<address type='dimm' slot='1'/>", "<address type='dimm' slot='0'/>"), InvalidArgument, "already"),
        (("<node>1</node>", "<node>2</node>"), InvalidArgument, "only '2' NUMA nodes"),
        (("4194304</maxMemory>", "300000</maxMemory>"), InvalidArgument, "exceeds hotplug space"),
        (
            ("<block unit='KiB'>2048</block>", "<block unit='KiB'>3072</block>"),
            InvalidArgument,
            "power of two",
        ),
        (("<size unit='KiB'>128</size>", "<size unit='KiB'>64</size>"), InvalidArgument, "at least 128KiB"),
        (("<readonly/>", "<readonly/><block unit='KiB'>2048</block>"), UnsupportedConfig, "model 'nvdimm'"),
        (("<path>/var/lib/pyvirt/images/memdev-lab.pmem</path>", ""), XMLError, "source/path"),
        (("<requested unit='KiB'>32768</requested>", ""), XMLError, "<target><requested>"),
        (("model='virtio-mem'", "model='sgx-epc'"), UnsupportedConfig, "'sgx-epc'"),
    ],
)
def test_libvirts_checks(change: tuple[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        load_domain_xml(_lab(change))


def test_huge_pages_need_the_hosts_mount_at_start() -> None:
    size = "<target>\n        <size unit='KiB'>32768</size>"
    dom = load_domain_xml(_lab((size, "<source><pagesize unit='KiB'>2048</pagesize></source>" + size)))
    with pytest.raises(UnsupportedConfig, match="no huge pages of 2048 KiB are mounted"):
        memory_devices.options(dom, {}, {})
    objs = _devices(memory_devices.options(dom, {2048: "/dev/hugepages/pyvirt-memdev-lab"}, {}))
    assert objs[0]["mem-path"] == "/dev/hugepages/pyvirt-memdev-lab" and objs[0]["prealloc"] is True

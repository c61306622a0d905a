"""NUMA memory performance (pyvirt.conf.numa_hmat): cell caches and interconnects read, written back,
checked and given to QEMU as libvirt gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf import numa_hmat
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import InvalidArgument

LAB = (Path(__file__).resolve().parents[2] / "data" / "domain" / "libvirt-numa-hmat.xml").read_text()


def test_round_trip_and_initiators() -> None:
    dom = load_domain_xml(LAB)
    assert dom.cpu is not None
    out = format_domain(dom)
    assert "<bandwidth initiator='1' target='2' type='read' value='102400' unit='KiB'/>" in out
    assert "<line value='8' unit='B'/>" in out
    again = load_domain_xml(out)
    assert again.cpu == dom.cpu
    assert [numa_hmat.initiator(dom.cpu, c) for c in dom.cpu.numa] == [0, 1, 1]  # cell 2: its interconnect's


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("initiator='1' target='2'", "initiator='2' target='2'", "initiator 2 has no CPUs"),
        ("target='0' cache='1'", "target='1' cache='1'", "cache level 1, which cell 1 lacks"),
        ("initiator='1' target='2'", "initiator='1' target='7'", "names a cell the domain lacks"),
    ],
)
def test_libvirts_checks(old: str, new: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load_domain_xml(LAB.replace(old, new, 1))

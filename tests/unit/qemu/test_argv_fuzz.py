"""Structure-aware fuzzing of the XML → argv path: every accepted file, mutated, is either refused with
a named error or turned into a command line; nothing else may come out (no ValueError, KeyError…).

Mutations keep the documents well-formed and libvirt-shaped: attribute values swapped for numbers in
libvirt's spellings (octal, hex, out of range), words from the vocabulary, or nothing; attributes and
elements removed; elements duplicated. ``PYVIRT_FUZZ_EXAMPLES`` raises the count for long runs.
"""

from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu import firmware
from pyvirt.qemu.command import build_argv
from tests.unit.qemu.test_command import CASES, DATA_ROOT, DESCRIPTORS, runtime_context

DOCS = {name: (DATA_ROOT / f"{name}.xml").read_text() for name in CASES}
VALUES = [
    "0", "1", "2", "7", "8", "010", "08", "0x1f", "0x20", "0xff", "0x100", "-1", "31", "32", "255", "256",
    "65536", "99999999999999999999", "", " ", "yes", "no", "on", "off", "virtio", "sata", "ide", "scsi",
    "usb", "pci", "drive", "isa", "virtio-serial", "q35", "pc", "efi", "bios", "reset", "none", "pflash",
    "rom", "/dev/null", "a,b=c", "x\ny",
]  # fmt: skip
EXAMPLES = int(os.environ.get("PYVIRT_FUZZ_EXAMPLES", "400"))


def _elements(root: ET.Element) -> list[tuple[ET.Element | None, ET.Element]]:
    out: list[tuple[ET.Element | None, ET.Element]] = [(None, root)]
    for parent in root.iter():
        out += [(parent, child) for child in parent]
    return out


@st.composite
def mutated(draw: st.DrawFn) -> str:
    root = ET.fromstring(DOCS[draw(st.sampled_from(sorted(DOCS)))])
    for _ in range(draw(st.integers(1, 4))):
        parent, elem = draw(st.sampled_from(_elements(root)))
        action = draw(st.sampled_from(["set", "set", "set", "drop-attr", "drop-elem", "copy-elem", "text"]))
        if action in ("set", "drop-attr") and elem.attrib:
            name = draw(st.sampled_from(sorted(elem.attrib)))
            if action == "set":
                elem.set(name, draw(st.sampled_from(VALUES) | st.text(max_size=6)))
            else:
                del elem.attrib[name]
        elif action == "drop-elem" and parent is not None:
            parent.remove(elem)
        elif action == "copy-elem" and parent is not None:
            parent.append(copy.deepcopy(elem))
        elif action == "text" and len(elem) == 0 and elem.text:
            elem.text = draw(st.sampled_from(VALUES))
    return ET.tostring(root, encoding="unicode")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_documents_are_refused_by_name_or_built(text: str) -> None:
    try:
        dom = load_domain_xml(text)
        firmware.fill_domain(dom, DESCRIPTORS)
        argv = build_argv(dom, runtime_context(dom))
    except PyvirtError as err:
        assert err.message  # a named refusal
        return
    assert argv[0].startswith("/") and "-machine" in argv

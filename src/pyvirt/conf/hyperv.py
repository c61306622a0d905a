"""``<features><hyperv>``: the Hyper-V enlightenments Windows guests run faster with.

What virt-install gives a Windows guest (relaxed, vapic, spinlocks with retries) and the other common
ones, each ``state='on'|'off'``; QEMU gets them as ``-cpu`` properties (``hv-relaxed=on``,
``hv-spinlocks=0x1fff``), as libvirt gives them. Any other child, and ``mode='passthrough'``, is refused
by name.
"""

from __future__ import annotations

from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import XMLError

# element → QEMU's property
ENLIGHTENMENTS = {
    "relaxed": "hv-relaxed",
    "vapic": "hv-vapic",
    "spinlocks": "hv-spinlocks",
    "vpindex": "hv-vpindex",
    "runtime": "hv-runtime",
    "synic": "hv-synic",
    "stimer": "hv-stimer",
    "reset": "hv-reset",
    "frequencies": "hv-frequencies",
    "tlbflush": "hv-tlbflush",
    "ipi": "hv-ipi",
    "reenlightenment": "hv-reenlightenment",
    "avic": "hv-avic",
    "vendor_id": "hv-vendor-id",  # value: up to 12 characters, as libvirt writes it
}


def parse(e: Elem) -> dict[str, dict[str, str]]:
    """The enlightenments of a ``<hyperv>`` element, name → attributes, in document order."""
    e.choice("mode", ("custom",))
    out: dict[str, dict[str, str]] = {}
    for node in e.each():
        if node.tag not in ENLIGHTENMENTS:
            raise node.refuse()
        state = node.choice("state", ("on", "off"), required=True)
        assert state is not None
        attrs = {"state": state}
        if node.tag == "spinlocks" and state == "on":
            retries = node.integer("retries", minimum=4095)
            if retries is None:
                raise XMLError(f"missing attribute 'retries' of '{node.path}'")
            attrs["retries"] = str(retries)
        if node.tag == "vendor_id" and state == "on":
            value = node.require("value")
            if not 0 < len(value) <= 12 or not value.isprintable() or "," in value:
                raise XMLError(
                    f"value '{value}' of '{node.path}' must be 1-12 printable characters, no comma"
                )
            attrs["value"] = value
        out[node.tag] = attrs
        node.done()
    e.done()
    return out


def write(hyperv: dict[str, dict[str, str]]) -> XNode:
    return x("hyperv").add(*(x(name, attrs) for name, attrs in hyperv.items()))


def cpu_flags(hyperv: dict[str, dict[str, str]]) -> list[str]:
    """QEMU's ``-cpu`` properties for the enlightenments that are on."""
    flags = []
    for name, attrs in hyperv.items():
        if attrs.get("state") != "on":
            continue
        if name == "spinlocks":
            flags.append(f"hv-spinlocks={int(attrs['retries']):#x}")
        elif name == "vendor_id":
            flags.append(f"hv-vendor-id={attrs['value']}")
        else:
            flags.append(f"{ENLIGHTENMENTS[name]}=on")
    return flags

"""``<features><hyperv>``: the Hyper-V enlightenments Windows guests run faster with.

What virt-install gives a Windows guest (relaxed, vapic, spinlocks with retries) and the other common
ones, each ``state='on'|'off'``; QEMU gets them as ``-cpu`` properties (``hv-relaxed=on``,
``hv-spinlocks=0x1fff``, ``hv-stimer-direct`` for ``<stimer><direct state='on'/>``), as libvirt gives
them. ``mode='passthrough'`` (every enlightenment the host's KVM has) is ``hv-passthrough=on``, kept under
the key ``MODE``. Any other child is refused by name.
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
    "evmcs": "hv-evmcs",  # enlightened VMCS for a nested Hyper-V (KVM on Intel hosts)
}
MODE = "@mode"  # the key of <hyperv mode='passthrough'> in the parsed dict


def parse(e: Elem) -> dict[str, dict[str, str]]:
    """The enlightenments of a ``<hyperv>`` element, name → attributes, in document order."""
    out: dict[str, dict[str, str]] = {}
    if e.choice("mode", ("custom", "passthrough")) == "passthrough":
        out[MODE] = {"mode": "passthrough"}
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
        if node.tag == "stimer" and (direct := node.child("direct")) is not None:
            attrs["direct"] = direct.choice("state", ("on", "off"), required=True) or "off"
            direct.done()
        out[node.tag] = attrs
        node.done()
    e.done()
    return out


def write(hyperv: dict[str, dict[str, str]]) -> XNode:
    node = x("hyperv", hyperv.get(MODE))
    for name, attrs in hyperv.items():
        if name == MODE:
            continue
        direct = attrs.get("direct")
        child = x(name, {k: v for k, v in attrs.items() if k != "direct"})
        node.add(child.add(x("direct", {"state": direct}) if direct else None))
    return node


def cpu_flags(hyperv: dict[str, dict[str, str]]) -> list[str]:
    """QEMU's ``-cpu`` properties for the enlightenments that are on."""
    flags = ["hv-passthrough=on"] if MODE in hyperv else []
    for name, attrs in hyperv.items():
        if attrs.get("state") != "on":
            continue
        if name == "spinlocks":
            flags.append(f"hv-spinlocks={int(attrs['retries']):#x}")
        elif name == "vendor_id":
            flags.append(f"hv-vendor-id={attrs['value']}")
        else:
            flags.append(f"{ENLIGHTENMENTS[name]}=on")
        if attrs.get("direct") == "on":
            flags.append("hv-stimer-direct=on")
    return flags

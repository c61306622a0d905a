"""The ``<interface>`` element attach-interface makes of its options, as virsh 9.0 writes it (the same
elements in the same order, so ``--print-xml`` prints what virsh prints), for attach-device to plug.

virsh's types: ``network`` and ``bridge`` (``<source network|bridge>``), ``direct`` (``<source dev>``),
``hostdev`` (the source a PCI address ``DDDD:BB:SS.F``, with ``--managed``) and ``vhostuser`` (the
source a socket path, ``--source-mode server|client`` required); pyvirt adds ``user`` (no source).
Unlike virsh, values are escaped, and what libvirt would drop unsaid is refused by name: an option
that means nothing for the type (``--managed`` but for hostdev, ``--source-mode`` but for vhostuser),
an ``--alias`` without libvirt's ``ua-`` prefix, a ``--target`` of the prefixes of generated taps.
"""

from __future__ import annotations

from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.conf.xmlutil import XNode

# virsh 9.0 makes XML for these (libvirt's other interface types are refused in its words).
VIRSH_TYPES = ("network", "bridge", "direct", "hostdev", "vhostuser")
TYPES = (*VIRSH_TYPES, "user")  # 'user': pyvirt's addition
SOURCE_MODES = ("server", "client")
_RATES = {"inbound": ("average", "peak", "burst", "floor"), "outbound": ("average", "peak", "burst")}


def check_type(kind: str) -> None:
    if kind not in TYPES:
        raise InvalidArgument(f"No support for {kind} in command 'attach-interface'")


def _pci(text: str) -> dict[str, str]:
    """virsh's hostdev source ``DDDD:BB:SS.F`` (hex; any one character between the numbers, as virsh
    reads it) as its ``<address type='pci'>``."""
    import re

    found = re.fullmatch(r"([0-9a-fA-F]+).([0-9a-fA-F]+).([0-9a-fA-F]+).([0-9a-fA-F]+)", text)
    if found is None:
        raise InvalidArgument(f"cannot parse pci address '{text}' for network interface")
    d, b, s, f = (int(part, 16) for part in found.groups())
    return {
        "type": "pci",
        "domain": f"0x{d:04x}",
        "bus": f"0x{b:02x}",
        "slot": f"0x{s:02x}",
        "function": f"0x{f:x}",
    }


def _rates(a: Parsed) -> dict[str, dict[str, int]]:
    """--inbound and --outbound ``average,peak,burst[,floor]``, checked as virsh checks them."""
    out: dict[str, dict[str, int]] = {}
    for direction, names in _RATES.items():
        text = a.opt(direction)
        if text is None:
            continue
        words = text.split(",")
        if len(words) > 4:
            raise InvalidArgument(f"Rate string '{text}' has too many fields")
        if direction == "outbound" and len(words) == 4 and words[3] not in ("", "0"):
            raise InvalidArgument("outbound floor is unsupported yet")
        values: dict[str, int] = {}
        for name, word in zip(names, words, strict=False):
            if word == "":
                continue
            if not word.isdigit():
                raise InvalidArgument(f"field '{name}' is malformed")
            values[name] = int(word)
        if direction == "inbound" and not (values.get("average") or values.get("floor")):
            raise InvalidArgument("either inbound average or floor is mandatory")
        if direction == "outbound" and not values.get("average"):
            raise InvalidArgument("outbound average is mandatory")
        out[direction] = {name: value for name, value in values.items() if value}
    return out


def _source(kind: str, source: str, mode: str | None) -> XNode | None:
    from pyvirt.conf.xmlutil import x

    if kind in ("network", "bridge"):
        return x("source", {kind: source})
    if kind == "direct":
        return x("source", {"dev": source})
    if kind == "hostdev":
        return x("source").add(x("address", _pci(source)))
    if kind == "vhostuser":
        if mode is None:
            raise InvalidArgument("source-mode is mandatory")
        return x("source", {"type": "unix", "path": source, "mode": mode})
    return None  # user: no source


def interface_xml(a: Parsed) -> str:
    """The ``<interface>`` of attach-interface's options ``a``."""
    from pyvirt.conf.xmlutil import serialize, x

    kind = a.text("type")
    check_type(kind)
    mode = a.opt("source_mode")
    if mode is not None and mode not in SOURCE_MODES:
        raise InvalidArgument(f"Invalid source mode: {mode}")
    rates = _rates(a)
    target = a.opt("target")
    if target is not None:
        from pyvirt.conf.domain_xml import AUTO_TAP_PREFIXES

        if target.startswith(AUTO_TAP_PREFIXES):  # libvirt drops such a name unsaid: refused here
            raise InvalidArgument(
                f"--target {target}: the prefixes vnet, macvtap and macvlan are reserved for generated taps"
            )
    if mode is not None and kind != "vhostuser":
        raise InvalidArgument(
            f"--source-mode: a mode is for a vhostuser interface's socket, not a {kind} one"
        )
    if a.flag("managed") and kind != "hostdev":
        raise InvalidArgument(
            f"--managed: managed is for a hostdev interface (a host PCI device), not a {kind} one"
        )
    alias = a.opt("alias")
    if alias is not None and not alias.startswith("ua-"):  # libvirt drops it unsaid: refused here
        raise InvalidArgument(f"--alias {alias}: a user alias must start with 'ua-'")
    nic = x("interface", {"type": kind, "managed": "yes" if a.flag("managed") else None})
    nic.add(_source(kind, a.text("source"), mode))
    for option, tag, attr in (
        ("target", "target", "dev"),
        ("mac", "mac", "address"),
        ("script", "script", "path"),
        ("model", "model", "type"),
        ("alias", "alias", "name"),
    ):
        if (value := a.opt(option)) is not None:
            nic.add(x(tag, {attr: value}))
    if rates:
        nic.add(x("bandwidth").add(*(x(direction, values) for direction, values in rates.items())))
    return serialize(nic)

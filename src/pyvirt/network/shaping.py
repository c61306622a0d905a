"""A NIC's ``<bandwidth>`` (domiftune) as traffic control on its tap, the way libvirt sets it.

``inbound`` is traffic to the guest, which leaves the host through the tap: an HTB root qdisc whose
default class is limited to ``average`` (KiB/s), bursting to ``peak`` (KiB/s) for ``burst`` KiB.
``outbound`` is traffic from the guest, which enters the host through the tap: an ingress qdisc with a
u32 match-all filter policing it to ``average`` with ``burst``, dropping the excess (a kernel without
the u32 classifier or the police action refuses it, and the error says so). Setting replaces what the
tap had; a direction with ``average`` 0 is left unlimited, as libvirt clears it.
"""

from __future__ import annotations

from typing import Any

from pyvirt.conf.bandwidth import check
from pyvirt.errors import OperationFailed
from pyvirt.network.links import _index, _netlink

ROOT, CLASS, INGRESS = 0x10000, 0x10001, 0xFFFF0000
ETH_P_ALL = 0x0003


def apply(tap: str, bandwidth: dict[str, dict[str, int]]) -> None:
    """Give ``tap`` the limits of ``bandwidth`` (replacing any it had); blocking (netlink)."""
    check(bandwidth, tap)
    with _netlink(f"shaping {tap}") as ipr:
        index = _index(ipr, tap)
        _clear(ipr, index)
        inbound = bandwidth.get("inbound", {})
        if inbound.get("average"):
            _inbound(ipr, index, inbound)
        outbound = bandwidth.get("outbound", {})
        if outbound.get("average"):
            try:
                _outbound(ipr, index, outbound)
            except OperationFailed:
                raise
            except Exception as err:
                _clear(ipr, index)
                raise OperationFailed(
                    f"cannot limit {tap}'s outbound traffic: the kernel refused an ingress u32 filter with a "
                    f"police action (cls_u32, act_police): {err}"
                ) from err


def _clear(ipr: Any, index: int) -> None:
    for kind, handle in (("htb", ROOT), ("ingress", INGRESS)):
        for qdisc in ipr.get_qdiscs(index):
            if qdisc.get_attr("TCA_KIND") == kind:
                ipr.tc("del", kind, index, handle)
                break


def _bits(kib: int) -> str:
    return f"{kib * 1024 * 8}bit"


def _inbound(ipr: Any, index: int, values: dict[str, int]) -> None:
    average = values["average"]
    peak = values.get("peak") or average
    burst = values.get("burst")
    ipr.tc("add", "htb", index, ROOT, default=CLASS & 0xFFFF)
    params: dict[str, Any] = {"rate": _bits(average), "ceil": _bits(peak), "quantum": 1514}
    if burst:
        params["burst"] = burst * 1024
    ipr.tc("add-class", "htb", index, CLASS, parent=ROOT, **params)


def _outbound(ipr: Any, index: int, values: dict[str, int]) -> None:
    ipr.tc("add", "ingress", index, INGRESS)
    ipr.tc(
        "add-filter",
        "u32",
        index,
        parent=INGRESS,
        protocol=ETH_P_ALL,
        prio=1,
        keys=["0x0/0x0+0"],
        target=0x1,
        rate=_bits(values["average"]),
        burst=(values.get("burst") or values["average"]) * 1024,
        mtu=65536,
        action="drop",
    )


def classes(tap: str) -> list[dict[str, Any]]:
    """The tap's HTB classes as the kernel has them (rate and ceil in bytes per second)."""
    out = []
    with _netlink(f"reading {tap}'s traffic control") as ipr:
        for msg in ipr.get_classes(_index(ipr, tap)):
            options = msg.get_attr("TCA_OPTIONS")
            parms = options.get_attr("TCA_HTB_PARMS") if options is not None else None
            if parms is not None:
                out.append({"handle": msg["handle"], "rate": parms["rate"], "ceil": parms["ceil"]})
    return out

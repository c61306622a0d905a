"""A NIC's ``<bandwidth>`` (domiftune) as traffic control on its tap.

``inbound`` is traffic to the guest, which leaves the host through the tap: an HTB root qdisc on the
tap whose default class is limited to ``average`` (KiB/s), bursting to ``peak`` (KiB/s) for ``burst``
KiB.

``outbound`` is traffic from the guest, which enters the host through the tap, where no qdisc can
queue it. It is shaped the same way on the tap's own IFB device (:func:`ifb_name`): an ingress qdisc
on the tap with a u32 match-all filter whose mirred action redirects every frame to the IFB's egress,
where an HTB class gives ``average``, ``peak`` and ``burst`` their meaning as for inbound; the IFB
then hands the frames back to the tap's ingress path (the bridge). libvirt polices outbound instead
(``act_police``, which drops the excess and ignores ``peak``); IFB, ``cls_u32``, ``act_mirred`` and
``sch_htb`` are in stock kernels where the police action may not be. A kernel lacking one refuses and
the error names them.

Setting replaces what the tap had (its IFB is made anew); a direction with ``average`` 0 is left
unlimited, as libvirt clears it, and an unlimited outbound has no IFB. :func:`remove` deletes the IFB
when the tap goes.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from pyvirt.conf.bandwidth import check
from pyvirt.errors import OperationFailed
from pyvirt.network.links import _index, _netlink

ROOT, CLASS, INGRESS = 0x10000, 0x10001, 0xFFFF0000
ETH_P_ALL = 0x0003
IFB_PREFIX = "pvifb"


def ifb_name(tap: str) -> str:
    """The IFB device shaping ``tap``'s outbound traffic: ``pvifb`` and 8 hex digits of a hash of the
    tap's name (13 bytes: within IFNAMSIZ; the same in every run, so a restarted daemon finds it)."""
    return IFB_PREFIX + hashlib.sha256(tap.encode()).hexdigest()[:8]


def apply(tap: str, bandwidth: dict[str, dict[str, int]]) -> None:
    """Give ``tap`` the limits of ``bandwidth`` (replacing any it had); blocking (netlink)."""
    check(bandwidth, tap)
    with _netlink(f"shaping {tap}") as ipr:
        index = _index(ipr, tap)
        _clear(ipr, index)
        _delete_ifb(ipr, tap)
        inbound = bandwidth.get("inbound", {})
        if inbound.get("average"):
            _htb(ipr, index, inbound)
        outbound = bandwidth.get("outbound", {})
        if outbound.get("average"):
            try:
                _outbound(ipr, index, tap, outbound)
            except Exception as err:
                with contextlib.suppress(Exception):
                    _clear(ipr, index)
                    _delete_ifb(ipr, tap)
                raise OperationFailed(
                    f"cannot limit {tap}'s outbound traffic: the kernel refused an IFB device shaped by HTB "
                    f"with an ingress u32 filter redirecting to it (ifb, sch_htb, cls_u32, act_mirred): {err}"
                ) from err


def remove(tap: str) -> None:
    """Delete ``tap``'s IFB device, if it has one (the tap is going, or going unshaped); blocking."""
    with _netlink(f"removing {tap}'s outbound shaping") as ipr:
        _delete_ifb(ipr, tap)


def _clear(ipr: Any, index: int) -> None:
    for kind, handle in (("htb", ROOT), ("ingress", INGRESS)):
        for qdisc in ipr.get_qdiscs(index):
            if qdisc.get_attr("TCA_KIND") == kind:
                ipr.tc("del", kind, index, handle)
                break


def _delete_ifb(ipr: Any, tap: str) -> None:
    found = ipr.link_lookup(ifname=ifb_name(tap))
    if found:
        ipr.link("del", index=found[0])


def _bits(kib: int) -> str:
    return f"{kib * 1024 * 8}bit"


def _htb(ipr: Any, index: int, values: dict[str, int]) -> None:
    """An HTB root on device ``index`` whose one (default) class has the direction's limits."""
    average = values["average"]
    peak = values.get("peak") or average
    burst = values.get("burst")
    ipr.tc("add", "htb", index, ROOT, default=CLASS & 0xFFFF)
    params: dict[str, Any] = {"rate": _bits(average), "ceil": _bits(peak), "quantum": 1514}
    if burst:
        params["burst"] = burst * 1024
    ipr.tc("add-class", "htb", index, CLASS, parent=ROOT, **params)


def _outbound(ipr: Any, index: int, tap: str, values: dict[str, int]) -> None:
    ifb = ifb_name(tap)
    ipr.link("add", ifname=ifb, kind="ifb")
    ifb_index = _index(ipr, ifb)
    ipr.link("set", index=ifb_index, state="up")
    _htb(ipr, ifb_index, values)
    ipr.tc("add", "ingress", index, INGRESS)
    ipr.tc(
        "add-filter",
        "u32",
        index,
        parent=INGRESS,
        protocol=ETH_P_ALL,
        prio=1,
        keys=["0x0/0x0+0"],
        target=CLASS,
        action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb_index},
    )

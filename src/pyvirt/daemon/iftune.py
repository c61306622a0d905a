"""domiftune: a NIC's ``<bandwidth>`` read from the definition, and set on the running tap's traffic
control (:mod:`pyvirt.network.shaping`) and/or in the persistent definition.

The interface is named by MAC address or tap name. A direction given replaces that direction whole
(average 0 clears it), one not given is kept, as libvirt merges them. A live change the kernel refuses
leaves the tap with the limits it had.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pyvirt.conf.bandwidth import DIRECTIONS, check
from pyvirt.conf.domain import Domain, InterfaceConfig
from pyvirt.conf.mac import is_mac
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.daemon.stats import scope_targets
from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.network import shaping

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainRegistry

# virsh's fields per direction (outbound has no floor).
SHOWN = {"inbound": ("average", "peak", "burst", "floor"), "outbound": ("average", "peak", "burst")}


def find(dom: Domain, device: str) -> InterfaceConfig:
    mac = device.lower() if is_mac(device) else None
    found = [
        iface
        for iface in dom.devices.interfaces
        if (mac is not None and iface.mac == mac) or (iface.target_dev and iface.target_dev == device)
    ]
    if len(found) > 1:
        raise OperationFailed(f"operation failed: multiple devices matching MAC address {mac} found")
    if found:
        return found[0]
    raise InvalidArgument(f"invalid argument: can't find interface '{device}'")


def values(iface: InterfaceConfig) -> dict[str, int]:
    return {
        f"{direction}.{name}": iface.bandwidth.get(direction, {}).get(name, 0)
        for direction, names in SHOWN.items()
        for name in names
    }


async def get_iftune(reg: DomainRegistry, key: str, device: str, *, config: bool) -> dict[str, int]:
    obj = reg.lookup(key)
    dom = (obj.config or obj.current) if config else obj.current
    return values(find(dom, device))


def _merged(iface: InterfaceConfig, changes: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {d: dict(v) for d, v in iface.bandwidth.items()}
    for direction, rates in changes.items():
        if rates.get("average") or rates.get("floor"):
            out[direction] = {k: v for k, v in rates.items() if v}
        else:
            out.pop(direction, None)
    return {d: v for d, v in out.items() if v}


async def set_iftune(
    reg: DomainRegistry, key: str, device: str, changes: dict[str, Any], *, live: bool, config: bool
) -> None:
    for direction in changes:
        if direction not in DIRECTIONS:
            raise InvalidArgument(f"invalid argument: domiftune has no direction '{direction}'")
    check(changes, "domiftune")
    async with guard(reg.lookup(key), lifecycle.ANY) as obj:
        targets = scope_targets(obj, live=live, config=config)
        found = [(dom, find(dom, device)) for dom in targets]
        for _, iface in found:
            check(_merged(iface, changes), "domiftune")
        if live:
            assert obj.live is not None
            iface = find(obj.live, device)
            if iface.type not in ("network", "bridge") or not iface.target_dev:
                raise InvalidArgument(
                    f"invalid argument: interface '{device}' (type {iface.type}) has no tap to shape"
                )
            wanted = _merged(iface, changes)
            try:
                await asyncio.to_thread(shaping.apply, iface.target_dev, wanted)
            except BaseException:
                await asyncio.to_thread(shaping.apply, iface.target_dev, iface.bandwidth)
                raise
            iface.bandwidth = wanted
            reg.save_run_state(obj)
        if config:
            assert obj.config is not None
            iface = find(obj.config, device)
            iface.bandwidth = _merged(iface, changes)
            reg.write_config(obj.config)

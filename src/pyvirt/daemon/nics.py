"""NIC hot-plug on running domains: attach-interface, detach-interface, domif-setlink.

Attach plugs a tap into the network's bridge, then ``netdev_add`` + ``device_add`` over QMP; any
failure unwinds what was done. Detach asks the guest to release the device (``device_del``), waits
for QEMU's DEVICE_DELETED, then removes the netdev and the tap. ``--config`` changes the persistent
definition too, like virsh.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from pyvirt.conf.domain import InterfaceConfig
from pyvirt.conf.mac import random_mac
from pyvirt.errors import InvalidArgument, InvalidState, NotFound, OperationFailed, UnsupportedConfig
from pyvirt.qemu.command import NIC_MODELS

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry


def _nic_id(index: int, iface: InterfaceConfig) -> str:
    return iface.alias or f"net{index}"


def _find(ifaces: list[InterfaceConfig], key: str) -> int:
    key = key.lower()
    for index, iface in enumerate(ifaces):
        if key in ((iface.mac or "").lower(), (iface.target_dev or "").lower()):
            return index
    raise NotFound(f"interface '{key}' not found in the domain")


async def attach_interface(
    reg: DomainRegistry, key: str, spec: dict[str, Any], *, live: bool, config: bool
) -> dict[str, Any]:
    obj = reg.lookup(key)
    kind = str(spec.get("type", "network"))
    if kind not in ("network", "bridge", "user"):
        raise InvalidArgument(f"interface type '{kind}' is not supported (network, bridge or user)")
    model = str(spec.get("model") or "virtio")
    if model not in NIC_MODELS:
        raise UnsupportedConfig(f"unsupported configuration: interface model '{model}'")
    source = spec.get("source")
    if kind != "user" and not source:
        raise InvalidArgument("attach-interface needs --source for network and bridge interfaces")
    async with obj.lock:
        targets = [d for d in (obj.live if live else None, obj.config if config else None) if d is not None]
        if live and not obj.active:
            raise InvalidState("Requested operation is not valid: domain is not running")
        if config and obj.config is None:
            raise InvalidState("Requested operation is not valid: cannot change config of transient domain")
        taken = {i.mac for d in targets for i in d.devices.interfaces if i.mac}
        mac = str(spec.get("mac") or random_mac(taken)).lower()
        if mac in taken:
            raise InvalidArgument(f"MAC address {mac} is already in use by the domain")
        iface = InterfaceConfig(
            type=kind,
            mac=mac,
            source_network=str(source) if kind == "network" else None,
            source_bridge=str(source) if kind == "bridge" else None,
            model=model,
        )
        if live:
            await _hotplug(reg, obj, iface)
        if config:
            assert obj.config is not None
            persistent = InterfaceConfig(**{**iface.__dict__, "target_dev": None, "alias": None})
            obj.config.devices.interfaces.append(persistent)
            reg.write_config(obj.config)
        return {"mac": mac, "target": iface.target_dev}


async def _hotplug(reg: DomainRegistry, obj: DomainObject, iface: InterfaceConfig) -> None:
    proc, live = obj.proc, obj.live
    assert proc is not None and live is not None
    index = len(live.devices.interfaces)
    used = {_nic_id(i, nic) for i, nic in enumerate(live.devices.interfaces)}
    while f"net{index}" in used:
        index += 1
    dev_id, netdev = f"net{index}", f"hostnet{index}"
    iface.alias = dev_id
    tap: str | None = None
    if iface.type in ("network", "bridge"):
        if reg.networks is None:
            raise UnsupportedConfig("unsupported configuration: the network driver is not available")
        assert iface.mac is not None
        tap = await reg.networks.plug_tap(
            network=iface.source_network, bridge=iface.source_bridge, mac=iface.mac
        )
        iface.target_dev = tap
        args: dict[str, Any] = {
            "type": "tap",
            "id": netdev,
            "ifname": tap,
            "script": "no",
            "downscript": "no",
        }
    else:
        args = {"type": "user", "id": netdev}
    try:
        await proc.monitor.execute("netdev_add", args)
        try:
            await proc.monitor.execute(
                "device_add",
                {"driver": NIC_MODELS[iface.model], "netdev": netdev, "id": dev_id, "mac": iface.mac},
            )
        except OperationFailed:
            with contextlib.suppress(OperationFailed):
                await proc.monitor.execute("netdev_del", {"id": netdev})
            raise
    except BaseException:
        if tap and reg.networks is not None:
            reg.networks.unplug_tap(tap)
        raise
    live.devices.interfaces.append(iface)
    if tap:
        proc.record.taps.append(tap)
    reg.save_run_state(obj)


async def detach_interface(
    reg: DomainRegistry, key: str, mac: str, *, live: bool, config: bool, timeout: float = 30.0
) -> None:
    obj = reg.lookup(key)
    async with obj.lock:
        if live:
            if not obj.active or obj.live is None or obj.proc is None:
                raise InvalidState("Requested operation is not valid: domain is not running")
            index = _find(obj.live.devices.interfaces, mac)
            iface = obj.live.devices.interfaces[index]
            dev_id = _nic_id(index, iface)
            netdev = "host" + dev_id
            deleted = reg.expect_event(obj, "DEVICE_DELETED", lambda data: data.get("device") == dev_id)
            await obj.proc.monitor.execute("device_del", {"id": dev_id})
            try:
                await asyncio.wait_for(deleted, timeout)
            except TimeoutError as err:
                raise OperationFailed(
                    f"operation failed: the guest did not release interface {iface.mac} within {timeout:.0f}s"
                ) from err
            with contextlib.suppress(OperationFailed):
                await obj.proc.monitor.execute("netdev_del", {"id": netdev})
            if iface.target_dev and iface.type != "user" and reg.networks is not None:
                reg.networks.unplug_tap(iface.target_dev)
                with contextlib.suppress(ValueError):
                    obj.proc.record.taps.remove(iface.target_dev)
            del obj.live.devices.interfaces[index]
            reg.save_run_state(obj)
        if config:
            if obj.config is None:
                raise InvalidState(
                    "Requested operation is not valid: cannot change config of transient domain"
                )
            index = _find(obj.config.devices.interfaces, mac)
            del obj.config.devices.interfaces[index]
            reg.write_config(obj.config)


async def set_link(reg: DomainRegistry, key: str, device: str, up: bool) -> None:
    obj = reg.lookup(key)
    async with obj.lock:
        if not obj.active or obj.live is None or obj.proc is None:
            raise InvalidState("Requested operation is not valid: domain is not running")
        index = _find(obj.live.devices.interfaces, device)
        iface = obj.live.devices.interfaces[index]
        await obj.proc.monitor.set_link(_nic_id(index, iface), up)
        iface.link_state = "up" if up else "down"
        reg.save_run_state(obj)

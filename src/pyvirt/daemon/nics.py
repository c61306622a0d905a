"""NIC hot-plug on running domains: attach-interface, detach-interface, domif-setlink.

Attach plugs a tap into the network's bridge (an ``ethernet`` interface's tap is made or found, its
script run and its descriptor handed over: :mod:`pyvirt.daemon.ethernet`; a ``vhostuser`` one's socket
is handed to QEMU's user and added as a chardev: :mod:`pyvirt.daemon.vhostuser_nic`), then ``netdev_add`` +
``device_add`` over QMP; any failure unwinds what was done. Detach asks the guest to release the
device (``device_del``) and lets go of the domain's lock; QEMU's DEVICE_DELETED, applied under the
lock like every QMP event, then
removes the netdev, the tap and the live definition's entry (:func:`device_deleted`). The caller waits
for that without the lock, so a guest that never answers blocks nothing, and a ``destroy`` ends the
wait. ``--config`` changes the persistent definition too, like virsh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from pyvirt.conf import pci_assign
from pyvirt.conf.bandwidth import DIRECTIONS
from pyvirt.conf.bandwidth import check as bandwidth_check
from pyvirt.conf.defaults import DEFAULT_NET_MODEL
from pyvirt.conf.domain import Domain, InterfaceConfig
from pyvirt.conf.domain_xml import AUTO_TAP_PREFIXES
from pyvirt.conf.mac import random_mac
from pyvirt.daemon import lifecycle
from pyvirt.daemon.lifecycle import guard
from pyvirt.errors import InvalidArgument, InvalidState, NotFound, OperationFailed, UnsupportedConfig
from pyvirt.network import shaping
from pyvirt.qemu.command import NIC_MODELS
from pyvirt.qemu.hotplug import pci_placement, pci_slot
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess


log = logging.getLogger(__name__)
PLUGGABLE = ("network", "bridge", "user", "ethernet", "vhostuser")


def _nic_id(index: int, iface: InterfaceConfig) -> str:
    return iface.alias or f"net{index}"


def _find(ifaces: list[InterfaceConfig], key: str) -> int:
    """The interface of MAC address or tap name ``key``; a MAC two of them share is refused (libvirt's
    define allows that; its device lookups refuse the ambiguity in these words)."""
    key = key.lower()
    found = [
        i
        for i, iface in enumerate(ifaces)
        if key in ((iface.mac or "").lower(), (iface.target_dev or "").lower())
    ]
    if len(found) > 1:
        raise OperationFailed(f"operation failed: multiple devices matching MAC address {key} found")
    if found:
        return found[0]
    raise NotFound(f"interface '{key}' not found in the domain")


async def attach_interface(
    reg: DomainRegistry, key: str, spec: dict[str, Any], *, live: bool, config: bool
) -> dict[str, Any]:
    kind = str(spec.get("type", "network"))
    if kind not in ("network", "bridge", "user"):
        raise InvalidArgument(f"interface type '{kind}' is not supported (network, bridge or user)")
    model = str(spec.get("model") or DEFAULT_NET_MODEL)
    source = spec.get("source")
    if kind != "user" and not source:
        raise InvalidArgument("attach-interface needs --source for network and bridge interfaces")
    iface = InterfaceConfig(
        type=kind,
        mac=str(spec["mac"]).lower() if spec.get("mac") else None,
        source_network=str(source) if kind == "network" else None,
        source_bridge=str(source) if kind == "bridge" else None,
        model=model,
        target_dev=str(spec["target"]) if spec.get("target") else None,
        bandwidth={d: {k: int(v) for k, v in spec[d].items()} for d in DIRECTIONS if spec.get(d)},
    )
    bandwidth_check(iface.bandwidth, "attach-interface")
    return await attach_nic(reg, key, iface, live=live, config=config)


async def attach_nic(
    reg: DomainRegistry, key: str, iface: InterfaceConfig, *, live: bool, config: bool
) -> dict[str, Any]:
    """Plug ``iface`` into the running domain and/or add it to the definition (attach-interface, and
    attach-device of an ``<interface>``); the MAC is generated when it has none."""
    obj = reg.lookup(key)
    if iface.type not in PLUGGABLE:
        raise InvalidArgument(
            f"interface type '{iface.type}' is not supported (network, bridge, user, ethernet or vhostuser)"
        )
    if iface.model not in NIC_MODELS:
        raise UnsupportedConfig(f"unsupported configuration: interface model '{iface.model}'")
    if iface.type == "vhostuser":
        from pyvirt.conf import net_sockets

        net_sockets.check(iface)
    if iface.type in ("network", "bridge") and not (iface.source_network or iface.source_bridge):
        raise InvalidArgument("an interface of type network or bridge needs a source")
    async with guard(obj, lifecycle.HOTPLUGGABLE if live else lifecycle.ANY):
        targets = [d for d in (obj.live if live else None, obj.config if config else None) if d is not None]
        if config and obj.config is None:
            raise InvalidState("Requested operation is not valid: cannot change config of transient domain")
        taken = {i.mac for d in targets for i in d.devices.interfaces if i.mac}
        # A MAC the domain already uses is taken, live and in the definition, as libvirt 9.0 takes it
        # (detaching by that MAC is then refused as ambiguous: detach-device names the one to remove).
        mac = (iface.mac or random_mac(taken)).lower()
        tap = _tap_name(iface.target_dev, iface.type, targets)
        persistent = InterfaceConfig(**{**iface.__dict__, "mac": mac, "target_dev": tap})
        if persistent.alias and not persistent.alias.startswith("ua-"):
            persistent.alias = None
        iface = InterfaceConfig(**{**persistent.__dict__, "alias": iface.alias})
        if live:
            await _hotplug(reg, obj, iface)
        if config:
            assert obj.config is not None
            obj.config.devices.interfaces.append(persistent)
            pci_assign.assign(obj.config)  # its PCI address in the definition, as libvirt's attach gives it
            reg.write_config(obj.config)
        return {"mac": mac, "target": iface.target_dev}


def _tap_name(target: str | None, kind: str, doms: list[Domain]) -> str | None:
    """attach-interface --target: the tap's name, checked; refused for user networking (no tap)."""
    if not target:
        return None
    name = str(target)
    if kind == "user":
        raise InvalidArgument("--target: a 'user' interface has no tap to name")
    if name.startswith(AUTO_TAP_PREFIXES):
        raise InvalidArgument(
            f"--target {name}: the prefixes vnet, macvtap and macvlan are reserved for generated taps"
        )
    for dom in doms:
        if any(i.target_dev == name for i in dom.devices.interfaces):
            raise InvalidArgument(f"--target {name}: the domain already has an interface of that name")
    return name


async def _hotplug(reg: DomainRegistry, obj: DomainObject, iface: InterfaceConfig) -> None:
    proc, live = obj.proc, obj.live
    assert proc is not None and live is not None
    index = len(live.devices.interfaces)
    used = {_nic_id(i, nic) for i, nic in enumerate(live.devices.interfaces)}
    while f"net{index}" in used or f"hostnet{index}" in proc.record.netdevs.values():
        index += 1
    dev_id, netdev = iface.alias or f"net{index}", f"hostnet{index}"
    if dev_id in used:
        raise UnsupportedConfig(f"unsupported configuration: non unique alias detected: {dev_id}")
    iface.alias = dev_id
    address = iface.address or pci_slot(live)
    tap: str | None = None
    if iface.bandwidth and iface.type not in ("network", "bridge", "ethernet"):
        raise UnsupportedConfig(
            f"unsupported configuration: <bandwidth> of interface type '{iface.type}': no tap"
        )
    if iface.type in ("network", "bridge"):
        if reg.networks is None:
            raise UnsupportedConfig("unsupported configuration: the network driver is not available")
        assert iface.mac is not None
        tap = await reg.networks.plug_tap(
            network=iface.source_network,
            bridge=iface.source_bridge,
            mac=iface.mac,
            tap=iface.target_dev,
            owner=reg.confinement.tap_owner,
        )
        iface.target_dev = tap
        args: dict[str, Any] = {
            "type": "tap",
            "id": netdev,
            "ifname": tap,
            "script": "no",
            "downscript": "no",
        }
    elif iface.type == "ethernet":  # its tap made or found, its script run, its descriptor QEMU's
        from pyvirt.daemon import ethernet

        revert = Revert()
        try:
            args = await ethernet.plug_live(reg, proc, iface, netdev, revert)
        except BaseException:
            revert.fail()
            raise
        tap = iface.target_dev if iface.ethernet is None or iface.ethernet.managed else None
    elif iface.type == "vhostuser":  # its socket, handed to QEMU's user, as a chardev
        from pyvirt.daemon import vhostuser_nic

        args = await vhostuser_nic.plug(reg, proc, live, iface, netdev)
    else:
        args = {"type": "user", "id": netdev}
    try:
        if iface.target_dev and iface.bandwidth:
            await asyncio.to_thread(shaping.apply, iface.target_dev, iface.bandwidth)
        try:
            await proc.monitor.execute("netdev_add", args)
        except OperationFailed:
            if "fd" in args:  # the descriptor handed over for it
                with contextlib.suppress(OperationFailed):
                    await proc.monitor.execute("closefd", {"fdname": args["fd"]})
            if iface.type == "vhostuser":
                await _vhostuser_gone(proc, netdev)
            raise
        try:
            await proc.monitor.execute(
                "device_add",
                {
                    "driver": NIC_MODELS[iface.model],
                    "netdev": netdev,
                    "id": dev_id,
                    "mac": iface.mac,
                    **pci_placement(address, live),
                },
            )
            if iface.link_state == "down":
                await proc.monitor.set_link(dev_id, False)
        except OperationFailed:
            with contextlib.suppress(OperationFailed):
                await proc.monitor.execute("netdev_del", {"id": netdev})
            if iface.type == "vhostuser":
                await _vhostuser_gone(proc, netdev)
            raise
    except BaseException:
        if tap and reg.networks is not None:
            reg.networks.unplug_tap(tap)
        raise
    iface.address = address
    live.devices.interfaces.append(iface)
    proc.record.netdevs[dev_id] = netdev
    if tap:
        proc.record.taps.append(tap)
    reg.save_run_state(obj)
    reg.events.publish("domain", obj.name, "device-added", dev_id)


async def _vhostuser_gone(proc: QemuProcess, netdev: str) -> None:
    from pyvirt.daemon import vhostuser_nic

    await vhostuser_nic.unplug(proc, netdev)


async def detach_interface(
    reg: DomainRegistry, key: str, mac: str, *, live: bool, config: bool, timeout: float = 30.0
) -> None:
    """Remove an interface: from the persistent definition at once, from the guest once it lets go.

    Returns when the guest has released the device, or fails after ``timeout`` seconds saying the
    removal is still pending (it completes whenever the guest answers, as with libvirt)."""
    obj = reg.lookup(key)
    removal: asyncio.Future[None] | None = None
    async with guard(obj, lifecycle.HOTPLUGGABLE if live else lifecycle.ANY):
        if live:
            assert obj.live is not None and obj.proc is not None
            index = _find(obj.live.devices.interfaces, mac)
            dev_id = _nic_id(index, obj.live.devices.interfaces[index])
        if config:
            if obj.config is None:
                raise InvalidState(
                    "Requested operation is not valid: cannot change config of transient domain"
                )
            config_index = _find(obj.config.devices.interfaces, mac)
        if live:
            assert obj.proc is not None
            removal = obj.removals.get(dev_id)
            if removal is None:  # a second detach of the same device waits for the first one's removal
                removal = asyncio.get_running_loop().create_future()
                obj.removals[dev_id] = removal
                try:
                    await obj.proc.monitor.execute("device_del", {"id": dev_id})
                except BaseException:
                    del obj.removals[dev_id]
                    raise
                log.info("domain %s: waiting for the guest to release %s", obj.name, dev_id)
        if config:
            assert obj.config is not None
            del obj.config.devices.interfaces[config_index]
            reg.write_config(obj.config)
    if removal is not None:
        try:
            await asyncio.wait_for(asyncio.shield(removal), timeout)
        except TimeoutError as err:
            raise OperationFailed(
                f"operation failed: the guest did not release interface {mac} within {timeout:.0f}s; "
                "it is removed when the guest releases it"
            ) from err


async def device_deleted(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, dev_id: str) -> None:
    """QEMU's DEVICE_DELETED for ``dev_id`` (``obj.lock`` held): if it was a NIC, drop its netdev,
    tap and live entry, whoever asked for the removal (a detach, or the guest ejecting it)."""
    removal = obj.removals.pop(dev_id, None)
    live = obj.live
    nics = live.devices.interfaces if live is not None else []
    index = next((i for i, nic in enumerate(nics) if _nic_id(i, nic) == dev_id), None)
    if live is not None and index is not None:
        iface = nics[index]
        netdev = proc.record.netdevs.get(dev_id, "host" + dev_id)
        with contextlib.suppress(OperationFailed):
            await proc.monitor.execute("netdev_del", {"id": netdev})
        proc.record.netdevs.pop(dev_id, None)
        if iface.type == "vhostuser":
            await _vhostuser_gone(proc, netdev)
        elif iface.type == "ethernet":
            from pyvirt.daemon import ethernet

            await ethernet.unplug_live(reg, iface)
        elif iface.target_dev and iface.type != "user" and reg.networks is not None:
            reg.networks.unplug_tap(iface.target_dev)
        if iface.target_dev:
            with contextlib.suppress(ValueError):
                proc.record.taps.remove(iface.target_dev)
        del nics[index]
        reg.save_run_state(obj)
        reg.events.publish("domain", obj.name, "device-removed", dev_id)
    if removal is not None and not removal.done():
        removal.set_result(None)


async def set_link(reg: DomainRegistry, key: str, device: str, up: bool, *, config: bool = False) -> None:
    """A NIC's link: of the running domain, or with ``config`` or while it does not run, of its
    definition (virsh domif-setlink)."""
    obj = reg.lookup(key)
    if config or not obj.active:
        async with guard(obj, lifecycle.ANY):
            if obj.config is None:
                raise InvalidState(
                    "Requested operation is not valid: cannot change config of transient domain"
                )
            iface = obj.config.devices.interfaces[_find(obj.config.devices.interfaces, device)]
            iface.link_state = "up" if up else "down"
            reg.write_config(obj.config)
        return
    async with guard(obj, lifecycle.HOTPLUGGABLE) as obj:
        assert obj.live is not None and obj.proc is not None
        index = _find(obj.live.devices.interfaces, device)
        iface = obj.live.devices.interfaces[index]
        await obj.proc.monitor.set_link(_nic_id(index, iface), up)
        iface.link_state = "up" if up else "down"
        reg.save_run_state(obj)

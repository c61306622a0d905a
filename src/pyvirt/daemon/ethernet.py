"""The host side of ``<interface type='ethernet'>`` (pyvirt.conf.net_ethernet): the tap made or found at
start, its script run, its descriptor handed to QEMU; at stop its downscript run and a managed tap
deleted (an unmanaged one is the user's and stays). The same for one plugged into a running domain
(:func:`plug_live`: the descriptor goes over ``getfd``) and unplugged again (:func:`unplug_live`), as
libvirt's hot-plug and removal of an ethernet interface do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import TYPE_CHECKING

from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain, InterfaceConfig
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)
SCRIPT_TIMEOUT = 60.0


async def plug(reg: DomainRegistry, iface: InterfaceConfig, revert: Revert) -> str | None:
    """Make (or find) the tap and run the script; returns the tap the daemon made, None for the user's."""
    eth = iface.ethernet
    assert eth is not None and iface.mac is not None
    networks = reg.networks
    if networks is None:
        raise UnsupportedConfig(
            "unsupported configuration: interface type 'ethernet' needs the network driver"
        )
    made: str | None = None
    if eth.managed:
        tap = await networks.plug_ethernet(
            tap=iface.target_dev,
            mac=iface.mac,
            owner=reg.confinement.tap_owner,
            addresses=[(ip.address, ip.prefix, ip.peer) for ip in eth.ips],
            routes=[(r.address, r.prefix, r.gateway) for r in eth.routes],
        )
        revert.add(lambda: networks.unplug_tap(tap), f"unplug {tap}")
        made = tap
    else:
        tap = iface.target_dev or ""
        kind = await networks.tap_kind(tap)
        if kind != "tun":
            raise OperationFailed(
                f"operation failed: interface type 'ethernet' with managed='no': "
                f"{'no device' if kind is None else 'device'} '{tap}'"
                f"{'' if kind is None else ' is not a tap'}"
            )
    iface.target_dev = tap
    if eth.script:
        await asyncio.to_thread(run_script, eth.script, tap)
    return made


async def plug_live(
    reg: DomainRegistry, proc: QemuProcess, iface: InterfaceConfig, netdev: str, revert: Revert
) -> dict[str, str]:
    """The tap of ``iface``, plugged into running ``proc``: made (or found), its script run, its
    descriptor handed to QEMU; ``netdev_add``'s arguments. ``revert`` deletes a tap the daemon made."""
    await plug(reg, iface, revert)
    assert reg.networks is not None and iface.target_dev is not None
    fd = await reg.networks.open_tap(iface.target_dev)
    name = f"{netdev}-fd"
    try:
        await proc.monitor.get_fd(fd, name)
    finally:
        os.close(fd)
    return {"type": "tap", "id": netdev, "fd": name}


async def unplug_live(reg: DomainRegistry, iface: InterfaceConfig) -> None:
    """``iface`` removed from a running domain: its downscript run, a tap the daemon made deleted."""
    eth = iface.ethernet
    if eth is None or not iface.target_dev:
        return
    if eth.downscript:
        try:
            await asyncio.to_thread(run_script, eth.downscript, iface.target_dev)
        except OperationFailed as err:
            log.warning("%s", err)
    if eth.managed and reg.networks is not None:
        reg.networks.unplug_tap(iface.target_dev)


def run_script(script: str, tap: str) -> None:
    """``script TAP`` as libvirt runs an ethernet interface's script; a failure names its output."""
    try:
        done = subprocess.run(
            [script, tap], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise OperationFailed(f"operation failed: running {script} {tap}: {err}") from err
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise OperationFailed(
            f"operation failed: {script} {tap} exited with status {done.returncode}: {output}"
        )


async def open_fds(reg: DomainRegistry, dom: Domain) -> dict[int, int]:
    """A descriptor on each ethernet interface's tap, for ``-netdev tap,fd=N`` (the caller closes them)."""
    fds: dict[int, int] = {}
    try:
        for index, iface in enumerate(dom.devices.interfaces):
            if iface.type == "ethernet" and iface.target_dev:
                assert reg.networks is not None
                fds[index] = await reg.networks.open_tap(iface.target_dev)
    except BaseException:
        close_fds(fds)
        raise
    return fds


def close_fds(fds: dict[int, int]) -> None:
    for fd in fds.values():
        os.close(fd)


def unmanaged_taps(dom: Domain) -> set[str]:
    """The users' taps of the domain's unmanaged ethernet interfaces (never deleted)."""
    return {
        iface.target_dev
        for iface in dom.devices.interfaces
        if iface.type == "ethernet" and iface.ethernet and not iface.ethernet.managed and iface.target_dev
    }


def run_downscripts(dom: Domain) -> None:
    """Each ethernet interface's ``<downscript>`` with its tap, as the domain stops (errors logged)."""
    for iface in dom.devices.interfaces:
        eth = iface.ethernet
        if iface.type == "ethernet" and eth is not None and eth.downscript and iface.target_dev:
            try:
                run_script(eth.downscript, iface.target_dev)
            except OperationFailed as err:
                log.warning("domain %s: %s", dom.name, err)

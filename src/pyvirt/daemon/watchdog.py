"""QEMU's ``WATCHDOG`` event: published as libvirt's watchdog event, and a ``pause`` applied to the state.

libvirt 9.0 (``qemuProcessHandleWatchdog``) sends ``VIR_DOMAIN_EVENT_ID_WATCHDOG`` with QEMU's action
(none, pause, reset, poweroff, shutdown, debug, inject-nmi: virsh prints ``event 'watchdog' for domain
'NAME': ACTION``) for every firing; when the action is ``pause`` and the domain runs, it marks the
domain paused for the watchdog and sends the lifecycle event ``Suspended Watchdog`` after it (QEMU's
STOP, which follows, then finds the domain paused already). A ``dump`` domain's pause is then turned
into a memory dump and a resume (:mod:`pyvirt.daemon.watchdog_dump`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.daemon import watchdog_dump
from pyvirt.daemon.lifecycle import DomainState, Paused

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess

# QEMU's WatchdogAction values, which are libvirt's virDomainEventWatchdogAction names too.
ACTIONS = ("none", "pause", "reset", "poweroff", "shutdown", "debug", "inject-nmi")


async def on_watchdog(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, action: str) -> None:
    """QEMU's ``WATCHDOG`` event; the caller holds ``obj.lock``."""
    reg.events.publish("domain", obj.name, "watchdog", action if action in ACTIONS else "unknown")
    if action != "pause" or obj.state is not DomainState.RUNNING:
        return
    reg.transition(obj, DomainState.PAUSED, Paused.WATCHDOG, ("suspended", "watchdog"))
    if watchdog_dump.wants_dump(obj.live):
        await watchdog_dump.dump_and_resume(reg, obj, proc)

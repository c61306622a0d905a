"""QMP events of a running domain, applied to its lifecycle under the domain's lock.

Each QEMU's events are delivered in order by one task (``Monitor.listen``); the handler takes the
domain's lock before looking at the state, so an event never changes a domain under an operation that
holds it, and an operation's check of the state stays true until it is done. Events of a QEMU that is
no longer the domain's (it exited, the domain was started again) are dropped.

STOP and RESUME say what QEMU did when it sent them; by the time the lock is ours an operation may
have changed that (a reboot's ``cont`` after the STOP of a guest power-off), so both are checked
against ``query-status`` before they move the state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.lifecycle import Crashed, DomainState, Paused, PMSuspended, Running, Shutdown, Shutoff
from pyvirt.errors import OperationFailed

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry
    from pyvirt.qemu.process import QemuProcess

log = logging.getLogger(__name__)

S = DomainState

# QEMU's run states (query-status) that mean paused, with the reason virsh gives them.
PAUSED_STATUS = {
    "paused": Paused.USER,
    "io-error": Paused.IOERROR,
    "watchdog": Paused.WATCHDOG,
    "shutdown": Paused.SHUTTING_DOWN,
    "prelaunch": Paused.STARTING_UP,
    "inmigrate": Paused.MIGRATION,
    "postmigrate": Paused.MIGRATION,
    "finish-migrate": Paused.MIGRATION,
    "save-vm": Paused.SAVE,
    "restore-vm": Paused.STARTING_UP,
    "debug": Paused.UNKNOWN,
    "internal-error": Paused.UNKNOWN,
}


def event_handler(
    reg: DomainRegistry, obj: DomainObject, generation: int
) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """The handler for the QMP events of the QEMU started as ``generation`` of ``obj``."""

    async def on_event(event: str, data: dict[str, Any]) -> None:
        log.debug("domain %s: QMP event %s %s", obj.name, event, data)
        async with obj.lock:
            proc = obj.proc
            if proc is None or obj.generation != generation:
                return
            try:
                await apply_event(reg, obj, proc, event, data)
            except OperationFailed as err:
                if proc.alive():
                    raise
                log.debug("domain %s: QEMU exited while handling %s: %s", obj.name, event, err)
            reg.resolve_waiters(obj, event, data)

    return on_event


async def apply_event(
    reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, event: str, data: dict[str, Any]
) -> None:
    """Apply one QMP event; the caller holds ``obj.lock`` and ``proc`` is the domain's QEMU."""
    if event == "SHUTDOWN":
        await on_shutdown(reg, obj, proc, str(data.get("reason", "")))
    elif event == "RESET":
        if data.get("guest"):
            reg.events.publish("domain", obj.name, "rebooted", "guest")
    elif event == "STOP":
        if obj.state is S.RUNNING:
            running, status = await proc.monitor.status()
            reason = PAUSED_STATUS.get(status)
            if not running and reason is not None:
                detail = "ioerror" if reason is Paused.IOERROR else "paused"  # virsh: Suspended I/O Error
                reg.transition(obj, S.PAUSED, reason, ("suspended", detail))
    elif event == "RESUME":
        if obj.state in (S.PAUSED, S.CRASHED, S.SHUTDOWN):
            running, _status = await proc.monitor.status()
            if running:
                reg.transition(obj, S.RUNNING, Running.UNPAUSED, ("resumed", "unpaused"))
    elif event == "SUSPEND":
        if obj.state in (S.RUNNING, S.PAUSED):
            reg.transition(obj, S.PMSUSPENDED, PMSuspended.UNKNOWN, ("pmsuspended", "memory"))
    elif event == "SUSPEND_DISK":
        if obj.state in (S.RUNNING, S.PAUSED):
            reg.transition(obj, S.PMSUSPENDED, PMSuspended.UNKNOWN, ("pmsuspended", "disk"))
    elif event == "WAKEUP":
        if obj.state is S.PMSUSPENDED:
            reg.transition(obj, S.RUNNING, Running.WAKEUP, ("started", "wakeup"))
    elif event == "WATCHDOG":
        from pyvirt.daemon import watchdog

        await watchdog.on_watchdog(reg, obj, proc, str(data.get("action", "")))
    elif event == "GUEST_PANICKED":
        await on_panic(reg, obj, proc)
    elif event == "DEVICE_TRAY_MOVED" and data.get("id"):
        state = "opened" if data.get("tray-open") else "closed"
        reg.events.publish("domain", obj.name, "tray-change", f"{data['id']} {state}")
    elif event == "DEVICE_DELETED":
        from pyvirt.daemon.devices import device_deleted

        await device_deleted(reg, obj, proc, str(data.get("device", "")))
    elif event == "VSERPORT_CHANGE":
        from pyvirt.daemon.agent import port_changed

        port_changed(reg, obj, data)
    elif event == "RTC_CHANGE":
        from pyvirt.daemon.rtc import on_rtc_change

        on_rtc_change(reg, obj, proc, data)
    elif event == "BALLOON_CHANGE":
        from pyvirt.daemon.stats import balloon_changed

        balloon_changed(proc, data)
    elif event == "BLOCK_IO_ERROR":
        from pyvirt.daemon import ioerrors

        await ioerrors.on_event(reg, obj, proc, data)
    elif event.startswith("BLOCK_JOB_"):
        from pyvirt.daemon import blockjobs

        await blockjobs.on_event(reg, obj, proc, event, data)


async def on_shutdown(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess, reason: str) -> None:
    """The guest powered off (or QEMU was told to): restart, preserve or end it, as the XML says."""
    if reason == "host-qmp-quit" or obj.stop_reason is Shutoff.DESTROYED or obj.state is S.SHUTDOWN:
        return
    dom = obj.live
    if obj.fake_reboot or (dom is not None and dom.on_poweroff == "restart" and reason != "guest-reset"):
        obj.fake_reboot = False
        await proc.monitor.system_reset()
        await proc.monitor.cont()
        reg.transition(obj, S.RUNNING, Running.BOOTED, ("rebooted", "acpi"))
        return
    action = dom.on_poweroff if dom is not None else "destroy"
    if reason == "guest-reset" and dom is not None:
        action = dom.on_reboot
    if action == "preserve":
        reg.transition(obj, S.PAUSED, Paused.SHUTTING_DOWN, ("shutdown", "finished"))
        return
    reg.transition(obj, S.SHUTDOWN, Shutdown.USER, ("shutdown", "finished"))
    obj.stop_reason = Shutoff.SHUTDOWN
    await proc.monitor.quit()


async def on_panic(reg: DomainRegistry, obj: DomainObject, proc: QemuProcess) -> None:
    """The guest panicked (pvpanic): restart, preserve or end it, as ``on_crash`` says."""
    dom = obj.live
    action = dom.on_crash if dom is not None else "destroy"
    reg.events.publish("domain", obj.name, "crashed", "panicked")
    if action == "restart":
        await proc.monitor.system_reset()
        await proc.monitor.cont()
        reg.transition(obj, S.RUNNING, Running.CRASHED)
    elif action == "preserve":
        if obj.state is not S.CRASHED:
            reg.transition(obj, S.CRASHED, Crashed.PANICKED)
    else:
        obj.stop_reason = Shutoff.CRASHED
        with contextlib.suppress(OperationFailed):
            await proc.monitor.quit()

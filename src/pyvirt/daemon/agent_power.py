"""Shutting down and rebooting a domain by its agent or by ACPI (virsh's ``--mode`` lists: a set of
methods, the agent tried first as libvirt 9.0's qemuDomainShutdownFlags does), and suspending the
guest through its agent (dompmsuspend) and waking it through QEMU."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.agent import AgentHandlers, agent_listening, call
from pyvirt.daemon.lifecycle import DomainState
from pyvirt.errors import InvalidArgument, InvalidState, PyvirtError, UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers

log = logging.getLogger(__name__)

SHUTDOWN_MODES = ("acpi", "agent", "initctl", "signal", "paravirt")
PM_TARGETS = {"mem": "guest-suspend-ram", "disk": "guest-suspend-disk", "hybrid": "guest-suspend-hybrid"}


def parse_modes(text: str | None, *, reboot: bool = False) -> list[str]:
    """virsh's --mode: a comma-separated set of shutdown/reboot methods, in the order they are tried:
    libvirt's QEMU driver takes them as flags, so the agent comes first whatever the order given, then
    ACPI's power button if the agent fails. The methods QEMU lacks are refused before anything is tried
    (libvirt refuses their flags)."""
    if not text:
        return []
    modes = text.split(",")
    for mode in modes:
        if mode not in SHUTDOWN_MODES:
            raise InvalidArgument(
                f"Unknown mode {mode} value, expecting 'acpi', 'agent', 'initctl', 'signal' or 'paravirt'"
            )
    for mode in modes:
        if mode not in ("agent", "acpi"):
            raise UnsupportedConfig(
                f"argument unsupported: QEMU cannot {'reboot' if reboot else 'shut down'} a domain "
                f"by {mode} (it can by acpi or agent)"
            )
    return [mode for mode in ("agent", "acpi") if mode in modes]


class PowerAPI(AgentHandlers):
    """shutdown, reboot, dompmsuspend and dompmwakeup."""

    def handlers(self) -> Handlers:
        return {
            "domain.shutdown": self.shutdown,
            "domain.reboot": self.reboot,
            "domain.pmsuspend": self.pmsuspend,
            "domain.pmwakeup": self.pmwakeup,
        }

    # Shutdown and reboot: ACPI, the agent, or one then the other

    async def _power(self, req: Request, *, reboot: bool) -> dict[str, Any]:
        body: types.DomainShutdownRequest = req.data
        obj = self._obj(req)
        modes = parse_modes(body.get("mode"), reboot=reboot)
        if not modes:  # libvirt's default: the agent when one is connected, else (or failing) ACPI
            modes = ["agent", "acpi"] if await agent_listening(obj) else ["acpi"]
        error: PyvirtError | None = None
        for mode in modes:
            if mode == "agent":
                try:
                    await call(obj, "guest-shutdown", {"mode": "reboot" if reboot else "powerdown"})
                    return obj.summary()
                except PyvirtError as err:
                    log.info(
                        "domain %s: %s by the agent failed: %s",
                        obj.name,
                        "reboot" if reboot else "shutdown",
                        err,
                    )
                    error = err
            else:
                done = await (self.domains.reboot if reboot else self.domains.shutdown)(obj.uuid)
                return done.summary()
        assert error is not None
        raise error

    async def shutdown(self, req: Request) -> dict[str, Any]:
        return await self._power(req, reboot=False)

    async def reboot(self, req: Request) -> dict[str, Any]:
        return await self._power(req, reboot=True)

    # Power management: suspend through the agent, wake up through QEMU

    async def pmsuspend(self, req: Request) -> dict[str, Any]:
        body: types.PMSuspendRequest = req.data
        obj = self._obj(req)
        command = PM_TARGETS.get(body["target"])
        if command is None:
            raise InvalidArgument(f"Invalid target: {body['target']} (mem, disk or hybrid)")
        if body.get("duration", 0):
            raise UnsupportedConfig("argument unsupported: Duration not supported. Use 0 for now")
        if body["target"] in ("mem", "hybrid") and obj.current.pm_suspend_to_mem is False:
            raise UnsupportedConfig(
                "argument unsupported: S3 state is disabled for this domain "
                "(<pm><suspend-to-mem enabled='yes'/> enables it)"
            )
        if body["target"] in ("disk", "hybrid") and obj.current.pm_suspend_to_disk is False:
            raise UnsupportedConfig(
                "argument unsupported: S4 state is disabled for this domain "
                "(<pm><suspend-to-disk enabled='yes'/> enables it)"
            )
        await call(obj, command)
        return obj.summary()

    async def pmwakeup(self, req: Request) -> dict[str, Any]:
        obj = self._obj(req)
        if obj.state is not DomainState.PMSUSPENDED or obj.proc is None:
            raise InvalidState("Requested operation is not valid: domain is not suspended")
        await obj.proc.monitor.execute("system_wakeup")
        return obj.summary()

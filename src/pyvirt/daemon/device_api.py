"""The device actions of the API (attach-device, detach-device, update-device, detach-device-alias),
bound to :mod:`pyvirt.daemon.devices` with virsh's --live/--config/--current resolved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyvirt.daemon import devices
from pyvirt.daemon.actions import DomainActions

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers


def scope(live: bool, config: bool, active: bool) -> tuple[bool, bool]:
    """virsh's --live/--config/--current: the running domain by default when it runs, else the config."""
    if not live and not config:
        return (True, False) if active else (False, True)
    return live, config


class DeviceAPI(DomainActions):
    """Binds the device actions to one daemon's domain registry."""

    def handlers(self) -> Handlers:
        return {
            "domain.attach_device": self.attach,
            "domain.detach_device": self.detach,
            "domain.update_device": self.update,
            "domain.detach_device_alias": self.detach_alias,
        }

    def _scope(self, req: Request, live: bool, config: bool) -> tuple[bool, bool]:
        return scope(live, config, self.domains.lookup(req.params["name"]).active)

    async def attach(self, req: Request) -> dict[str, Any]:
        body: types.DeviceRequest = req.data
        live, config = self._scope(req, body.get("live", False), body.get("config", False))
        return await devices.attach(self.domains, req.params["name"], body["xml"], live=live, config=config)

    async def detach(self, req: Request) -> dict[str, Any]:
        body: types.DeviceRequest = req.data
        live, config = self._scope(req, body.get("live", False), body.get("config", False))
        return await devices.detach(self.domains, req.params["name"], body["xml"], live=live, config=config)

    async def update(self, req: Request) -> dict[str, Any]:
        body: types.DeviceRequest = req.data
        live, config = self._scope(req, body.get("live", False), body.get("config", False))
        await devices.update(
            self.domains,
            req.params["name"],
            body["xml"],
            live=live,
            config=config,
            force=body.get("force", False),
        )
        return {}

    async def detach_alias(self, req: Request) -> dict[str, Any]:
        live, config = self._scope(req, req.args["live"], req.args["config"])
        await devices.detach_alias(
            self.domains, req.params["name"], req.params["alias"], live=live, config=config
        )
        return {}

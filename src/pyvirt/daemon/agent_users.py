"""The guest's users through its agent: set-user-password, get-user-sshkeys and set-user-sshkeys."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from pyvirt.daemon.agent import AgentHandlers, call
from pyvirt.errors import InvalidArgument

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers


class UserAPI(AgentHandlers):
    """Passwords and SSH authorized keys of the guest's users."""

    def handlers(self) -> Handlers:
        return {
            "domain.set_user_password": self.set_user_password,
            "domain.sshkeys": self.get_sshkeys,
            "domain.set_sshkeys": self.set_sshkeys,
        }

    async def set_user_password(self, req: Request) -> dict[str, Any]:
        body: types.UserPasswordRequest = req.data
        password = body["password"]
        await call(
            self._obj(req),
            "guest-set-user-password",
            {
                "username": req.params["user"],
                "password": base64.b64encode(password.encode()).decode(),
                "crypted": body.get("encrypted", False),
            },
        )
        return {}

    async def get_sshkeys(self, req: Request) -> dict[str, Any]:
        reply = await call(self._obj(req), "guest-ssh-get-authorized-keys", {"username": req.params["user"]})
        return {"keys": [str(k) for k in (reply or {}).get("keys", [])]}

    async def set_sshkeys(self, req: Request) -> dict[str, Any]:
        body: types.SSHKeysRequest = req.data
        keys, reset, remove = body["keys"], body.get("reset", False), body.get("remove", False)
        user = req.params["user"]
        if remove and reset:
            raise InvalidArgument("reset and remove are mutually exclusive")
        if remove:
            if not keys:
                raise InvalidArgument("remove needs the keys to remove")
            await call(self._obj(req), "guest-ssh-remove-authorized-keys", {"username": user, "keys": keys})
        else:
            if not keys and not reset:
                raise InvalidArgument("no keys to add")
            await call(
                self._obj(req),
                "guest-ssh-add-authorized-keys",
                {"username": user, "keys": keys, "reset": reset},
            )
        return {}

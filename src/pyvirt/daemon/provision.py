"""``pyvirt launch`` in the daemon: a running VM from a template in one action (clone, seed, start).

The clone is :class:`pyvirt.daemon.clones.CloneAPI`'s (linked by default: a qcow2 overlay on the
template, made in constant time; ``full`` copies it), with the cloud-init identity in its NoCloud seed;
then the domain is started. If the start fails, the domain is undefined again and the clone's volumes
(disks and seed) removed, so a failed launch leaves nothing behind. Only templates are launched (a
shut-off domain is cloned with ``pyvirt clone``). Waiting for the guest's address is the client's
(``domain.ifaddr``): the guest may take minutes, and an HTTP request is not the place to hold them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.errors import NotFound, PyvirtError
from pyvirt.guest import clone as parts

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.clones import CloneAPI
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers

log = logging.getLogger(__name__)


class LaunchAPI:
    """The ``domain.launch`` action, over one daemon's clone action and domain registry."""

    def __init__(self, clones: CloneAPI) -> None:
        self.clones = clones

    async def startup(self, domains: DomainRegistry) -> None:
        """Nothing of its own: the clone action holds the registry (its startup runs too)."""

    def handlers(self) -> Handlers:
        return {"domain.launch": self.handle}

    async def handle(self, req: Request) -> dict[str, Any]:
        body: types.LaunchRequest = req.data
        opts = parts.CloneOptions(
            original=body["template"],
            name=body["name"],
            linked=not body.get("full", False),
            vcpus=body.get("vcpus"),
            memory=body.get("memory"),
            disk_size=body.get("disk_size"),
            network=body.get("network"),
            hostname=body.get("hostname"),
            ssh_keys=tuple(body.get("ssh_keys", ())),
            user=body.get("user", parts.DEFAULT_USER),
            user_data=body.get("user_data"),
            pool=body.get("pool", "default"),
            password=body.get("password"),
        )
        return await self.launch(opts)

    async def launch(self, opts: parts.CloneOptions) -> dict[str, Any]:
        """Clone template ``opts.original`` to ``opts.name`` and start it; undone if the start fails."""
        from pyvirt.guest.template import TemplateStore, check_name

        started = time.monotonic()
        parts.check_options(opts)
        check_name(opts.original)
        folder = self.clones._pool_folder(opts.pool)
        if not await asyncio.to_thread(TemplateStore(folder).exists, opts.original):
            raise NotFound(
                f"template {opts.original} not found in pool {opts.pool} (see pyvirt template list; "
                "a shut-off domain is copied with pyvirt clone)"
            )
        result = await self.clones.clone(opts)
        try:
            await self.clones.domains.start(opts.name)
        except BaseException:
            await self._undo(result, folder, opts.pool)
            raise
        out = result.to_json()
        out["steps"].append(f"Started {opts.name}")
        out["state"] = "running"
        out["seconds"] = round(time.monotonic() - started, 3)
        return out

    async def _undo(self, result: parts.CloneResult, folder: Path, pool: str) -> None:
        """Remove what the clone made: the definition, its disks and its seed."""
        domains = self.clones.domains
        try:
            obj = domains.lookup(result.name)
            if obj.active:
                await domains.destroy(result.name)
            await domains.undefine(result.name)
        except PyvirtError:
            pass  # gone already, or never defined
        except Exception:  # logged: the start's own error is the one the caller gets
            log.exception("while undoing the failed launch of %s", result.name)
        for vol in [*result.disks, result.seed]:
            try:
                (folder / vol).unlink(missing_ok=True)
            except OSError as err:
                log.error("while undoing the failed launch of %s: removing %s: %s", result.name, vol, err)
                continue
            self.clones.events.publish("volume", f"{pool}/{vol}", "deleted", "launch failed")

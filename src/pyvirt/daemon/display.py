"""The domain's screen, keyboard and monitor from outside the guest: screenshot (QEMU's screendump, as
PNG), send-key (any codeset, translated to QEMU's qnum numbers), qemu-monitor-command (QMP or HMP),
inject-nmi, and the job verbs domjobinfo/domjobabort.

QEMU is confined to its own files (:mod:`pyvirt.qemu.landlock`): the screendump is written into the
domain's channel directory, which QEMU may write, then read and removed by the daemon.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from pyvirt.daemon import lifecycle
from pyvirt.daemon.actions import DomainActions
from pyvirt.daemon.lifecycle import DomainState, guard
from pyvirt.errors import InvalidArgument, InvalidState, OperationFailed, UnsupportedConfig
from pyvirt.qemu import migstats
from pyvirt.qemu.keymaps import to_qnum

if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.daemon.domains import DomainObject
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers

S = DomainState

# A job state → (virsh's job type, its operation)
_JOBS = {
    S.MIGRATING: ("Unbounded", "Outgoing migration"),
    S.SAVING: ("Unbounded", "Save"),
    S.RESTORING: ("Unbounded", "Restore"),
    S.SNAPSHOTTING: ("Unbounded", "Snapshot"),
}


def screen_device(obj: DomainObject, screen: int) -> tuple[str | None, int]:
    """The video device and head of screen number ``screen`` (counted over every video's heads)."""
    videos = [v for v in obj.current.devices.videos if v.model != "none"]
    gfx = obj.current.devices.graphics
    if not videos and gfx and gfx[0].type == "spice":  # the qxl-vga that SPICE brings along
        return (None, 0) if screen == 0 else _no_screen(screen)
    if not videos:
        raise OperationFailed("operation failed: no screens to take screenshot from")
    left = screen
    for index, video in enumerate(videos):
        heads = video.heads or 1
        if left < heads:
            return (None if index == 0 else f"video{index}"), left
        left -= heads
    return _no_screen(screen)


def _no_screen(screen: int) -> tuple[str | None, int]:
    raise InvalidArgument(f"invalid argument: no screen with index {screen}")


def _qmp_error(err: OperationFailed) -> dict[str, str] | None:
    """The QMP error object behind ``err`` (class and desc), if QEMU refused the command."""
    response = getattr(getattr(err.__cause__, "error", None), "error", None)
    if response is None:
        return None
    return {"class": str(getattr(response, "class_", "GenericError")), "desc": str(response.desc)}


class DisplayAPI(DomainActions):
    """The handlers of screenshot, send-key, qemu-monitor-command, inject-nmi and the job actions."""

    def handlers(self) -> Handlers:
        return {
            "domain.screenshot": self.screenshot,
            "domain.send_key": self.send_key,
            "domain.monitor_command": self.monitor_command,
            "domain.inject_nmi": self.inject_nmi,
            "domain.jobinfo": self.jobinfo,
            "domain.jobabort": self.jobabort,
        }

    async def screenshot(self, req: Request) -> dict[str, Any]:
        obj = self.domains.lookup(req.params["name"])
        async with guard(obj, lifecycle.HOTPLUGGABLE):
            assert obj.proc is not None
            device, head = screen_device(obj, req.args["screen"])
            folder = self.domains.layout.qemu_run_dir / f"{obj.name}.channels"
            path = folder / f"screendump-{secrets.token_hex(4)}.png"
            args: dict[str, Any] = {"filename": str(path), "format": "png"}
            if device is not None:
                args["device"] = device
            if head:
                args["head"] = head
            try:
                await obj.proc.monitor.execute("screendump", args)
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as err:
                raise OperationFailed(
                    f"operation failed: cannot read the screendump: {err.strerror}"
                ) from err
            finally:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return {"mime": "image/png", "data": base64.b64encode(data).decode()}

    async def send_key(self, req: Request) -> dict[str, Any]:
        body: types.SendKeyRequest = req.data
        codes = to_qnum(body.get("codeset", "linux"), body["keycodes"])
        holdtime = body.get("holdtime", 0)
        if holdtime < 0:
            raise InvalidArgument("holdtime must not be negative")
        args: dict[str, Any] = {"keys": [{"type": "number", "data": code} for code in codes]}
        if holdtime:
            args["hold-time"] = holdtime
        async with guard(self.domains.lookup(req.params["name"]), lifecycle.HOTPLUGGABLE) as obj:
            assert obj.proc is not None
            await obj.proc.monitor.execute("send-key", args)
        return {}

    async def monitor_command(self, req: Request) -> dict[str, Any]:
        body: types.MonitorCommandRequest = req.data
        text = body["command"]
        arguments: dict[str, Any] | None
        own_id = False  # libvirt 9.0 gives each command an id of its own and refuses a second one
        if body.get("hmp"):
            command, arguments = "human-monitor-command", {"command-line": text}
        else:
            try:
                request = json.loads(text)
            except ValueError as err:
                raise InvalidArgument(
                    f"internal error: cannot parse json {text}: {err} (--hmp for a human monitor command)"
                ) from err
            if not isinstance(request, dict) or not isinstance(request.get("execute"), str):
                raise InvalidArgument("a QMP command is a JSON object with an 'execute' member")
            extra = set(request) - {"execute", "arguments", "id"}
            if extra:
                raise InvalidArgument(f"unknown member '{sorted(extra)[0]}' of the QMP command")
            if request["execute"] in ("qmp_capabilities", "quit"):
                raise UnsupportedConfig(
                    f"argument unsupported: '{request['execute']}' would break the daemon's own monitor"
                    + (" (destroy ends QEMU)" if request["execute"] == "quit" else "")
                )
            command, arguments = request["execute"], request.get("arguments")
            own_id = "id" in request
        async with guard(self.domains.lookup(req.params["name"]), lifecycle.ACTIVE) as obj:
            assert obj.proc is not None
            if own_id:  # checked once the domain is known to run, as libvirt does
                raise InvalidArgument("internal error: Unable to append command 'id' string")
            try:
                result = await obj.proc.monitor.execute(command, arguments)
            except OperationFailed as err:
                error = _qmp_error(err)
                if error is None:
                    raise
                return {"reply": json.dumps({"error": error}, separators=(",", ":"))}
        if body.get("hmp"):
            return {"reply": str(result)}
        return {"reply": json.dumps({"return": result}, separators=(",", ":"))}

    async def inject_nmi(self, req: Request) -> dict[str, Any]:
        async with guard(self.domains.lookup(req.params["name"]), lifecycle.HOTPLUGGABLE) as obj:
            assert obj.proc is not None
            await obj.proc.monitor.execute("inject-nmi")
        return {}

    async def jobinfo(self, req: Request) -> dict[str, Any]:
        obj = self.domains.lookup(req.params["name"])
        kind, operation = _JOBS.get(obj.state, ("None", ""))
        out: dict[str, Any] = {"type": kind, "operation": operation}
        if obj.state in (S.MIGRATING, S.SAVING) and obj.proc is not None:
            with contextlib.suppress(OperationFailed):
                stats = migstats.job_stats(await obj.proc.monitor.execute("query-migrate"))
                if stats:
                    out["stats"] = stats
                for key, name in (
                    ("time_elapsed_ms", "time_elapsed"),
                    ("data_processed", "data_processed"),
                    ("data_remaining", "data_remaining"),
                    ("data_total", "data_total"),
                ):
                    if name in stats:
                        out[key] = stats[name]
        return out

    async def jobabort(self, req: Request) -> dict[str, Any]:
        obj = self.domains.lookup(req.params["name"])
        if not obj.active:
            raise InvalidState("Requested operation is not valid: domain is not running")
        if obj.state not in _JOBS:
            raise InvalidState("Requested operation is not valid: no job is active on the domain")
        if obj.state not in (S.MIGRATING, S.SAVING) or obj.proc is None:
            raise OperationFailed(
                f"operation failed: the {_JOBS[obj.state][1].lower()} job of domain '{obj.name}' cannot "
                "be aborted"
            )
        await obj.proc.monitor.execute("migrate_cancel")  # not under the lock: the job holds it
        return {}

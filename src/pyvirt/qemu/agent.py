"""A client of the QEMU guest agent (qemu-guest-agent), over the UNIX socket of the domain's
``org.qemu.guest_agent.0`` channel.

The protocol is QMP's JSON, one object a line, without a greeting or events. The guest side may have
been restarted, or an earlier command may have timed out and its reply may still be on the way, so
every command is preceded by ``guest-sync-delimited``: a 0xFF byte resets the agent's parser, and
the agent answers with a 0xFF byte followed by the sync's reply carrying our random id. Everything
before that marker is stale and dropped; 0xFF never occurs in the agent's UTF-8 JSON. (libvirt's
``qemuAgentGuestSync`` works the same way.)

Every wait is bounded: the sync by ``sync_timeout`` (libvirt's 5 s), the command by its own
timeout. Past either, :class:`AgentUnresponsive` carries libvirt's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

from pyvirt.errors import OperationFailed, UnsupportedConfig

SYNC_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 30.0
MAX_REPLY = 10 * 1024 * 1024  # libvirt's QEMU_AGENT_MAX_RESPONSE

NOT_RESPONDING = "Guest agent is not responding: "
#: Commands the agent never answers when they succeed (their ``success-response`` is false).
NO_REPLY = frozenset({"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid"})


class AgentUnresponsive(OperationFailed):
    """The agent did not answer in time, or its connection is gone."""

    def __init__(self, detail: str = "Guest agent not available for now") -> None:
        super().__init__(NOT_RESPONDING + detail)


class AgentError(OperationFailed):
    """The agent answered a command with an error."""

    def __init__(self, command: str, error: dict[str, Any]) -> None:
        self.error_class = str(error.get("class", ""))
        desc = str(error.get("desc", "unknown error"))
        super().__init__(f"internal error: unable to execute QEMU agent command '{command}': {desc}")


class AgentCommandUnsupported(UnsupportedConfig):
    """The guest's agent does not have (or has disabled) a command."""


def command_line(command: str, arguments: dict[str, Any] | None = None) -> bytes:
    """One request, as the agent reads it."""
    request: dict[str, Any] = {"execute": command}
    if arguments:
        request["arguments"] = arguments
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


class AgentClient:
    """One connection to one guest agent. Commands are serialized; any of them may time out."""

    def __init__(self, domain: str, path: str) -> None:
        self.domain = domain
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=MAX_REPLY)
        except OSError as err:
            raise OperationFailed(
                f"cannot connect to the guest agent channel of '{self.domain}' at {self.path}: {err.strerror}"
            ) from err

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def command(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        sync_timeout: float = SYNC_TIMEOUT,
    ) -> Any:
        """Run ``command`` and return its ``return`` value (None for a command that never answers).

        ``timeout`` None waits as long as the agent takes (qemu-agent-command --block)."""
        reply = await self.request(
            command_line(command, arguments),
            command=command,
            timeout=timeout,
            sync_timeout=sync_timeout,
            wait=command not in NO_REPLY,
        )
        if reply is None:
            return None
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {"desc": str(reply["error"])}
            if error.get("class") == "CommandNotFound":
                raise AgentCommandUnsupported(
                    f"argument unsupported: the guest agent of '{self.domain}' does not support "
                    f"'{command}': {error.get('desc', '')}"
                )
            raise AgentError(command, error)
        return reply.get("return")

    async def request(
        self,
        line: bytes,
        *,
        command: str,
        timeout: float | None = DEFAULT_TIMEOUT,
        sync_timeout: float = SYNC_TIMEOUT,
        wait: bool = True,
    ) -> dict[str, Any] | None:
        """Send one request ``line`` after a sync and return the agent's whole reply object (None when
        ``wait`` is false: the reply, if any, is dropped by the next sync)."""
        async with self._lock:
            if not self.connected:
                await self.connect()
            try:
                await asyncio.wait_for(self._sync(), sync_timeout)
            except TimeoutError as err:
                raise AgentUnresponsive() from err
            self._write(line)
            if not wait:
                return None
            try:
                return await asyncio.wait_for(self._read_reply(command), timeout)
            except TimeoutError as err:
                raise AgentUnresponsive() from err

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
        except (OSError, ConnectionError) as err:
            raise AgentUnresponsive("the connection to the guest agent is lost") from err

    async def _sync(self) -> None:
        assert self._reader is not None
        ident = random.randrange(1, 2**31)
        self._write(b"\xff" + command_line("guest-sync-delimited", {"id": ident}))
        while True:
            await self._read(self._reader.readuntil(b"\xff"))
            line = await self._read(self._reader.readline())
            with contextlib.suppress(ValueError):
                reply = json.loads(line)
                if isinstance(reply, dict) and reply.get("return") == ident:
                    return

    async def _read_reply(self, command: str) -> dict[str, Any]:
        assert self._reader is not None
        while True:
            line = (await self._read(self._reader.readline())).strip()
            if not line or line == b"\xff":
                continue
            try:
                reply = json.loads(line.lstrip(b"\xff"))
            except ValueError as err:
                raise OperationFailed(
                    f"internal error: the guest agent of '{self.domain}' sent a malformed reply to "
                    f"'{command}': {line[:200]!r}"
                ) from err
            if isinstance(reply, dict) and ("return" in reply or "error" in reply):
                return reply

    async def _read(self, reading: Any) -> bytes:
        try:
            data: bytes = await reading
        except asyncio.IncompleteReadError as err:
            await self.close()
            raise AgentUnresponsive("the guest agent's channel was closed") from err
        except asyncio.LimitOverrunError as err:
            await self.close()
            raise OperationFailed(
                f"internal error: the guest agent of '{self.domain}' sent too much"
            ) from err
        except (OSError, ConnectionError) as err:
            await self.close()
            raise AgentUnresponsive("the connection to the guest agent is lost") from err
        if not data:
            await self.close()
            raise AgentUnresponsive("the guest agent's channel was closed")
        return data

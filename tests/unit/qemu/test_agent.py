"""The guest agent client (pyvirt.qemu.agent) against a scripted agent on a UNIX socket: the
guest-sync-delimited handshake drops stale replies, errors and timeouts come out with libvirt's words."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyvirt.errors import OperationFailed
from pyvirt.qemu.agent import AgentClient, AgentCommandUnsupported, AgentError, AgentUnresponsive

Reply = Callable[[dict[str, Any]], bytes | None]


class FakeAgent:
    """Answers guest-sync-delimited as qemu-ga does (0xFF, then the reply); other commands by ``reply``."""

    def __init__(self, reply: Reply, *, stale: bytes = b"", answer_sync: bool = True) -> None:
        self.reply = reply
        self.stale = stale  # sent before the first sync's marker: an old reply still in the pipe
        self.answer_sync = answer_sync
        self.requests: list[dict[str, Any]] = []
        self.saw_reset = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line.startswith(b"\xff"):
                self.saw_reset = True
                line = line[1:]
            request = json.loads(line)
            self.requests.append(request)
            if request["execute"] == "guest-sync-delimited":
                if self.answer_sync:
                    ident = request["arguments"]["id"]
                    writer.write(self.stale + b"\xff" + json.dumps({"return": ident}).encode() + b"\n")
                    self.stale = b""
            else:
                out = self.reply(request)
                if out is not None:
                    writer.write(out)
            await writer.drain()
        writer.close()


async def _run(agent: FakeAgent, tmp_path: Path, body: Callable[[AgentClient], Any]) -> Any:
    path = str(tmp_path / "agent.sock")
    server = await asyncio.start_unix_server(agent.serve, path)
    client = AgentClient("vm1", path)
    try:
        return await body(client)
    finally:
        await client.close()
        server.close()


def test_sync_then_command_and_stale_replies_dropped(tmp_path: Path) -> None:
    agent = FakeAgent(
        lambda req: b'{"return": {"host-name": "web01"}}\n',
        stale=b'{"return": {"host-name": "an old answer"}}\n\xff{"return": 12345}\n',
    )
    result = asyncio.run(_run(agent, tmp_path, lambda c: c.command("guest-get-host-name")))
    assert result == {"host-name": "web01"}
    assert agent.saw_reset
    assert [r["execute"] for r in agent.requests] == ["guest-sync-delimited", "guest-get-host-name"]


def test_arguments_are_sent(tmp_path: Path) -> None:
    agent = FakeAgent(lambda req: b'{"return": 2}\n')
    count = asyncio.run(
        _run(
            agent, tmp_path, lambda c: c.command("guest-fsfreeze-freeze-list", {"mountpoints": ["/a", "/b"]})
        )
    )
    assert count == 2
    assert agent.requests[-1] == {
        "execute": "guest-fsfreeze-freeze-list",
        "arguments": {"mountpoints": ["/a", "/b"]},
    }


def test_agent_error_is_named(tmp_path: Path) -> None:
    agent = FakeAgent(lambda req: b'{"error": {"class": "GenericError", "desc": "fsfreeze hook failed"}}\n')
    with pytest.raises(AgentError) as err:
        asyncio.run(_run(agent, tmp_path, lambda c: c.command("guest-fsfreeze-freeze")))
    assert str(err.value) == (
        "internal error: unable to execute QEMU agent command 'guest-fsfreeze-freeze': fsfreeze hook failed"
    )


def test_unknown_command_is_unsupported(tmp_path: Path) -> None:
    agent = FakeAgent(lambda req: b'{"error": {"class": "CommandNotFound", "desc": "not found"}}\n')
    with pytest.raises(AgentCommandUnsupported, match="does not support 'guest-get-disks'"):
        asyncio.run(_run(agent, tmp_path, lambda c: c.command("guest-get-disks")))


def test_no_sync_answer_times_out(tmp_path: Path) -> None:
    agent = FakeAgent(lambda req: None, answer_sync=False)
    with pytest.raises(AgentUnresponsive) as err:
        asyncio.run(_run(agent, tmp_path, lambda c: c.command("guest-ping", sync_timeout=0.2)))
    assert str(err.value) == "Guest agent is not responding: Guest agent not available for now"


def test_no_command_answer_times_out_and_the_next_call_resyncs(tmp_path: Path) -> None:
    answers = iter([None, b'{"return": {}}\n'])
    agent = FakeAgent(lambda req: next(answers))

    async def body(client: AgentClient) -> Any:
        with pytest.raises(AgentUnresponsive):
            await client.command("guest-ping", timeout=0.2)
        return await client.command("guest-ping")

    assert asyncio.run(_run(agent, tmp_path, body)) == {}


def test_commands_without_reply_are_not_waited_for(tmp_path: Path) -> None:
    agent = FakeAgent(lambda req: None)
    result = asyncio.run(_run(agent, tmp_path, lambda c: c.command("guest-shutdown", {"mode": "powerdown"})))
    assert result is None
    assert agent.requests[-1]["arguments"] == {"mode": "powerdown"}


def test_closed_channel(tmp_path: Path) -> None:
    async def body(client: AgentClient) -> Any:
        return await client.command("guest-ping")

    path = tmp_path / "agent.sock"

    async def main() -> Any:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_unix_server(hang_up, str(path))
        client = AgentClient("vm1", str(path))
        try:
            return await body(client)
        finally:
            await client.close()
            server.close()

    with pytest.raises(AgentUnresponsive, match="Guest agent is not responding"):
        asyncio.run(main())


def test_no_socket(tmp_path: Path) -> None:
    client = AgentClient("vm1", str(tmp_path / "missing.sock"))
    with pytest.raises(OperationFailed, match="cannot connect to the guest agent channel of 'vm1'"):
        asyncio.run(client.command("guest-ping"))

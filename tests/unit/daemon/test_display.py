"""send-key against a scripted QEMU (pyvirt.daemon.display): the keys of one call go to QEMU's send-key
together, as qnum numbers whatever the codeset, with ``--holdtime`` as its hold-time (QEMU's own default
when none is given); a negative hold time and an unknown key are refused before QEMU is asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyvirt.daemon.display import DisplayAPI
from pyvirt.errors import InvalidArgument
from tests.support.fakeqmp import Bench, FakeQemu, run_bench


class Request:
    def __init__(self, data: dict[str, Any]) -> None:
        self.params = {"name": "d1"}
        self.data = data


def test_send_key_passes_qnum_codes_and_hold_time(root: Path) -> None:
    sent: list[dict[str, Any]] = []

    def script(qemu: FakeQemu) -> None:
        async def send_key(args: dict[str, Any]) -> Any:
            sent.append(args)
            return {}

        qemu.handle("send-key", send_key)

    async def body(b: Bench) -> None:
        await b.define("d1")
        await b.reg.start("d1")
        display = DisplayAPI()
        await display.startup(b.reg)
        ctrl_alt_del = ["KEY_LEFTCTRL", "KEY_LEFTALT", "KEY_DELETE"]
        await display.send_key(Request({"keycodes": ctrl_alt_del}))  # type: ignore[arg-type]
        await display.send_key(
            Request({"codeset": "usb", "keycodes": ["0x04"], "holdtime": 250})  # type: ignore[arg-type]
        )
        for data in ({"keycodes": ["KEY_A"], "holdtime": -1}, {"keycodes": ["KEY_NOPE"]}):
            with pytest.raises(InvalidArgument):
                await display.send_key(Request(data))  # type: ignore[arg-type]

    run_bench(root, body, script)
    assert sent == [
        {
            "keys": [
                {"type": "number", "data": 0x1D},
                {"type": "number", "data": 0x38},
                {"type": "number", "data": 0xD3},
            ]
        },
        {"keys": [{"type": "number", "data": 0x1E}], "hold-time": 250},
    ]

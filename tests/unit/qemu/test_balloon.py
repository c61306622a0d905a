"""The balloon set-up at start: the QMP commands sent for <currentMemory> and <stats period>."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.qemu import balloon

MINIMAL = (Path(__file__).resolve().parents[2] / "data" / "domain" / "minimal.xml").read_text()


class Recorder:
    """Stands for the monitor: records what would go to QEMU."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any] | None]] = []

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.sent.append((command, arguments))
        return {}


def sent_for(current: str, devices: str) -> list[tuple[str, dict[str, Any] | None]]:
    text = MINIMAL.replace("</memory>", f"</memory>{current}").replace(
        "</domain>", f"<devices>{devices}</devices></domain>"
    )
    monitor = Recorder()
    asyncio.run(balloon.configure(monitor, load_domain_xml(text)))  # type: ignore[arg-type]
    return monitor.sent


def test_current_memory_and_stats_period() -> None:
    sent = sent_for(
        "<currentMemory unit='MiB'>384</currentMemory>",
        "<memballoon model='virtio'><stats period='7'/></memballoon>",
    )
    assert sent == [
        ("balloon", {"value": 384 * 1024 * 1024}),
        (
            "qom-set",
            {"path": "/machine/peripheral/balloon0", "property": "guest-stats-polling-interval", "value": 7},
        ),
    ]


def test_nothing_to_say_when_memory_is_full_and_no_period() -> None:
    assert sent_for("<currentMemory unit='MiB'>512</currentMemory>", "<memballoon model='virtio'/>") == []
    assert sent_for("", "<memballoon model='none'/>") == []

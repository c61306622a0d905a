"""What the QEMU binary offers, asked once over QMP: its machine types (with their vCPU limits) and CPU
models. A short-lived ``-machine none`` QEMU answers on stdio; the answer is kept for the binary's
modification time, so an upgraded QEMU is asked again."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from functools import cache

from pyvirt.errors import OperationFailed
from pyvirt.qemu.command import DEFAULT_EMULATOR


@dataclass(frozen=True)
class Machine:
    name: str
    alias: str | None
    cpu_max: int
    default: bool


@dataclass(frozen=True)
class Probe:
    machines: tuple[Machine, ...]
    cpu_models: tuple[str, ...]  # QEMU's order; versioned names (-vN) left out

    def machine(self, name: str | None) -> Machine:
        """The machine type ``name`` (or an alias of one), or the default machine."""
        for machine in self.machines:
            if machine.default if name is None else name in (machine.name, machine.alias):
                return machine
        raise OperationFailed(f"invalid argument: the QEMU binary has no machine type '{name}'")


def probe(emulator: str = DEFAULT_EMULATOR) -> Probe:
    try:
        mtime = os.stat(emulator).st_mtime_ns
    except OSError as err:
        raise OperationFailed(f"Cannot find QEMU binary {emulator}: {err.strerror}") from err
    return _probe(emulator, mtime)


@cache
def _probe(emulator: str, mtime: int) -> Probe:
    commands = [
        {"execute": "qmp_capabilities"},
        {"execute": "query-machines"},
        {"execute": "query-cpu-definitions"},
        {"execute": "quit"},
    ]
    try:
        proc = subprocess.run(
            [emulator, "-machine", "none", "-nodefaults", "-display", "none", "-qmp", "stdio"],
            input="".join(json.dumps(c) + "\n" for c in commands),
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise OperationFailed(f"cannot ask {emulator} what it offers: {err}") from err
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"return"')]
    if len(replies) < 3:
        raise OperationFailed(
            f"cannot ask {emulator} what it offers: {proc.stderr.strip() or proc.stdout[:200]}"
        )
    machines = tuple(
        Machine(str(m["name"]), m.get("alias"), int(m.get("cpu-max", 1)), bool(m.get("is-default")))
        for m in replies[1]["return"]
    )
    models = tuple(
        str(c["name"])
        for c in replies[2]["return"]
        if c["name"] not in ("base", "max", "host") and not str(c["name"]).rpartition("-v")[2].isdigit()
    )
    return Probe(machines, models)

#!/usr/bin/env python3
"""Install pyvirt's systemd units (contrib/systemd) with the paths of the pyvirt being installed.

    python3 scripts/install-systemd.py [--bindir DIR] [--unitdir DIR]

``--bindir`` is where ``pyvirtd`` and ``pyvirt-guests`` are (default: the directory of this Python's
commands, e.g. a virtual environment's ``bin``); ``--unitdir`` where the units go (default
``/etc/systemd/system``). ``@BINDIR@`` in a ``.in`` unit is replaced, and every ``Exec...=`` command
must exist there, or nothing is written. Then: ``systemctl daemon-reload && systemctl enable --now
pyvirtd.socket pyvirtd-ro.socket pyvirt-guests.service``.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from pathlib import Path

CONTRIB = Path(__file__).resolve().parent.parent / "contrib/systemd"


def render(bindir: Path) -> dict[str, str]:
    """Each unit's name and text for commands in ``bindir``; SystemExit when one is missing."""
    units = {}
    for source in sorted(CONTRIB.iterdir()):
        text = source.read_text().replace("@BINDIR@", str(bindir))
        name = source.name.removesuffix(".in")
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecStop=")):
                command = Path(line.split("=", 1)[1].split()[0])
                if not os.access(command, os.X_OK):
                    raise SystemExit(f"error: {name} runs {command}, which is not an installed command")
        units[name] = text
    return units


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bindir", type=Path, default=Path(sysconfig.get_path("scripts")))
    parser.add_argument("--unitdir", type=Path, default=Path("/etc/systemd/system"))
    args = parser.parse_args(argv)
    units = render(args.bindir.resolve())
    args.unitdir.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (args.unitdir / name).write_text(text)
        print(f"installed {args.unitdir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

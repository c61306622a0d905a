"""Landlock rulesets: a child confined by one opens its own files and no other."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pyvirt.qemu import landlock

pytestmark = pytest.mark.skipif(landlock.abi() < 1, reason="the kernel has no Landlock")


def test_a_confined_child_opens_its_files_and_not_others(tmp_path: Path) -> None:
    mine, theirs, readonly = tmp_path / "mine.img", tmp_path / "theirs.img", tmp_path / "ro.img"
    for path in (mine, theirs, readonly):
        path.write_bytes(b"x")
    ruleset = landlock.build({str(mine): "rw", str(readonly): "ro"})
    assert ruleset is not None
    probe = (
        "import sys\n"
        "mine, ro, theirs = sys.argv[1:]\n"
        "for path, mode in (mine, 'r+b'), (ro, 'rb'), (ro, 'r+b'), (theirs, 'rb'):\n"
        "    try:\n"
        "        open(path, mode).close(); print('ok')\n"
        "    except PermissionError:\n"
        "        print('denied')\n"
    )
    try:
        out = subprocess.run(
            ["/usr/bin/python3", "-I", "-c", probe, str(mine), str(readonly), str(theirs)],
            preexec_fn=landlock.enforcer(ruleset),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        os.close(ruleset)
    assert out == ["ok", "ok", "denied", "denied"]

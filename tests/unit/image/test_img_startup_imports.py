"""``pyvirt img info`` stays lean: the modules they load import nothing heavy.

qemu-img answers in about 4 ms; each heavy module here costs from 0.1 to 6 ms of a command that
should take little more than the interpreter's own start-up. Each verb runs in a fresh
``python -S`` (as the ``pyvirt`` launcher does), through the real entry point, on a real image.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyvirt.image.api import create_image

HEAVY = (
    "re",
    "json",
    "enum",
    "typing",
    "dataclasses",
    "inspect",
    "pathlib",
    "functools",
    "contextlib",
    "collections",
    "threading",
    "subprocess",
    "concurrent.futures",
    "logging",
    "importlib.util",
)

PROBE = """
import sys
from pyvirt.cli.main import main
status = main(["img", *sys.argv[1:]])
sys.stdout.flush()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("status=%d heavy=%s\\n" % (status, ",".join(heavy)))
"""


def _run(*argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE.format(heavy=HEAVY), *argv],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path[1:]), "PYVIRT_CONF": "/nonexistent", "HOME": "/nonexistent"},
    )
    return out.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "{qcow2}"],
        ["info", "{raw}"],
        ["info", "{child}"],
        ["info", "--backing-chain", "{child}"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_img_verbs_import_no_heavy_module(tmp_path, argv: list[str]) -> None:
    names = {
        "qcow2": str(tmp_path / "base.qcow2"),
        "raw": str(tmp_path / "disk.raw"),
        "child": str(tmp_path / "child.qcow2"),
        "new": str(tmp_path / "new.qcow2"),
    }
    create_image(names["qcow2"], "qcow2", 1 << 30)
    create_image(names["raw"], "raw", 1 << 20)
    create_image(names["child"], "qcow2", None, backing="base.qcow2", backing_fmt="qcow2")
    assert _run(*(a.format(**names) for a in argv)) == "status=0 heavy="

"""``pyvirt img info``, ``create``, ``check``, ``map`` and ``convert`` stay lean: they import nothing heavy.

qemu-img answers in about 4 ms; each heavy module here costs from 0.2 to 12 ms of a command that
should take little more than the interpreter's own start-up. Each verb runs in a fresh
``python -S`` (as the ``pyvirt`` launcher does), through the real entry point, on real images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyvirt.image.api import create_image
from pyvirt.image.qcow2.image import Qcow2Image
from pyvirt.image.qcow2.snapshot import create_snapshot

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

# Importing ``array`` imports ``collections.abc`` (and so ``collections``): the verbs that open a
# qcow2 image (its L1/L2 and refcount tables are arrays) pay for it; creating one does not.
ARRAY = {"collections"}

PROBE = """
import sys
from pyvirt.cli.main import main
status = main(["img", *sys.argv[1:]])
sys.stdout.flush()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("status=%d heavy=%s\\n" % (status, ",".join(heavy)))
"""


def _run(*argv: str) -> tuple[int, list[str]]:
    """The verb's exit status and the heavy modules loaded once it has run."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE.format(heavy=HEAVY), *argv],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path[1:]), "PYVIRT_CONF": "/nonexistent", "HOME": "/nonexistent"},
    )
    status, heavy = out.stderr.splitlines()[-1].split()
    return int(status.removeprefix("status=")), [m for m in heavy.removeprefix("heavy=").split(",") if m]


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["info", "{qcow2}"], set()),
        (["info", "{raw}"], set()),
        (["info", "{child}"], set()),
        (["info", "--backing-chain", "{child}"], set()),
        (["info", "{snap}"], set()),
        (["create", "-f", "qcow2", "{new}", "10G"], set()),
        (["create", "-f", "qcow2", "-o", "cluster_size=4k,lazy_refcounts=on", "{new}", "1G"], set()),
        (["create", "-f", "qcow2", "-o", "compat=0.10", "{new}", "1G"], set()),
        (["create", "-f", "qcow2", "-b", "{qcow2}", "-F", "qcow2", "{new}"], ARRAY),  # opens the backing file
        (["create", "-f", "raw", "{new}", "1M"], set()),
        (["check", "{qcow2}"], ARRAY),
        (["check", "{child}"], ARRAY),
        (["map", "{child}"], ARRAY),
        (["map", "{raw}"], set()),
        (["convert", "-O", "raw", "{qcow2}", "{out}"], ARRAY),  # its threads come from _thread
        (["convert", "-O", "qcow2", "{raw}", "{out}"], ARRAY),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_img_verbs_import_no_heavy_module(tmp_path: Path, argv: list[str], allowed: set[str]) -> None:
    names = {
        "qcow2": str(tmp_path / "base.qcow2"),
        "raw": str(tmp_path / "disk.raw"),
        "child": str(tmp_path / "child.qcow2"),
        "snap": str(tmp_path / "snap.qcow2"),
        "new": str(tmp_path / "new.qcow2"),
        "out": str(tmp_path / "out.img"),
    }
    create_image(names["qcow2"], "qcow2", 1 << 30)
    create_image(names["raw"], "raw", 1 << 20)
    create_image(names["child"], "qcow2", None, backing="base.qcow2", backing_fmt="qcow2")
    create_image(names["snap"], "qcow2", 1 << 20)
    img = Qcow2Image.open(names["snap"], readonly=False)
    try:
        img.write(0, b"data")
        create_snapshot(img, "s1")
    finally:
        img.close()
    status, heavy = _run(*(a.format(**names) for a in argv))
    assert status == 0
    assert set(heavy) - allowed == set()

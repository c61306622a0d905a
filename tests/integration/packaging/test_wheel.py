"""The package builds offline with Debian 12's own tools (python3-setuptools 66, python3-pip, no build
isolation, no index), carries its licence, and installs commands that run."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = "/usr/bin/python3"


def test_wheel_builds_offline_with_the_distributions_setuptools(tmp_path: Path) -> None:
    # A copy of the tracked files: a build writes build/ and *.egg-info beside the sources.
    source = tmp_path / "src"
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            dst = source / name.decode()
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert int(version.split(".")[0]) < 77, f"not the distribution's setuptools: {version}"
    out = tmp_path / "wheels"
    offline = ["--no-build-isolation", "--no-deps", "--no-index"]
    build = subprocess.run(
        [SYSTEM_PYTHON, "-m", "pip", "wheel", *offline, "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_CACHE_DIR": "1"},
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("pyvirt-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        licence = zf.read(f"{dist_info}/LICENSE").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert "License: GPL-2.0-or-later" in metadata
    assert "GNU General Public License v2 or later" in metadata
    assert licence == (REPO / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2, June 1991" in licence
    assert (
        "pyvirt = pyvirt.cli.main:run" in entry_points and "pyvirtd = pyvirt.daemon.main:main" in entry_points
    )
    assert "pyvirt/py.typed" in names and "pyvirt/daemon/main.py" in names
    # Installed (without dependencies: the venv's serve), both commands start.
    target = tmp_path / "site"
    subprocess.run(
        [
            SYSTEM_PYTHON,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    for module in ("pyvirt.cli.main", "pyvirt.daemon.main"):
        run = subprocess.run(
            [sys.executable, "-c", f"import sys, {module} as m; sys.exit(m.main(['--version']))"],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(target)},
        )
        assert run.returncode == 0 and "0.1.0" in run.stdout + run.stderr, run
        assert (
            str(target)
            in subprocess.run(
                [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
                capture_output=True,
                text=True,
                env={"PYTHONPATH": str(target)},
            ).stdout
        )

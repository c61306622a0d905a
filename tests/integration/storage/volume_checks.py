"""Shared by the volume tests: the pool's folder, the real ``qemu-img`` as the judge of images, and the
CLI's failure shape (exit 1, nothing on stdout)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.daemon import Daemon


def qemu_img(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)


def qemu_info(path: Path) -> dict[str, object]:
    result = qemu_img("info", "--output", "json", "-U", str(path))
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def assert_clean_qcow2(path: Path) -> None:
    result = qemu_img("check", "-f", "qcow2", str(path))
    assert result.returncode == 0, f"{path}: {result.stdout}{result.stderr}"


def same_content(a: Path, b: Path) -> bool:
    fa, fb = str(qemu_info(a)["format"]), str(qemu_info(b)["format"])
    return qemu_img("compare", "-f", fa, "-F", fb, str(a), str(b)).returncode == 0


def xml_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def fails(daemon: Daemon, *args: str) -> str:
    result = daemon.cli(*args)
    assert result.rc == 1, result
    assert result.out == ""
    return result.err


def listing(daemon: Daemon) -> list[str]:
    return sorted(os.listdir(daemon.pool_dir))

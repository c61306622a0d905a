"""qemu-img's cache modes ``none`` and ``directsync`` (O_DIRECT in QEMU) keep the files they name out
of the host page cache, measured with util-linux ``fincore``; the default modes leave them cached.
``commit -r`` paces the copy (checked on the pacing arithmetic, without timing the test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.image.conftest import pyvirt_img, qemu_img, qemu_io

MIB = 1 << 20


def cached(path: Path) -> int:
    """Bytes of ``path`` in the page cache."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split()[0])


def warm(path: Path) -> None:
    path.read_bytes()
    assert cached(path) > 0


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(src), "64M")
    qemu_io(src, "write -P 3 0 24M", "write -P 4 40M 8M")
    return src


@pytest.mark.parametrize("mode", ["none", "directsync"])
def test_convert_output_leaves_the_page_cache(tmp_path: Path, source: Path, mode: str) -> None:
    cached_out, uncached_out = tmp_path / "cached.raw", tmp_path / "uncached.raw"
    assert pyvirt_img("convert", "-O", "raw", str(source), str(cached_out)).returncode == 0
    assert pyvirt_img("convert", "-t", mode, "-O", "raw", str(source), str(uncached_out)).returncode == 0
    assert cached(cached_out) >= 16 * MIB
    assert cached(uncached_out) < MIB
    assert cached_out.read_bytes() == uncached_out.read_bytes()


def test_convert_source_leaves_the_page_cache(tmp_path: Path, source: Path) -> None:
    warm(source)
    assert (
        pyvirt_img("convert", "-T", "writeback", "-O", "qcow2", str(source), str(tmp_path / "a")).returncode
        == 0
    )
    assert cached(source) >= 16 * MIB
    assert (
        pyvirt_img("convert", "-T", "none", "-O", "qcow2", str(source), str(tmp_path / "b")).returncode == 0
    )
    assert cached(source) < MIB


def test_check_source_cache(source: Path) -> None:
    warm(source)
    assert pyvirt_img("check", "-T", "writeback", str(source)).returncode == 0
    assert cached(source) > 0
    assert pyvirt_img("check", "-T", "none", str(source)).returncode == 0
    assert cached(source) == 0
    bad = pyvirt_img("check", "-T", "sometimes", str(source))
    assert bad.returncode == 1 and "Invalid source cache option: sometimes" in bad.stderr


@pytest.mark.parametrize("mode", ["writeback", "none"])
def test_commit_cache_mode(tmp_path: Path, mode: str) -> None:
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(base), "64M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top))
    qemu_io(top, "write -P 9 0 32M")
    done = pyvirt_img("commit", "-t", mode, str(top))
    assert done.returncode == 0, done.stderr
    assert (cached(base) < MIB) == (mode == "none")
    assert "Images are identical" in qemu_img("compare", str(top), str(base)).stdout


@pytest.mark.parametrize(("option", "measured"), [("-t", "image"), ("-T", "backing")])
def test_rebase_cache_modes(tmp_path: Path, option: str, measured: str) -> None:
    old, new, img = tmp_path / "old.qcow2", tmp_path / "new.qcow2", tmp_path / "img.qcow2"
    for base in (old, new):
        qemu_img("create", "-q", "-f", "qcow2", str(base), "64M")
    qemu_io(old, "write -P 5 0 24M")
    qemu_io(new, "write -P 6 0 24M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(old), "-F", "qcow2", str(img))
    before = tmp_path / "before.raw"
    qemu_img("convert", "-O", "raw", str(img), str(before))
    warm(new)
    done = pyvirt_img("rebase", option, "none", "-b", str(new), "-F", "qcow2", str(img))
    assert done.returncode == 0, done.stderr
    assert cached(img if measured == "image" else new) < MIB
    assert "Images are identical" in qemu_img("compare", "-f", "raw", str(before), str(img)).stdout


def test_commit_rate_limit_paces_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from pyvirt.image.commit import _Meter

    clock = [100.0]
    slept: list[float] = []
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    meter = _Meter(None, 2 * MIB, None)
    for _ in range(8):
        meter.add(MIB)  # instantly: the meter must hold the copy back to 2 MiB/s
    assert sum(slept) == pytest.approx(4.0)
    unpaced = _Meter(None, None, None)
    unpaced.add(64 * MIB)
    assert sum(slept) == pytest.approx(4.0)


def test_commit_rate_limit_is_parsed_as_qemu_img(tmp_path: Path) -> None:
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(base), "4M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top))
    qemu_io(top, "write -P 9 0 256k")
    assert pyvirt_img("commit", "-r", "64M", str(top)).returncode == 0
    bad = pyvirt_img("commit", "-r", "fast", str(top))
    assert bad.returncode == 1 and "rate limit" in bad.stderr

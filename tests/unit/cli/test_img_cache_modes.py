"""`pyvirt img convert -t`: the default (unsafe, as qemu-img's) leaves the output unsynced; others sync it."""

from __future__ import annotations

from typing import Any

import pytest

from pyvirt.cli import img


@pytest.mark.parametrize(
    ("mode", "durable"),
    [("unsafe", False), ("writeback", True), ("none", True), ("directsync", True), ("writethrough", True)],
)
def test_convert_cache_mode_decides_the_final_sync(
    monkeypatch: pytest.MonkeyPatch, mode: str, durable: bool
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("pyvirt.image.converter.convert", lambda *a, **kw: seen.update(kw))
    assert img.main(["convert", "-t", mode, "-O", "raw", "a.img", "b.img"]) == 0
    assert seen["durable"] is durable
    seen.clear()
    assert img.main(["convert", "-O", "raw", "a.img", "b.img"]) == 0
    assert "durable" not in seen  # the default, unsafe

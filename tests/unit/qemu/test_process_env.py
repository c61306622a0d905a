"""QEMU's environment: the fixed variables, and those a domain asks for (SDL's audio driver)."""

from __future__ import annotations

from pathlib import Path

from pyvirt.qemu import process


def test_qemu_gets_the_variables_asked_for_and_not_the_daemons(tmp_path: Path) -> None:
    out = tmp_path / "env"
    popen, _ = process._launch(
        lambda _fd: ["/bin/sh", "-c", f"echo $SDL_AUDIODRIVER $LC_ALL ${{PYVIRT_TEST_LEAK:-none}} > {out}"],
        tmp_path / "m.sock",
        tmp_path / "qemu.log",
        env={"SDL_AUDIODRIVER": "alsa", "LC_ALL": "de_DE"},  # the fixed ones win
    )
    assert popen.wait() == 0
    assert out.read_text() == "alsa C none\n"

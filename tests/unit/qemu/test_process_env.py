"""QEMU's environment: the fixed variables, and those a domain asks for (SDL's audio driver, <qemu:env>),
which win over the fixed ones as in libvirt."""

from __future__ import annotations

from pathlib import Path

from pyvirt.qemu import process


def test_qemu_gets_the_variables_asked_for_and_not_the_daemons(tmp_path: Path) -> None:
    out = tmp_path / "env"
    script = f"echo $SDL_AUDIODRIVER $LC_ALL $HOME ${{PYVIRT_TEST_LEAK:-none}} > {out}"
    popen, _ = process._launch(
        lambda _fd: ["/bin/sh", "-c", script],
        tmp_path / "m.sock",
        tmp_path / "qemu.log",
        env={"SDL_AUDIODRIVER": "alsa", "LC_ALL": "de_DE"},  # the domain's value wins over the fixed one
    )
    assert popen.wait() == 0
    assert out.read_text() == "alsa de_DE / none\n"

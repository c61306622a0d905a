"""Checks shared by the ssh and TLS tests: volume uploads and downloads through a remote URI, by the
CLI and by the Python API (each a WebSocket stream on its own remote connection)."""

from __future__ import annotations

import os
from pathlib import Path

import pyvirt
from tests.support.daemon import Daemon


def check_volume_transfers(daemon: Daemon, uri: str, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    with open(source, "wb") as fh:  # data, a 6 MiB hole, data
        fh.write(os.urandom(1 << 20))
        fh.seek(7 << 20)
        fh.write(os.urandom(1 << 20))
    content = source.read_bytes()

    def cli(*args: str) -> str:
        return daemon.cli("-c", uri, *args).ok().out

    cli("vol-create-as", "default", "far.img", str(8 << 20), "--allocation", "0")
    cli("vol-upload", "--sparse", "far.img", str(source), "--pool", "default")
    plain, sparse = tmp_path / "plain.bin", tmp_path / "sparse.bin"
    cli("vol-download", "far.img", str(plain), "--pool", "default")
    cli("vol-download", "--sparse", "far.img", str(sparse), "--pool", "default")
    assert plain.read_bytes() == content and sparse.read_bytes() == content
    assert sparse.stat().st_blocks * 512 < 4 << 20  # the hole came as a hole

    with pyvirt.open(uri) as conn:
        volume = conn.pool("default").volume("far.img")
        small = tmp_path / "small.bin"
        small.write_bytes(b"remote hello")
        assert volume.upload(str(small), offset=4096) == len(b"remote hello")
        part = tmp_path / "part.bin"
        assert volume.download(str(part), offset=4096, length=12) == 12
        assert part.read_bytes() == b"remote hello"
    cli("vol-delete", "far.img", "--pool", "default")

"""The O_DIRECT copiers of --bypass-cache on a real file: a stream of any length goes through a pipe
into an aligned offset of the file and back out unchanged; a file system without O_DIRECT is named."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path

import pytest

from pyvirt.daemon import directio
from pyvirt.errors import OperationFailed

OFFSET = 8192


@pytest.mark.parametrize("length", [0, 1, 4095, 4096, directio.CHUNK, directio.CHUNK + 12345])
def test_a_stream_goes_in_and_comes_back(tmp_path: Path, length: int) -> None:
    data = os.urandom(length)
    path = tmp_path / "image"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"H" * OFFSET, 0)
        directio.enable(fd, str(path))
        rd, wr = os.pipe()
        writer = threading.Thread(target=lambda: (os.write(wr, data) if data else 0, os.close(wr)))
        writer.start()
        assert directio.pipe_to_file(rd, fd, OFFSET, str(path)) == length
        writer.join()
        assert path.read_bytes() == b"H" * OFFSET + data

        directio.enable(fd, str(path))
        rd, wr = os.pipe()
        got = bytearray()

        def read_all() -> None:
            while chunk := os.read(rd, 65536):
                got.extend(chunk)
            os.close(rd)

        reader = threading.Thread(target=read_all)
        reader.start()
        directio.file_to_pipe(fd, OFFSET, length, wr)
        reader.join()
        assert bytes(got) == data
    finally:
        os.close(fd)


def test_a_file_system_without_o_direct_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fcntl.fcntl

    def no_direct(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", no_direct)
    path = tmp_path / "image"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OperationFailed, match=f"--bypass-cache: the file system of '{path}' does not"):
            directio.enable(fd, str(path))
    finally:
        os.close(fd)

"""The save image header: its layout, and every way a file can fail to be a complete image."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from pyvirt.qemu import savefile
from pyvirt.qemu.savefile import ALIGN, HEADER_SIZE, SaveHeader, SaveImageError

XML = "<domain type='qemu'><name>d1</name></domain>"


def image(tmp_path: Path, header: SaveHeader, stream: bytes = b"QEVM" + bytes(5000)) -> Path:
    header.stream_len = len(stream)
    path = tmp_path / "d1.save"
    path.write_bytes(header.pack() + stream)
    return path


def test_layout_is_as_documented(tmp_path: Path) -> None:
    header = SaveHeader(XML, running=True)
    data = header.pack()
    assert len(data) == header.stream_offset and header.stream_offset % ALIGN == 0
    magic, version, xml_len, xml_space, flags, stream_len, crc = struct.unpack_from("<16sIIIIQI", data)
    assert magic == b"PyvirtQemuSave\x00\x01" and version == 1
    assert xml_len == len(XML) and xml_space == header.stream_offset - HEADER_SIZE
    assert flags == savefile.FLAG_RUNNING and stream_len == 0 and crc == zlib.crc32(XML.encode())
    assert data[HEADER_SIZE : HEADER_SIZE + xml_len].decode() == XML
    assert data[HEADER_SIZE + xml_len :] == bytes(xml_space - xml_len)
    assert xml_space - xml_len >= savefile.XML_SLACK  # room for a longer XML, edited in place


def test_round_trip_and_rewrite(tmp_path: Path) -> None:
    path = image(tmp_path, SaveHeader(XML, running=False))
    header = savefile.read(str(path))
    assert (header.xml, header.running, header.stream_len) == (XML, False, 5004)
    longer = XML.replace("</name>", "</name><description>" + "x" * 3000 + "</description>")
    fd = os.open(path, os.O_RDWR)
    try:
        savefile.rewrite_xml(fd, str(path), longer, running=True)
    finally:
        os.close(fd)
    again = savefile.read(str(path))
    assert (again.xml, again.running, again.stream_len) == (longer, True, 5004)
    assert path.read_bytes()[again.stream_offset :] == b"QEVM" + bytes(5000)  # the stream untouched


def test_a_new_xml_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    path = image(tmp_path, SaveHeader(XML, running=False))
    before = path.read_bytes()
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(SaveImageError, match="new xml too large to fit in file"):
            savefile.rewrite_xml(fd, str(path), XML + "x" * 2 * ALIGN, running=None)
    finally:
        os.close(fd)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"", "is not a save image"),
        (lambda d: b"\x7fELF" + d[4:], "image magic is incorrect"),
        (lambda d: savefile.PARTIAL + d[16:], "is incomplete"),
        (lambda d: d[:16] + struct.pack("<I", 2) + d[20:], r"image version is not supported \(2 > 1\)"),
        (lambda d: d[:28] + struct.pack("<I", 6) + d[32:], "unknown flags 0x6"),
        (lambda d: d[:20] + struct.pack("<I", 0) + d[24:], "corrupt header"),
        (lambda d: d[:24] + struct.pack("<I", 100) + d[28:], "corrupt header"),  # stream misaligned
        (lambda d: d[:32] + struct.pack("<Q", 0) + d[40:], "corrupt header"),
        (lambda d: d[: HEADER_SIZE + 3] + b"X" + d[HEADER_SIZE + 4 :], "fails its checksum"),
        (lambda d: d[:-1], "is truncated: 13195 bytes, 13196 expected"),
        (lambda d: d[: HEADER_SIZE + 10], "truncated in its XML"),
    ],
)
def test_every_fault_is_named(tmp_path: Path, mangle: object, message: str) -> None:
    path = image(tmp_path, SaveHeader(XML, running=True))
    data = path.read_bytes()
    assert len(data) == 8192 + 5004
    path.write_bytes(mangle(data))  # type: ignore[operator]
    with pytest.raises(SaveImageError, match=message) as err:
        savefile.read(str(path))
    assert str(path) in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SaveImageError, match=r"cannot open save image .*No such file"):
        savefile.read(str(tmp_path / "none.save"))


def test_xml_space_keeps_the_stream_aligned() -> None:
    for length in (0, 1, 4031, 4032, 4033, 100_000):
        assert (HEADER_SIZE + savefile.space_for(length)) % ALIGN == 0
        assert savefile.space_for(length) >= length + savefile.XML_SLACK

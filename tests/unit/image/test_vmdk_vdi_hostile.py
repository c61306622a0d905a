"""Hostile VMDK and VDI files: crafted tables give a clear ImageError, no hang, no write outside.

The images are made by pyvirt's own creation code and then corrupted field by field, as the qcow2
crafted-table tests do; fuzzing mutates their headers and tables at random.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvirt.errors import ImageError
from pyvirt.image import check, create_image, open_image

FUZZ = settings(
    max_examples=int(os.environ.get("PYVIRT_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("PYVIRT_FUZZ_RANDOM") is None,
)


def _vmdk(tmp_path: Path, name: str = "a.vmdk", **opts: object) -> tuple[Path, int, int]:
    """A 4 MiB monolithicSparse image with its first 128 KiB written; (path, gd sector, gt sector)."""
    p = tmp_path / name
    create_image(str(p), "vmdk", 4 << 20, **opts)
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"\x07" * (128 << 10))
    data = p.read_bytes()
    gd = struct.unpack_from("<Q", data, 56)[0]
    return p, gd, struct.unpack_from("<I", data, gd * 512)[0]


def _poke(p: Path, offset: int, fmt: str, *values: int) -> None:
    with open(p, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


def _digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_vmdk_round_trip(tmp_path: Path) -> None:
    p, _gd, _gt = _vmdk(tmp_path)
    with open_image(str(p)) as img:
        assert img.read(0, 128 << 10) == b"\x07" * (128 << 10)
        assert img.read(128 << 10, 4096) == bytes(4096)
    assert check(str(p)).exit_code == 0


def test_grain_table_past_eof_refused_on_open(tmp_path: Path) -> None:
    p, gd, _gt = _vmdk(tmp_path)
    _poke(p, gd * 512, "<I", 0x7FFFFFF0)
    with pytest.raises(ImageError, match="grain table lies past the end"):
        open_image(str(p))


def test_grain_past_eof_read_and_check(tmp_path: Path) -> None:
    p, _gd, gt = _vmdk(tmp_path)
    _poke(p, gt * 512 + 4, "<I", 0x100000)
    with open_image(str(p)) as img:
        assert img.read(0, 65536) == b"\x07" * 65536
        with pytest.raises(ImageError, match="grain 1 lies past the end of the file"):
            img.read(65536, 512)
    from pyvirt.image.checker import CheckFailed

    with pytest.raises(CheckFailed) as err:
        check(str(p))
    assert err.value.messages == ["ERROR: cluster offset for sector 128 points after EOF"]


def test_grain_pointing_into_metadata_is_not_written(tmp_path: Path) -> None:
    p, _gd, gt = _vmdk(tmp_path)
    _poke(p, gt * 512 + 4, "<I", 1)  # grain 1 "lives" in the header's sector
    header = p.read_bytes()[:512]
    with open_image(str(p), readonly=False) as img, pytest.raises(ImageError, match="metadata"):
        img.write(65536, b"x" * 512)
    assert p.read_bytes()[:512] == header
    with open_image(str(p)) as img:  # it still opens and reads
        assert img.read(0, 512) == b"\x07" * 512


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (4, "<I", 9, "unsupported VMDK version 9"),
        (20, "<Q", 3, "invalid grain size"),
        (20, "<Q", 1 << 20, "invalid grain size"),
        (12, "<Q", 1 << 50, "capacity or grain table size out of range"),
        (44, "<I", 0, "capacity or grain table size out of range"),
        (56, "<Q", 1 << 40, "grain directory out of range"),
    ],
)
def test_bad_vmdk_header_fields(tmp_path: Path, offset: int, fmt: str, value: int, message: str) -> None:
    p, _gd, _gt = _vmdk(tmp_path)
    _poke(p, offset, fmt, value)
    with pytest.raises(ImageError, match=message):
        open_image(str(p))


def test_unallocated_grain_table_is_not_written(tmp_path: Path) -> None:
    p, gd, _gt = _vmdk(tmp_path)
    _poke(p, gd * 512, "<I", 0)
    rgd = struct.unpack_from("<Q", p.read_bytes(), 48)[0]
    _poke(p, rgd * 512, "<I", 0)
    size = p.stat().st_size
    with open_image(str(p), readonly=False) as img:
        assert img.read(0, 512) == bytes(512)
        with pytest.raises(ImageError, match="grain table 0 is not allocated"):
            img.write(0, b"x" * 65536)
    assert p.stat().st_size == size  # no grain was added for the refused write
    with open_image(str(p)) as img:
        assert img.read(0, 65536) == bytes(65536)


def test_descriptor_extent_outside_folder_and_bad_types(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (tmp_path / "secret").write_bytes(b"s" * 4096)
    head = '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
    (d / "x.vmdk").write_text(head + 'RW 8 FLAT "../secret" 0\n')
    with pytest.raises(ImageError, match="outside"):
        open_image(str(d / "x.vmdk"), fmt="vmdk")
    (d / "y.vmdk").write_text(head + 'RW 8 SESPARSE "y-s.vmdk"\n')
    with pytest.raises(ImageError, match="unsupported VMDK extent type SESPARSE"):
        open_image(str(d / "y.vmdk"), fmt="vmdk")
    (d / "z.vmdk").write_text(head + "RW 99999999999999999 ZERO\n")
    with pytest.raises(ImageError, match="extent size out of range"):
        open_image(str(d / "z.vmdk"), fmt="vmdk")
    (d / "e.vmdk").write_text(head)
    with pytest.raises(ImageError, match="lists no extents"):
        open_image(str(d / "e.vmdk"), fmt="vmdk")


def test_cyclic_parents_refused(tmp_path: Path) -> None:
    a, _gd, _gt = _vmdk(tmp_path, "a.vmdk")
    create_image(str(tmp_path / "b.vmdk"), "vmdk", None, backing="a.vmdk", backing_fmt="vmdk")
    b = tmp_path / "b.vmdk"
    data = bytearray(a.read_bytes())
    text = data[512 : 21 * 512].rstrip(b"\0").decode()
    text = text.replace("parentCID=ffffffff", "parentCID=1").replace(
        'createType="monolithicSparse"\n', 'createType="monolithicSparse"\nparentFileNameHint="b.vmdk"'
    )
    data[512 : 21 * 512] = text.encode().ljust(20 * 512, b"\0")
    a.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="loops back"):
        open_image(str(b))
    with pytest.raises(ImageError, match="loops back"):
        open_image(str(a))


def test_streamoptimized_footer_without_directory(tmp_path: Path) -> None:
    p = tmp_path / "s.vmdk"
    create_image(str(p), "vmdk", 1 << 20, subformat="streamOptimized")
    data = bytearray(p.read_bytes())
    header = bytes(data[:512])
    data[56:64] = b"\xff" * 8
    data += bytes(512) + header[:56] + b"\xff" * 8 + header[64:] + bytes(512)
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="footer has no grain directory"):
        open_image(str(p))


def _vdi(tmp_path: Path, **opts: object) -> Path:
    p = tmp_path / "x.vdi"
    create_image(str(p), "vdi", 3 << 20, **opts)
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"\x01" * (1536 << 10))
    return p


def test_vdi_round_trip_and_check(tmp_path: Path) -> None:
    p = _vdi(tmp_path)
    with open_image(str(p)) as img:
        assert img.read(0, 1536 << 10) == b"\x01" * (1536 << 10)
        assert img.read(1536 << 10, 512) == bytes(512)
    res = check(str(p))
    assert (res.exit_code, res.corruptions, res.messages) == (0, 0, [])


def test_vdi_repeating_block_map(tmp_path: Path) -> None:
    p = _vdi(tmp_path)
    _poke(p, 0x204, "<I", 0)  # block 1 shares data block 0
    res = check(str(p))
    assert (res.exit_code, res.corruptions) == (2, 1)
    assert res.messages == ["ERROR: block index 0 also used by 0"]
    before = _digest(p)
    with pytest.raises(ImageError, match="block map is inconsistent"):
        open_image(str(p), readonly=False)
    assert _digest(p) == before


def test_vdi_block_map_entry_out_of_range(tmp_path: Path) -> None:
    p = _vdi(tmp_path)
    _poke(p, 0x204, "<I", 1000)
    with open_image(str(p)) as img, pytest.raises(ImageError, match="block 1 maps to 1000, beyond the image"):
        img.read(1 << 20, 512)
    res = check(str(p))
    assert res.messages == [
        "ERROR: block index 1 too large, is 1000",
        "ERROR: allocated blocks mismatch, is 1, should be 2",
    ]
    with pytest.raises(ImageError, match="block map is inconsistent"):
        open_image(str(p), readonly=False)


def test_vdi_allocated_count_lies(tmp_path: Path) -> None:
    p = _vdi(tmp_path)
    _poke(p, 0x180 + 4, "<I", 1)  # blocks_allocated: 1, the map has 2
    with pytest.raises(ImageError, match="counts 1 allocated blocks, the map 2"):
        open_image(str(p), readonly=False)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (0x40, "<I", 0x12345678, "not a VDI image"),
        (0x44, "<I", 0x00020000, "unsupported VDI version 2.0"),
        (0x4C, "<I", 3, "unsupported VDI image type 3"),
        (0x154, "<I", 0x10000000, "VDI block map out of range"),
        (0x158, "<I", 0x201, "VDI geometry out of range"),
        (0x168, "<I", 4096, "VDI geometry out of range"),
        (0x17C, "<I", 1, "VDI geometry out of range"),
        (0x180, "<I", 1 << 30, "VDI block count out of range"),
        (0x1B8, "<I", 1, "differencing images"),
    ],
)
def test_bad_vdi_header_fields(tmp_path: Path, offset: int, fmt: str, value: int, message: str) -> None:
    p = _vdi(tmp_path)
    _poke(p, offset, fmt, value)
    with pytest.raises(ImageError, match=message):
        open_image(str(p), fmt="vdi")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2047), st.integers(0, 255)), min_size=1, max_size=16))
def test_fuzzed_vmdk_metadata(tmp_path: Path, muts: list[tuple[int, int]]) -> None:
    src = tmp_path / "fuzz-src.vmdk"
    if not src.exists():
        _vmdk(tmp_path, "fuzz-src.vmdk")
    data = bytearray(src.read_bytes())
    gd = struct.unpack_from("<Q", data, 56)[0]
    for pos, val in muts:
        at = pos if pos < 1024 else gd * 512 + (pos - 1024)  # the header or the tables
        data[at] = val
    p = tmp_path / "fuzz.vmdk"
    p.write_bytes(bytes(data))
    size = len(data)
    with contextlib.suppress(ImageError), open_image(str(p), fmt="vmdk", readonly=False) as img:
        img.read(0, min(img.size, 1 << 20))
        img.block_status(0, min(img.size, 1 << 30))
        img.write(0, b"w" * 4096)
    grain = struct.unpack_from("<Q", data, 20)[0] * 512
    assert p.stat().st_size <= size + max(grain, 65536)  # at most one new grain, nothing far outside


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1, max_size=16))
def test_fuzzed_vdi_metadata(tmp_path: Path, muts: list[tuple[int, int]]) -> None:
    src = tmp_path / "fuzz-src.vdi"
    if not src.exists():
        _vdi(tmp_path).rename(src)
    data = bytearray(src.read_bytes())
    for pos, val in muts:
        data[pos] = val
    p = tmp_path / "fuzz.vdi"
    p.write_bytes(bytes(data))
    size = len(data)
    with contextlib.suppress(ImageError), open_image(str(p), fmt="vdi", readonly=False) as img:
        img.read(0, min(img.size, 1 << 20))
        img.block_status(0, img.size)
        img.write(2 << 20, b"w" * 4096)
    assert p.stat().st_size <= size + (3 << 20)  # within the image's own three blocks


def _vpc(tmp_path: Path) -> Path:
    """A dynamic VHD with its first block written: footer, header at 512, BAT at 1536."""
    p = tmp_path / "x.vpc"
    create_image(str(p), "vpc", 5 << 20)
    with open_image(str(p), fmt="vpc", readonly=False) as img:
        img.write(0, b"\x02" * (1 << 20))
    return p


def test_vpc_round_trip(tmp_path: Path) -> None:
    p = _vpc(tmp_path)
    with open_image(str(p)) as img:
        assert img.format == "vpc"
        assert img.read(0, 1 << 20) == b"\x02" * (1 << 20)
        assert img.read(1 << 20, 4096) == bytes(4096)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (60, ">I", 4, "differencing VHD images are not supported"),
        (60, ">I", 9, "unknown VHD disk type 9"),
        (16, ">Q", 1 << 40, "dynamic VHD header out of range"),
        (512, ">Q", 0, "Invalid header magic"),
        (512 + 32, ">I", 3000, "Invalid block size 3000"),
        (512 + 28, ">I", 1, "Page table too small"),
        (512 + 16, ">Q", 1 << 33, "allocation table lies past the end"),
        (1536, ">I", 1 << 24, "free_data_block_offset points after the end of file"),
    ],
)
def test_bad_vpc_fields(tmp_path: Path, offset: int, fmt: str, value: int, message: str) -> None:
    p = _vpc(tmp_path)
    _poke(p, offset, fmt, value)
    with pytest.raises(ImageError, match=message):
        open_image(str(p), fmt="vpc")


def test_vpc_block_pointing_into_metadata_is_not_written(tmp_path: Path) -> None:
    p = _vpc(tmp_path)
    _poke(p, 1536, ">I", 1)  # block 0's bitmap "at" sector 1: the dynamic header
    before = p.read_bytes()[:2048]
    with open_image(str(p), fmt="vpc", readonly=False) as img:
        with pytest.raises(ImageError, match="points into the image's metadata"):
            img.write(0, b"x" * 512)
        with pytest.raises(ImageError, match="points into the image's metadata"):
            img.read(0, 512)
    assert p.read_bytes()[:2048] == before


def test_fixed_vhd_probes_as_raw_and_opens_as_vpc(tmp_path: Path) -> None:
    p = tmp_path / "f.vpc"
    create_image(str(p), "vpc", 3 << 20, subformat="fixed")
    with open_image(str(p)) as img:
        assert (img.format, img.size) == ("raw", p.stat().st_size)
    with open_image(str(p), fmt="vpc", readonly=False) as img:
        assert img.size == p.stat().st_size - 512
        img.write(img.size - 512, b"e" * 512)
    with open_image(str(p), fmt="vpc") as img:
        assert img.read(img.size - 512, 512) == b"e" * 512
    assert p.read_bytes()[-512:-504] == b"conectix"  # the footer stays whole


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2047), st.integers(0, 255)), min_size=1, max_size=16))
def test_fuzzed_vpc_metadata(tmp_path: Path, muts: list[tuple[int, int]]) -> None:
    src = tmp_path / "fuzz-src.vpc"
    if not src.exists():
        _vpc(tmp_path).rename(src)
    data = bytearray(src.read_bytes())
    for pos, val in muts:
        data[pos] = val
    p = tmp_path / "fuzz.vpc"
    p.write_bytes(bytes(data))
    size = len(data)
    with contextlib.suppress(ImageError), open_image(str(p), fmt="vpc", readonly=False) as img:
        img.read(0, min(img.size, 1 << 20))
        img.block_status(0, min(img.size, 1 << 30))
        img.write(min(img.size, 4 << 20) - 4096, b"w" * 4096)
    assert p.stat().st_size <= size + (1 << 30) + 4096  # one new block (the size fuzzed) and a footer


def _vhdx(tmp_path: Path, name: str = "x.vhdx") -> Path:
    """A 64 MiB dynamic VHDX (1 MiB blocks, BAT at 2 MiB) with its first block written."""
    p = tmp_path / name
    create_image(str(p), "vhdx", 64 << 20, block_size=1 << 20)
    with open_image(str(p), readonly=False) as img:
        img.write(0, b"\x05" * (1 << 20))
    return p


def _rechecksum(p: Path, at: int, length: int) -> None:
    from crc32c import crc32c

    data = bytearray(p.read_bytes())
    data[at + 4 : at + 8] = bytes(4)
    struct.pack_into("<I", data, at + 4, crc32c(bytes(data[at : at + length])))
    p.write_bytes(bytes(data))


def _current_header(p: Path) -> int:
    data = p.read_bytes()
    seqs = [struct.unpack_from("<Q", data, h + 8)[0] for h in (64 << 10, 128 << 10)]
    return (64 << 10, 128 << 10)[seqs.index(max(seqs))]


def _add_log(p: Path, descriptors: list[tuple[bytes, int, bytes | int]]) -> None:
    """Write one log entry (``("desc", offset, 4 KiB)`` or ``("zero", offset, length)``) and
    name its GUID in the current header: a log left for replay."""
    from crc32c import crc32c

    guid, seq = os.urandom(16), 7
    datas = [d for d in descriptors if d[0] == b"desc"]
    length = 4096 * (1 + len(datas))
    entry = bytearray(length)
    struct.pack_into("<4sIIIQII16sQQ", entry, 0, b"loge", 0, length, 0, seq, len(descriptors), 0, guid, 0, 0)
    sector = 4096
    for i, (kind, offset, payload) in enumerate(descriptors):
        if kind == b"zero":
            assert isinstance(payload, int)
            struct.pack_into("<4sIQQQ", entry, 64 + 32 * i, b"zero", 0, payload, offset, seq)
        else:
            assert isinstance(payload, bytes) and len(payload) == 4096
            trailing, leading = (
                struct.unpack_from("<I", payload, 4092)[0],
                struct.unpack_from("<Q", payload)[0],
            )
            struct.pack_into("<4sIQQQ", entry, 64 + 32 * i, b"desc", trailing, leading, offset, seq)
            entry[sector : sector + 4096] = (
                b"data" + struct.pack("<I", 0) + payload[8:4092] + struct.pack("<I", seq)
            )
            sector += 4096
    struct.pack_into("<I", entry, 4, crc32c(bytes(entry)))
    data = bytearray(p.read_bytes())
    data[1 << 20 : (1 << 20) + length] = entry
    h = _current_header(p)
    data[h + 48 : h + 64] = guid
    p.write_bytes(bytes(data))
    _rechecksum(p, h, 4096)


def test_vhdx_round_trip_and_replay(tmp_path: Path) -> None:
    p = _vhdx(tmp_path)
    with open_image(str(p)) as img:
        assert img.format == "vhdx" and img.read(0, 1 << 20) == b"\x05" * (1 << 20)
    bat = bytearray(p.read_bytes()[2 << 20 : (2 << 20) + 4096])
    struct.pack_into("<Q", bat, 0, 2)  # the log sets block 0 back to ZERO
    _add_log(p, [(b"desc", 2 << 20, bytes(bat))])
    with pytest.raises(ImageError, match="contains a log that needs to be replayed"):
        open_image(str(p))
    res = check(str(p), "all")
    assert (res.corruptions_fixed, res.exit_code) == (1, 0)
    with open_image(str(p)) as img:
        assert img.read(0, 4096) == bytes(4096)


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        ((b"desc", 64 << 10, bytes(4096)), "points into the header section or the log"),
        ((b"desc", (1 << 20) + 8192, bytes(4096)), "points into the header section or the log"),
        ((b"desc", 1 << 52, bytes(4096)), "points far outside the image"),
        ((b"zero", 0, 1 << 20), "points into the header section or the log"),
        ((b"zero", 4 << 20, 1000), "zero descriptor is misaligned"),
        ((b"desc", (2 << 20) + 100, bytes(4096)), "descriptor is invalid"),
    ],
)
def test_vhdx_log_entries_pointing_outside(
    tmp_path: Path, descriptor: tuple[bytes, int, bytes | int], message: str
) -> None:
    p = _vhdx(tmp_path)
    _add_log(p, [descriptor])
    before = p.read_bytes()
    with pytest.raises(ImageError, match=message):
        open_image(str(p), readonly=False)
    after = p.read_bytes()
    assert after[: 2 << 20] == before[: 2 << 20] and len(after) == len(before)


def test_vhdx_log_without_a_valid_entry(tmp_path: Path) -> None:
    """A log GUID with no valid entry under it (a torn entry, or a crash before it was written) is
    no log: the image opens as it is, read-only too, as QEMU opens it; the entry is not applied."""
    p = _vhdx(tmp_path)
    _add_log(p, [(b"desc", 2 << 20, bytes(4096))])  # would unmap block 0
    _poke(p, (1 << 20) + 100, "<I", 0xDEAD)  # the entry's checksum no longer holds
    for readonly in (True, False):
        with open_image(str(p), readonly=readonly) as img:
            assert img.read(0, 512) == b"\x05" * 512


def test_vhdx_headers_and_regions(tmp_path: Path) -> None:
    p = _vhdx(tmp_path)
    h = _current_header(p)
    _poke(p, h + 8, "<Q", 1)  # a bad checksum: the other header is used
    with open_image(str(p)) as img:
        assert img.read(0, 512) == b"\x05" * 512
    _poke(p, (64 << 10) + (128 << 10) - h + 8, "<Q", 1)
    with pytest.raises(ImageError, match="no valid VHDX header"):
        open_image(str(p))
    q = _vhdx(tmp_path, "y.vhdx")
    for table in (192 << 10, 256 << 10):
        _poke(q, table + 32, "<Q", 1 << 20)  # the BAT region over the log
        _rechecksum(q, table, 64 << 10)
    with pytest.raises(ImageError, match="VHDX regions overlap"):
        open_image(str(q))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ((1 << 20) | 6, "overlaps the image's metadata"),
        ((1 << 40) | 6, "past the end of the file"),
        ((8 << 20) | 7, "partially present"),
        ((8 << 20) | 5, "invalid BAT state 5"),
    ],
)
def test_vhdx_bat_entries(tmp_path: Path, entry: int, message: str) -> None:
    p = _vhdx(tmp_path)
    _poke(p, 2 << 20, "<Q", entry)
    before = p.read_bytes()
    with open_image(str(p), readonly=False) as img:
        with pytest.raises(ImageError, match=message):
            img.read(0, 512)
        with pytest.raises(ImageError, match=message):
            img.write(0, b"z" * 512)
    assert p.read_bytes() == before


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 8191), st.integers(0, 255)), min_size=1, max_size=16))
def test_fuzzed_vhdx_metadata(tmp_path: Path, muts: list[tuple[int, int]]) -> None:
    src = tmp_path / "fuzz-src.vhdx"
    if not src.exists():
        _vhdx(tmp_path).rename(src)
    data = bytearray(src.read_bytes())
    meta = struct.unpack_from("<Q", data, (192 << 10) + 64)[0]
    for pos, val in muts:
        # the BAT, the metadata table and its items (neither has a checksum)
        at = (2 << 20) + pos if pos < 4096 else meta + (pos - 4096 if pos < 6144 else (64 << 10) + pos - 6144)
        data[at] = val
    p = tmp_path / "fuzz.vhdx"
    p.write_bytes(bytes(data))
    size = len(data)
    with contextlib.suppress(ImageError), open_image(str(p), fmt="vhdx", readonly=False) as img:
        img.read(0, min(img.size, 1 << 20))
        img.block_status(0, min(img.size, 1 << 30))
        img.write(min(img.size, 4 << 20) - 4096, b"w" * 4096)
    assert p.stat().st_size <= size + (256 << 20) + (1 << 20)  # one new block at most


def test_zstd_qcow2_round_trip_and_bad_clusters(tmp_path: Path) -> None:
    from pyvirt.image import convert

    src = tmp_path / "src.raw"
    text = b"".join(b"line %d\n" % i for i in range(50000))[: 256 << 10]
    src.write_bytes(text)
    p = tmp_path / "z.qcow2"
    convert(str(src), str(p), "qcow2", compress=True, options={"compression_type": "zstd"})
    with open_image(str(p)) as img:
        assert img.read(0, len(text)) == text
        extents = img.block_status(0, img.size)
    assert all(x.compressed for x in extents if x.data)
    data = bytearray(p.read_bytes())
    at = data.find(b"\x28\xb5\x2f\xfd")  # the first zstd frame's magic
    assert at > 0
    data[at + 4 : at + 64] = b"\xff" * 60
    p.write_bytes(bytes(data))
    with open_image(str(p)) as img, pytest.raises(ImageError, match=r"does not decompress|decompresses to"):
        img.read(0, len(text))
    _poke(p, 104, ">B", 2)  # compression type 2: none QEMU knows
    with pytest.raises(ImageError, match="unknown qcow2 compression type 2"):
        open_image(str(p))


@pytest.mark.parametrize("fmt", ["vpc", "vhdx"])
def test_repeating_block_tables_are_read_but_never_written(tmp_path: Path, fmt: str) -> None:
    """A BAT whose entries share file space (block 1 made to point at block 0's data): read as it
    says, but a write into one block would land in the other's, so no writable open."""
    p = _vpc(tmp_path) if fmt == "vpc" else _vhdx(tmp_path)
    at, width = (1536, ">I") if fmt == "vpc" else (2 << 20, "<Q")
    first = struct.unpack_from(width, p.read_bytes(), at)[0]
    _poke(p, at + struct.calcsize(width), width, first)
    with open_image(str(p), fmt=fmt) as img:
        block = img.cluster_size
        assert block is not None
        assert img.read(block, 4096) == img.read(0, 4096)
    before = _digest(p)
    with pytest.raises(ImageError, match="it can be read but not written"):
        open_image(str(p), fmt=fmt, readonly=False)
    assert _digest(p) == before
    if fmt == "vpc":  # overlapping without being equal: block 1 starts inside block 0
        _poke(p, at + 4, width, first + 1)
        with pytest.raises(ImageError, match="it can be read but not written"):
            open_image(str(p), fmt=fmt, readonly=False)


def test_vmdk_repeating_grain_tables_are_read_but_never_written(tmp_path: Path) -> None:
    """Two grain table entries pointing at one grain, a grain inside a grain table, two directory
    entries sharing a table: read as they say, never opened for writing (as vdi, vpc, vhdx)."""
    p, gd, gt = _vmdk(tmp_path)
    grain = struct.unpack_from("<I", p.read_bytes(), gt * 512)[0]
    _poke(p, gt * 512 + 4 * 5, "<I", grain)  # grain 5 (unwritten) now shares grain 0's data
    with open_image(str(p)) as img:
        assert img.read(5 * 65536, 4096) == b"\x07" * 4096
    before = _digest(p)
    with pytest.raises(ImageError, match=r"VMDK grain table is inconsistent.*it can be read but not written"):
        open_image(str(p), readonly=False)
    assert _digest(p) == before
    p, gd, gt = _vmdk(tmp_path, "b.vmdk")
    _poke(p, gt * 512 + 4 * 5, "<I", gt + 1)  # a grain over the grain table itself
    with pytest.raises(ImageError, match="it can be read but not written"):
        open_image(str(p), readonly=False)
    p = tmp_path / "c.vmdk"
    create_image(str(p), "vmdk", 64 << 20)  # two grain tables
    gd = struct.unpack_from("<Q", p.read_bytes(), 56)[0]
    _poke(p, gd * 512 + 4, "<I", struct.unpack_from("<I", p.read_bytes(), gd * 512)[0])
    with pytest.raises(ImageError, match="it can be read but not written"):
        open_image(str(p), readonly=False)

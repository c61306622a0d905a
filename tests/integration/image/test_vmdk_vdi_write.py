"""VMDK, VDI, VHD and VHDX images written by pyvirt, judged by qemu-img: check, compare, its output.

Every subformat and option, on data patterns with holes, zero runs, data at both ends and sizes
that are not a multiple of the grain or block; creation byte-compared with qemu-img's (the random
CID/UUIDs aside); CLI text, errors and exit codes compared with qemu-img's.
"""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import pytest

from pyvirt.errors import ImageError
from pyvirt.image import check, convert, create_image, open_image

from .conftest import assert_clean, assert_same, pyvirt_img, qemu_img, qemu_io, read_all


def judged_clean(path: Path, fmt: str) -> None:
    """qemu-img check finds nothing; for VHD, which it cannot check, it says so (63) for us too."""
    if fmt == "vpc":
        q = qemu_img("check", "-f", fmt, str(path), check=False)
        r = pyvirt_img("check", "-f", fmt, str(path))
        assert (q.returncode, r.returncode) == (63, 63), q.stderr + r.stderr
    else:
        assert_clean(path)


VMDK_OPTS = [
    "subformat=monolithicSparse",
    "subformat=monolithicFlat",
    "subformat=twoGbMaxExtentSparse",
    "subformat=twoGbMaxExtentFlat",
    "subformat=streamOptimized",
    "zeroed_grain=on",
    "adapter_type=lsilogic,hwversion=7,toolsversion=10240",
    "adapter_type=buslogic,compat6=on",
]
VDI_OPTS = ["static=off", "static=on"]
VPC_OPTS = ["subformat=dynamic", "subformat=fixed", "force_size=on", "subformat=fixed,force_size=on"]
VHDX_OPTS = [
    "subformat=dynamic",
    "subformat=fixed",
    "block_state_zero=off",
    "subformat=fixed,block_state_zero=off",
    "block_size=1M,log_size=2M",
]
CASES = (
    [("vmdk", o) for o in VMDK_OPTS]
    + [("vdi", o) for o in VDI_OPTS]
    + [("vpc", o) for o in VPC_OPTS]
    + [("vhdx", o) for o in VHDX_OPTS]
)
REWRITABLE = [c for c in CASES if "streamOptimized" not in c[1]]  # stream grains are written once


def _pattern(seed: int) -> bytes:
    """Random runs of data, zeros and text; data at both ends; a size that is no grain multiple."""
    r = random.Random(seed)
    size = r.choice([3 << 20, 5 << 20, 7 << 20]) + r.choice([512, 4096, 65536 + 1536])
    buf = bytearray(size)
    pos = 0
    while pos < size:
        n = min(size - pos, r.choice([512, 4096, 65536, 100000, 1 << 20]))
        kind = r.random()
        if kind < 0.4:
            buf[pos : pos + n] = r.randbytes(n)
        elif kind < 0.6:
            buf[pos : pos + n] = (b"pyvirt %d\n" % pos * (n // 8 + 1))[:n]
        pos += n
    buf[:777] = r.randbytes(777)
    buf[-999:] = r.randbytes(999)
    return bytes(buf)


@pytest.fixture(scope="module", params=[1, 2, 3])
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw source with real holes (the zero runs are left unwritten)."""
    data = _pattern(request.param)
    p = tmp_path_factory.mktemp("src") / "src.raw"
    with open(p, "wb") as f:
        f.truncate(len(data))
        for i in range(0, len(data), 65536):
            piece = data[i : i + 65536]
            if any(piece):
                f.seek(i)
                f.write(piece)
    return p


@pytest.mark.parametrize(("fmt", "opts"), CASES)
def test_convert_to_format_is_judged_clean_and_identical(
    tmp_path: Path, source: Path, fmt: str, opts: str
) -> None:
    ours = tmp_path / f"ours.{fmt}"
    r = pyvirt_img("convert", "-O", fmt, "-o", opts, str(source), str(ours))
    assert r.returncode == 0, r.stderr
    judged_clean(ours, fmt)
    assert_same(source, ours, fmt_b=fmt)
    theirs = tmp_path / f"theirs.{fmt}"
    qemu_img("convert", "-O", fmt, "-o", opts, str(source), str(theirs))
    assert_same(theirs, ours, fmt_a=fmt, fmt_b=fmt)
    data = source.read_bytes()
    ours_data = read_all(ours, fmt)
    # A VHD's CHS geometry may round the size up: the rest reads as zeros.
    assert ours_data[: len(data)] == data and not any(ours_data[len(data) :])
    # The same allocation as qemu-img's own conversion (grains with data, nothing else).
    assert qemu_img("map", "-f", fmt, "--output=json", str(ours)).stdout.replace("ours", "X") == qemu_img(
        "map", "-f", fmt, "--output=json", str(theirs)
    ).stdout.replace("theirs", "X")
    if fmt != "vpc" or "fixed" not in opts:
        for args in (["--output=json"], []):
            mine = pyvirt_img("info", *args, ours.name, cwd=tmp_path).stdout
            assert re.sub(r"cid\W+\d+", "", mine) == re.sub(
                r"cid\W+\d+", "", qemu_img("info", *args, ours.name, cwd=tmp_path).stdout
            )


@pytest.mark.parametrize(("fmt", "opts"), REWRITABLE)
def test_random_writes_match_a_raw_mirror(tmp_path: Path, fmt: str, opts: str) -> None:
    size = (3 << 20) + 1536
    img = tmp_path / f"w.{fmt}"
    qemu_img("create", "-q", "-f", fmt, "-o", opts, str(img), str(size))
    mirror = bytearray(size)
    r = random.Random(opts)
    with open_image(str(img), fmt=fmt, readonly=False) as w:
        for _ in range(60):
            off = r.randrange(size)
            n = min(size - off, r.choice([1, 511, 512, 4096, 65536, 70000, 1 << 20]))
            if r.random() < 0.2:
                w.write_zeroes(off, n)
                mirror[off : off + n] = bytes(n)
            else:
                data = r.randbytes(n)
                w.write(off, data)
                mirror[off : off + n] = data
    raw = tmp_path / "mirror.raw"
    raw.write_bytes(bytes(mirror))
    judged_clean(img, fmt)
    assert_same(raw, img, fmt_b=fmt)
    got = read_all(img, fmt)
    assert got[:size] == bytes(mirror) and not any(got[size:])


def _mask(fmt: str, data: bytes) -> bytes:
    """The file without what qemu-img makes random: VDI's UUIDs, the VMDK descriptor's CID, the
    VHD footers' time stamp, checksum and UUID; VHDX's creator, header sequence and GUIDs, page 83 ID."""
    if fmt == "vhdx":
        out = bytearray(data)
        out[8 : 8 + 512] = bytes(512)
        for at in (64 << 10, 128 << 10):
            out[at + 4 : at + 64] = bytes(60)
        meta = struct.unpack_from("<Q", out, (192 << 10) + 48 + 16)[0]
        out[meta + (64 << 10) + 16 : meta + (64 << 10) + 32] = bytes(16)
        return bytes(out)
    if fmt == "vpc":
        out = bytearray(data)
        for at in (0, len(out) - 512):
            if out[at : at + 8] == b"conectix":
                out[at + 24 : at + 28] = bytes(4)
                out[at + 64 : at + 84] = bytes(20)
        return bytes(out)
    if fmt == "vdi":
        return data[:0x188] + bytes(32) + data[0x1A8:]
    if data[:4] == b"KDMV":
        text, room = data[512 : 21 * 512], 20 * 512
        masked = re.sub(rb"CID=[0-9a-f]+\n", b"CID=?\n", text.rstrip(b"\0"), count=1)
        return data[:512] + masked.ljust(room, b"\0") + data[21 * 512 :]
    return re.sub(rb"CID=[0-9a-f]+\n", b"CID=?\n", data, count=1)


@pytest.mark.parametrize(("fmt", "opts"), CASES)
def test_create_lays_out_files_as_qemu_img(tmp_path: Path, fmt: str, opts: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    size = "5G" if "twoGb" in opts else "3M" if fmt in ("vpc", "vhdx") else "100M"
    r = pyvirt_img("create", "-f", fmt, "-o", opts, f"disk.{fmt}", size, cwd=tmp_path / "a")
    q = qemu_img("create", "-f", fmt, "-o", opts, f"disk.{fmt}", size, cwd=tmp_path / "b")
    assert (r.returncode, r.stdout) == (0, q.stdout), r.stderr
    ours = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert ours == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in ours:
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        if a.stat().st_size <= 1 << 24:
            assert _mask(fmt, a.read_bytes()) == _mask(fmt, b.read_bytes()), name
        else:
            assert a.stat().st_size == b.stat().st_size, name
    judged_clean(tmp_path / "a" / f"disk.{fmt}", fmt)


@pytest.mark.parametrize(
    "args",
    [
        ["-f", "vmdk", "-o", "subformat=bogus"],
        ["-f", "vmdk", "-o", "adapter_type=scsi"],
        ["-f", "vmdk", "-o", "compat6=on,hwversion=7"],
        ["-f", "vmdk", "-o", "subformat=monolithicFlat,zeroed_grain=on"],
        ["-f", "vmdk", "-o", "nosuch=1"],
        ["-f", "vdi", "-o", "cluster_size=64k"],
        ["-f", "vpc", "-o", "subformat=sparse"],
        ["-f", "vpc", "-o", "force_size=maybe"],
        ["-f", "vhdx", "-o", "subformat=differencing"],
        ["-f", "vhdx", "-o", "block_size=3M"],
        ["-f", "vhdx", "-o", "log_size=0"],
        ["-f", "nosuchformat"],
    ],
)
def test_create_errors_as_qemu_img(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = pyvirt_img("create", *args, "x.img", "1G", cwd=tmp_path / "a")
    q = qemu_img("create", *args, "x.img", "1G", check=False, cwd=tmp_path / "b")
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (1, q.stdout)
    assert r.stderr.split("error: ", 1)[1] == q.stderr.split("qemu-img: ", 1)[1]
    assert not list((tmp_path / "a").iterdir())


def test_delta_disks_written_by_us_read_by_qemu_and_back(tmp_path: Path) -> None:
    base = tmp_path / "base.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", str(base), "4M")
    qemu_io(base, "write -P 7 0 4M", fmt="vmdk")
    ours, theirs = tmp_path / "ours.vmdk", tmp_path / "theirs.vmdk"
    r = pyvirt_img("create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", "ours.vmdk", cwd=tmp_path)
    q = qemu_img("create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", "theirs.vmdk", cwd=tmp_path)
    assert r.stdout == q.stdout.replace("theirs", "ours")
    writes = [(1000, 3000, 9), (1 << 20, 65536, 3), ((3 << 20) - 100, 200, 5)]
    qemu_io(theirs, *(f"write -P {p} {o} {n}" for o, n, p in writes), fmt="vmdk")
    with open_image(str(ours), readonly=False) as w:
        for o, n, p in writes:
            w.write(o, bytes([p]) * n)
    assert_clean(ours)
    assert_same(ours, theirs)
    assert read_all(theirs) == read_all(ours)
    info = pyvirt_img("info", "--backing-chain", "ours.vmdk", cwd=tmp_path).stdout
    assert re.sub(r"cid: \d+", "", info) == re.sub(
        r"cid: \d+", "", qemu_img("info", "--backing-chain", "ours.vmdk", cwd=tmp_path).stdout
    )
    assert (
        pyvirt_img("map", "ours.vmdk", cwd=tmp_path).stdout
        == qemu_img("map", "ours.vmdk", cwd=tmp_path).stdout
    )
    # A parent written after the delta was made no longer matches it: both refuse to read.
    qemu_io(base, "write -P 1 0 512", fmt="vmdk")
    with pytest.raises(ImageError, match="changed since this delta disk was made"):
        read_all(ours)
    assert qemu_img("compare", str(ours), str(theirs), check=False).returncode != 0


def test_convert_over_a_vmdk_parent(tmp_path: Path, source: Path) -> None:
    base = tmp_path / "base.vmdk"
    convert(str(source), str(base), "vmdk")
    changed = bytearray(source.read_bytes())
    changed[70000:80000] = b"\x42" * 10000
    changed[-5000:] = bytes(5000)
    top_src = tmp_path / "top.raw"
    top_src.write_bytes(bytes(changed))
    top = tmp_path / "top.vmdk"
    r = pyvirt_img("convert", "-O", "vmdk", "-B", "base.vmdk", "-F", "vmdk", str(top_src), str(top))
    assert r.returncode == 0, r.stderr
    assert_clean(top)
    assert_same(top_src, top)
    alloc = [m for m in qemu_img("map", "--output=json", str(top)).stdout.split("\n") if '"depth": 0' in m]
    assert 0 < len(alloc) <= 4  # the two changed grains (and whatever they border), not the whole disk


def test_cyclic_vmdk_parents_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.vmdk", tmp_path / "b.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", str(a), "1M")
    qemu_img("create", "-q", "-f", "vmdk", "-b", "a.vmdk", "-F", "vmdk", str(b))
    data = bytearray(a.read_bytes())
    desc = data[512 : 512 * 21]
    cid = re.search(rb"\nCID=([0-9a-f]+)", bytes(b.read_bytes()[512:])).group(1)  # type: ignore[union-attr]
    new = desc.replace(b"parentCID=ffffffff", b"parentCID=" + cid).replace(
        b'createType="monolithicSparse"\n', b'createType="monolithicSparse"\nparentFileNameHint="b.vmdk"'
    )
    data[512 : 512 * 21] = bytes(new[: 512 * 20]).ljust(512 * 20, b"\0")
    a.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="loops"):
        open_image(str(b))


def test_vdi_check_and_repair_as_qemu_img(tmp_path: Path) -> None:
    img = tmp_path / "x.vdi"
    create_image(str(img), "vdi", 3 << 20)
    with open_image(str(img), readonly=False) as w:
        w.write(0, b"\x01" * (1536 << 10))
    for args in ([], ["--output=json"], ["-r", "all"], ["-r", "leaks"]):
        r = pyvirt_img("check", *args, "x.vdi", cwd=tmp_path)
        q = qemu_img("check", *args, "x.vdi", check=False, cwd=tmp_path)
        assert (r.returncode, r.stdout) == (q.returncode, q.stdout), args
    assert check(str(img)).exit_code == 0
    data = bytearray(img.read_bytes())
    struct.pack_into("<I", data, 0x204, 0)  # block 1 maps to data block 0 as well
    img.write_bytes(bytes(data))
    for args in ([], ["--output=json"]):
        r = pyvirt_img("check", *args, "x.vdi", cwd=tmp_path)
        q = qemu_img("check", *args, "x.vdi", check=False, cwd=tmp_path)
        assert (r.returncode, r.stdout, r.stderr.splitlines()) == (
            q.returncode,
            q.stdout,
            q.stderr.splitlines(),
        )
    with pytest.raises(ImageError, match="block map is inconsistent"):
        open_image(str(img), readonly=False)


def test_vmdk_check_grain_past_eof_as_qemu_img(tmp_path: Path) -> None:
    img = tmp_path / "a.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", str(img), "4M")
    qemu_io(img, "write -P 7 0 128k", fmt="vmdk")
    assert pyvirt_img("check", "a.vmdk", cwd=tmp_path).returncode == 0
    data = bytearray(img.read_bytes())
    gd = struct.unpack_from("<Q", data, 56)[0]
    gt = struct.unpack_from("<I", data, gd * 512)[0]
    struct.pack_into("<I", data, gt * 512 + 4, 0x100000)
    img.write_bytes(bytes(data))
    for args in ([], ["--output=json"], ["-r", "all"]):
        r = pyvirt_img("check", *args, "a.vmdk", cwd=tmp_path)
        q = qemu_img("check", *args, "a.vmdk", check=False, cwd=tmp_path)
        assert (r.returncode, r.stdout) == (q.returncode, q.stdout), args
        assert r.stderr.replace("pyvirt img: error: ", "qemu-img: ") == q.stderr, args


def test_compress_flag_with_vmdk_as_qemu_img(tmp_path: Path, source: Path) -> None:
    """-c into monolithicSparse is accepted and stores grains as they are; vdi refuses it."""
    out = tmp_path / "c.vmdk"
    r = pyvirt_img("convert", "-c", "-O", "vmdk", str(source), str(out))
    assert r.returncode == 0, r.stderr
    assert_same(source, out)
    r = pyvirt_img("convert", "-c", "-O", "vdi", str(source), str(tmp_path / "c.vdi"))
    q = qemu_img("convert", "-c", "-O", "vdi", str(source), str(tmp_path / "q.vdi"), check=False)
    assert (r.returncode, r.stderr.split("error: ")[1]) == (q.returncode, q.stderr.split("qemu-img: ")[1])


def _dirty_vhdx(before: Path, after: Path, out: Path) -> None:
    """``after`` with the BAT of ``before`` and its header naming the log qemu-io left behind:
    what a crash after qemu's log write, before its replay, leaves."""
    from crc32c import crc32c

    b, a = before.read_bytes(), bytearray(after.read_bytes())
    bat_off, bat_len = struct.unpack_from("<QI", b, (192 << 10) + 32)
    a[bat_off : bat_off + bat_len] = b[bat_off : bat_off + bat_len]
    log_off, log_len = struct.unpack_from("<Q", a, (64 << 10) + 72)[0], 1 << 20
    entries = [
        (struct.unpack_from("<Q", a, at + 16)[0], at)
        for at in range(log_off, log_off + log_len, 4096)
        if a[at : at + 4] == b"loge"
    ]
    assert len(entries) == 3  # one per write that allocated a block
    last = max(entries)[1]  # each flush of QEMU's log starts a new log GUID: the newest one is live
    seqs = [struct.unpack_from("<Q", a, h + 8)[0] for h in (64 << 10, 128 << 10)]
    h = (64 << 10, 128 << 10)[seqs.index(max(seqs))]
    a[h + 48 : h + 64] = a[last + 32 : last + 48]
    a[h + 4 : h + 8] = bytes(4)
    struct.pack_into("<I", a, h + 4, crc32c(bytes(a[h : h + 4096])))
    out.write_bytes(bytes(a))


def test_vhdx_log_replayed_as_qemu_replays_it(tmp_path: Path) -> None:
    before, after = tmp_path / "before.vhdx", tmp_path / "after.vhdx"
    qemu_img("create", "-q", "-f", "vhdx", str(before), "100M")
    after.write_bytes(before.read_bytes())
    qemu_io(after, "write -P 1 0 1M", "write -P 2 50M 4k", "write -P 3 99M 1M", fmt="vhdx")
    dirty = tmp_path / "dirty.vhdx"
    _dirty_vhdx(before, after, dirty)
    theirs, ours = tmp_path / "theirs.vhdx", tmp_path / "ours.vhdx"
    theirs.write_bytes(dirty.read_bytes())
    ours.write_bytes(dirty.read_bytes())
    # Read-only, both refuse and name the command that replays the log.
    r = pyvirt_img("info", "ours.vhdx", cwd=tmp_path)
    q = qemu_img("info", "theirs.vhdx", check=False, cwd=tmp_path)
    assert (r.returncode, q.returncode) == (1, 1)
    assert (
        r.stderr.replace("pyvirt img: error: ", "qemu-img: ")
        .replace("pyvirt img", "qemu-img")
        .replace("ours", "theirs")
        == q.stderr
    )
    r = pyvirt_img("check", "-r", "all", "ours.vhdx", cwd=tmp_path)
    q = qemu_img("check", "-r", "all", "theirs.vhdx", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout)
    assert "1 corruptions" in r.stdout
    assert_clean(ours)
    assert_same(ours, theirs)
    assert_same(ours, after)  # the log held the whole BAT sector: every write is back
    # A writable open replays too.
    again = tmp_path / "again.vhdx"
    again.write_bytes(dirty.read_bytes())
    with open_image(str(again), readonly=False) as img:
        assert img.read(99 << 20, 1 << 20) == b"\x03" * (1 << 20)
    assert_same(again, theirs)


@pytest.mark.parametrize("fmt", ["qcow2", "raw", "vmdk", "vdi", "vpc", "vhdx"])
def test_option_help_is_qemu_imgs_for_the_options_we_take(tmp_path: Path, fmt: str) -> None:
    """``-o help``: qemu-img's lines, in its order, less the options pyvirt refuses (encryption,
    the file protocol's nocow and extent_size_hint)."""
    r = pyvirt_img("create", "-f", fmt, "-o", "help", "x.img", "1G", cwd=tmp_path)
    q = qemu_img("create", "-f", fmt, "-o", "help", "x.img", "1G", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("Supported options:\n")
    ours, theirs = r.stdout.splitlines(), q.stdout.splitlines()
    assert [line for line in theirs if line in ours] == ours
    assert any("size=<size>" in line for line in ours)
    assert not list(tmp_path.iterdir())
    c = pyvirt_img("convert", "-O", fmt, "-o", "help", "a", "b", cwd=tmp_path)
    assert (c.returncode, c.stdout) == (0, r.stdout)


@pytest.mark.parametrize("fmt", ["vmdk", "vdi", "vpc", "vhdx"])
def test_measure_and_resize_refused_as_qemu_img(tmp_path: Path, fmt: str) -> None:
    r = pyvirt_img("measure", "-O", fmt, "--size", "1G")
    q = qemu_img("measure", "-O", fmt, "--size", "1G", check=False)
    assert (r.returncode, r.stderr.split("error: ")[1]) == (q.returncode, q.stderr.split("qemu-img: ")[1])
    create_image(str(tmp_path / f"x.{fmt}"), fmt, 1 << 20)
    r = pyvirt_img("resize", "-f", fmt, f"x.{fmt}", "2M", cwd=tmp_path)
    q = qemu_img("resize", "-f", fmt, f"x.{fmt}", "2M", check=False, cwd=tmp_path)
    assert (r.returncode, r.stderr.split("error: ")[1]) == (q.returncode, q.stderr.split("qemu-img: ")[1])


@pytest.mark.parametrize("subformat", ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])
def test_writes_across_split_extents(tmp_path: Path, subformat: str) -> None:
    """Writes that straddle the 2 GiB extent boundaries land in the right files for qemu-io."""
    img = tmp_path / "x.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", "-o", f"subformat={subformat}", str(img), "5G")
    writes = [((2 << 30) - 4096, 8192, 7), ((4 << 30) - 100, 8192, 8), ((5 << 30) - 70000, 70000, 9)]
    with open_image(str(img), readonly=False) as w:
        for off, n, p in writes:
            w.write(off, bytes([p]) * n)
        w.write_zeroes((2 << 30) - 1024, 2048)
    assert_clean(img)
    cmds = [f"read -P {p} {off} {n}" for off, n, p in writes[1:]]
    cmds += [f"read -P 7 {(2 << 30) - 4096} 3072", f"read -P 0 {(2 << 30) - 1024} 2048"]
    cmds += [f"read -P 7 {(2 << 30) + 1024} 3072", "read -P 0 0 65536"]
    qemu_io(img, *cmds, fmt="vmdk")  # qemu-io exits non-zero on a pattern mismatch

"""VHDX, read and write: dynamic and fixed disks, their log replayed on open, as QEMU's vhdx driver.

Layout: the file identifier, two headers (the one with the higher sequence number is current),
two copies of the region table naming the BAT and metadata regions, the log, then payload
blocks at 1 MiB-aligned offsets named by the BAT (entry ``k`` of every ``chunk_ratio + 1`` is a
sector-bitmap entry, used only by differencing disks, which are refused). Every header, region
table and log entry carries a CRC-32C.

A log that is not empty (the current header names a log GUID) holds metadata writes that may
not have reached their place: a writable open replays it first, as QEMU does; a read-only open
refuses the image, naming the command that replays it. Guest data goes straight to its place
(new blocks at the 1 MiB-aligned end of the file); the BAT sectors that name new blocks are
written through the log (:mod:`pyvirt.image.vhdx_journal`) when flushed, after the blocks; the
headers get new write GUIDs on the first write after each open. Creation is :func:`create_vhdx`.
"""

from __future__ import annotations

import itertools
import os
import struct
import sys
import uuid
from array import array

from crc32c import crc32c

from pyvirt.image.blocktable import BlockTableImage
from pyvirt.image.errors import CorruptImage, ImageError, UnsupportedImage
from pyvirt.image.fileio import pwrite_full

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
FILE_SIGNATURE = b"vhdxfile"
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
REGION_OFFSETS = (192 * KiB, 256 * KiB)
HEADER_SECTION_END = MiB
MAX_IMAGE_SIZE = 64 * TiB
HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
REGION_HEADER = struct.Struct("<4sIII")
REGION_ENTRY = struct.Struct("<16sQII")
META_HEADER = struct.Struct("<8sHH20x")
META_ENTRY = struct.Struct("<16sIII4x")
LOG_ENTRY = struct.Struct("<4sIIIQII16sQQ")
DESCRIPTOR = struct.Struct("<4sIQQQ")


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


BAT_GUID = _guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMS = _guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_SIZE = _guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83 = _guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR = _guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR = _guid("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = _guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_ITEMS = {FILE_PARAMS, VIRTUAL_SIZE, PAGE83, LOGICAL_SECTOR, PHYSICAL_SECTOR, PARENT_LOCATOR}

NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 1, 2, 3, 6, 7
SUBFORMATS = ("dynamic", "fixed")


def checksum(buf: bytes | bytearray, at: int = 4) -> int:
    """CRC-32C of ``buf`` with its 4-byte checksum field at ``at`` taken as zero."""
    return crc32c(bytes(buf[:at]) + b"\0\0\0\0" + bytes(buf[at + 4 :]))


def _le64(raw: bytes) -> array[int]:
    a = array("Q", raw[: len(raw) - len(raw) % 8])
    if sys.byteorder == "big":
        a.byteswap()
    return a


class _Header:
    """One of the two headers (``slot`` 0 or 1)."""

    def __init__(self, raw: bytes, slot: int) -> None:
        (
            self.sig,
            self.crc,
            self.seq,
            self.file_write_guid,
            self.data_write_guid,
            self.log_guid,
            self.log_version,
            self.version,
            self.log_length,
            self.log_offset,
        ) = HEADER.unpack_from(raw, 0)
        self.raw = bytearray(raw)
        self.slot = slot
        self.valid = self.sig == b"head" and self.crc == checksum(raw) and self.version == 1

    def pack(self) -> bytes:
        out = bytearray(4096)
        out[: HEADER.size] = HEADER.pack(
            b"head",
            0,
            self.seq,
            self.file_write_guid,
            self.data_write_guid,
            self.log_guid,
            self.log_version,
            self.version,
            self.log_length,
            self.log_offset,
        )
        struct.pack_into("<I", out, 4, checksum(out))
        return bytes(out)


class VhdxImage(BlockTableImage):
    """A VHDX file (dynamic or fixed; differencing refused)."""

    format = "vhdx"
    reports_block_status = False  # qemu's vhdx driver has none: qemu-img map says "all data"

    def __init__(self, path: str, fd: int, *, readonly: bool) -> None:
        self.path, self.fd, self.readonly = path, fd, readonly
        self.file_size = os.fstat(fd).st_size
        if os.pread(fd, 8, 0) != FILE_SIGNATURE:
            raise CorruptImage(f"{path}: not a VHDX image (no file identifier)")
        self.header = self._read_headers()
        self.replayed = False
        # A log GUID without a valid entry under it is no log (a crash before the entry was
        # written, or the entry was torn): QEMU opens such an image as it is, and so do we.
        active = self._active_log() if self.header.log_guid != bytes(16) else []
        if active:
            if readonly:
                raise ImageError(
                    f"Could not open '{path}': VHDX image file '{path}' opened read-only, but contains "
                    "a log that needs to be "
                    f"replayed\nTo replay the log, run:\npyvirt img check -r all '{path}'"
                )
            self._replay_log(active)
        self._read_regions()
        self._read_metadata()
        self._read_bat()
        if not readonly:
            self._check_bat_for_writing()
        self.cluster_size = self.block_size
        self.bat_dirty = False
        #: BAT entries changed since the last flush, whose sectors go through the log
        self.bat_changed: set[int] = set()
        #: the last log entry's sequence number (QEMU numbers from 1 in each open)
        self.log_seq = 0
        self.headers_updated = False

    # ------------------------------------------------------------ parsing

    def _check_span(self, offset: int, length: int, what: str) -> None:
        if offset % MiB or length % MiB or offset < HEADER_SECTION_END or offset + length > self.file_size:
            raise CorruptImage(f"{self.path}: the VHDX {what} lies outside the file or is misaligned")

    def _read_headers(self) -> _Header:
        headers = [
            _Header(os.pread(self.fd, 4096, off).ljust(4096, b"\0"), i)
            for i, off in enumerate(HEADER_OFFSETS)
        ]
        valid = [h for h in headers if h.valid]
        if not valid:
            raise CorruptImage(f"{self.path}: no valid VHDX header")
        h = max(valid, key=lambda x: x.seq)
        if h.log_version != 0:
            raise UnsupportedImage(f"{self.path}: unsupported VHDX log version {h.log_version}")
        if h.log_length:
            self._check_span(h.log_offset, h.log_length, "log")
        return h

    def _read_regions(self) -> None:
        table = None
        for off in REGION_OFFSETS:
            raw = os.pread(self.fd, 64 * KiB, off).ljust(64 * KiB, b"\0")
            sig, crc, count, _r = REGION_HEADER.unpack_from(raw, 0)
            if sig == b"regi" and crc == checksum(raw) and count <= 2047:
                table = (raw, count)
                break
        if table is None:
            raise CorruptImage(f"{self.path}: no valid VHDX region table")
        raw, count = table
        regions: dict[bytes, tuple[int, int]] = {}
        for i in range(count):
            guid, off, length, bits = REGION_ENTRY.unpack_from(raw, 16 + 32 * i)
            if guid in regions:
                raise CorruptImage(f"{self.path}: the VHDX region table lists a region twice")
            if guid not in (BAT_GUID, METADATA_GUID):
                if bits & 1:
                    raise UnsupportedImage(
                        f"{self.path}: unknown required VHDX region {uuid.UUID(bytes_le=guid)}"
                    )
                continue
            self._check_span(off, length, "BAT" if guid == BAT_GUID else "metadata region")
            regions[guid] = (off, length)
        if BAT_GUID not in regions or METADATA_GUID not in regions:
            raise CorruptImage(f"{self.path}: the VHDX region table lacks the BAT or the metadata region")
        self.bat_offset, self.bat_length = regions[BAT_GUID]
        self.meta_offset, self.meta_length = regions[METADATA_GUID]
        spans = [
            (0, HEADER_SECTION_END),
            (self.bat_offset, self.bat_length),
            (self.meta_offset, self.meta_length),
        ]
        if self.header.log_length:
            spans.append((self.header.log_offset, self.header.log_length))
        spans.sort()
        for (a, n), (b, _m) in itertools.pairwise(spans):
            if a + n > b:
                raise CorruptImage(f"{self.path}: VHDX regions overlap")
        self.spans = spans

    def _read_metadata(self) -> None:
        raw = os.pread(self.fd, 64 * KiB, self.meta_offset)
        sig, _r, count = META_HEADER.unpack_from(raw, 0)
        if sig != b"metadata" or count > 2047:
            raise CorruptImage(f"{self.path}: invalid VHDX metadata table")
        items: dict[bytes, bytes] = {}
        for i in range(count):
            guid, off, length, bits = META_ENTRY.unpack_from(raw, 32 + 32 * i)
            if guid not in KNOWN_ITEMS:
                if bits & 4:
                    raise UnsupportedImage(
                        f"{self.path}: unknown required VHDX metadata {uuid.UUID(bytes_le=guid)}"
                    )
                continue
            if off < 64 * KiB or length > MiB or off + length > self.meta_length:
                raise CorruptImage(f"{self.path}: VHDX metadata item out of range")
            items[guid] = os.pread(self.fd, length, self.meta_offset + off)
        for need, n in ((FILE_PARAMS, 8), (VIRTUAL_SIZE, 8), (LOGICAL_SECTOR, 4), (PHYSICAL_SECTOR, 4)):
            if len(items.get(need, b"")) < n:
                raise CorruptImage(f"{self.path}: VHDX metadata lacks a required item")
        self.block_size, params = struct.unpack_from("<II", items[FILE_PARAMS])
        if params & 2 or PARENT_LOCATOR in items:
            raise UnsupportedImage(f"{self.path}: differencing VHDX images are not supported")
        self.leave_allocated = bool(params & 1)
        (self.size,) = struct.unpack_from("<Q", items[VIRTUAL_SIZE])
        (self.logical_sector,) = struct.unpack_from("<I", items[LOGICAL_SECTOR])
        (self.physical_sector,) = struct.unpack_from("<I", items[PHYSICAL_SECTOR])
        bs = self.block_size
        if bs < MiB or bs > 256 * MiB or bs & (bs - 1):
            raise CorruptImage(f"{self.path}: invalid VHDX block size {bs}")
        if self.logical_sector not in (512, 4096) or self.physical_sector not in (512, 4096):
            raise CorruptImage(f"{self.path}: invalid VHDX sector size")
        if self.size > MAX_IMAGE_SIZE or self.size % self.logical_sector:
            raise CorruptImage(f"{self.path}: invalid VHDX virtual size {self.size}")

    def _read_bat(self) -> None:
        self.chunk_ratio = (1 << 23) * self.logical_sector // self.block_size
        blocks = -(-self.size // self.block_size)
        entries = blocks + (blocks - 1) // self.chunk_ratio if blocks else 0
        if entries * 8 > self.bat_length:
            raise CorruptImage(f"{self.path}: the VHDX BAT region is too small for the disk")
        self.bat = _le64(os.pread(self.fd, entries * 8, self.bat_offset))
        self.blocks = blocks

    def _check_bat_for_writing(self) -> None:
        starts = [
            (e >> 20) << 20
            for b in range(self.blocks)
            if (e := self._entry(b)) & 7 in (FULLY_PRESENT, PARTIALLY_PRESENT)
        ]
        self._refuse_overlaps(starts, self.block_size, "VHDX BAT")

    # ------------------------------------------------------------ the log

    def _active_log(self) -> list[tuple[int, bytes]]:
        """The active sequence of log entries (the valid run with the highest sequence), each as
        (its sequence number, its bytes); empty if the log has no valid entry."""
        h = self.header
        start, length = h.log_offset, h.log_length
        if not length:
            return []  # as QEMU: no log region, nothing to replay
        log = os.pread(self.fd, length, start)
        entries: dict[int, tuple[int, int, int, int, int]] = {}  # offset: seq, length, count, tail, last
        for off in range(0, length, 4096):
            if log[off : off + 4] != b"loge":
                continue
            _sig, crc, elen, tail, seq, count, _r, guid, _flushed, last = LOG_ENTRY.unpack_from(log, off)
            if (
                guid != h.log_guid
                or elen < 4096
                or elen % 4096
                or elen > length
                or tail % 4096
                or tail >= length
            ):
                continue
            raw = log[off : off + elen] if off + elen <= length else log[off:] + log[: off + elen - length]
            if checksum(raw) != crc or 64 + count * 32 > elen:
                continue
            entries[off] = (seq, elen, count, tail, last)
        best: list[int] = []
        for first in entries:
            chain, off = [first], first
            while True:
                nxt = (off + entries[off][1]) % length
                if nxt not in entries or entries[nxt][0] != entries[off][0] + 1 or nxt in chain:
                    break
                chain.append(nxt)
                off = nxt
            if not best or entries[chain[-1]][0] > entries[best[-1]][0]:
                best = chain
        out = []
        for off in best:
            elen = entries[off][1]
            out.append(
                (
                    entries[off][0],
                    log[off : off + elen] if off + elen <= length else log[off:] + log[: off + elen - length],
                )
            )
        return out

    def _replay_log(self, active: list[tuple[int, bytes]]) -> None:
        """Apply the active log entries, then mark the log empty."""
        h = self.header
        last_file_offset = 0
        for seq, raw in active:
            _sig, _crc, _elen, _tail, _seq, count, _r, _guid, _flushed, last = LOG_ENTRY.unpack_from(raw, 0)
            self._apply_entry(raw, seq, count)
            last_file_offset = max(last_file_offset, last)
        if os.fstat(self.fd).st_size < last_file_offset:
            os.ftruncate(self.fd, last_file_offset)
        os.fdatasync(self.fd)
        self.file_size = os.fstat(self.fd).st_size
        h.log_guid = bytes(16)
        self._write_headers(new_guids=False)
        self.replayed = True

    def _apply_entry(self, raw: bytes, seq: int, count: int) -> None:
        sector = -(-(64 + count * 32) // 4096) * 4096  # data sectors follow the descriptors
        for i in range(count):
            sig, a, b, file_offset, dseq = DESCRIPTOR.unpack_from(raw, 64 + 32 * i)
            if dseq != seq or file_offset % 4096:
                raise CorruptImage(f"{self.path}: a VHDX log descriptor is invalid")
            if sig == b"zero":
                if b % 4096:
                    raise CorruptImage(f"{self.path}: a VHDX log zero descriptor is misaligned")
                self._log_write(file_offset, bytes(b))
            elif sig == b"desc":
                if sector + 4096 > len(raw) or raw[sector : sector + 4] != b"data":
                    raise CorruptImage(f"{self.path}: a VHDX log data sector is missing")
                high, low = (
                    struct.unpack_from("<I", raw, sector + 4)[0],
                    struct.unpack_from("<I", raw, sector + 4092)[0],
                )
                if (high << 32 | low) != seq:
                    raise CorruptImage(f"{self.path}: a VHDX log data sector belongs to another entry")
                data = struct.pack("<Q", b) + raw[sector + 8 : sector + 4092] + struct.pack("<I", a)
                self._log_write(file_offset, data)
                sector += 4096
            else:
                raise CorruptImage(f"{self.path}: unknown VHDX log descriptor {sig!r}")

    def _log_write(self, offset: int, data: bytes) -> None:
        """A replayed write: never into the header section or the log itself."""
        h = self.header
        end = offset + len(data)
        if offset < HEADER_SECTION_END or (offset < h.log_offset + h.log_length and end > h.log_offset):
            raise CorruptImage(f"{self.path}: a VHDX log entry points into the header section or the log")
        if end > MAX_IMAGE_SIZE + 64 * GiB:
            raise CorruptImage(f"{self.path}: a VHDX log entry points far outside the image")
        pwrite_full(self.fd, [data], offset)

    def _write_headers(self, *, new_guids: bool) -> None:
        """Write both headers, the stale one first, as QEMU: each update takes the next sequence."""
        h = self.header
        if new_guids:
            h.file_write_guid = uuid.uuid4().bytes_le
            h.data_write_guid = uuid.uuid4().bytes_le
        for _ in range(2):
            h.seq += 1
            h.slot = 1 - h.slot
            pwrite_full(self.fd, [h.pack()], HEADER_OFFSETS[h.slot])
            if self.durable:
                os.fdatasync(self.fd)

    # ------------------------------------------------------------ reading

    def _entry(self, block: int) -> int:
        return int(self.bat[block + block // self.chunk_ratio])

    def _host(self, block: int) -> int | None:
        e = self._entry(block)
        state = e & 7
        if state in (NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED):
            return None
        if state == PARTIALLY_PRESENT:
            raise UnsupportedImage(
                f"{self.path}: partially present VHDX blocks (differencing) are not supported"
            )
        if state != FULLY_PRESENT:
            raise CorruptImage(f"{self.path}: block {block} has an invalid BAT state {state}")
        off = (e >> 20) << 20
        if off >= self.file_size:
            raise CorruptImage(f"{self.path}: block {block} lies past the end of the file")
        for a, n in self.spans:
            if off < a + n and off + self.block_size > a:
                raise CorruptImage(f"{self.path}: block {block} overlaps the image's metadata")
        return off

    def check_block(self, block: int) -> None:
        """Raise CorruptImage if the block's BAT entry is invalid, past the file or over metadata."""
        self._host(block)

    # ------------------------------------------------------------ writing

    def _touch(self) -> None:
        """The first change since opening rewrites the headers (new GUIDs) before anything else."""
        if not self.headers_updated:
            self.headers_updated = True
            self._write_headers(new_guids=True)

    def _allocate(self, block: int) -> int:
        """A new block at the 1 MiB-aligned end of the file (which reads as zeros until written).

        The file is extended over it at :meth:`flush`, before the BAT names it: extended here, the
        ``ftruncate`` waited for the inode lock that ``convert``'s writer thread holds."""
        off = -(-self.file_size // MiB) * MiB
        if off + self.block_size > MAX_IMAGE_SIZE + 64 * GiB:
            raise ImageError(f"{self.path}: the VHDX file cannot grow further")
        self.file_size = off + self.block_size
        self.bat[block + block // self.chunk_ratio] = off | FULLY_PRESENT
        self.bat_changed.add(block + block // self.chunk_ratio)
        self.bat_dirty = True
        return off

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        self._check_range(offset, len(data))
        mv = memoryview(data).cast("B")
        runs = self._runs(offset, len(mv), whole_new=False)
        assert runs is not None  # only whole_new gives up
        for gpos, host, n in runs:
            pwrite_full(self.fd, [mv[gpos - offset : gpos - offset + n]], host)

    def _bat_sectors(self) -> list[tuple[int, bytes]]:
        """(file offset, content) of each 4 KiB BAT sector holding a changed entry."""
        bat = array("Q", self.bat)
        if sys.byteorder == "big":
            bat.byteswap()
        raw = bat.tobytes()
        out = []
        for k in sorted({i * 8 // 4096 for i in self.bat_changed}):
            sector = raw[k * 4096 : (k + 1) * 4096]
            if len(sector) < 4096:  # the BAT's last sector: what follows its entries is kept
                at = self.bat_offset + k * 4096 + len(sector)
                sector += os.pread(self.fd, 4096 - len(sector), at).ljust(4096 - len(sector), b"\0")
            out.append((self.bat_offset + k * 4096, sector))
        return out

    def write_granule(self) -> int | None:
        return None  # new blocks are file space past the end: zero runs left unwritten read as zeros

    def map_for_write(self, offset: int, length: int) -> list[tuple[int, int, int]] | None:
        self._check_writable()
        self._check_range(offset, length)
        return self._runs(offset, length, whole_new=False)

    def flush(self) -> None:
        if self.readonly:
            return
        if self.bat_dirty:
            from pyvirt.image.vhdx_journal import write_through_log

            if os.fstat(self.fd).st_size < self.file_size:
                os.ftruncate(self.fd, self.file_size)

            write_through_log(self, self._bat_sectors())
            self.bat_changed.clear()
            self.bat_dirty = False
        if self.durable:
            os.fdatasync(self.fd)


def default_block_size(size: int) -> int:
    if size > 32 * TiB:
        return 64 * MiB
    if size > 100 * GiB:
        return 32 * MiB
    if size > GiB:
        return 16 * MiB
    return 8 * MiB


def create_vhdx(
    path: str,
    size: int,
    *,
    subformat: str = "dynamic",
    block_size: int = 0,
    log_size: int = MiB,
    block_state_zero: bool = True,
) -> None:
    """A new VHDX laid out as qemu-img 7.2 makes it."""
    size = -(-size // 512) * 512
    if size > MAX_IMAGE_SIZE:
        raise ImageError("Image size too large; max of 64TB")
    if subformat not in SUBFORMATS:
        raise ImageError(f"Parameter 'subformat' does not accept value '{subformat}'")
    # As qemu-img 7.2's option parsing: both sizes rounded up to 1 MiB, the block size capped.
    log_size = -(-log_size // MiB) * MiB
    if log_size < MiB:
        raise ImageError("Log size must be a multiple of 1 MB")
    if block_size == 0:
        block_size = default_block_size(size)
    block_size = min(-(-block_size // MiB) * MiB, 256 * MiB)
    if block_size & (block_size - 1):
        raise ImageError("Block size must be a power of two")
    fixed = subformat == "fixed"
    sector = 512
    chunk_ratio = (1 << 23) * sector // block_size
    blocks = -(-size // block_size)
    entries = blocks + (blocks - 1) // chunk_ratio if blocks else 0
    bat_offset = -(-(HEADER_SECTION_END + log_size) // MiB) * MiB
    bat_length = -(-entries * 8 // MiB) * MiB
    meta_offset = -(-(bat_offset + bat_length) // MiB) * MiB
    data_offset = bat_offset + bat_length + 5 * MiB

    ident = bytearray(64 * KiB)
    ident[:8] = FILE_SIGNATURE
    creator = "pyvirt".encode("utf-16-le")
    ident[8 : 8 + len(creator)] = creator

    h = _Header(bytes(4096), 0)
    h.seq = int.from_bytes(os.urandom(4), "little")
    h.file_write_guid = uuid.uuid4().bytes_le
    h.data_write_guid = uuid.uuid4().bytes_le
    h.log_guid = bytes(16)
    h.log_version, h.version, h.log_length, h.log_offset = 0, 1, log_size, HEADER_SECTION_END
    header1 = h.pack()
    h.seq += 1
    header2 = h.pack()

    region = bytearray(64 * KiB)
    REGION_HEADER.pack_into(region, 0, b"regi", 0, 2, 0)
    REGION_ENTRY.pack_into(region, 16, BAT_GUID, bat_offset, bat_length, 0)
    REGION_ENTRY.pack_into(region, 48, METADATA_GUID, meta_offset, MiB, 0)
    struct.pack_into("<I", region, 4, checksum(region))

    meta = bytearray(64 * KiB + 40)
    META_HEADER.pack_into(meta, 0, b"metadata", 0, 5)
    items = [
        (FILE_PARAMS, struct.pack("<II", block_size, 1 if fixed else 0), 4),
        (VIRTUAL_SIZE, struct.pack("<Q", size), 6),
        (PAGE83, uuid.uuid4().bytes_le, 6),
        (LOGICAL_SECTOR, struct.pack("<I", sector), 6),
        (PHYSICAL_SECTOR, struct.pack("<I", sector), 6),
    ]
    at = 64 * KiB
    for i, (guid, value, bits) in enumerate(items):
        META_ENTRY.pack_into(meta, 32 + 32 * i, guid, at, len(value), bits)
        meta[at : at + len(value)] = value
        at += len(value)

    bat = array("Q", bytes(entries * 8))
    if fixed or block_state_zero:
        state = ZERO if block_state_zero else FULLY_PRESENT if fixed else NOT_PRESENT
        for b in range(blocks):
            off = 0 if state == ZERO else -(-(data_offset + b * block_size) // MiB) * MiB
            bat[b + b // chunk_ratio] = off | state
    if sys.byteorder == "big":
        bat.byteswap()

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as err:
        raise ImageError(f"Could not create '{path}': {err.strerror}") from err
    try:
        os.ftruncate(fd, data_offset + (size if fixed else 0))
        pwrite_full(fd, [bytes(ident[: 8 + len(creator)])], 0)
        pwrite_full(fd, [header1], HEADER_OFFSETS[0])
        pwrite_full(fd, [header2], HEADER_OFFSETS[1])
        if any(bat):
            pwrite_full(fd, [bat.tobytes()], bat_offset)
        pwrite_full(fd, [bytes(region)], REGION_OFFSETS[0])
        pwrite_full(fd, [bytes(region)], REGION_OFFSETS[1])
        pwrite_full(fd, [bytes(meta)], meta_offset)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)

"""The qcow2 header and its extensions: parse with range checks, serialize, feature bits.

Layout per QEMU's ``docs/interop/qcow2.txt``: a fixed big-endian header (72 bytes for version 2,
at least 104 for version 3), then extensions ``(type u32, length u32, data padded to 8)`` up to the
end of the first cluster, then (unless stored elsewhere) the backing file name.
"""

from __future__ import annotations

import struct

from pyvirt.image.errors import CorruptImage, UnsupportedImage

MAGIC = b"QFI\xfb"
V2_HEADER_LEN = 72
V3_HEADER_LEN = 104
DEFAULT_V3_HEADER_LEN = 112

MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_L1_BYTES = 32 << 20
MAX_REFTABLE_BYTES = 8 << 20
MAX_BACKING_NAME = 1023
MAX_SNAPSHOTS = 65536
MAX_VIRTUAL_SIZE = 1 << 55

EXT_END = 0
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_ENCRYPTION = 0x0537BE77
EXT_DATA_FILE = 0x44415441

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
COMPAT_LAZY_REFCOUNTS = 1 << 0
AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

FEATURE_INCOMPAT, FEATURE_COMPAT, FEATURE_AUTOCLEAR = 0, 1, 2

KNOWN_FEATURES: list[tuple[int, int, str]] = [
    (FEATURE_INCOMPAT, 0, "dirty bit"),
    (FEATURE_INCOMPAT, 1, "corrupt bit"),
    (FEATURE_INCOMPAT, 2, "external data file"),
    (FEATURE_INCOMPAT, 3, "compression type"),
    (FEATURE_INCOMPAT, 4, "extended L2 entries"),
    (FEATURE_COMPAT, 0, "lazy refcounts"),
    (FEATURE_AUTOCLEAR, 0, "bitmaps"),
    (FEATURE_AUTOCLEAR, 1, "raw external data"),
]
SUPPORTED_INCOMPAT = (
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION | INCOMPAT_DATA_FILE | INCOMPAT_EXTL2
)
#: subclusters a cluster has with extended L2 entries; a subcluster is at least 512 bytes
SUBCLUSTERS = 32
COMPRESSION_TYPES = ("zlib", "zstd")

_FIXED = struct.Struct(">4sIQIIQIIQQIIQ")
_V3 = struct.Struct(">QQQII")


class Extension:
    """A header extension kept verbatim (unknown ones are preserved when the header is rewritten)."""

    __slots__ = ("data", "type")

    def __init__(self, type: int, data: bytes) -> None:
        self.type = type
        self.data = data


class Header:
    """The decoded qcow2 header, extensions and backing file name.

    A plain class rather than a dataclass: ``dataclasses`` costs milliseconds to import, and
    ``pyvirt img info`` should start fast.
    """

    def __init__(
        self,
        *,
        version: int = 3,
        backing_file_offset: int = 0,
        backing_file_size: int = 0,
        cluster_bits: int = 16,
        size: int = 0,
        crypt_method: int = 0,
        l1_size: int = 0,
        l1_table_offset: int = 0,
        refcount_table_offset: int = 0,
        refcount_table_clusters: int = 0,
        nb_snapshots: int = 0,
        snapshots_offset: int = 0,
        incompatible_features: int = 0,
        compatible_features: int = 0,
        autoclear_features: int = 0,
        refcount_order: int = 4,
        header_length: int = DEFAULT_V3_HEADER_LEN,
        compression_type: int = 0,
        backing_file: str | None = None,
        backing_format: str | None = None,
    ) -> None:
        self.version = version
        self.backing_file_offset = backing_file_offset
        self.backing_file_size = backing_file_size
        self.cluster_bits = cluster_bits
        self.size = size
        self.crypt_method = crypt_method
        self.l1_size = l1_size
        self.l1_table_offset = l1_table_offset
        self.refcount_table_offset = refcount_table_offset
        self.refcount_table_clusters = refcount_table_clusters
        self.nb_snapshots = nb_snapshots
        self.snapshots_offset = snapshots_offset
        self.incompatible_features = incompatible_features
        self.compatible_features = compatible_features
        self.autoclear_features = autoclear_features
        self.refcount_order = refcount_order
        self.header_length = header_length
        self.compression_type = compression_type
        self.backing_file = backing_file
        self.backing_format = backing_format
        self.feature_names: list[tuple[int, int, str]] = []
        self.other_extensions: list[Extension] = []
        #: (offset, length) of a LUKS header (crypt_method 2), from its header extension
        self.luks_header: tuple[int, int] | None = None
        #: the external data file's name (incompatible feature bit 2), as written in the header
        self.data_file: str | None = None

    @property
    def data_file_raw(self) -> bool:
        return bool(self.data_file and self.autoclear_features & AUTOCLEAR_DATA_FILE_RAW)

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def refcount_bits(self) -> int:
        return 1 << self.refcount_order

    @property
    def compat(self) -> str:
        return "0.10" if self.version == 2 else "1.1"

    def feature_name(self, kind: int, bit: int) -> str:
        for k, b, name in self.feature_names:
            if k == kind and b == bit:
                return name
        return f"unknown feature bit {bit}"

    # ---------------------------------------------------------------- parse

    @classmethod
    def parse(cls, buf: bytes, file_size: int, *, source: str = "image", encrypted: bool = False) -> Header:
        """Decode and validate the first cluster's header; ``buf`` holds at least the first 64 KiB.

        An encrypted image is refused unless ``encrypted`` (``info`` describes one; nothing here
        reads or writes its data).
        """
        if len(buf) < V2_HEADER_LEN or buf[:4] != MAGIC:
            raise CorruptImage(f"{source}: not a qcow2 image (bad magic or truncated header)")
        (
            _magic,
            version,
            bfo,
            bfs,
            cbits,
            size,
            crypt,
            l1_size,
            l1_off,
            rt_off,
            rt_clusters,
            nsnap,
            snap_off,
        ) = _FIXED.unpack_from(buf, 0)
        if version not in (2, 3):
            raise UnsupportedImage(f"{source}: unsupported qcow2 version {version}")
        h = cls(
            version=version,
            backing_file_offset=bfo,
            backing_file_size=bfs,
            cluster_bits=cbits,
            size=size,
            crypt_method=crypt,
            l1_size=l1_size,
            l1_table_offset=l1_off,
            refcount_table_offset=rt_off,
            refcount_table_clusters=rt_clusters,
            nb_snapshots=nsnap,
            snapshots_offset=snap_off,
        )
        if not MIN_CLUSTER_BITS <= cbits <= MAX_CLUSTER_BITS:
            raise CorruptImage(f"{source}: cluster size 2^{cbits} out of range (512 B to 2 MiB)")
        cs = 1 << cbits
        if version == 3:
            if len(buf) < V3_HEADER_LEN:
                raise CorruptImage(f"{source}: truncated version 3 header")
            inc, comp, auto, rorder, hlen = _V3.unpack_from(buf, V2_HEADER_LEN)
            h.incompatible_features, h.compatible_features, h.autoclear_features = inc, comp, auto
            h.refcount_order, h.header_length = rorder, hlen
            if hlen < V3_HEADER_LEN or hlen > cs or hlen % 8:
                raise CorruptImage(f"{source}: header length {hlen} out of range")
            if rorder > 6:
                raise CorruptImage(f"{source}: refcount order {rorder} out of range (0 to 6)")
            if hlen > V3_HEADER_LEN:
                h.compression_type = buf[V3_HEADER_LEN]
        else:
            h.header_length = V2_HEADER_LEN
            h.refcount_order = 4
        h._parse_extensions(buf, cs, source)
        h._check_features(source)
        if h.incompatible_features & INCOMPAT_DATA_FILE and h.data_file is None:
            raise UnsupportedImage(f"Could not open '{source}': 'data-file' is required for this image")
        if crypt and not encrypted:
            if crypt == 2:
                raise UnsupportedImage(
                    f"Could not open '{source}': Parameter 'encrypt.key-secret' is required for cipher"
                )
            raise UnsupportedImage(
                f"{source}: encrypted qcow2 images are not supported (encryption method {crypt})"
            )
        if size > MAX_VIRTUAL_SIZE:
            raise CorruptImage(f"{source}: virtual size {size} too large")
        h._check_table(source, "L1 table", l1_off, l1_size * 8, file_size, MAX_L1_BYTES)
        if h.incompatible_features & INCOMPAT_EXTL2 and cs // SUBCLUSTERS < 512:
            raise UnsupportedImage(
                f"Could not open '{source}': Unsupported subcluster size: {cs // SUBCLUSTERS}"
            )
        entries_per_l2 = cs // (16 if h.incompatible_features & INCOMPAT_EXTL2 else 8)
        needed_l1 = -(-size // (cs * entries_per_l2))
        if l1_size < needed_l1:
            raise CorruptImage(f"{source}: L1 table too small ({l1_size} entries) for virtual size {size}")
        if rt_clusters == 0:
            raise CorruptImage(f"{source}: refcount table is empty")
        h._check_table(source, "refcount table", rt_off, rt_clusters * cs, file_size, MAX_REFTABLE_BYTES)
        l1_range = (l1_off, l1_off + l1_size * 8)
        rt_range = (rt_off, rt_off + rt_clusters * cs)
        if l1_size and (l1_range[0] < rt_range[1] and rt_range[0] < l1_range[1]):
            raise CorruptImage(f"{source}: L1 table and refcount table overlap")
        if nsnap > MAX_SNAPSHOTS:
            raise CorruptImage(f"{source}: too many snapshots ({nsnap})")
        if nsnap and (snap_off % cs or snap_off >= file_size):
            raise CorruptImage(f"{source}: snapshot table offset {snap_off:#x} invalid")
        if bfo:
            if bfs > MAX_BACKING_NAME or bfs == 0:
                raise CorruptImage(f"{source}: backing file name length {bfs} out of range")
            if bfo + bfs > min(cs, len(buf)):
                raise CorruptImage(f"{source}: backing file name lies outside the first cluster")
            try:
                h.backing_file = bytes(buf[bfo : bfo + bfs]).decode()
            except UnicodeDecodeError:
                raise CorruptImage(f"{source}: backing file name is not valid UTF-8") from None
            if "\0" in h.backing_file:
                raise CorruptImage(f"{source}: backing file name contains a NUL byte")
        return h

    def _check_table(self, source: str, what: str, off: int, nbytes: int, file_size: int, limit: int) -> None:
        if nbytes > limit:
            raise CorruptImage(f"{source}: {what} too large ({nbytes} bytes, limit {limit})")
        if nbytes and off % self.cluster_size:
            raise CorruptImage(f"{source}: {what} offset {off:#x} not aligned to a cluster")
        if nbytes and (off == 0 or off + nbytes > file_size + self.cluster_size):
            raise CorruptImage(f"{source}: {what} at {off:#x} (+{nbytes}) lies past the end of the file")

    def _parse_extensions(self, buf: bytes, cs: int, source: str) -> None:
        pos = V2_HEADER_LEN if self.version == 2 else self.header_length
        end = min(cs, len(buf))
        if self.backing_file_offset and self.backing_file_offset > pos:
            end = min(end, self.backing_file_offset)
        while pos + 8 <= end:
            etype, elen = struct.unpack_from(">II", buf, pos)
            pos += 8
            if etype == EXT_END:
                return
            if pos + elen > end:
                raise CorruptImage(f"{source}: header extension {etype:#x} overruns the first cluster")
            data = bytes(buf[pos : pos + elen])
            pos += (elen + 7) & ~7
            if etype == EXT_BACKING_FORMAT:
                try:
                    self.backing_format = data.decode()
                except UnicodeDecodeError:
                    raise CorruptImage(f"{source}: backing format name is not valid UTF-8") from None
            elif etype == EXT_FEATURE_TABLE:
                for i in range(0, len(data) - 47, 48):
                    name = data[i + 2 : i + 48].split(b"\0", 1)[0].decode("utf-8", "replace")
                    self.feature_names.append((data[i], data[i + 1], name))
            elif etype == EXT_ENCRYPTION:
                if len(data) < 16:
                    raise CorruptImage(f"{source}: the encryption header extension is truncated")
                self.luks_header = struct.unpack_from(">QQ", data)
            elif etype == EXT_DATA_FILE and self.incompatible_features & INCOMPAT_DATA_FILE:
                try:
                    self.data_file = data.decode()
                except UnicodeDecodeError:
                    raise CorruptImage(f"{source}: data file name is not valid UTF-8") from None
                if not self.data_file or "\0" in self.data_file or len(data) > MAX_BACKING_NAME:
                    raise CorruptImage(f"{source}: data file name is empty, too long or holds a NUL byte")
            else:
                self.other_extensions.append(Extension(etype, data))

    def _check_features(self, source: str) -> None:
        unknown = self.incompatible_features & ~SUPPORTED_INCOMPAT
        if self.compression_type != 0 and not self.incompatible_features & INCOMPAT_COMPRESSION:
            raise CorruptImage(f"{source}: compression type {self.compression_type} without its feature bit")
        if self.compression_type >= len(COMPRESSION_TYPES):
            raise UnsupportedImage(f"{source}: unknown qcow2 compression type {self.compression_type}")
        if unknown:
            names = []
            for bit in range(64):
                if unknown & (1 << bit):
                    name = self.feature_name(FEATURE_INCOMPAT, bit)
                    if name.startswith("unknown") and bit < 5:
                        name = KNOWN_FEATURES[bit][2]
                    names.append(name)
            if unknown == INCOMPAT_COMPRESSION and self.compression_type == 0:
                return
            detail = ", ".join(names)
            if unknown & INCOMPAT_COMPRESSION and self.compression_type == 1:
                detail = detail.replace("compression type", "compression type zstd")
            raise UnsupportedImage(f"{source}: unsupported qcow2 feature(s): {detail}")

    # ------------------------------------------------------------ serialize

    def pack(self, cluster_size: int) -> bytes:
        """Encode header, extensions and backing name into the first cluster (raises if too long)."""
        if self.version == 2:
            self.header_length = V2_HEADER_LEN
        out = bytearray(
            _FIXED.pack(
                MAGIC,
                self.version,
                0,
                0,
                self.cluster_bits,
                self.size,
                self.crypt_method,
                self.l1_size,
                self.l1_table_offset,
                self.refcount_table_offset,
                self.refcount_table_clusters,
                self.nb_snapshots,
                self.snapshots_offset,
            )
        )
        if self.version == 3:
            out += _V3.pack(
                self.incompatible_features,
                self.compatible_features,
                self.autoclear_features,
                self.refcount_order,
                self.header_length,
            )
            out += bytes(self.header_length - len(out))
            if self.header_length > V3_HEADER_LEN:
                out[V3_HEADER_LEN] = self.compression_type

        def ext(etype: int, data: bytes) -> None:
            out.extend(struct.pack(">II", etype, len(data)))
            out.extend(data)
            out.extend(bytes(-len(data) % 8))

        if self.backing_format and self.backing_file:
            ext(EXT_BACKING_FORMAT, self.backing_format.encode())
        if self.data_file:
            ext(EXT_DATA_FILE, self.data_file.encode())
        if self.luks_header is not None:
            ext(EXT_ENCRYPTION, struct.pack(">QQ", *self.luks_header))
        if self.version == 3 and cluster_size > 4096:  # QEMU leaves it out of small first clusters
            table = b"".join(struct.pack(">BB46s", k, b, name.encode()) for k, b, name in KNOWN_FEATURES)
            ext(EXT_FEATURE_TABLE, table)
        for e in self.other_extensions:
            ext(e.type, e.data)
        out += bytes(8)
        if self.backing_file:
            name = self.backing_file.encode()
            if len(name) > MAX_BACKING_NAME:
                raise CorruptImage(f"backing file name too long ({len(name)} bytes)")
            self.backing_file_offset, self.backing_file_size = len(out), len(name)
            out += name
        else:
            self.backing_file_offset = self.backing_file_size = 0
        struct.pack_into(">QI", out, 8, self.backing_file_offset, self.backing_file_size)
        if len(out) > cluster_size:
            raise CorruptImage("qcow2 header, extensions and backing name do not fit in the first cluster")
        return bytes(out)

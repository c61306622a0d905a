"""The save image format: a header, the domain XML, then QEMU's migration stream.

Modelled on libvirt's ``LibvirtQemudSave`` images (magic, version, XML length, then the stream), with
pyvirt's own magic, explicit little-endian fields and a checksum of the XML::

    offset  size  field
         0    16  magic: MAGIC once the save completed, PARTIAL while it is being written
        16     4  version (VERSION)
        20     4  xml_len: bytes of UTF-8 XML
        24     4  xml_space: bytes reserved for the XML (a new XML up to this size fits in place)
        28     4  flags: FLAG_RUNNING when the domain is to run once restored
        32     8  stream_len: bytes of migration stream (0 while PARTIAL)
        40     4  xml_crc: CRC-32 of the XML
        44    20  reserved, zero
        64     -  the XML, then zeros up to HEADER_SIZE + xml_space
    HEADER_SIZE + xml_space: the migration stream (a multiple of ALIGN: O_DIRECT reads and writes)

A save writes PARTIAL first and the real magic last (after the stream is on disk), so an interrupted
save is never taken for a complete one. Reading checks every field; nothing here starts QEMU.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from pyvirt.errors import OperationFailed

MAGIC = b"PyvirtQemuSave\x00\x01"
PARTIAL = b"PyvirtQemuPart\x00\x01"
VERSION = 1
HEADER_SIZE = 64
ALIGN = 4096
FLAG_RUNNING = 1
_FLAGS_KNOWN = FLAG_RUNNING
_STRUCT = struct.Struct("<16sIIIIQI20s")
XML_SLACK = 4096  # room left for an edited XML (save-image-define) beyond the saved one
MAX_XML = 16 * 2**20


class SaveImageError(OperationFailed):
    """A file that is not a usable save image (what is wrong and with which file is said)."""


@dataclass
class SaveHeader:
    xml: str
    running: bool
    stream_len: int = 0
    xml_space: int = 0
    complete: bool = True

    @property
    def stream_offset(self) -> int:
        return HEADER_SIZE + self.xml_space

    def pack(self) -> bytes:
        """Header and XML area, ``stream_offset`` bytes (``xml_space`` chosen here if unset)."""
        data = self.xml.encode()
        if self.xml_space == 0:
            self.xml_space = space_for(len(data))
        if len(data) > self.xml_space:
            raise SaveImageError("operation failed: new xml too large to fit in file")
        head = _STRUCT.pack(
            MAGIC if self.complete else PARTIAL,
            VERSION,
            len(data),
            self.xml_space,
            FLAG_RUNNING if self.running else 0,
            self.stream_len,
            zlib.crc32(data),
            bytes(20),
        )
        return head + data + bytes(self.xml_space - len(data))


def space_for(xml_len: int) -> int:
    """The XML area for ``xml_len`` bytes: with slack, so the stream starts on an ALIGN boundary."""
    total = HEADER_SIZE + xml_len + XML_SLACK
    return -(-total // ALIGN) * ALIGN - HEADER_SIZE


def parse(head: bytes, path: str, file_size: int | None = None) -> SaveHeader:
    """The header of ``head`` (at least HEADER_SIZE bytes, and the XML area when there is one).

    Raises SaveImageError naming ``path`` for anything that is not a complete image of this version;
    with ``file_size``, also for a file shorter than the header says (a truncated copy).
    """
    if len(head) < HEADER_SIZE:
        raise SaveImageError(f"operation failed: failed to read qemu header: '{path}' is not a save image")
    magic, version, xml_len, xml_space, flags, stream_len, crc, _ = _STRUCT.unpack_from(head)
    if magic == PARTIAL:
        raise SaveImageError(
            f"operation failed: save image '{path}' is incomplete: the save that wrote it did not finish"
        )
    if magic != MAGIC:
        raise SaveImageError(f"operation failed: image magic is incorrect: '{path}' is not a save image")
    if version != VERSION:
        raise SaveImageError(
            f"operation failed: image version is not supported ({version} > {VERSION}) in '{path}'"
        )
    if flags & ~_FLAGS_KNOWN:
        raise SaveImageError(f"operation failed: save image '{path}' has unknown flags {flags:#x}")
    if (
        xml_len == 0
        or xml_len > xml_space
        or xml_space > MAX_XML
        or (HEADER_SIZE + xml_space) % ALIGN
        or stream_len == 0
    ):
        raise SaveImageError(f"operation failed: save image '{path}' has a corrupt header")
    if len(head) < HEADER_SIZE + xml_len:
        raise SaveImageError(f"operation failed: save image '{path}' is truncated in its XML")
    data = head[HEADER_SIZE : HEADER_SIZE + xml_len]
    if zlib.crc32(data) != crc:
        raise SaveImageError(f"operation failed: save image '{path}' is corrupt: its XML fails its checksum")
    try:
        xml = data.decode()
    except UnicodeDecodeError as err:
        raise SaveImageError(f"operation failed: save image '{path}' has an XML that is not UTF-8") from err
    header = SaveHeader(xml, bool(flags & FLAG_RUNNING), stream_len, xml_space)
    if file_size is not None and file_size < header.stream_offset + stream_len:
        raise SaveImageError(
            f"operation failed: save image '{path}' is truncated: {file_size} bytes, "
            f"{header.stream_offset + stream_len} expected"
        )
    return header


def read(path: str) -> SaveHeader:
    """The checked header and XML of the save image at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise SaveImageError(f"operation failed: cannot open save image '{path}': {err.strerror}") from err
    try:
        return read_fd(fd, path)
    finally:
        os.close(fd)


def read_fd(fd: int, path: str) -> SaveHeader:
    """As :func:`read`, from an open descriptor (read with pread: its offset is left alone)."""
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, HEADER_SIZE, 0)
        if len(head) == HEADER_SIZE:
            xml_len = struct.unpack_from("<I", head, 20)[0]
            head += os.pread(fd, min(xml_len, MAX_XML), HEADER_SIZE)
    except OSError as err:
        raise SaveImageError(f"operation failed: cannot read save image '{path}': {err.strerror}") from err
    return parse(head, path, size)


def rewrite_xml(fd: int, path: str, xml: str, running: bool | None) -> SaveHeader:
    """Replace the XML (and with ``running`` not None, the state to restore into) of the image open
    read-write at ``fd``, in place; refused when the new XML does not fit its reserved space."""
    header = read_fd(fd, path)
    header.xml = xml
    if running is not None:
        header.running = running
    data = header.pack()
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    return header

"""Guest-block walks shared by formats mapping fixed-size blocks through one table (vdi, vpc, vhdx).

A subclass says where a block lies (:meth:`BlockTableImage._host`) and how to give it file space
(:meth:`BlockTableImage._allocate`); reading, block status, writing and zeroing are done here.
"""

from __future__ import annotations

from pyvirt.image.base import Extent, FileImage
from pyvirt.image.errors import CorruptImage
from pyvirt.image.fileio import pread_full, pwrite_full


def refuse_overlaps(path: str, ranges: list[tuple[int, int]], table: str) -> None:
    """File ranges ``(offset, length)`` a table points to must not share file space: a write to one
    would land in another's data. Such an image can be read but not written."""
    end, last = -1, -1
    for at, n in sorted(ranges):
        if at < end:
            raise CorruptImage(
                f"{path}: the {table} is inconsistent (blocks at {last:#x} and {at:#x} overlap); "
                "it can be read but not written"
            )
        if at + n > end:
            end, last = at + n, at


class BlockTableImage(FileImage):
    """An image whose guest blocks of ``block_size`` bytes each lie whole in the file, or nowhere."""

    block_size: int = 0

    def _host(self, block: int) -> int | None:
        """The file offset of a guest block's data, None if unallocated (CorruptImage if invalid)."""
        raise NotImplementedError

    def _allocate(self, block: int) -> int:
        """Give guest block ``block`` file space (which the caller fills whole); returns its offset."""
        raise NotImplementedError

    def _touch(self) -> None:
        """Called before a change reaches the file (a format may mark the file as changed)."""

    def _refuse_overlaps(self, starts: list[int], span: int, table: str) -> None:
        """Blocks at file offsets ``starts``, each ``span`` bytes long: see :func:`refuse_overlaps`."""
        refuse_overlaps(self.path, [(x, span) for x in starts], table)

    def readinto(self, offset: int, buf: memoryview) -> None:
        self._check_range(offset, len(buf))
        bs = self.block_size
        pos, end = offset, offset + len(buf)
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            host = self._host(b)
            dst = buf[pos - offset : pos - offset + n]
            if host is None:
                dst[:] = bytes(n)
            else:
                pread_full(self.fd, dst, host + inoff)
            pos += n

    def block_status(self, offset: int, length: int) -> list[Extent]:
        out: list[Extent] = []
        bs = self.block_size
        pos, end = offset, offset + length
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            host = self._host(b)
            x = Extent(
                pos,
                n,
                data=host is not None,
                zero=host is None,
                offset=None if host is None else host + inoff,
            )
            p = out[-1] if out else None
            if (
                p is not None
                and p.data == x.data
                and (p.offset is None) == (x.offset is None)
                and (p.offset is None or x.offset == p.offset + p.length)
            ):
                out[-1] = Extent(p.start, p.length + n, p.data, p.zero, offset=p.offset)
            else:
                out.append(x)
            pos += n
        return out

    def _runs(self, offset: int, length: int, *, whole_new: bool) -> list[tuple[int, int, int]] | None:
        """(guest, file, length) runs for a write, allocating the blocks it needs.

        Every block is checked before anything is allocated or written. With ``whole_new``, a new
        block must be written whole (else None: the caller writes through :meth:`write`).
        """
        bs = self.block_size
        pieces: list[tuple[int, int, int, int | None]] = []
        pos, end = offset, offset + length
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            host = self._host(b)
            if whole_new and host is None and n != bs:
                return None
            pieces.append((b, inoff, n, host))
            pos += n
        self._touch()
        runs: list[tuple[int, int, int]] = []
        for b, inoff, n, host in pieces:
            at = (self._allocate(b) if host is None else host) + inoff
            if runs and runs[-1][1] + runs[-1][2] == at:
                runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + n)
            else:
                runs.append((b * bs + inoff, at, n))
        return runs

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write in place, a new block whole (zeros around the data: its file space may hold garbage)."""
        self._check_writable()
        self._check_range(offset, len(data))
        mv = memoryview(data).cast("B")
        bs = self.block_size
        pos, end = offset, offset + len(mv)
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            piece = mv[pos - offset : pos - offset + n]
            host = self._host(b)
            if host is not None:
                pwrite_full(self.fd, [piece], host + inoff)
            elif n == bs:
                pwrite_full(self.fd, [piece], self._allocate(b))
            else:
                whole = bytearray(bs)
                whole[inoff : inoff + n] = piece
                pwrite_full(self.fd, [memoryview(whole)], self._allocate(b))
            pos += n

    def map_for_write(self, offset: int, length: int) -> list[tuple[int, int, int]] | None:
        """Direct runs into allocated blocks and whole new ones; None if a new block is partly written."""
        self._check_writable()
        self._check_range(offset, length)
        return self._runs(offset, length, whole_new=True)

    def write_zeroes(self, offset: int, length: int) -> None:
        """Zero the allocated blocks in the range; unallocated ones already read as zeros."""
        self._check_writable()
        self._check_range(offset, length)
        bs = self.block_size
        pos, end = offset, offset + length
        while pos < end:
            b, inoff = divmod(pos, bs)
            n = min(bs - inoff, end - pos)
            host = self._host(b)
            if host is not None:
                self._touch()
                pwrite_full(self.fd, [bytes(n)], host + inoff)
            pos += n

"""Whole-image operations on open images: map and compare (commit and rebase have their own modules)."""

from __future__ import annotations

from pyvirt.image.base import Extent, Image
from pyvirt.image.errors import ImageError
from pyvirt.image.opener import open_image

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

    Progress = Callable[[float], None]

CHUNK = 2 << 20


def _hex(v: int) -> str:
    return f"{v:#x}" if v else "0"


def map_extents(img: Image) -> list[Extent]:
    if not img.reports_block_status:
        return [Extent(0, img.size, data=True, zero=False)] if img.size else []
    out: list[Extent] = []
    pos, step = 0, 1 << 30
    while pos < img.size:
        n = min(step, img.size - pos)
        for x in img.block_status(pos, n):
            if out and _mergeable(out[-1], x):
                p = out[-1]
                out[-1] = Extent(
                    p.start, p.length + x.length, p.data, p.zero, p.depth, p.offset, p.compressed, p.present
                )
            else:
                out.append(x)
        pos += n
    return out


def _mergeable(p: Extent, x: Extent) -> bool:
    if (p.data, p.zero, p.depth, p.present) != (x.data, x.zero, x.depth, x.present):
        return False
    if p.offset is None or x.offset is None:
        return p.offset is None and x.offset is None
    return p.offset + p.length == x.offset


def map_image(
    path: str,
    *,
    fmt: str | None = None,
    output: str = "human",
    force_share: bool = False,
    start: int = 0,
    max_length: int | None = None,
    passphrase: bytes | None = None,
) -> str:
    """qemu-img map's output, human or JSON, of ``[start, start + max_length)`` (clipped to the image)."""
    with open_image(
        path, fmt=fmt, allow_backing_outside=True, force_share=force_share, passphrase=passphrase
    ) as img:
        end = img.size if max_length is None else min(img.size, start + max_length)
        extents = [c for x in map_extents(img) if (c := _clip(x, start, end)) is not None]
        chain = img.chain()
        names = [i.data_path for i in chain]
    if output == "json":
        if start >= end:  # qemu-img prints one empty extent
            empty = '"length": 0, "depth": 0, "present": false, "zero": false, "data": false'
            return f'[{{ "start": {start}, {empty}}}]\n'
        lines = []
        for x in extents:
            s = (
                f'{{ "start": {x.start}, "length": {x.length}, "depth": {x.depth}, '
                f'"present": {_b(x.present)}, "zero": {_b(x.zero)}, "data": {_b(x.data)}'
            )
            if x.offset is not None and not x.compressed:  # qcow2 subclusters: also unallocated ones
                s += f', "offset": {x.offset}'
            lines.append(s + "}")
        return "[" + ",\n".join(lines) + "]\n"
    out = [f"{'Offset':<16}{'Length':<16}{'Mapped to':<16}File\n"]
    for x in extents:
        if x.data and (x.offset is None or x.compressed):
            raise PartialMap("".join(out), "File contains external, encrypted or compressed clusters.")
        if x.data and x.offset is not None:
            name = names[x.depth] if x.depth < len(names) else path
            out.append(f"{_hex(x.start):<16}{_hex(x.length):<16}{_hex(x.offset):<16}{name}\n")
    return "".join(out)


class PartialMap(ImageError):
    """qemu-img map's human output stops at data it cannot place in a file: what it printed before."""

    def __init__(self, text: str, message: str) -> None:
        super().__init__(message)
        self.text = text


def _clip(x: Extent, start: int, end: int) -> Extent | None:
    """The part of an extent inside ``[start, end)``, its file offset moved along."""
    lo, hi = max(x.start, start), min(x.start + x.length, end)
    if lo >= hi:
        return None
    if (lo, hi) == (x.start, x.start + x.length):
        return x
    off = None if x.offset is None else x.offset + lo - x.start
    return Extent(lo, hi - lo, x.data, x.zero, x.depth, off, x.compressed, x.present)


def _b(v: bool) -> str:
    return "true" if v else "false"


def compare(
    path1: str,
    path2: str,
    *,
    fmt1: str | None = None,
    fmt2: str | None = None,
    strict: bool = False,
    force_share: bool = False,
    progress: Progress | None = None,
    passphrases: tuple[bytes | None, bytes | None] = (None, None),
) -> tuple[int, list[str]]:
    """qemu-img compare: exit code (0 same, 1 different, 2 error) and the lines it prints;
    ``progress`` hears the percentage of the larger image compared so far."""
    msgs: list[str] = []
    try:
        with (
            open_image(
                path1,
                fmt=fmt1,
                allow_backing_outside=True,
                force_share=force_share,
                passphrase=passphrases[0],
            ) as a,
            open_image(
                path2,
                fmt=fmt2,
                allow_backing_outside=True,
                force_share=force_share,
                passphrase=passphrases[1],
            ) as b,
        ):
            if a.size != b.size:
                if strict:
                    return 1, ["Strict mode: Image size mismatch!\n"]
                msgs.append("Warning: Image size mismatch!\n")
            common, total = min(a.size, b.size), max(a.size, b.size, 1)
            tick = (lambda done: progress(100.0 * done / total)) if progress is not None else None
            off = _first_difference(a, b, common, tick)
            if off is None:
                bigger = a if a.size > b.size else b
                off = _first_nonzero(bigger, common, bigger.size, tick)
            if off is not None:
                msgs.append(f"Content mismatch at offset {off}!\n")
                return 1, msgs
            msgs.append("Images are identical.\n")
            return 0, msgs
    except ImageError as err:
        return 2, [f"{err}\n"]


def _zero_runs(img: Image, length: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    pos, step = 0, 1 << 30
    while pos < length:
        n = min(step, length - pos)
        runs.extend((x.start, x.start + x.length) for x in img.block_status(pos, n) if x.zero and not x.data)
        pos += n
    return runs


def _first_difference(
    a: Image, b: Image, length: int, tick: Callable[[int], None] | None = None
) -> int | None:
    za, zb = _zero_runs(a, length), _zero_runs(b, length)
    both = _intersect(za, zb)
    ba, bb = bytearray(CHUNK), bytearray(CHUNK)
    pos, k = 0, 0
    while pos < length:
        while k < len(both) and both[k][1] <= pos:
            k += 1
        if k < len(both) and both[k][0] <= pos:
            pos = both[k][1]
            continue
        n = min(CHUNK, length - pos)
        if k < len(both):
            n = min(n, both[k][0] - pos)
        ma, mb = memoryview(ba)[:n], memoryview(bb)[:n]
        a.readinto(pos, ma)
        b.readinto(pos, mb)
        if ma != mb:
            for i in range(0, n, 512):
                if ma[i : i + 512] != mb[i : i + 512]:
                    return pos + i
        pos += n
        if tick is not None:
            tick(pos)
    return None


def _first_nonzero(img: Image, start: int, end: int, tick: Callable[[int], None] | None = None) -> int | None:
    buf = bytearray(CHUNK)
    pos = start
    while pos < end:
        n = min(CHUNK, end - pos)
        m = memoryview(buf)[:n]
        img.readinto(pos, m)
        if m != bytes(n):
            for i in range(0, n, 512):
                if m[i : i + 512] != bytes(len(m[i : i + 512])):
                    return pos + i
        pos += n
        if tick is not None:
            tick(pos)
    return None


def _intersect(x: list[tuple[int, int]], y: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(x) and j < len(y):
        s, e = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if s < e:
            out.append((s, e))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out

"""``dd``: copy a byte range of an image into a new image, block by block, as qemu-img dd does.

qemu-img's arithmetic is kept, quirks included: ``count`` blocks are counted from the start of the
input, not from ``skip``, so the output holds ``min(size, count * bs) - skip * bs`` bytes; a ``skip``
past that end gives an empty output and a warning, not an error. Zero ranges of the input are not
written (the output is new, so they read as zeroes already).
"""

from __future__ import annotations

from pyvirt.image.create import create_image
from pyvirt.image.errors import ImageError
from pyvirt.image.opener import open_image

CHUNK = 4 << 20
MAX_BS = 2**31 - 1


def dd(
    src: str,
    dst: str,
    *,
    fmt: str | None = None,
    out_fmt: str = "raw",
    bs: int = 512,
    count: int | None = None,
    skip: int = 0,
    force_share: bool = False,
    passphrase: bytes | None = None,
) -> str | None:
    """Copy ``[skip * bs, min(size, count * bs))`` of ``src`` into a new ``out_fmt`` image ``dst``.

    Returns qemu-img's warning when ``skip`` lies past the end (the output is then empty), else None.
    """
    if not 1 <= bs <= MAX_BS:
        raise ImageError(f"Invalid bs specified. Must be between 1 and {MAX_BS}.")
    with open_image(
        src, fmt=fmt, allow_backing_outside=True, force_share=force_share, passphrase=passphrase
    ) as img:
        end = img.size
        if count is not None and count * bs < end:
            end = count * bs
        start = skip * bs
        warning = None
        if start > end:
            warning = f"{src}: cannot skip to specified offset"
            start = end
        create_image(dst, out_fmt, end - start)
        with open_image(dst, fmt=out_fmt, readonly=False) as out:
            pos = start
            while pos < end:
                n = min(CHUNK, end - pos)
                for ext in img.block_status(pos, n) if img.reports_block_status else ():
                    if ext.zero and not ext.data:
                        continue
                    out.write(ext.start - start, img.read(ext.start, ext.length))
                if not img.reports_block_status:
                    data = img.read(pos, n)
                    if data.count(0) != len(data):
                        out.write(pos - start, data)
                pos += n
            out.flush()
    return warning

"""``pyvirt img bench``: qemu-img bench's options, checks, messages and output lines."""

from __future__ import annotations

import sys

from pyvirt.cli.img import CACHE_MODES, UsageError, _one_image, _parse, _spec

_INT_MAX = (1 << 31) - 1


def _strtoul(text: str, what: str) -> int:
    """qemu_strtoul with base 0 (``0x10``, ``010`` octal), at most INT_MAX, else qemu-img's error."""
    t = text.strip()
    try:
        if t[:1] in "+-":
            raise ValueError(t)
        low = t.lower()
        if low.startswith("0x"):
            value = int(low[2:], 16)
        elif len(low) > 1 and low.startswith("0"):
            value = int(low[1:], 8)
        else:
            value = int(low, 10)
    except ValueError:
        raise UsageError(f"Invalid {what} specified") from None
    if value > _INT_MAX:
        raise UsageError(f"Invalid {what} specified")
    return value


def _cvtnum(text: str, what: str, top: int) -> int:
    """qemu-img's cvtnum_full: a size with an optional binary suffix (``1.5k``), from 0 to ``top``."""
    t = text.strip()
    mult = 1
    if t and t[-1].lower() in "bkmgtpe":
        mult = 1 << (10 * "bkmgtpe".index(t[-1].lower()))
        t = t[:-1]
    try:
        if not t or t[0] in "+-" or not t.replace(".", "", 1).isdigit():
            raise ValueError(text)
        value = int(t) * mult if t.isdigit() else int(float(t) * mult)
    except ValueError:
        raise UsageError(
            f"Invalid {what} specified. You may use k, M, G, T, P or E suffixes for "
            "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."
        ) from None
    if value > top:
        raise UsageError(f"Invalid {what} specified. Must be between 0 and {top}.")
    return value


def cmd_bench(argv: list[str]) -> int:
    from pyvirt.image import open_image
    from pyvirt.image.bench import BenchSpec, run_bench

    opts, args = _parse(argv, *_spec("bench"))
    count, depth, size, offset, step = 75000, 64, 4096, 0, 0
    fmt: str | None = None
    write = native = no_drain = share = image_opts = False
    cache, pattern, flush_interval = "writeback", 0, 0
    objects: list[str] = []
    for k, v in opts:
        if k == "-c":
            count = _strtoul(v, "request count")
        elif k == "-d":
            depth = _strtoul(v, "queue depth")
            if depth == 0:  # qemu-img 7.2 takes 0 and then waits forever
                raise UsageError("Invalid queue depth specified")
        elif k == "-f":
            fmt = v
        elif k == "-n":
            native = True
        elif k == "-o":
            offset = _cvtnum(v, "offset", (1 << 63) - 1)
        elif k == "-q":
            pass  # qemu-img bench prints its lines with -q too
        elif k == "-s":
            size = _cvtnum(v, "buffer size", _INT_MAX)
        elif k == "-S":
            step = _cvtnum(v, "step_size", _INT_MAX)
        elif k == "-t":
            if v not in CACHE_MODES:
                raise UsageError("Invalid cache mode")
            cache = v
        elif k == "-w":
            write = True
        elif k == "--pattern":
            pattern = _strtoul(v, "pattern byte")
            if pattern > 0xFF:
                raise UsageError("Invalid pattern byte specified")
        elif k == "--flush-interval":
            flush_interval = _strtoul(v, "flush interval")
        elif k == "--no-drain":
            no_drain = True
        elif k in ("-U", "--force-share"):
            share = True
        elif k == "--object":
            objects.append(v)
        elif k == "--image-opts":
            image_opts = True
    if len(args) != 1:
        raise UsageError("Expecting one image file name")
    if flush_interval and not write:
        raise UsageError("--flush-interval is only available in write tests")
    if flush_interval and flush_interval < depth:
        raise UsageError("Flush interval can't be smaller than depth")
    path, fmt, passphrase = _one_image(args[0], fmt, objects, image_opts)
    if native and cache not in ("none", "directsync"):
        raise UsageError(
            f"Could not open '{path}': aio=native was specified, but it requires cache.direct=on, "
            "which was not specified."
        )
    if share and write:
        raise UsageError(f"Could not open '{path}': force-share=on can only be used with read-only images")
    with open_image(
        path,
        fmt=fmt,
        readonly=not write,
        allow_backing_outside=True,
        force_share=share,
        passphrase=passphrase,
    ) as img:
        spec = BenchSpec(
            count=count, depth=depth, size=size, offset=offset, step=step or size, write=write,
            pattern=pattern, flush_interval=flush_interval, drain=not no_drain, cache=cache,
        )  # fmt: skip
        sys.stdout.write(spec.header())
        sys.stdout.flush()
        seconds = run_bench(img, spec)
    sys.stdout.write(f"Run completed in {seconds:.3f} seconds.\n")
    return 0

"""qemu-img's ``-o`` creation options, as keyword arguments of :func:`pyvirt.image.api.create_image`.

A module of its own so that ``pyvirt img create`` does not load the converter (and its threads).
"""

from __future__ import annotations

from pyvirt.image.errors import ImageError
from pyvirt.image.sizes import parse_size

__all__ = ["parse_options"]


def parse_options(opts: dict[str, str]) -> dict[str, object]:
    """qemu-img ``-o`` options to :func:`create_image` keyword arguments."""
    out: dict[str, object] = {}
    for k, v in opts.items():
        if k == "cluster_size":
            out["cluster_size"] = parse_size(v, what="cluster size")
        elif k == "compat":
            out["compat"] = v
        elif k == "preallocation":
            out["preallocation"] = v
        elif k == "lazy_refcounts":
            out["lazy_refcounts"] = _onoff(k, v)
        elif k == "refcount_bits":
            out["refcount_bits"] = int(v)
        elif k in ("backing_file", "backing_fmt"):
            out["backing" if k == "backing_file" else "backing_fmt"] = v
        elif k == "size":
            out["size"] = parse_size(v)
        elif (k in ("compression_type",) and v == "zlib") or (
            k in ("extended_l2", "encryption") and v in ("off", "false")
        ):
            continue
        elif k in ("extended_l2", "data_file", "encrypt.format", "encryption", "compression_type"):
            raise ImageError(f"Option '{k}={v}' is not supported by pyvirt img")
        else:
            raise ImageError(f"Invalid parameter '{k}'")
    return out


def _onoff(k: str, v: str) -> bool:
    if v in ("on", "yes", "true"):
        return True
    if v in ("off", "no", "false"):
        return False
    raise ImageError(f"Parameter '{k}' expects 'on' or 'off'")

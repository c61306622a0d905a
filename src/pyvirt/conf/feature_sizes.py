"""The sizes libvirt writes under ``<features>``: SMM's TSEG and TCG's translation cache.

- ``<smm state='on'><tseg unit='MiB'>48</tseg></smm>``: q35's extended TSEG (the SMRAM firmware with
  Secure Boot uses), as ``-global mch.extended-tseg-mbytes=48``; in whole MiB, q35 only (i440fx has no
  such property), as libvirt 9.0 rules.
- ``<tcg><tb-cache unit='KiB'>102400</tb-cache></tcg>``: TCG's translation block cache, as
  ``-accel tcg,tb-size=100`` (MiB); only for ``<domain type='qemu'>``, as libvirt rules.

Both are kept in ``Domain.feature_attrs`` (``smm`` → ``tseg`` in MiB, ``tcg`` → ``tb-cache`` in KiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvirt.conf.units import parse_size_kib
from pyvirt.conf.xmlutil import Elem, XNode, x
from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLError

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain

TAGS = ("smm", "tcg")


def parse(e: Elem, attrs: dict[str, str]) -> None:
    """The size child of ``<smm>`` or ``<tcg>`` into ``attrs``."""
    if e.tag == "smm":
        if (tseg := e.child("tseg")) is not None:
            kib = parse_size_kib(tseg.text(), tseg.attr("unit") or "MiB", element=tseg.path, allow_zero=True)
            if kib % 1024:
                raise XMLError(f"'{tseg.path}' must be a whole number of MiB")
            attrs["tseg"] = str(kib // 1024)
            tseg.done()
        return
    if (cache := e.child("tb-cache")) is not None:
        attrs["tb-cache"] = str(parse_size_kib(cache.text(), cache.attr("unit"), element=cache.path))
        cache.done()


def write(name: str, attrs: dict[str, str]) -> XNode:
    node = x(name, {k: v for k, v in attrs.items() if k not in ("tseg", "tb-cache")})
    if "tseg" in attrs:
        node.add(x("tseg", {"unit": "MiB"}, text=attrs["tseg"]))
    if "tb-cache" in attrs:
        node.add(x("tb-cache", {"unit": "KiB"}, text=attrs["tb-cache"]))
    return node


def check(dom: Domain, q35: bool) -> None:
    smm = dom.feature_attrs.get("smm", {})
    if "tseg" in smm:
        if smm.get("state", "on") != "on":
            raise InvalidArgument("features/smm/tseg needs SMM on")
        if not q35:
            raise UnsupportedConfig(
                "unsupported configuration: features/smm/tseg: only q35 machines have an extended TSEG"
            )
    if "tb-cache" in dom.feature_attrs.get("tcg", {}) and dom.type != "qemu":
        raise UnsupportedConfig(
            f"unsupported configuration: features/tcg is for domain type 'qemu', not '{dom.type}'"
        )


def globals_(dom: Domain) -> list[str]:
    """The ``-global`` options of the sizes."""
    tseg = dom.feature_attrs.get("smm", {}).get("tseg")
    return ["-global", f"mch.extended-tseg-mbytes={tseg}"] if tseg is not None else []


def accel(dom: Domain, accel: str) -> str:
    """``-accel``'s value: TCG with its cache size in MiB when set."""
    cache = dom.feature_attrs.get("tcg", {}).get("tb-cache")
    if accel == "tcg" and cache is not None:
        return f"tcg,tb-size={int(cache) // 1024}"
    return accel

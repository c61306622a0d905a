"""``create_qcow2`` writes a new image's metadata two ways: directly when one refcount block covers
it (every image with default options, no ``array`` import) and with :class:`Refcounts` otherwise.
Where both apply they must write the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.image.qcow2 import create as C
from pyvirt.image.qcow2.header import Header
from pyvirt.image.qcow2.image import Qcow2Image


def _both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, **kw: object) -> tuple[bytes, bytes]:
    direct, general = tmp_path / "direct.qcow2", tmp_path / "general.qcow2"
    C.create_qcow2(str(direct), size, **kw)  # type: ignore[arg-type]
    with monkeypatch.context() as m:
        m.setattr(C, "_fits_one_refcount_block", lambda h: False)
        C.create_qcow2(str(general), size, **kw)  # type: ignore[arg-type]
    return direct.read_bytes(), general.read_bytes()


def _boundary_size(cs: int, bits: int, extra_l1_entries: int = 0) -> int:
    """The size whose metadata fills the first refcount block exactly (plus some L1 entries)."""
    per_block = cs * 8 // bits
    l1_size = (per_block - 3) * cs // 8 + extra_l1_entries
    return l1_size * cs * (cs // 8)


def _grid() -> list[tuple[int, int, int]]:
    """Cluster size, refcount width, virtual size: all that qcow2 allows, less the 2 MiB clusters of
    sub-byte refcounts (Refcounts takes seconds to encode such a block in Python)."""
    out = []
    for cs in (512, 4096, 65536, 2 << 20):
        for bits in (1, 2, 4, 8, 16, 32, 64):
            for size in (0, 512, 10 << 20, 10 << 30):
                l1_bytes = -(-size // (cs * (cs // 8))) * 8
                if l1_bytes <= 32 << 20 and not (cs == 2 << 20 and bits < 8):
                    out.append((cs, bits, size))
    return out


@pytest.mark.parametrize(("cs", "bits", "size"), _grid())
def test_direct_layout_matches_refcounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cs: int, bits: int, size: int
) -> None:
    direct, general = _both(tmp_path, monkeypatch, size, cluster_size=cs, refcount_bits=bits)
    assert direct == general


@pytest.mark.parametrize(
    "kw",
    [
        {"compat": "0.10"},
        {"lazy_refcounts": True},
        {"backing": "base.qcow2", "backing_fmt": "qcow2"},
        {"compat": "0.10", "backing": "b" * 1000, "backing_fmt": "raw", "cluster_size": 4096},
    ],
)
def test_direct_layout_matches_refcounts_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kw: dict[str, object]
) -> None:
    direct, general = _both(tmp_path, monkeypatch, 10 << 30, **kw)
    assert direct == general


@pytest.mark.parametrize(("cs", "bits"), [(512, 64), (512, 16), (4096, 64)])
def test_first_refcount_block_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cs: int, bits: int
) -> None:
    """At the boundary the direct layout still applies and matches; one L1 cluster more, it does not."""
    size = _boundary_size(cs, bits)
    h = Header(cluster_bits=cs.bit_length() - 1, size=size, l1_size=-(-size // (cs * (cs // 8))))
    h.refcount_order = bits.bit_length() - 1
    assert C._fits_one_refcount_block(h)
    direct, general = _both(tmp_path, monkeypatch, size, cluster_size=cs, refcount_bits=bits)
    assert direct == general

    bigger = _boundary_size(cs, bits, extra_l1_entries=1)
    h.size, h.l1_size = bigger, -(-bigger // (cs * (cs // 8)))
    assert not C._fits_one_refcount_block(h)
    path = tmp_path / "bigger.qcow2"
    C.create_qcow2(str(path), bigger, cluster_size=cs, refcount_bits=bits)
    img = Qcow2Image.open(str(path))
    try:
        assert img.size == bigger
        assert img.refs.table[1]  # a second refcount block
    finally:
        img.close()

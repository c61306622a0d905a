"""qcow2 refcounts: allocation takes one reference per cluster, a block's slice at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.image import create_image, open_image
from pyvirt.image.qcow2.image import Qcow2Image


@pytest.mark.parametrize("cluster_size", [512, 65536])
def test_allocation_takes_one_reference_per_cluster_across_refcount_blocks(
    tmp_path: Path, cluster_size: int
) -> None:
    path = tmp_path / "a.qcow2"
    create_image(str(path), "qcow2", 64 << 20, cluster_size=cluster_size)
    with open_image(str(path), readonly=False) as img:
        assert isinstance(img, Qcow2Image)
        refs = img.refs
        start = refs.end
        refs.add(start + 3, 1)  # already referenced: counted one by one, not overwritten
        n = refs.per_block + 10  # spans a refcount block boundary
        refs._add_ones(start, n)
        counts = [refs.get(c) for c in range(start, start + n)]
        assert counts[3] == 2
        assert counts[:3] + counts[4:] == [1] * (n - 1)
        assert refs.end >= start + n

"""LUKS's anti-forensic split and merge give the bytes of the specification's own loop."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest

from pyvirt.image.luks import af_merge, af_split


def _reference_merge(split: bytes, n: int, stripes: int, hash_name: str) -> bytes:
    """AFmerge as the LUKS1 specification writes it, byte by byte."""
    size = hashlib.new(hash_name).digest_size
    d = bytes(n)
    for i in range(stripes):
        block = split[i * n : (i + 1) * n]
        d = bytes(a ^ b for a, b in zip(d, block, strict=True))
        if i == stripes - 1:
            return d
        out = b""
        for k in range(0, n, size):
            piece = d[k : k + size]
            out += hashlib.new(hash_name, struct.pack(">I", k // size) + piece).digest()[: len(piece)]
        d = out
    raise AssertionError("no stripes")


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("n", [16, 32, 50, 64])
def test_merge_is_the_specification_and_split_inverts_it(hash_name: str, n: int) -> None:
    split = os.urandom(n * 300)
    assert af_merge(split, n, 300, hash_name) == _reference_merge(split, n, 300, hash_name)
    key = os.urandom(n)
    material = af_split(key, 300, hash_name)
    assert len(material) == n * 300
    assert _reference_merge(material, n, 300, hash_name) == key

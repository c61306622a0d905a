"""Sizes parsed and printed like qemu-img."""

from __future__ import annotations

import pytest

from pyvirt.errors import ImageError
from pyvirt.image.sizes import parse_relative_size, parse_size, size_to_str


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("512", 512),
        ("64k", 65536),
        ("10G", 10 << 30),
        ("1T", 1 << 40),
        ("1.5M", 3 << 19),
        ("2GiB", 2 << 30),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "-1", "1Q", "nan", "99999999E"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ImageError):
        parse_size(text)


def test_relative() -> None:
    assert parse_relative_size("+1G", 1 << 30) == 2 << 30
    assert parse_relative_size("-512M", 1 << 30) == 512 << 20
    assert parse_relative_size("3G", 1 << 30) == 3 << 30
    with pytest.raises(ImageError):
        parse_relative_size("-2G", 1 << 30)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (200704, "196 KiB"),
        (1 << 30, "1 GiB"),
        (3608576, "3.44 MiB"),
        (1000, "0.977 KiB"),
        (999, "999 B"),
        (1023, "0.999 KiB"),
    ],
)
def test_size_to_str(value: int, text: str) -> None:
    assert size_to_str(value) == text

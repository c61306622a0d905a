"""virsh's scaled integers, as the storage verbs (vol-create-as, vol-resize), clone and template read them."""

from __future__ import annotations

import pytest

from pyvirt.cli.storage import pretty
from pyvirt.conf.units import parse_scaled
from pyvirt.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512", 512),
        ("10G", 10 << 30),
        ("10 GiB", 10 << 30),
        ("1000KB", 1_000_000),
        ("2m", 2 << 20),
        (" 7b ", 7),
        ("3bytes", 3),
    ],
)
def test_scaled(text: str, value: int) -> None:
    assert parse_scaled(text) == value


@pytest.mark.parametrize(
    "text", ["", "G", "1 0", "10X", "10GiBs", "-1", "1.5G", "10 G B", "\uff11\uff10G", "99999999E"]
)
def test_malformed(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Malformed size"):
        parse_scaled(text)


def test_pretty() -> None:
    assert pretty(0) == "0.00 B"
    assert pretty(1536) == "1.50 KiB"
    assert pretty(10 << 30) == "10.00 GiB"


def test_named_option_in_message() -> None:
    with pytest.raises(InvalidArgument, match=r"--disk-size: malformed size '1\.5G'"):
        parse_scaled("1.5G", what="--disk-size")

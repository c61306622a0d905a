"""Size units: libvirt's unit names, rounding up to KiB, and refusal of absurd sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvirt.conf.units import MAX_KIB, format_kib, parse_size_kib, unit_factor
from pyvirt.errors import InvalidArgument

UNITS = {
    "b": 1,
    "bytes": 1,
    "KB": 1000,
    "k": 1024,
    "KiB": 1024,
    "MB": 1000**2,
    "M": 1024**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "G": 1024**3,
    "GiB": 1024**3,
    "TB": 1000**4,
    "T": 1024**4,
    "TiB": 1024**4,
}


@pytest.mark.parametrize(("unit", "factor"), UNITS.items())
def test_unit_factors(unit: str, factor: int) -> None:
    assert unit_factor(unit) == factor
    assert unit_factor(unit.lower()) == factor


@pytest.mark.parametrize(
    ("value", "unit", "kib"),
    [
        ("1048576", None, 1048576),
        ("512", "MiB", 524288),
        ("2", "GiB", 2097152),
        ("1", "b", 1),
        ("1025", "bytes", 2),
        ("1", "MB", 977),
        ("16", "TiB", MAX_KIB),
    ],
)
def test_parse_size(value: str, unit: str | None, kib: int) -> None:
    assert parse_size_kib(value, unit, element="memory") == kib


@pytest.mark.parametrize(
    ("value", "unit", "fragment"),
    [
        ("0", "KiB", "greater than zero"),
        ("17", "TiB", "larger than 16 TiB"),
        ("99999999999999999999999999999", "EiB", "larger than 16 TiB"),
        ("lots", "MiB", "invalid size"),
        ("-1", "MiB", "invalid size"),
        ("1.5", "GiB", "invalid size"),
        ("", None, "invalid size"),
        ("1", "furlongs", "unknown size unit"),
    ],
)
def test_absurd_sizes_name_the_element(value: str, unit: str | None, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_size_kib(value, unit, element="currentMemory")
    assert fragment in info.value.message
    assert "'currentMemory'" in info.value.message


@given(st.integers(min_value=1, max_value=2**44), st.sampled_from(sorted(UNITS)))
def test_parse_size_property(number: int, unit: str) -> None:
    exact_bytes = number * UNITS[unit]
    expected = -(-exact_bytes // 1024)
    if expected > MAX_KIB:
        with pytest.raises(InvalidArgument, match="larger than 16 TiB"):
            parse_size_kib(str(number), unit, element="memory")
    else:
        assert parse_size_kib(f" {number} ", unit, element="memory") == expected


@given(st.text(max_size=12).filter(lambda s: not s.strip().isascii() or not s.strip().isdigit()))
def test_non_numeric_sizes_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="'memory'"):
        parse_size_kib(text, "MiB", element="memory")


def test_format_kib() -> None:
    assert format_kib(512) == "512 KiB"
    assert format_kib(1536 * 1024) == "1.5 GiB"

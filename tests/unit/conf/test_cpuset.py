"""libvirt's CPU set syntax."""

from __future__ import annotations

import pytest

from pyvirt.conf.cpuset import parse_cpuset
from pyvirt.errors import XMLError


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0", {0}),
        ("0-3", {0, 1, 2, 3}),
        ("0-3,^2", {0, 1, 3}),
        ("1, 4-5 ,8", {1, 4, 5, 8}),
        ("16383", {16383}),
    ],
)
def test_cpusets(text: str, cpus: set[int]) -> None:
    assert parse_cpuset(text, "vcpu/@cpuset") == cpus


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected numbers"),
        ("a", "expected numbers"),
        ("3-1", "range 3-1"),
        ("16384", "range 16384"),
        ("^1-2", "expected numbers"),
        ("1,^1", "names no CPU"),
        ("-1", "expected numbers"),
    ],
)
def test_bad_cpusets_name_the_attribute(text: str, message: str) -> None:
    with pytest.raises(XMLError, match=message) as info:
        parse_cpuset(text, "vcpu/@cpuset")
    assert "vcpu/@cpuset" in str(info.value)

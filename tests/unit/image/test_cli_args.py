"""The option parser of ``pyvirt img`` behaves like GNU getopt."""

from __future__ import annotations

import pytest

from pyvirt.cli.img import UsageError, _parse


def test_gnu_style() -> None:
    opts, args = _parse(
        ["-f", "qcow2", "a", "--output=json", "-qc", "-Ofoo", "--shrink", "b"],
        "f:O:qc",
        ["output=", "shrink"],
    )
    assert opts == [
        ("-f", "qcow2"),
        ("--output", "json"),
        ("-q", ""),
        ("-c", ""),
        ("-O", "foo"),
        ("--shrink", ""),
    ]
    assert args == ["a", "b"]
    opts, args = _parse(["--output", "human", "--", "-x"], "", ["output="])
    assert opts == [("--output", "human")] and args == ["-x"]


@pytest.mark.parametrize("argv", [["-z"], ["-f"], ["--nope"], ["--output"], ["--shrink=1"]])
def test_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        _parse(argv, "f:", ["output=", "shrink"])

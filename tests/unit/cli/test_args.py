"""The virsh-style parser, driven by the command table."""

from __future__ import annotations

import pytest

from pyvirt.cli.args import getopt_spec, parse
from pyvirt.cli.commands import find
from pyvirt.errors import InvalidArgument


def cmd(name: str):  # type: ignore[no-untyped-def]
    found = find(name)
    assert found is not None
    return found


def test_positional_named_and_flags() -> None:
    start, shutdown = cmd("start"), cmd("shutdown")
    assert parse(start, ["web01", "--paused"]) == {"domain": "web01", "paused": True}
    assert parse(shutdown, ["--domain", "web01", "--mode=acpi"]) == {"domain": "web01", "mode": "acpi"}
    with pytest.raises(InvalidArgument, match="doesn't support option --bogus"):
        parse(start, ["web01", "--bogus"])
    with pytest.raises(InvalidArgument, match="requires <domain>"):
        parse(start, [])
    with pytest.raises(InvalidArgument, match="unexpected data"):
        parse(start, ["a", "b"])


def test_optional_positionals_fill_in_order() -> None:
    a = parse(cmd("pool-define-as"), ["p", "dir", "--target", "/srv", "h"])
    assert a == {"name": "p", "type": "dir", "target": "/srv", "source_host": "h"}


def test_unknown_option_suggests_the_closest() -> None:
    with pytest.raises(InvalidArgument, match=r"option --nmae; did you mean '--name'\?"):
        parse(cmd("list"), ["--nmae"])
    with pytest.raises(InvalidArgument) as err:
        parse(cmd("list"), ["--zzzzzz"])
    assert "did you mean" not in str(err.value)


def test_numbers_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="Numeric value 'x' for <offset> option is malformed"):
        parse(cmd("vol-upload"), ["v", "f", "--offset", "x"])
    assert parse(cmd("vol-upload"), ["v", "f", "--offset", "10"])["offset"] == "10"


def test_getopt_spec_of_img_verbs() -> None:
    img = cmd("img")
    check = img.subcommand("check")
    assert check is not None
    short, long = getopt_spec(check)
    assert sorted(long) == ["force-share", "image-opts", "object=", "output=", "repair="]
    assert "r:" in short and "q" in short and "U" in short

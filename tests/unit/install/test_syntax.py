"""virt-install's option-value syntax (pyvirt.install.syntax)."""

from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.install.syntax import boolean, split


def test_first_value_takes_the_first_key() -> None:
    assert split("disk", "/v/a.qcow2,bus=sata,size=4", "path") == {
        "path": "/v/a.qcow2",
        "bus": "sata",
        "size": "4",
    }
    assert split("memory", "1024,maxmemory=2048", "memory") == {"memory": "1024", "maxmemory": "2048"}


def test_bare_words_after_the_first_are_flags() -> None:
    assert split("boot", "uefi,hd,cdrom", "") == {"uefi": "on", "hd": "on", "cdrom": "on"}
    assert list(split("boot", "cdrom,hd", "")) == ["cdrom", "hd"]  # the order given is kept


def test_quotes_keep_commas() -> None:
    text = 'kernel=/k,kernel_args="console=ttyS0,115200 quiet"'
    assert split("boot", text, "")["kernel_args"] == "console=ttyS0,115200 quiet"
    assert split("x", "a='b,c'", "")["a"] == "b,c"


def test_bad_syntax_is_named() -> None:
    with pytest.raises(InvalidArgument, match="given twice"):
        split("disk", "path=/a,path=/b", "path")
    with pytest.raises(InvalidArgument, match="unterminated quote"):
        split("boot", 'kernel_args="a', "")
    with pytest.raises(InvalidArgument, match="empty option name"):
        split("disk", "/a,=3", "path")


def test_booleans() -> None:
    assert boolean("d", "sparse", "yes") and boolean("d", "sparse", "on")
    assert not boolean("d", "sparse", "off") and not boolean("d", "sparse", "0")
    with pytest.raises(InvalidArgument, match="sparse=maybe"):
        boolean("d", "sparse", "maybe")

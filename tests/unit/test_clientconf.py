"""pyvirt.conf: libvirt's configuration syntax, uri_aliases rules, and where the file is."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.clientconf import aliases, config_path, parse_conf
from pyvirt.errors import InvalidArgument

LIBVIRT_EXAMPLE = """
#
# This can be used to set up URI aliases for commonly used connections.
uri_aliases = [
  "hail=qemu+ssh://root@hail.cloud.example.com/system",   # the build host
  "sleet=qemu+ssh://root@sleet.cloud.example.com/system",
  'hail=qemu:///session',
]
uri_default = "qemu:///system"
remote_mode = 'legacy' ; timeout = 30
"""


def test_libvirt_syntax() -> None:
    conf = parse_conf(LIBVIRT_EXAMPLE)
    assert conf["uri_default"] == "qemu:///system"
    assert conf["remote_mode"] == "legacy"
    assert conf["timeout"] == 30
    table = aliases(conf)
    assert table == {  # the first entry for a name wins, as in libvirt
        "hail": "qemu+ssh://root@hail.cloud.example.com/system",
        "sleet": "qemu+ssh://root@sleet.cloud.example.com/system",
    }


def test_escapes_and_empty_list() -> None:
    conf = parse_conf('a = "x\\"y#z"\nb = []\n')
    assert conf == {"a": 'x"y#z', "b": []}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('uri_aliases = [ "a=qemu:///system"', "expected ',' or ']' at end of file"),
        ('uri_aliases "x"', "expected '='"),
        ("= 3", "expected a setting name"),
        ("x = @", "cannot parse near '@'"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_conf(text, "conf")


@pytest.mark.parametrize(
    ("entry", "message"),
    [("nouri", "malformed URI alias 'nouri'"), ("bad name=qemu:///system", "malformed URI alias name")],
)
def test_bad_aliases(entry: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        aliases({"uri_aliases": [entry]})
    with pytest.raises(InvalidArgument, match="must be a list"):
        aliases({"uri_aliases": "x=y"})


def test_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYVIRT_CONF", raising=False)
    monkeypatch.delenv("PYVIRT_ROOT", raising=False)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert config_path() == Path("/etc/pyvirt/pyvirt.conf")
    monkeypatch.setenv("PYVIRT_ROOT", str(tmp_path))
    assert config_path() == tmp_path / "etc/pyvirt/pyvirt.conf"
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_path() == tmp_path / "cfg/pyvirt/pyvirt.conf"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path() == tmp_path / "home/.config/pyvirt/pyvirt.conf"
    monkeypatch.setenv("PYVIRT_CONF", "/x/y.conf")
    assert config_path() == Path("/x/y.conf")

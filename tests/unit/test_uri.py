"""Connection URIs: libvirt's forms, parameters, canonical form, the default URI and aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.uri import default_uri, parse_uri


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("PYVIRT_DEFAULT_URI", "LIBVIRT_DEFAULT_URI", "PYVIRT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    conf = tmp_path / "pyvirt.conf"
    monkeypatch.setenv("PYVIRT_CONF", str(conf))
    return conf


@pytest.mark.parametrize(
    ("text", "transport", "mode", "user", "host", "port"),
    [
        ("qemu:///system", "unix", "system", None, None, None),
        ("qemu:///session", "unix", "session", None, None, None),
        ("qemu+unix:///system?socket=/run/x", "unix", "system", None, None, None),
        ("qemu+ssh://root@hail/system", "ssh", "system", "root", "hail", None),
        ("qemu+ssh://hail:2222/session", "ssh", "session", None, "hail", 2222),
        ("qemu+ssh://admin@[::1]:22/system", "ssh", "system", "admin", "::1", 22),
        ("qemu+tls://sleet.example.com/system", "tls", "system", None, "sleet.example.com", None),
        ("qemu://sleet/system", "tls", "system", None, "sleet", None),  # libvirt: a host means TLS
        ("QEMU+SSH://Root@Hail/system", "ssh", "system", "Root", "hail", None),
    ],
)
def test_forms(
    text: str, transport: str, mode: str, user: str | None, host: str | None, port: int | None
) -> None:
    uri = parse_uri(text)
    assert (uri.transport, uri.mode, uri.user, uri.host, uri.port) == (transport, mode, user, host, port)


def test_params_and_canonical() -> None:
    text = (
        "qemu+ssh://root@hail:2222/system?keyfile=/root/.ssh/id_ed25519&socket=/run/p/s&no_verify=1&no_tty=1"
    )
    uri = parse_uri(text)
    assert uri.params == {
        "keyfile": "/root/.ssh/id_ed25519",
        "socket": "/run/p/s",
        "no_verify": "1",
        "no_tty": "1",
    }
    assert uri.flag("no_verify") and uri.flag("no_tty")
    assert uri.canonical() == text
    assert parse_uri(uri.canonical()) == uri
    assert parse_uri("qemu+unix:///system").canonical() == "qemu:///system"
    assert parse_uri("qemu://sleet:16514/system").canonical() == "qemu+tls://sleet:16514/system"
    assert parse_uri("qemu+ssh://a@[::1]:22/system").canonical() == "qemu+ssh://a@[::1]:22/system"
    spaced = parse_uri("qemu+ssh://h/system?keyfile=/a%20b")
    assert spaced.params["keyfile"] == "/a b"
    assert parse_uri(spaced.canonical()) == spaced
    assert parse_uri("qemu+tls://h/system?pkipath=/p&no_verify=0").flag("no_verify") is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("qemu+tcp://h/system", "no plain-TCP listener"),
        ("qemu+libssh2://h/system", r"use qemu\+ssh://"),
        ("qemu+foo://h/system", "unsupported transport 'foo'"),
        ("xen:///system", "expected qemu://"),
        ("qemu:///bogus", "unexpected QEMU URI path"),
        ("qemu+ssh:///system", "needs a host name"),
        ("qemu+unix://h/system", "names a host"),
        ("qemu+ssh://h:99999/system", "bad port"),
        ("qemu+ssh://h/system?pkipath=/x", "unknown parameter 'pkipath'"),
        ("qemu+tls://h/system?keyfile=/x", "unknown parameter 'keyfile'"),
        ("qemu+ssh://h/system?no_verify=yes", "expected 0 or 1"),
        ("qemu+ssh://h/system?keyfile=", "needs a value"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_uri(text)


def test_default_uri(monkeypatch: pytest.MonkeyPatch, no_config: Path) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert default_uri() == "qemu:///system"
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert default_uri() == "qemu:///session"
    no_config.write_text('uri_default = "qemu+ssh://root@hail/system"\n')
    assert default_uri() == "qemu+ssh://root@hail/system"
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu:///session")
    assert default_uri() == "qemu:///session"
    monkeypatch.setenv("PYVIRT_DEFAULT_URI", "qemu+tls://sleet/system")
    assert default_uri() == "qemu+tls://sleet/system"


def test_alias(no_config: Path) -> None:
    no_config.write_text('uri_aliases = [\n  "hail=qemu+ssh://root@hail.example.com/system",\n]\n')
    uri = parse_uri("hail")
    assert (uri.transport, uri.user, uri.host) == ("ssh", "root", "hail.example.com")
    with pytest.raises(
        InvalidArgument, match=r"'snow' is neither a connection URI nor an alias.*\(known: hail\)"
    ):
        parse_uri("snow")

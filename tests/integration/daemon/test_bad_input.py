"""Bad input: a clear ``error: ...``, exit status 1, and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml


def snapshot(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root / "etc"):
        for name in files:
            path = Path(dirpath) / name
            out[str(path)] = path.read_bytes()
    return out


def refused(daemon: Daemon, tmp_path: Path, xml: str, *fragments: str) -> None:
    before = snapshot(daemon.root)
    path = tmp_path / "bad.xml"
    path.write_text(xml)
    result = daemon.cli("define", str(path))
    assert result.rc == 1, result.out
    assert result.err.startswith("error: Failed to define domain from"), result.err
    for fragment in fragments:
        assert fragment in result.err, result.err
    assert result.out == ""
    assert snapshot(daemon.root) == before


GOOD = domain_xml("good")


def test_malformed_xml(daemon: Daemon, tmp_path: Path) -> None:
    refused(daemon, tmp_path, GOOD[: len(GOOD) // 2], "error:")
    refused(daemon, tmp_path, "", "error:")
    refused(daemon, tmp_path, "<network><name>x</name></network>", "domain")


def test_entity_bomb_and_external_entities(daemon: Daemon, tmp_path: Path) -> None:
    entities = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    head = '<?xml version="1.0"?>'
    bomb = f'{head}<!DOCTYPE domain [{entities}]><domain type="qemu"><name>&l9;</name></domain>'
    refused(daemon, tmp_path, bomb)
    ext = '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    refused(daemon, tmp_path, f'{head}{ext}<domain type="qemu"><name>&x;</name></domain>')


def test_unknown_device_is_named(daemon: Daemon, tmp_path: Path) -> None:
    xml = GOOD.replace("</devices>", "<hostdev mode='subsystem' type='pci'/></devices>")
    refused(daemon, tmp_path, xml, "hostdev")
    xml = GOOD.replace(
        "<devices>", "<devices><crypto model='virtio' type='qemu'><backend model='builtin'/></crypto>"
    )
    refused(daemon, tmp_path, xml, "devices/crypto")


@pytest.mark.parametrize("name", ["a/b", ".", "..", "../etc", "", "tab\tx", "x" * 201])
def test_bad_names(daemon: Daemon, tmp_path: Path, name: str) -> None:
    from xml.sax.saxutils import escape

    xml = GOOD.replace("<name>good</name>", f"<name>{escape(name)}</name>")
    refused(daemon, tmp_path, xml, "name")
    assert not any(p.name != "autostart" and p.name != "networks" for p in daemon.config_dir.iterdir())


def test_names_libvirt_takes_stay_file_names(daemon: Daemon, tmp_path: Path) -> None:
    """What libvirt 9.0 defines is defined, each the one file of its name in the daemon's folder: no
    shell, path or option ever reads it."""
    from xml.sax.saxutils import escape

    names = ["with space", "quo'te", 'dq"x', "semi;colon", "$(reboot)", "`id`", "a|b", ".x", "-x", "ünï"]
    for name in names:
        path = tmp_path / "named.xml"
        path.write_text(GOOD.replace("<name>good</name>", f"<name>{escape(name)}</name>"))
        daemon.cli("define", str(path)).ok()
        assert (daemon.config_dir / f"{name}.xml").is_file()
        assert f"<name>{escape(name)}</name>" in daemon.cli("dumpxml", "--domain", name).ok().out
    files = {p.name for p in daemon.config_dir.iterdir() if p.name not in ("autostart", "networks")}
    assert files == {f"{name}.xml" for name in names}
    for name in names:
        daemon.cli("undefine", "--domain", name).ok()


def test_absurd_memory(daemon: Daemon, tmp_path: Path) -> None:
    for memory in (
        "<memory unit='TiB'>4096</memory>",
        "<memory unit='KiB'>0</memory>",
        "<memory>lots</memory>",
    ):
        xml = GOOD.replace(GOOD[GOOD.index("<memory") : GOOD.index("</memory>") + 9], memory)
        refused(daemon, tmp_path, xml, "memory")


def test_duplicate_name_and_uuid(daemon: Daemon, tmp_path: Path) -> None:
    first = tmp_path / "first.xml"
    first.write_text(
        domain_xml("dup1").replace(
            "<name>dup1</name>", "<name>dup1</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
        )
    )
    daemon.cli("define", str(first)).ok()
    same_uuid = domain_xml("dup2").replace(
        "<name>dup2</name>", "<name>dup2</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
    )
    refused(daemon, tmp_path, same_uuid, "already exists")
    other_uuid = domain_xml("dup1").replace(
        "<name>dup1</name>", "<name>dup1</name><uuid>99999999-2222-3333-4444-555555555555</uuid>"
    )
    refused(daemon, tmp_path, other_uuid, "already exists")


def test_missing_disk_file(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "m.xml"
    path.write_text(domain_xml("m1", disk=tmp_path / "nope.qcow2"))
    daemon.cli("define", str(path)).ok()
    result = daemon.cli("start", "m1")
    assert result.rc == 1
    assert "Cannot access storage file" in result.err and "nope.qcow2" in result.err
    assert daemon.state("m1") == "shut off"
    assert not daemon.qemu_pids()


def test_verbs_on_unknown_domain(daemon: Daemon) -> None:
    for verb in (
        "start",
        "shutdown",
        "destroy",
        "dominfo",
        "dumpxml",
        "undefine",
        "autostart",
        "suspend",
        "domstate",
        "console",
        "reboot",
        "reset",
        "resume",
        "domid",
        "vncdisplay",
    ):
        result = daemon.cli(verb, "no-such")
        assert result.rc == 1, verb
        assert result.err == "error: failed to get domain 'no-such'\n", (verb, result.err)


def test_snapshot_verbs_on_unknown_domain(daemon: Daemon) -> None:
    """The snapshot verbs that make no lookup call of their own (the action finds the domain) still
    give virsh's error, with --current too."""
    for argv in (
        ("snapshot-list", "no-such"),
        ("snapshot-list", "no-such", "--tree", "--current"),
        ("snapshot-create-as", "no-such", "s1"),
        ("snapshot-create", "no-such"),
        ("snapshot-revert", "no-such", "s1"),
        ("snapshot-revert", "no-such", "--current"),
        ("snapshot-delete", "no-such", "s1"),
        ("snapshot-delete", "no-such", "--current"),
    ):
        result = daemon.cli(*argv)
        assert (result.rc, result.err) == (1, "error: failed to get domain 'no-such'\n"), argv


def test_missing_file_and_bad_usage(daemon: Daemon) -> None:
    result = daemon.cli("define", "/nonexistent.xml")
    assert result.rc == 1 and "Failed to open file '/nonexistent.xml'" in result.err
    result = daemon.cli("start")
    assert result.rc == 1 and result.err.startswith("error: command 'start' requires")
    result = daemon.cli("list", "--bogus")
    assert result.rc == 1 and "--bogus" in result.err
    result = daemon.cli("frobnicate")
    assert result.rc == 1 and result.err == "error: unknown command: 'frobnicate'\n"


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    d = Daemon(root=tmp_path)
    result = d.cli("list")
    assert result.rc == 1
    assert "Failed to connect socket" in result.err and "is pyvirtd running?" in result.err


def test_hostile_api_requests(daemon: Daemon) -> None:
    import socket

    def raw(payload: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(daemon.socket))
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            return sock.recv(65536)

    host = b"Host: pyvirtd\r\n"
    assert raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET /v1/domains HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")  # HTTP/1.1 needs Host
    too_big = b"POST /v1/domains HTTP/1.1\r\n" + host + b"Content-Length: 999999999\r\n\r\n"
    assert raw(too_big).startswith(b"HTTP/1.1 413")
    bad_json = b"POST /v1/domains HTTP/1.1\r\n" + host + b"Content-Length: 5\r\n\r\n{{{{{"
    assert raw(bad_json).startswith(b"HTTP/1.1 400")
    assert raw(b"GET /v1/nothing HTTP/1.1\r\n" + host + b"\r\n").startswith(b"HTTP/1.1 404")
    # The daemon still serves.
    daemon.cli("list").ok()

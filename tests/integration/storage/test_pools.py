"""Storage pools through a real pyvirtd and the CLI: virsh 9.0 output, default pool, restarts, bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.daemon import Daemon


def etc(daemon: Daemon) -> Path:
    return daemon.root / "etc/pyvirt/storage"


def test_default_pool_on_first_start_and_after_restart(daemon: Daemon) -> None:
    out = daemon.cli("pool-list").ok().out
    assert out == (
        " Name      State    Autostart\n-------------------------------\n default   active   yes\n\n"
    )
    details = daemon.cli("pool-list", "--all", "--details").ok().out.splitlines()
    assert details[0] == " Name      State     Autostart   Persistent   Capacity     Allocation   Available"
    assert re.fullmatch(
        r" default   running   yes         yes          [\d.]+ \w+B(\s+[\d.]+ \w*B){2}", details[2]
    )
    info = daemon.cli("pool-info", "default").ok().out
    assert re.fullmatch(
        r"Name:           default\nUUID:           [0-9a-f-]{36}\nState:          running\n"
        r"Persistent:     yes\nAutostart:      yes\nCapacity:       [\d.]+ \w+\n"
        r"Allocation:     [\d.]+ \w+\nAvailable:      [\d.]+ \w+\n\n",
        info,
    ), info
    st = os.statvfs(daemon.pool_dir)
    byte_info = daemon.cli("pool-info", "--bytes", "default").ok().out
    assert f"Capacity:       {st.f_blocks * st.f_frsize}\n" in byte_info

    # libvirt's on-disk layout: the definition, an autostart link, a run-state file.
    config = (etc(daemon) / "default.xml").read_text()
    assert config.startswith("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.")
    assert f"<path>{daemon.pool_dir}</path>" in config
    assert os.readlink(etc(daemon) / "autostart/default.xml") == "../default.xml"
    assert (daemon.root / "run/pyvirt/storage/default.xml").exists()

    dump = daemon.cli("pool-dumpxml", "default").ok().out
    assert dump.startswith("<pool type='dir'>\n  <name>default</name>\n  <uuid>")
    assert "  <source>\n  </source>\n  <target>\n" in dump and "<permissions>\n      <mode>0" in dump
    uuid = re.search(r"<uuid>(.*)</uuid>", dump)
    assert uuid is not None

    daemon.cli("pool-autostart", "--disable", "default").ok()
    daemon.restart()
    assert daemon.cli("pool-list", "--all").ok().out.splitlines()[2] == " default   active   no"
    assert uuid.group(1) in daemon.cli("pool-dumpxml", uuid.group(1)).ok().out

    # Once undefined, a restart does not bring it back.
    daemon.cli("pool-destroy", "default").ok()
    daemon.cli("pool-undefine", "default").ok()
    daemon.restart()
    assert "default" not in daemon.cli("pool-list", "--all").ok().out
    assert daemon.pool_dir.is_dir()


def test_every_pool_verb(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "p2" / "deeper"
    assert (
        daemon.cli("pool-define-as", "p2", "dir", "--target", str(target)).ok().out == "Pool p2 defined\n\n"
    )
    printed = daemon.cli("pool-define-as", "p3", "dir", "-", "-", "-", "-", "/srv/p3", "--print-xml").ok().out
    assert "<host name='-'/>" in printed and "<path>/srv/p3</path>" in printed
    # --source-format: the pool XML's <source><format>, which a dir pool has no use for: refused by name
    # at define and at create, with nothing defined.
    printed = daemon.cli("pool-define-as", "p5", "dir", "--source-format", "ext4", "--print-xml").ok().out
    assert "<source>\n    <format type='ext4'/>\n  </source>" in printed, printed
    for verb in ("pool-define-as", "pool-create-as"):
        refused = daemon.cli(verb, "p5", "dir", "--target", str(tmp_path / "p5"), "--source-format", "ext4")
        assert refused.rc == 1 and "element 'source/format' is not supported" in refused.err, refused.err
    assert "p5" not in daemon.cli("pool-list", "--all").ok().out
    assert daemon.cli("pool-info", "p2").ok().out == (
        f"Name:           p2\nUUID:           {_uuid(daemon, 'p2')}\nState:          inactive\n"
        "Persistent:     yes\nAutostart:      no\n\n"
    )
    details = daemon.cli("pool-list", "--all", "--details").ok().out
    assert re.search(r"^ p2\s+inactive\s+no\s+yes\s+-\s+-\s+-\s*$", details, re.M), details
    assert daemon.cli("pool-list", "--inactive", "--name").ok().out == "p2                  \n\n"
    assert daemon.cli("pool-build", "p2").ok().out == "Pool p2 built\n\n"
    assert target.is_dir() and target.stat().st_mode & 0o777 == 0o711
    assert daemon.cli("pool-start", "p2").ok().out == "Pool p2 started\n\n"
    assert daemon.cli("pool-autostart", "p2").ok().out == "Pool p2 marked as autostarted\n\n"
    assert daemon.cli("pool-refresh", "p2").ok().out == "Pool p2 refreshed\n\n"
    listing = daemon.cli("pool-list", "--autostart").ok().out
    assert " p2        active   yes" in listing
    assert daemon.cli("pool-autostart", "p2", "--disable").ok().out == "Pool p2 unmarked as autostarted\n\n"
    inactive = daemon.cli("pool-dumpxml", "--inactive", "p2").ok().out
    assert "<capacity unit='bytes'>0</capacity>" in inactive and "<permissions>" not in inactive
    assert daemon.cli("pool-destroy", "p2").ok().out == "Pool p2 destroyed\n\n"
    assert daemon.cli("pool-undefine", "p2").ok().out == "Pool p2 has been undefined\n\n"
    assert not (etc(daemon) / "p2.xml").exists()

    # Defining from XML (the API under pool-define; cli.main's verb table has no 'pool-define' yet).
    conn = daemon.connect()
    xml = f"<pool type='dir'><name>p4</name><target><path>{tmp_path}</path></target></pool>"
    assert conn.define_pool(xml).name == "p4"
    conn.close()
    daemon.cli("pool-start", "p4").ok()
    daemon.restart()
    assert re.search(r"^ p4\s+active\s+no$", daemon.cli("pool-list").ok().out, re.M)


def _uuid(daemon: Daemon, name: str) -> str:
    match = re.search(r"<uuid>(.*)</uuid>", daemon.cli("pool-dumpxml", name).ok().out)
    assert match is not None
    return match.group(1)


def _fails(daemon: Daemon, *args: str) -> str:
    result = daemon.cli(*args)
    assert result.rc == 1, result
    assert result.out == ""
    assert result.err.startswith("error: "), result.err
    return result.err


def test_bad_pool_input(daemon: Daemon, tmp_path: Path) -> None:
    before = sorted(p.name for p in etc(daemon).iterdir())
    err = _fails(daemon, "pool-define-as", "p5", "dir")
    assert err == "error: Failed to define pool p5\nerror: XML error: missing storage pool target path\n"
    err = _fails(daemon, "pool-define-as", "default", "dir", "--target", str(tmp_path))
    assert "operation failed: pool 'default' already exists with uuid" in err
    err = _fails(daemon, "pool-define-as", "other", "dir", "--target", str(daemon.pool_dir))
    assert "Storage source conflict with pool: 'default'" in err
    assert "cannot contain '/'" in _fails(daemon, "pool-define-as", "a/b", "dir", "--target", str(tmp_path))
    assert "cannot start with '.'" in _fails(daemon, "pool-define-as", ".x", "dir", "--target", str(tmp_path))
    assert "storage pool type 'logical'" in _fails(
        daemon, "pool-define-as", "lv", "logical", "--target", "/x"
    )
    assert "absolute" in _fails(daemon, "pool-define-as", "rel", "dir", "--target", "relative/dir")
    assert sorted(p.name for p in etc(daemon).iterdir()) == before

    err = _fails(daemon, "pool-info", "nosuch")
    assert err == (
        "error: failed to get pool 'nosuch'\n"
        "error: Storage pool not found: no storage pool with matching name 'nosuch'\n"
    )
    err = _fails(daemon, "pool-start", "default")
    assert err == (
        "error: Failed to start pool default\n"
        "error: Requested operation is not valid: storage pool 'default' is already active\n"
    )
    err = _fails(daemon, "pool-undefine", "default")
    assert "storage pool 'default' is still active" in err

    missing = tmp_path / "missing"
    daemon.cli("pool-define-as", "gone", "dir", "--target", str(missing)).ok()
    err = _fails(daemon, "pool-start", "gone")
    assert err == (
        "error: Failed to start pool gone\n"
        f"error: cannot open directory '{missing}': No such file or directory\n"
    )
    assert not missing.exists()
    err = _fails(daemon, "pool-destroy", "gone")
    assert "storage pool 'gone' is not active" in err
    err = _fails(daemon, "vol-create-as", "gone", "x.img", "1M")
    assert err == (
        "error: Failed to create vol x.img\n"
        "error: Requested operation is not valid: storage pool 'gone' is not active\n"
    )
    assert _fails(daemon, "vol-list", "gone").startswith("error: Failed to list volumes\n")
    assert _fails(daemon, "-r", "pool-destroy", "default").count("read-only") == 1

"""``pool-create``, ``pool-create-as`` and ``pool-edit`` through a real pyvirtd: transient pools with
virsh 9.0's messages, across a daemon restart, and every refusal leaving no pool and no file behind."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.storage.volume_checks import fails
from tests.support.daemon import Daemon

UUID = "5b0e8f35-3f4c-4a7e-8a43-2f5d0c7e9b61"


def etc(daemon: Daemon) -> Path:
    return daemon.root / "etc/pyvirt/storage"


def state(daemon: Daemon) -> Path:
    return daemon.root / "run/pyvirt/storage"


def pool_file(tmp_path: Path, name: str, target: Path, uuid: str | None = None) -> Path:
    path = tmp_path / f"{name}.xml"
    uuid_xml = f"<uuid>{uuid}</uuid>" if uuid else ""
    path.write_text(
        f"<pool type='dir'><name>{name}</name>{uuid_xml}<target><path>{target}</path></target></pool>"
    )
    return path


def pool_names(daemon: Daemon) -> list[str]:
    return [line.split()[0] for line in daemon.cli("pool-list", "--all").ok().out.splitlines()[2:-1]]


def test_pool_create_makes_a_transient_running_pool(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "t1"
    target.mkdir()
    xml = pool_file(tmp_path, "t1", target)
    assert daemon.cli("pool-create", str(xml)).ok().out == f"Pool t1 created from {xml}\n\n"
    info = daemon.cli("pool-info", "t1").ok().out
    assert "State:          running\nPersistent:     no\nAutostart:      no\nCapacity:" in info
    details = daemon.cli("pool-list", "--details", "--transient").ok().out
    assert re.search(r"^ t1\s+running\s+no\s+no\s+[\d.]+ \w+B", details, re.M), details
    assert "t1" not in daemon.cli("pool-list", "--persistent").ok().out
    assert not (etc(daemon) / "t1.xml").exists() and (state(daemon) / "t1.xml").exists()

    daemon.cli("vol-create-as", "t1", "v.img", "1M").ok()
    assert (target / "v.img").stat().st_size == 1 << 20

    daemon.restart()
    assert "Persistent:     no" in daemon.cli("pool-info", "t1").ok().out

    err = fails(daemon, "pool-autostart", "t1")
    assert (
        err
        == "error: failed to mark pool t1 as autostarted\nerror: internal error: pool has no config file\n"
    )
    err = fails(daemon, "pool-undefine", "t1")
    assert "storage pool 't1' is still active" in err

    assert daemon.cli("pool-destroy", "t1").ok().out == "Pool t1 destroyed\n\n"
    assert pool_names(daemon) == ["default"]
    assert not (state(daemon) / "t1.xml").exists()
    assert (target / "v.img").exists()  # destroying a pool never touches its volumes
    daemon.restart()
    assert pool_names(daemon) == ["default"]


def test_pool_create_as_and_build(daemon: Daemon, tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper"
    printed = daemon.cli("pool-create-as", "t2", "dir", "--target", str(target), "--print-xml").ok().out
    assert printed == (
        f"<pool type='dir'>\n  <name>t2</name>\n  <target>\n    <path>{target}</path>\n"
        "  </target>\n</pool>\n\n"
    )
    assert pool_names(daemon) == ["default"]

    err = fails(daemon, "pool-create-as", "t2", "dir", "--target", str(target))
    assert err == (
        "error: Failed to create pool t2\n"
        f"error: cannot open directory '{target}': No such file or directory\n"
    )
    assert pool_names(daemon) == ["default"] and not list(state(daemon).glob("t2.xml"))

    out = daemon.cli("pool-create-as", "t2", "dir", "--target", str(target), "--build").ok().out
    assert out == "Pool t2 created\n\n"
    assert target.is_dir() and target.stat().st_mode & 0o777 == 0o711
    assert "Persistent:     no" in daemon.cli("pool-info", "t2").ok().out

    other = tmp_path / "other"
    err = fails(daemon, "pool-create", str(pool_file(tmp_path, "t3", other)), "--overwrite", "--no-overwrite")
    assert err == "error: Options --overwrite and --no-overwrite are mutually exclusive\n"
    daemon.cli("pool-create", str(pool_file(tmp_path, "t3", other)), "--no-overwrite").ok()
    assert other.is_dir()


def test_pool_create_over_an_inactive_persistent_pool(daemon: Daemon, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    daemon.cli("pool-define", str(pool_file(tmp_path, "p", old, UUID))).ok()
    created = tmp_path / "live.xml"
    created.write_text(pool_file(tmp_path, "p", new, UUID).read_text())
    assert daemon.cli("pool-create", str(created)).ok().out == f"Pool p created from {created}\n\n"
    assert "Persistent:     yes" in daemon.cli("pool-info", "p").ok().out
    assert f"<path>{new}</path>" in daemon.cli("pool-dumpxml", "p").ok().out
    assert f"<path>{old}</path>" in daemon.cli("pool-dumpxml", "--inactive", "p").ok().out

    err = fails(daemon, "pool-create", str(created))
    assert err == (
        f"error: Failed to create pool from {created}\n"
        "error: Requested operation is not valid: pool is already active as 'p'\n"
    )
    daemon.restart()
    assert f"<path>{new}</path>" in daemon.cli("pool-dumpxml", "p").ok().out
    daemon.cli("pool-destroy", "p").ok()
    assert f"<path>{old}</path>" in daemon.cli("pool-dumpxml", "p").ok().out
    assert "State:          inactive\nPersistent:     yes" in daemon.cli("pool-info", "p").ok().out


def test_bad_pool_create_input(daemon: Daemon, tmp_path: Path) -> None:
    images = daemon.pool_dir
    before = sorted(p.name for p in etc(daemon).iterdir()), sorted(p.name for p in state(daemon).iterdir())

    bad = tmp_path / "bad.xml"
    bad.write_text("<pool type='dir'><name>b</name>")
    err = fails(daemon, "pool-create", str(bad))
    assert err.startswith(f"error: Failed to create pool from {bad}\nerror: malformed XML"), err
    missing = tmp_path / "missing.xml"
    err = fails(daemon, "pool-create", str(missing))
    assert err == f"error: Failed to open file '{missing}': No such file or directory\n"

    err = fails(daemon, "pool-create", str(pool_file(tmp_path, "default", tmp_path)))
    assert re.fullmatch(
        r"error: Failed to create pool from \S+\n"
        r"error: operation failed: pool 'default' already exists with uuid [0-9a-f-]{36}\n",
        err,
    ), err
    err = fails(daemon, "pool-create-as", "dup", "dir", "--target", str(images))
    assert err == (
        "error: Failed to create pool dup\n"
        "error: operation failed: Storage source conflict with pool: 'default'\n"
    )
    err = fails(daemon, "pool-create-as", "lv", "logical", "--target", str(tmp_path))
    assert "storage pool type 'logical'" in err
    err = fails(daemon, "pool-create-as", "nopath", "dir")
    assert err == "error: Failed to create pool nopath\nerror: XML error: missing storage pool target path\n"
    err = fails(daemon, "-r", "pool-create-as", "ro", "dir", "--target", str(tmp_path))
    assert "read-only" in err

    assert pool_names(daemon) == ["default"]
    after = sorted(p.name for p in etc(daemon).iterdir()), sorted(p.name for p in state(daemon).iterdir())
    assert after == before


def _editor(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_pool_edit(daemon: Daemon, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    daemon.cli("pool-define-as", "e1", "dir", "--target", str(old)).ok()
    move = _editor(tmp_path, "move.sh", f"sed -i 's#<path>{old}</path>#<path>{new}</path>#' \"$1\"")
    result = daemon.cli("pool-edit", "e1", env={"EDITOR": move}).ok()
    assert result.out == "Pool e1 XML configuration edited.\n\n"
    assert f"<path>{new}</path>" in daemon.cli("pool-dumpxml", "e1").ok().out
    assert f"<path>{new}</path>" in (etc(daemon) / "e1.xml").read_text()

    assert daemon.cli("pool-edit", "e1", env={"EDITOR": "true"}).ok().out == (
        "Pool e1 XML configuration not changed.\n\n"
    )
    broken = _editor(tmp_path, "broken.sh", "sed -i 's#<pool type=.dir.>#<pool>#' \"$1\"")
    result = daemon.cli("pool-edit", "e1", env={"EDITOR": broken})
    assert result.rc == 1 and "missing attribute 'type' of 'pool'" in result.err, result
    assert "error: Pool e1 XML configuration left unchanged" in result.err
    assert f"<path>{new}</path>" in (etc(daemon) / "e1.xml").read_text()

    err = fails(daemon, "pool-edit", "nosuch")
    assert err == (
        "error: failed to get pool 'nosuch'\n"
        "error: Storage pool not found: no storage pool with matching name 'nosuch'\n"
    )

    # Editing a transient pool defines it: it is persistent from then on.
    live = tmp_path / "live"
    live.mkdir()
    daemon.cli("pool-create-as", "t", "dir", "--target", str(live)).ok()
    touch = _editor(tmp_path, "touch.sh", "sed -i 's#<source>#<source>\\n#' \"$1\"")
    daemon.cli("pool-edit", "t", env={"EDITOR": touch}).ok()
    assert "Persistent:     yes" in daemon.cli("pool-info", "t").ok().out
    assert (etc(daemon) / "t.xml").exists()

"""domxml-to-native qemu-argv on a real daemon: the command line start would run, nothing started."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from tests.support.argv import json_values
from tests.support.daemon import Daemon
from tests.support.virtinstall import Oracle
from tests.unit.qemu.test_command import DATA_ROOT

CASE = DATA_ROOT / "domain" / "libvirt-pc-ide-floppy.xml"


def test_domxml_to_native_prints_the_argv_start_would_run(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.cli("domxml-to-native", "qemu-argv", str(CASE)).ok()
    argv = shlex.split(result.out)
    assert result.out.endswith("\n") and result.out.count("\n") == 1
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert argv[argv.index("-name") + 1] == "guest=dos-box,debug-threads=on"
    # the daemon's own paths, not the golden test's
    monitor = next(arg for arg in argv if arg.startswith("socket,id=charmonitor"))
    assert f"path={daemon.run_dir}/dos-box.monitor" in monitor
    assert argv[argv.index("-pidfile") + 1] == f"{daemon.run_dir}/dos-box.pid"
    assert "floppy,unit=0,drive=pyvirt-1-format,id=fdc0-0-0" in argv
    assert "isa-fdc.bootindexA=1" in argv
    golden = (CASE.with_suffix(".args")).read_text()
    for arg in argv:
        if str(daemon.root) not in arg:
            assert arg in golden, f"{arg!r} is not in the golden command line"
    assert "dos-box" not in daemon.cli("list", "--all").ok().out  # nothing defined or started
    assert not daemon.qemu_pids()


def test_domxml_to_native_refusals(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.cli("domxml-to-native", "xen-xm", str(CASE))
    assert result.rc == 1 and result.err.startswith("error: unsupported config type xen-xm"), result.err
    bad = tmp_path / "bad.xml"
    bad.write_text(CASE.read_text().replace("<controller type='fdc' index='0'/>", "<hub type='usb'/>"))
    result = daemon.cli("domxml-to-native", "qemu-argv", str(bad))
    assert result.rc == 1 and "element 'devices/hub' is not supported" in result.err, result.err


UUID = "0b6bdbf4-7f7e-4a8c-9a43-1c1f6e3b2a11"
PASSPHRASE = "native passphrase 42"


def _encrypted_domain(tmp_path: Path) -> tuple[Path, Path]:
    """A secret's XML (usage: the raw disk) and a domain on a raw LUKS and a LUKS qcow2 disk."""
    raw, qcow2 = tmp_path / "r.img", tmp_path / "q.qcow2"
    for disk in (raw, qcow2):
        disk.write_bytes(bytes(1 << 20))
    secret = tmp_path / "s.xml"
    secret.write_text(
        f"<secret ephemeral='no' private='yes'><uuid>{UUID}</uuid>"
        f"<usage type='volume'><volume>{raw}</volume></usage></secret>"
    )
    disks = (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{raw}'/>"
        f"<target dev='vda' bus='virtio'/><encryption format='luks'><secret type='passphrase' uuid='{UUID}'/>"
        "</encryption></disk>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{qcow2}'>"
        f"<encryption format='luks'><secret type='passphrase' usage='{raw}'/></encryption></source>"
        "<target dev='vdb' bus='virtio'/></disk>"
    )
    xml = tmp_path / "enc.xml"
    xml.write_text(
        "<domain type='qemu'><name>enc-native</name><memory unit='MiB'>128</memory>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        f"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{disks}</devices></domain>"
    )
    return secret, xml


def test_domxml_to_native_of_encrypted_disks(daemon: Daemon, tmp_path: Path) -> None:
    """As libvirt 9.0's: the master key object where start would write the key, each encrypted disk's
    passphrase a secret object encrypted under a key that exists nowhere; the passphrase never shown."""
    uuid, passphrase = UUID, PASSPHRASE
    secret, xml = _encrypted_domain(tmp_path)
    daemon.cli("secret-define", str(secret)).ok()
    nothing = daemon.cli("domxml-to-native", "qemu-argv", str(xml))
    assert nothing.rc == 1 and f"secret '{uuid}'" in nothing.err and "value" in nothing.err, nothing
    passfile = tmp_path / "pass"
    passfile.write_text(passphrase)
    daemon.cli("secret-set-value", uuid, "--file", str(passfile), "--plain").ok()
    outs = [daemon.cli("domxml-to-native", "qemu-argv", str(xml)).ok().out for _ in range(2)]
    argv = shlex.split(outs[0])
    objects = json_values(argv, "-object")
    key_file = daemon.run_dir / "enc-native.channels" / "master-key.aes"
    assert {"qom-type": "secret", "id": "masterKey0", "format": "raw", "file": str(key_file)} in objects
    assert not key_file.exists()  # nothing written: the key the secrets are sealed with is gone
    secrets = [o for o in objects if o["qom-type"] == "secret" and o["id"] != "masterKey0"]
    assert len(secrets) == 2 and all(
        o["keyid"] == "masterKey0" and o["format"] == "base64" and len(base64.b64decode(o["iv"])) == 16
        for o in secrets
    )
    nodes = json_values(argv, "-blockdev")
    ids = {o["id"] for o in secrets}
    assert any(n.get("driver") == "luks" and n.get("key-secret") in ids for n in nodes), nodes
    assert any(n.get("encrypt", {}).get("key-secret") in ids for n in nodes), nodes
    for out in outs:
        for form in (passphrase, base64.b64encode(passphrase.encode()).decode()):
            assert form not in out
    assert outs[0] != outs[1]  # a new throw-away key each time
    assert "enc-native" not in daemon.cli("list", "--all").ok().out


def test_encrypted_disks_agree_with_libvirt(daemon: Daemon, tmp_path: Path) -> None:
    """libvirt 9.0's domxml-to-native (a private libvirtd) is the oracle: the same objects with the same
    properties, the format nodes naming them the same way; neither shows the passphrase."""
    reason = Oracle.missing()
    if reason:
        pytest.skip(f"libvirt 9.0 is not the oracle here: {reason}")
    secret, xml = _encrypted_domain(tmp_path)
    value = base64.b64encode(PASSPHRASE.encode()).decode()
    daemon.cli("secret-define", str(secret)).ok()
    daemon.cli("secret-set-value", UUID, "--base64", value).ok()
    ours = shlex.split(daemon.cli("domxml-to-native", "qemu-argv", str(xml)).ok().out)
    with Oracle() as oracle:
        oracle.virsh("secret-define", str(secret))
        oracle._virsh("secret-set-value", UUID, value)  # virsh warns that an argument is insecure
        theirs = oracle.native_argv(xml)

    def shape(argv: list[str]) -> tuple[list[list[str]], list[tuple[str, ...]]]:
        secrets = sorted(sorted(o) for o in json_values(argv, "-object") if o["qom-type"] == "secret")
        named = {o["id"] for o in json_values(argv, "-object") if o["qom-type"] == "secret"}
        nodes = []
        for node in json_values(argv, "-blockdev"):
            key = node.get("key-secret") or node.get("encrypt", {}).get("key-secret")
            if key is not None:
                assert key in named
                nodes.append((node["driver"], *sorted(node.get("encrypt", {}))))
        return secrets, sorted(nodes)

    assert shape(ours) == shape(theirs)
    for argv in (ours, theirs):
        assert PASSPHRASE not in " ".join(argv) and value not in " ".join(argv)

"""A real TCG guest on LUKS-encrypted qcow2 disks (``<encryption format='luks'>`` with a secret), made by
``pyvirt img``: the guest reads what the host wrote and writes what the host (and qemu-img, where
present) reads back with the same secret; the passphrase is never in QEMU's command line, the daemon's
or the domain's log, the domain XML or anything the read-only socket gives; a wrong or missing secret
is a clear error and the domain stays shut off. An encrypted disk is hot-plugged and unplugged too."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pyvirt.errors import AccessDenied
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
PASSPHRASE = "luks passphrase of the data disk"
SECOND = "another passphrase, by usage"
MARKER = b"PYVIRT-LUKS-MARKER-0123456789"
WRITTEN = "GUEST-WROTE-THROUGH-LUKS"
UUID = "f52a81b2-424e-490c-823d-6bd4235bc572"


def _secret_xml(path: Path, uuid: str | None = None) -> str:
    ident = f"<uuid>{uuid}</uuid>" if uuid else ""
    return (
        f"<secret ephemeral='no' private='yes'>{ident}<description>LUKS key</description>"
        f"<usage type='volume'><volume>{path}</volume></usage></secret>"
    )


def _luks_opts(secret_id: str) -> str:
    # a short iter-time: QEMU derives the key under TCG-less but slow test machines too
    return f"encrypt.format=luks,encrypt.key-secret={secret_id},encrypt.iter-time=10"


def _set_secret(d: Daemon, tmp_path: Path, key: str, value: str) -> None:
    passfile = tmp_path / "pass"
    passfile.write_text(value)
    d.cli("secret-set-value", key, "--file", str(passfile), "--plain").ok()
    passfile.unlink()


def _read_with_secret(d: Daemon, tmp_path: Path, image: Path, passphrase: str, out: Path) -> bytes:
    """The image's first bytes as pyvirt img reads them with the passphrase."""
    pw = tmp_path / "pw"
    pw.write_text(passphrase)
    d.cli(
        "img", "convert", "--object", f"secret,id=k,file={pw}", "--image-opts",
        f"driver=qcow2,file.filename={image},encrypt.key-secret=k", "-O", "raw", str(out),
    ).ok()  # fmt: skip
    return out.read_bytes()[:64]


def test_guest_on_luks_qcow2_disks(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    pw = tmp_path / "pw1"
    pw.write_text(PASSPHRASE)
    # vdb: made empty by img create; the guest writes into it
    made = tmp_path / "made.qcow2"
    d.cli(
        "img", "create", "-f", "qcow2", "--object", f"secret,id=sec0,file={pw}", "-o", _luks_opts("sec0"),
        str(made), "16M",
    ).ok()  # fmt: skip
    # vdc: the host's data, converted into an encrypted qcow2 (another passphrase)
    raw = tmp_path / "data.raw"
    with open(raw, "wb") as fh:
        fh.truncate(16 << 20)
        fh.write(MARKER + b"\n")
    pw2 = tmp_path / "pw2"
    pw2.write_text(SECOND)
    converted = tmp_path / "converted.qcow2"
    d.cli(
        "img", "convert", "-f", "raw", "-O", "qcow2", "--object", f"secret,id=s2,file={pw2}",
        "-o", _luks_opts("s2"), str(raw), str(converted),
    ).ok()  # fmt: skip
    for path in (pw, pw2):
        path.unlink()
    info = d.cli("img", "info", str(made)).ok().out
    assert "encrypted: yes" in info and "format: luks" in info

    (tmp_path / "s1.xml").write_text(_secret_xml(made, UUID))
    (tmp_path / "s2.xml").write_text(_secret_xml(converted))
    d.cli("secret-define", str(tmp_path / "s1.xml")).ok()
    d.cli("secret-define", str(tmp_path / "s2.xml")).ok()
    _set_secret(d, tmp_path, UUID, PASSPHRASE)
    second = next(s["uuid"] for s in d.connect().list_secrets() if s["usage_id"] == str(converted))
    _set_secret(d, tmp_path, second, SECOND)

    # by uuid, as a child of <disk>; by usage, inside <source>
    disks = (
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{made}'/>"
        "<target dev='vdb' bus='virtio'/>"
        f"<encryption format='luks'><secret type='passphrase' uuid='{UUID}'/></encryption></disk>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{converted}'>"
        f"<encryption format='luks'><secret type='passphrase' usage='{converted}'/></encryption>"
        "</source><target dev='vdc' bus='virtio'/></disk>"
    )
    (tmp_path / "enc.xml").write_text(domain_xml("enc", extra_devices=disks))
    d.cli("define", str(tmp_path / "enc.xml")).ok()
    inactive = d.cli("dumpxml", "--inactive", "enc").ok().out
    assert f"<secret type='passphrase' uuid='{UUID}'/>" in inactive
    assert f"<source file='{converted}'>\n        <encryption format='luks'>" in inactive

    d.cli("start", "enc").ok()
    console = Console(d, "enc")
    console.expect(READY)
    # the guest boots from its initramfs: vdb and vdc are its first two disks, vda and vdb
    assert console.run("dd if=/dev/vdb bs=29 count=1 2>/dev/null") == MARKER.decode()
    console.run(f"printf {WRITTEN} > /dev/vda; sync")
    assert console.run("dd if=/dev/vda bs=24 count=1 2>/dev/null") == WRITTEN

    # the passphrases: nowhere outside the daemon and QEMU
    pid = d.qemu_pids()["enc"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b'"qom-type":"secret","id":"masterKey0"' in cmdline
    assert b'"encrypt":{"format":"luks","key-secret":"pyvirt-' in cmdline
    live = d.cli("dumpxml", "enc").ok().out
    ro_live = d.cli("-r", "dumpxml", "enc").ok().out
    logs = d.log.read_bytes() + (d.root / "var/log/pyvirt/qemu/enc.log").read_bytes()
    for phrase in (PASSPHRASE, SECOND):
        for form in (phrase.encode(), base64.b64encode(phrase.encode())):
            assert form not in cmdline and form not in logs
            assert form.decode() not in live and form.decode() not in ro_live
    for key in (UUID, second):
        refused = d.cli("-r", "secret-get-value", key)
        assert refused.rc == 1 and "read-only" in refused.err
        assert "secret is private" in d.cli("secret-get-value", key).err  # private: not even read-write
    with d.connect(readonly=True) as ro, pytest.raises(AccessDenied):
        ro.secret(UUID).value()
    master = d.run_dir / "enc.channels/master-key.aes"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600 and master.stat().st_size == 32
    assert master.stat().st_uid == Path(f"/proc/{pid}").stat().st_uid  # QEMU's user alone reads it
    # an encrypted disk hot-plugged: its secret object added over QMP, under the same master key
    hot_image = tmp_path / "hot.qcow2"
    (tmp_path / "pw3").write_text(PASSPHRASE)
    d.cli(
        "img", "create", "-f", "qcow2", "--object", f"secret,id=s3,file={tmp_path / 'pw3'}", "-o",
        _luks_opts("s3"), str(hot_image), "8M",
    ).ok()  # fmt: skip
    (tmp_path / "pw3").unlink()
    (tmp_path / "hot.xml").write_text(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{hot_image}'/>"
        f"<target dev='vdd' bus='virtio'/><encryption format='luks'>"
        f"<secret type='passphrase' uuid='{UUID}'/></encryption></disk>"
    )
    d.cli("attach-device", "enc", str(tmp_path / "hot.xml"), "--live").ok()
    console.run("for i in $(seq 60); do [ -e /dev/vdc ] && break; sleep 1; done", 90)
    console.run("printf HOT-PLUGGED > /dev/vdc; sync")
    assert console.run("dd if=/dev/vdc bs=11 count=1 2>/dev/null") == "HOT-PLUGGED"
    assert PASSPHRASE not in d.cli("dumpxml", "enc").ok().out
    d.cli("detach-device", "enc", str(tmp_path / "hot.xml"), "--live").ok()
    console.run("for i in $(seq 60); do [ -e /dev/vdc ] || break; sleep 1; done", 90)
    assert "vdd" not in d.cli("domblklist", "enc").ok().out
    # nor are new images made under or beside an encrypted one (they would not be encrypted)
    copy = d.cli("blockcopy", "enc", "vdb", "--dest", str(tmp_path / "copy.qcow2"), "--wait")
    assert copy.rc == 1 and "blockcopy of the encrypted disk 'vdb'" in copy.err, copy
    pull = d.cli("blockpull", "enc", "vdc")
    assert pull.rc == 1 and "blockpull of the encrypted disk 'vdc'" in pull.err, pull
    snap = d.cli("snapshot-create-as", "enc", "s1", "--disk-only")
    assert snap.rc == 1 and "external snapshot of the encrypted disk 'vdb'" in snap.err, snap
    assert not (tmp_path / "copy.qcow2").exists() and not list(tmp_path.glob("made.s1*"))
    assert d.cli("snapshot-list", "enc", "--name").ok().out.strip() == ""
    console.close()
    # a restarted daemon adopts the running guest, whose QEMU keeps its key
    d.restart()
    assert d.state("enc") == "running" and d.qemu_pids()["enc"] == pid
    assert Console(d, "enc").run("dd if=/dev/vdb bs=29 count=1 2>/dev/null") == MARKER.decode()
    d.cli("destroy", "enc").ok()
    assert not master.exists()

    # what the guest wrote, read back through the same secret: pyvirt img, and qemu-img as the oracle
    assert _read_with_secret(d, tmp_path, made, PASSPHRASE, tmp_path / "out.raw").startswith(WRITTEN.encode())
    assert _read_with_secret(d, tmp_path, hot_image, PASSPHRASE, tmp_path / "hot.raw").startswith(
        b"HOT-PLUGGED"
    )
    if shutil.which("qemu-img"):
        (tmp_path / "pw").write_text(PASSPHRASE)
        oracle_out = tmp_path / "q.raw"
        oracle = subprocess.run(
            [
                "qemu-img", "convert", "--object", f"secret,id=k,file={tmp_path / 'pw'}", "--image-opts",
                f"driver=qcow2,file.filename={made},encrypt.key-secret=k", "-O", "raw", str(oracle_out),
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert oracle.returncode == 0, oracle.stderr
        assert (tmp_path / "q.raw").read_bytes().startswith(WRITTEN.encode())

    # a wrong passphrase: QEMU's refusal, the domain stays shut off
    _set_secret(d, tmp_path, second, "not the passphrase")
    wrong = d.cli("start", "enc")
    assert wrong.rc == 1 and "Invalid password, cannot unlock any keyslot" in wrong.err, wrong
    assert d.state("enc") == "shut off"
    assert "not the passphrase" not in wrong.err and not (d.run_dir / "enc.channels").exists()
    # a secret that is gone: named, before QEMU is started
    d.cli("secret-undefine", second).ok()
    missing = d.cli("start", "enc")
    assert missing.rc == 1 and f"no secret with matching usage '{converted}'" in missing.err, missing
    assert d.state("enc") == "shut off"

    # a guest started without encrypted disks gets its master key when the first one is plugged
    (tmp_path / "plain.xml").write_text(domain_xml("plain"))
    d.cli("define", str(tmp_path / "plain.xml")).ok()
    d.cli("start", "plain").ok()
    plain = Console(d, "plain")
    plain.expect(READY)
    plain_key = d.run_dir / "plain.channels/master-key.aes"
    assert not plain_key.exists()
    d.cli("attach-device", "plain", str(tmp_path / "hot.xml"), "--live").ok()
    assert stat.S_IMODE(plain_key.stat().st_mode) == 0o600
    plain.run("for i in $(seq 60); do [ -e /dev/vda ] && break; sleep 1; done", 90)
    assert plain.run("dd if=/dev/vda bs=11 count=1 2>/dev/null") == "HOT-PLUGGED"
    plain_pid = d.qemu_pids()["plain"]
    assert PASSPHRASE.encode() not in Path(f"/proc/{plain_pid}/cmdline").read_bytes()
    plain.close()
    d.cli("destroy", "plain").ok()

"""Secrets end to end through the CLI and a real pyvirtd: secret-define/-dumpxml/-set-value/-get-value/
-list/-undefine/-event as virsh 9.0 has them, values root-only on disk (ephemeral ones never), never in
the daemon's log, and never on the read-only socket. virsh's embedded secret driver, where present,
is the oracle for the XML and the table."""

from __future__ import annotations

import base64
import os
import queue
import re
import shutil
import signal
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pyvirt.errors import AccessDenied
from tests.support.daemon import BIN, Daemon

PASSPHRASE = "correct horse battery staple"
UUID1 = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
UUID2 = "11111111-2222-3333-4444-555555555555"
UUID3 = "44444444-2222-3333-4444-555555555555"
SM4 = "<cipher name='sm4' size='128'/></encryption>"

PRIVATE = f"""<secret ephemeral='no' private='yes'>
  <description>Super secret &amp; name of my first puppy</description>
  <uuid>{UUID1}</uuid>
  <usage type='volume'>
     <volume>/var/lib/pyvirt/images/puppyname.img</volume>
  </usage>
</secret>
"""
PUBLIC = f"""<secret ephemeral='no' private='no'>
  <uuid>{UUID2.replace("-", "")}</uuid>
  <usage type='ceph'><name>ceph_example</name></usage>
</secret>
"""
EPHEMERAL = """<secret ephemeral='yes' private='no'>
  <uuid>33333333-2222-3333-4444-555555555555</uuid>
  <usage type='tls'><name>TLS_example</name></usage>
</secret>
"""


def secret_dir(d: Daemon) -> Path:
    return d.root / "etc/pyvirt/secrets"


def define(d: Daemon, tmp_path: Path, name: str, xml: str) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    out = d.cli("secret-define", "--validate", str(path)).ok().out
    assert out.startswith("Secret ") and out.endswith(" created\n\n")
    return out.split()[1]


def virsh_embedded(tmp_path: Path, *args: str) -> str:
    root = tmp_path / "virsh-root"
    root.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["virsh", "-c", f"secret:///embed?root={root}", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_define_dumpxml_list_undefine_as_virsh(daemon: Daemon, tmp_path: Path) -> None:
    assert define(daemon, tmp_path, "private", PRIVATE) == UUID1
    assert define(daemon, tmp_path, "public", PUBLIC) == UUID2
    unused = define(daemon, tmp_path, "unused", "<secret/>")
    dumped = daemon.cli("secret-dumpxml", UUID1).ok().out
    assert "<description>Super secret &amp; name of my first puppy</description>" in dumped
    listing = daemon.cli("secret-list").ok().out
    assert f" {UUID1}   volume /var/lib/pyvirt/images/puppyname.img\n" in listing
    assert f" {UUID2}   ceph ceph_example\n" in listing
    assert f" {unused}   Unused\n" in listing
    assert daemon.cli("secret-list", "--private").ok().out.count("-") > 0
    private_only = daemon.cli("secret-list", "--private").ok().out
    assert UUID1 in private_only and UUID2 not in private_only and unused not in private_only
    public_only = daemon.cli("secret-list", "--no-private").ok().out
    assert UUID1 not in public_only and UUID2 in public_only
    as_json = daemon.cli("--json", "secret-list", "--no-ephemeral").ok().out
    assert '"usage_type": "ceph"' in as_json
    if shutil.which("virsh"):  # the oracle: libvirt's embedded secret driver, same documents
        for xml, uuid in ((PRIVATE, UUID1), (PUBLIC, UUID2)):
            (tmp_path / "o.xml").write_text(xml)
            virsh_embedded(tmp_path, "secret-define", str(tmp_path / "o.xml"))
            assert daemon.cli("secret-dumpxml", uuid).ok().out == virsh_embedded(
                tmp_path, "secret-dumpxml", uuid
            )
        rows = daemon.cli("secret-list", "--private").ok().out  # the same secrets in both
        assert rows == virsh_embedded(tmp_path, "secret-list", "--private")
    # the files: root-only, the XML as dumpxml shows it
    folder = secret_dir(daemon)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / f"{UUID1}.xml").stat().st_mode) == 0o600
    assert daemon.cli("secret-undefine", UUID2).ok().out == f"Secret {UUID2} deleted\n\n"
    assert not (folder / f"{UUID2}.xml").exists()
    gone = daemon.cli("secret-dumpxml", UUID2)
    assert gone.rc == 1
    assert f"no secret with matching uuid '{UUID2}'" in gone.err
    assert "failed to get secret" in daemon.cli("secret-undefine", "nonsense").err


def test_define_refuses_what_libvirt_refuses(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "private", PRIVATE)
    for xml, words in (
        (PRIVATE.replace("private='yes'", "private='no'"), "cannot change private flag on existing secret"),
        (PRIVATE.replace(UUID1, UUID2), f"a secret with UUID {UUID1} already defined for use with"),
        ("<secret><usage type='volume'/></secret>", "volume usage specified, but volume path is missing"),
        ("<secret><usage type='nfs'><name>x</name></usage></secret>", "unknown secret usage type nfs"),
        ("<secret><uuid>12</uuid></secret>", "malformed uuid element"),
        ("<secret><bogus/></secret>", "element 'bogus' is not supported"),
    ):
        path = tmp_path / "bad.xml"
        path.write_text(xml)
        result = daemon.cli("secret-define", str(path))
        assert result.rc == 1 and f"Failed to set attributes from {path}" in result.err, result
        assert words in result.err


def test_values_set_read_and_kept_root_only(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "private", PRIVATE)
    define(daemon, tmp_path, "public", PUBLIC)
    plain = tmp_path / "pass"
    plain.write_text(PASSPHRASE)
    set_value = daemon.cli("secret-set-value", UUID2, "--file", str(plain), "--plain").ok()
    assert set_value.out == "Secret value set\n\n"
    assert daemon.cli("secret-get-value", UUID2, "--plain").ok().out == PASSPHRASE + "\n"
    encoded = base64.b64encode(PASSPHRASE.encode()).decode()
    assert daemon.cli("secret-get-value", UUID2).ok().out == encoded + "\n"
    # --file without --plain: the file holds base64 (as `base64` writes it, with its newline)
    (tmp_path / "b64").write_text(base64.b64encode(b"other\0bytes").decode() + "\n")
    daemon.cli("secret-set-value", UUID2, "--file", str(tmp_path / "b64")).ok()
    assert daemon.cli("secret-get-value", UUID2).ok().out == base64.b64encode(b"other\0bytes").decode() + "\n"
    bad = daemon.cli("secret-set-value", UUID2, "--file", str(plain))
    assert bad.rc == 1 and "not valid base64" in bad.err
    # --interactive: read from the terminal (here stdin), plain
    interactive = daemon.cli("secret-set-value", UUID2, "--interactive", input=PASSPHRASE + "\n").ok()
    assert interactive.out == "Enter new value for secret:Secret value set\n\n"
    assert daemon.cli("secret-get-value", "--plain", UUID2).ok().out == PASSPHRASE + "\n"
    # --base64 (or positional): accepted with virsh's warning
    warned = daemon.cli("secret-set-value", UUID2, "--base64", base64.b64encode(b"argv").decode()).ok()
    assert "Passing secret value as command-line argument is insecure!" in warned.err
    daemon.cli("secret-set-value", UUID2, base64.b64encode(b"positional").decode()).ok()
    assert daemon.cli("secret-get-value", "--plain", UUID2).ok().out == "positional\n"
    for args, words in (
        (("--file", str(plain), "--base64", "eA=="), "Options --file and --base64 are mutually exclusive"),
        (("--plain", "--base64", "eA=="), "Options --plain and --base64 are mutually exclusive"),
        (("--interactive", "--plain"), "Options --interactive and --plain are mutually exclusive"),
        (("--interactive", "--file", str(plain)), "Options --interactive and --file are mutually exclusive"),
        (("--interactive", "--base64", "eA=="), "Options --interactive and --base64 are mutually exclusive"),
        ((), "Input secret value is missing"),
    ):
        result = daemon.cli("secret-set-value", UUID2, *args)
        assert result.rc == 1 and words in result.err, result
    # a private secret's value is set, stored, and never given back
    daemon.cli("secret-set-value", UUID1, "--file", str(plain), "--plain").ok()
    refused = daemon.cli("secret-get-value", UUID1)
    assert refused.rc == 1 and "secret is private" in refused.err and PASSPHRASE not in refused.out
    value_file = secret_dir(daemon) / f"{UUID1}.base64"
    assert value_file.read_bytes() == base64.b64encode(PASSPHRASE.encode())
    assert stat.S_IMODE(value_file.stat().st_mode) == 0o600 and value_file.stat().st_uid == os.getuid()
    # kept across a restart; never in the daemon's log
    daemon.restart()
    assert daemon.cli("secret-get-value", "--plain", UUID2).ok().out == "positional\n"
    assert "has_value" in daemon.cli("--json", "secret-list").ok().out
    log = daemon.log.read_bytes()
    assert PASSPHRASE.encode() not in log and base64.b64encode(PASSPHRASE.encode()) not in log


def test_ephemeral_secrets_stay_in_memory(daemon: Daemon, tmp_path: Path) -> None:
    uuid = define(daemon, tmp_path, "ephemeral", EPHEMERAL)
    define(daemon, tmp_path, "public", PUBLIC)
    daemon.cli("secret-set-value", uuid, "--base64", base64.b64encode(PASSPHRASE.encode()).decode()).ok()
    assert daemon.cli("secret-get-value", "--plain", uuid).ok().out == PASSPHRASE + "\n"
    assert not list(secret_dir(daemon).glob(f"{uuid}*"))
    assert uuid in daemon.cli("secret-list", "--ephemeral").ok().out
    assert uuid not in daemon.cli("secret-list", "--no-ephemeral").ok().out
    assert UUID2 not in daemon.cli("secret-list", "--ephemeral").ok().out
    both = daemon.cli("secret-list", "--ephemeral", "--no-ephemeral").ok().out
    assert uuid in both and UUID2 in both
    # a persistent secret redefined ephemeral leaves the disk, its value kept in memory
    daemon.cli("secret-set-value", UUID2, "--base64", "c2VjcmV0").ok()
    define(daemon, tmp_path, "public-eph", PUBLIC.replace("ephemeral='no'", "ephemeral='yes'"))
    assert not list(secret_dir(daemon).glob(f"{UUID2}*"))
    assert daemon.cli("secret-get-value", "--plain", UUID2).ok().out == "secret\n"
    daemon.restart()
    listing = daemon.cli("secret-list").ok().out
    assert uuid not in listing and UUID2 not in listing


def test_read_only_connection_never_sees_or_changes_a_value(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "public", PUBLIC)
    daemon.cli("secret-set-value", UUID2, "--base64", base64.b64encode(PASSPHRASE.encode()).decode()).ok()
    assert UUID2 in daemon.cli("-r", "secret-list").ok().out
    assert PASSPHRASE not in daemon.cli("-r", "secret-dumpxml", UUID2).ok().out
    for args in (
        ("secret-get-value", UUID2),
        ("secret-set-value", UUID2, "--base64", "eA=="),
        ("secret-undefine", UUID2),
        ("secret-define", str(tmp_path / "public.xml")),
    ):
        result = daemon.cli("-r", *args)
        assert result.rc == 1 and "read-only" in result.err, (args, result)
        assert PASSPHRASE not in result.out + result.err
    with daemon.connect(readonly=True) as ro, pytest.raises(AccessDenied):
        ro.secret(UUID2).value()
    assert daemon.cli("secret-get-value", "--plain", UUID2).ok().out == PASSPHRASE + "\n"


def test_dumpxml_xpath_and_wrap_refused(daemon: Daemon, tmp_path: Path) -> None:
    define(daemon, tmp_path, "public", PUBLIC)
    for args in (("--xpath", "//uuid"), ("--wrap",)):
        result = daemon.cli("secret-dumpxml", UUID2, *args)
        assert result.rc == 1 and f"{args[0]}: pyvirt prints the whole document" in result.err


def _watch(d: Daemon, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``pyvirt secret-event ARGS`` running, its output lines arriving in the queue."""
    proc = subprocess.Popen(
        # SIGINT taken even where the tests run as a shell's background job (tests/support/events.py)
        ["env", "--default-signal=INT", str(BIN / "pyvirt"), "secret-event", *args],
        env=d.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _until_seen(lines: queue.Queue[str], act: Callable[[], None]) -> str:
    """Repeat ``act`` until the watcher prints a line (it may subscribe after the first ones)."""
    for _ in range(240):
        act()
        try:
            return lines.get(timeout=0.5)
        except queue.Empty:
            continue
    raise AssertionError("the watcher printed nothing")


def test_secret_events(daemon: Daemon, tmp_path: Path) -> None:
    listed = daemon.cli("secret-event", "--list").ok().out
    assert listed == "lifecycle\nvalue-changed\n\n"
    assert "either --list or --event <type> is required" in daemon.cli("secret-event").err
    assert "unknown event type bogus" in daemon.cli("secret-event", "--event", "bogus").err
    define(daemon, tmp_path, "public", PUBLIC)
    define(daemon, tmp_path, "other", PRIVATE)
    # value-changed of one secret (--secret), one-shot: the other secret's changes are not its
    changed, changed_lines = _watch(daemon, "--event", "value-changed", "--secret", UUID2, "--timeout", "300")

    def set_both() -> None:
        daemon.cli("secret-set-value", UUID1, "--base64", "eA==").ok()
        daemon.cli("secret-set-value", UUID2, "--base64", "eQ==").ok()

    assert _until_seen(changed_lines, set_both) == f"event 'value-changed' for secret {UUID2}\n"
    assert changed.wait(60) == 0
    assert "".join(iter(changed_lines.get, "\n")) == "events received: 1\n"
    # lifecycle, looping, with timestamps, until interrupted
    lifecycle, lines = _watch(daemon, "--event", "lifecycle", "--loop", "--timestamp")

    def redefine() -> None:
        daemon.cli("secret-undefine", UUID1).ok()
        daemon.cli("secret-set-value", UUID2, "--base64", "eQ==").ok()  # not a lifecycle event
        define(daemon, tmp_path, "private", PRIVATE)

    first = _until_seen(lines, redefine)
    redefine()
    second = lines.get(timeout=60)
    for line in (first, second):
        assert re.fullmatch(
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}}\+0000: event 'lifecycle' for secret {UUID1}: "
            r"(Defined|Undefined)\n",
            line,
        ), line
    assert {first.split()[-1], second.split()[-1]} == {"Defined", "Undefined"}
    lifecycle.send_signal(signal.SIGINT)
    assert lifecycle.wait(60) == 0
    rest = "".join(iter(lambda: lines.get(timeout=10), "\n"))
    assert "event loop interrupted\nevents received: " in rest
    quiet = daemon.cli("secret-event", "--event", "lifecycle", "--timeout", "1")
    assert quiet.rc == 1 and quiet.out == "event loop timed out\nevents received: 0\n\n"


def test_vol_create_makes_a_luks_qcow2_with_the_secret(daemon: Daemon, tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    daemon.cli("pool-create-as", "encp", "dir", "--target", str(folder), "--build").ok()
    define(daemon, tmp_path, "public", PUBLIC)
    daemon.cli("secret-set-value", UUID2, "--base64", base64.b64encode(PASSPHRASE.encode()).decode()).ok()
    enc = f"<encryption format='luks'><secret type='passphrase' uuid='{UUID2}'/></encryption>"
    vol = tmp_path / "vol.xml"
    vol.write_text(
        f"<volume><name>enc.qcow2</name><capacity unit='M'>8</capacity>"
        f"<target><format type='qcow2'/>{enc}</target></volume>"
    )
    daemon.cli("vol-create", "encp", str(vol)).ok()
    image = folder / "enc.qcow2"
    info = daemon.cli("img", "info", str(image)).ok().out
    assert "encrypted: yes" in info and "format: luks" in info
    # vol-dumpxml as libvirt 9.0: the secret it was made with until the pool is refreshed, then the
    # secret whose usage is the volume's path, once there is one
    dumped = daemon.cli("vol-dumpxml", "--pool", "encp", "enc.qcow2").ok().out
    assert f"<encryption format='luks'>\n      <secret type='passphrase' uuid='{UUID2}'/>" in dumped
    daemon.cli("pool-refresh", "encp").ok()
    dumped = daemon.cli("vol-dumpxml", "--pool", "encp", "enc.qcow2").ok().out
    assert "    </timestamps>\n    <encryption format='luks'>\n    </encryption>\n    <compat>" in dumped
    volume_secret = define(
        daemon,
        tmp_path,
        "vs",
        PRIVATE.replace(UUID1, UUID3).replace("/var/lib/pyvirt/images/puppyname.img", str(image)),
    )
    dumped = daemon.cli("vol-dumpxml", "--pool", "encp", "enc.qcow2").ok().out
    assert f"<encryption format='luks'>\n      <secret type='passphrase' uuid='{volume_secret}'/>" in dumped
    (tmp_path / "pw").write_text(PASSPHRASE)
    opened = daemon.cli(
        "img", "convert", "--object", f"secret,id=k,file={tmp_path / 'pw'}", "--image-opts",
        f"driver=qcow2,file.filename={image},encrypt.key-secret=k", "-O", "raw", str(tmp_path / "plain.raw"),
    )  # fmt: skip
    assert opened.ok() and (tmp_path / "plain.raw").stat().st_size == 8 << 20
    if shutil.which("qemu-img"):  # the oracle opens it with the same passphrase, and refuses another
        for phrase, ok in ((PASSPHRASE, True), ("wrong", False)):
            (tmp_path / "pw").write_text(phrase)
            proc = subprocess.run(
                [
                    "qemu-img", "check", "--object", f"secret,id=k,file={tmp_path / 'pw'}", "--image-opts",
                    f"driver=qcow2,file.filename={image},encrypt.key-secret=k",
                ],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert (proc.returncode == 0) is ok, proc.stderr
    # what is refused, by name, leaving no file
    for xml, words in (
        (
            f"<volume><name>r</name><capacity>1048576</capacity><target>"
            f"{enc.replace('</encryption>', SM4)}</target>"
            "</volume>",
            "Parameter 'cipher-alg' does not accept value 'sm4-128'",
        ),
        (
            f"<volume><name>m</name><capacity>1048576</capacity><target><format type='qcow2'/>"
            f"{enc.replace(UUID2, UUID1)}</target></volume>",
            f"no secret with matching uuid '{UUID1}'",
        ),
    ):
        vol.write_text(xml)
        result = daemon.cli("vol-create", "encp", str(vol))
        assert result.rc == 1 and words in result.err, result
    assert sorted(p.name for p in folder.iterdir()) == ["enc.qcow2"]
    # vol-create-from with <encryption>: as libvirt, the copy is encrypted (the input read with its secret,
    # found by the volume's path since the refresh)
    value = base64.b64encode(PASSPHRASE.encode()).decode()
    daemon.cli("secret-set-value", volume_secret, "--base64", value).ok()
    vol.write_text(f"<volume><name>c</name><target><format type='qcow2'/>{enc}</target></volume>")
    daemon.cli("vol-create-from", "encp", str(vol), "enc.qcow2", "--inputpool", "encp").ok()
    (tmp_path / "pw").write_text(PASSPHRASE)
    for name in ("enc.qcow2", "c"):
        daemon.cli(
            "img", "convert", "--object", f"secret,id=k,file={tmp_path / 'pw'}", "--image-opts",
            f"driver=qcow2,file.filename={folder / name},encrypt.key-secret=k", "-O", "raw",
            str(tmp_path / f"{name}.raw"),
        ).ok()  # fmt: skip
    assert (tmp_path / "c.raw").read_bytes() == (tmp_path / "enc.qcow2.raw").read_bytes()
    assert b"LUKS" in (folder / "c").read_bytes()[: 1 << 20]

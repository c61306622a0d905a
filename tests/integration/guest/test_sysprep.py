"""pyvirt sysprep on real disks: each operation removes exactly what it says, checked with libguestfs.

Launches (each 20-40 s under TCG): default sysprep of the Debian tree with --hostname/--root-password/
--ssh-inject, an --operations run on the RHEL tree, a --dry-run; both results are then read on the
host (debugfs), without a launch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from pyvirt.cli.guest import sysprep_main
from pyvirt.guest.appliance import Disk
from pyvirt.guest.customize import Hostname
from pyvirt.guest.sysprep import parse_operations, sysprep
from tests.integration.guest.disks import OLD_SHADOW_HASH, diff, overlay, snapshot_disk

pytestmark = pytest.mark.slow

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPyvirtTestKey test@pyvirt"
PASSWORD = "s3cret-Pa55"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def results(base_disks: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    deb_base, rhel_base, deb_before, rhel_before = base_disks
    tmp = tmp_path_factory.mktemp("sysprep")
    deb = overlay(deb_base, tmp / "deb.qcow2")
    rhel = overlay(rhel_base, tmp / "rhel.qcow2")
    dry = overlay(deb_base, tmp / "dry.qcow2")
    key_file = tmp / "key.pub"
    key_file.write_text(KEY + "\n")

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = sysprep_main(
            ["--json", "--format", "qcow2", "-a", str(deb), "--hostname", "web01.example.org",
             "--root-password", f"password:{PASSWORD}", "--ssh-inject", f"root:file:{key_file}"]
        )  # fmt: skip
    assert status == 0
    sysprep(
        [Disk(str(rhel))],
        operations=parse_operations("defaults,-logfiles"),
        steps=[Hostname("rhel01")],
        quiet=True,
    )
    dry_before = (_sha(dry), _sha(deb_base))
    dry_out, dry_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(dry_out), contextlib.redirect_stderr(dry_err):
        assert sysprep_main(["-q", "--dry-run", "-a", str(dry)]) == 0  # -q: no progress on stderr
    assert dry_err.getvalue() == ""
    dry_changes = [line.removeprefix("would ") for line in dry_out.getvalue().splitlines()]
    dry_after = (_sha(dry), _sha(deb_base))

    deb_after = snapshot_disk(deb, root=2, boot=1)
    rhel_after = snapshot_disk(rhel, root=1)
    return {
        "deb": diff(deb_before, deb_after),
        "deb_after": deb_after,
        "rhel": diff(rhel_before, rhel_after),
        "rhel_after": rhel_after,
        "dry": (dry_before, dry_after, dry_changes),
        "json": json.loads(out.getvalue()),
    }


DEBIAN_REMOVED = {
    "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub",
    "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub",  # ssh-hostkeys
    "/etc/udev/rules.d/70-persistent-net.rules",  # udev-persistent-net
    "/var/lib/dhcp/dhclient.ens3.leases",  # dhcp-client-state
    "/var/log/syslog", "/var/log/dpkg.log", "/var/log/wtmp", "/var/log/cloud-init.log",
    "/var/log/apt/history.log", "/var/log/apt/term.log",
    "/var/log/journal/0123abcd", "/var/log/journal/0123abcd/system.journal",  # logfiles
    "/root/.bash_history", "/home/alice/.bash_history",  # bash-history
    "/tmp/x", "/tmp/.hidden", "/var/tmp/y", "/var/tmp/sub", "/var/tmp/sub/z",  # tmp-files
    "/var/cache/apt/archives/foo_1.0_amd64.deb", "/var/cache/apt/archives/lock",  # package-manager-cache
    "/var/crash/x",  # crash-data
    "/var/mail/root",  # mail-spool
    "/etc/passwd-", "/etc/shadow-",  # passwd-backups
}  # fmt: skip


def test_default_operations_remove_exactly_their_files(results: dict[str, Any]) -> None:
    removed, added, changed = results["deb"]
    assert removed == DEBIAN_REMOVED
    # machine-id (emptied), customize (hostname, hosts, shadow, authorized_keys).
    assert changed == {
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/shadow",
    }
    assert added == {"/root/.ssh", "/root/.ssh/authorized_keys"}
    after = results["deb_after"]
    assert after["/etc/machine-id"][2] == ""
    for kept in ("/var/log/README", "/home/alice/notes.txt", "/etc/udev/rules.d/99-local.rules",
                 "/etc/ssh/sshd_config", "/var/cache/apt/archives/partial", "/var/cache/apt/pkgcache.bin",
                 "/var/lib/dhcp", "/tmp", "/var/tmp", "/boot/grub/grub.cfg"):  # fmt: skip
        assert kept in after
    assert after["/tmp"][1] == 0o1777


def test_hostname_password_and_ssh_key(results: dict[str, Any]) -> None:
    after = results["deb_after"]
    assert after["/etc/hostname"][2] == "web01.example.org\n"
    assert "127.0.1.1\tweb01.example.org web01" in after["/etc/hosts"][2]
    root_line = next(line for line in after["/etc/shadow"][2].splitlines() if line.startswith("root:"))
    new_hash = root_line.split(":")[1]
    assert new_hash != OLD_SHADOW_HASH and new_hash.startswith("$6$")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    assert crypt.crypt(PASSWORD, new_hash) == new_hash
    assert crypt.crypt("wrong", new_hash) != new_hash
    assert after["/etc/shadow"][1] == 0o640
    assert after["/root/.ssh/authorized_keys"][2] == KEY + "\n"
    assert after["/root/.ssh/authorized_keys"][1] == 0o600
    assert after["/root/.ssh"][1] == 0o700


def test_operations_selection_on_rhel_tree(results: dict[str, Any]) -> None:
    removed, added, changed = results["rhel"]
    after = results["rhel_after"]
    assert "/var/log/messages" in after and "/var/log/dnf.log" in after  # logfiles was deselected
    assert "/var/cache/dnf/baseos-1234/packages/bash-5.1.rpm" in removed  # dnf on RHEL 9
    assert "/var/lib/dhclient/dhclient-eth0.leases" in removed
    assert added == {"/.autorelabel"}  # --hostname wrote files on an SELinux-enforcing guest
    assert after["/etc/hostname"][2] == "rhel01\n"
    ifcfg = after["/etc/sysconfig/network-scripts/ifcfg-eth0"][2]
    assert "HWADDR=" not in ifcfg and "UUID=" not in ifcfg and "DHCP_HOSTNAME" not in ifcfg
    assert "DEVICE=eth0" in ifcfg and "BOOTPROTO=dhcp" in ifcfg
    assert "HWADDR=" not in after["/etc/sysconfig/network-scripts/ifcfg-ens3"][2]
    assert {"/etc/machine-id", "/etc/sysconfig/network-scripts/ifcfg-eth0"} <= changed


def test_json_report(results: dict[str, Any]) -> None:
    """sysprep --json: stdout is the run as data (no progress, no notes outside it)."""
    report = results["json"]
    assert report["dry_run"] is False
    assert any(change.endswith(" /etc/hostname") for change in report["changes"]), report["changes"]


def test_dry_run_changes_nothing(results: dict[str, Any]) -> None:
    before, after, changes = results["dry"]
    assert before == after
    assert "remove /root/.bash_history" in changes and "truncate /etc/machine-id" in changes


def test_list_operations_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert sysprep_main(["--list-operations"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "machine-id * Remove the local machine ID" in lines
    assert 'ssh-userdir   Remove ".ssh" directories in the guest' in lines
    assert lines == sorted(lines)

"""Unit tests of the offline guest tools' pure parts: no appliance launch."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest

from pyvirt.errors import InvalidArgument, InvalidState, NotFound
from pyvirt.guest import customize as c
from pyvirt.guest import inspect as gi
from pyvirt.guest import passwords, prepare
from pyvirt.guest.appliance import probe_format
from pyvirt.guest.mount import parse_fs_mount, record_path
from pyvirt.guest.sysprep import OPERATIONS, default_operations, list_operations, parse_operations
from pyvirt.qemu.kvmprobe import kvm_usable

# kvmprobe


def test_kvm_missing_device(tmp_path: Path) -> None:
    usable, reason = kvm_usable(tmp_path / "kvm", tmp_path / "pvm")
    assert not usable and "does not exist" in reason


def test_kvm_unopenable_device(tmp_path: Path) -> None:
    usable, reason = kvm_usable(tmp_path, tmp_path / "pvm")  # a directory cannot be opened read-write
    assert not usable and reason.startswith("cannot open")


def test_kvm_pvm_is_unusable(tmp_path: Path) -> None:
    (tmp_path / "kvm_pvm").mkdir()
    usable, reason = kvm_usable(Path("/dev/null"), tmp_path / "kvm_pvm")
    assert (usable, reason) == (False, "paravirtual nested KVM (kvm_pvm) hangs ordinary guest kernels")


def test_kvm_usable(tmp_path: Path) -> None:
    assert kvm_usable(Path("/dev/null"), tmp_path / "kvm_pvm")[0]


# passwords


@pytest.mark.parametrize("password", ["", "x", "s3cret", "a" * 64, "b" * 65, "é" * 40])
@pytest.mark.parametrize("salt", ["abc", "0123456789abcdefXYZ"])
@pytest.mark.parametrize("rounds", [5000, 1000])
def test_sha512_crypt_matches_libcrypt(password: str, salt: str, rounds: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    mine = passwords.sha512_crypt(password, salt, rounds)
    assert crypt.crypt(password, mine) == mine


def test_password_selectors(tmp_path: Path) -> None:
    assert passwords.parse_password_selector("password:a:b") == passwords.PasswordSelector("password", "a:b")
    pw = tmp_path / "pw"
    pw.write_text("fromfile\nsecond\n")
    assert passwords.parse_password_selector(f"file:{pw}").password == "fromfile"
    assert len(passwords.parse_password_selector("random").resolve()) == 16
    assert passwords.shadow_hash(passwords.parse_password_selector("disabled"), "") == "*"
    with pytest.raises(InvalidArgument, match="invalid password selector"):
        passwords.parse_password_selector("plain")


def test_set_shadow_password() -> None:
    shadow = "root:old:1:0:99999:7:::\nbob:x:1:0:99999:7:::\n"
    out = passwords.set_shadow_password(shadow, "root", "$6$s$h", today=20000)
    assert out == "root:$6$s$h:20000:0:99999:7:::\nbob:x:1:0:99999:7:::\n"
    with pytest.raises(InvalidArgument, match="no entry"):
        passwords.set_shadow_password(shadow, "carol", "h")


# sysprep registry


def test_default_operations_cover_the_issue() -> None:
    wanted = {"machine-id", "ssh-hostkeys", "udev-persistent-net", "net-hwaddr", "dhcp-client-state",
              "logfiles", "bash-history", "tmp-files", "package-manager-cache", "crash-data", "mail-spool",
              "customize"}  # fmt: skip
    assert wanted <= default_operations()
    assert "ssh-userdir" in OPERATIONS and "ssh-userdir" not in default_operations()


def test_list_operations_format() -> None:
    lines = list_operations().splitlines()
    assert "machine-id * Remove the local machine ID" in lines
    assert 'ssh-userdir   Remove ".ssh" directories in the guest' in lines


def test_parse_operations() -> None:
    assert parse_operations("machine-id,logfiles") == {"machine-id", "logfiles"}
    assert parse_operations("defaults,-logfiles") == default_operations() - {"logfiles"}
    assert parse_operations("all") == set(OPERATIONS)
    assert parse_operations("-machine-id", {"machine-id", "utmp"}) == {"utmp"}
    with pytest.raises(InvalidArgument, match="unknown operation 'nope'"):
        parse_operations("nope")


# template preparation


def test_kernel_args_added_and_replaced() -> None:
    text = 'GRUB_CMDLINE_LINUX="quiet console=tty0 net.ifnames=1"\n#GRUB_TERMINAL=console\n'
    out = prepare.with_kernel_args(text).splitlines()
    assert out[0] == 'GRUB_CMDLINE_LINUX="quiet console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"'
    assert 'GRUB_TERMINAL="console serial"' in out and "#GRUB_TERMINAL=console" not in out
    assert sum(line.startswith("GRUB_SERIAL_COMMAND=") for line in out) == 1
    assert prepare.with_kernel_args("\n".join(out)) == "\n".join(out) + "\n"  # idempotent
    assert 'GRUB_CMDLINE_LINUX="console=ttyS0' in prepare.with_kernel_args("GRUB_TIMEOUT=1\n")


def test_selinux_disabled() -> None:
    assert prepare.selinux_disabled("SELINUX=enforcing\nSELINUXTYPE=targeted\n") == (
        "SELINUX=disabled\nSELINUXTYPE=targeted\n"
    )


def test_nic_stanzas_dropped_but_loopback_kept() -> None:
    text = "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n\n"
    text += "allow-hotplug ens3\niface ens3 inet dhcp\n"
    out = prepare._drop_nic_stanzas(text)
    assert "ens3" not in out and "iface lo inet loopback" in out and out.startswith("source")


def test_growroot_script_is_valid_sh(tmp_path: Path) -> None:
    script = tmp_path / "growroot"
    script.write_text(prepare.GROWROOT_SCRIPT)
    subprocess.run(["sh", "-n", str(script)], check=True)


# customize parsing


def test_ssh_inject_parsing(tmp_path: Path) -> None:
    key = tmp_path / "k.pub"
    key.write_text("ssh-ed25519 AAAA me\n")
    assert c.parse_ssh_inject(f"root:file:{key}") == c.SSHInject("root", "ssh-ed25519 AAAA me")
    assert c.parse_ssh_inject("bob:string:ssh-rsa B x") == c.SSHInject("bob", "ssh-rsa B x")
    with pytest.raises(InvalidArgument):
        c.parse_ssh_inject("root:url:http://x")


def test_hostname_and_hosts() -> None:
    assert c.validate_hostname("web-01.example.org") == "web-01.example.org"
    for bad in ("-x", "a_b", "a..b", "x" * 64):
        with pytest.raises(InvalidArgument):
            c.validate_hostname(bad)
    hosts = "127.0.0.1 localhost\n127.0.1.1 old\n10.0.0.5 old other\n"
    assert c._hosts_with(hosts, "old", "new.lan", "new", True) == (
        "127.0.0.1 localhost\n127.0.1.1\tnew.lan new\n10.0.0.5 new.lan other\n"
    )


def test_install_command_and_offline_refusal() -> None:
    assert c.install_command("dnf", ["cloud-utils-growpart"]) == "dnf -y install cloud-utils-growpart"
    with pytest.raises(InvalidArgument):
        c.install_command("apt", ["x; rm -rf /"])
    with pytest.raises(InvalidState, match="no network"):
        c.check_network([c.Install(("vim",))], network=False)


# inspection helpers


def test_os_release_and_families() -> None:
    fields = gi.parse_os_release('ID="rhel"\nVERSION_ID="9.2"\n# c\nPRETTY_NAME=\'RHEL 9\'\n')
    assert fields == {"ID": "rhel", "VERSION_ID": "9.2", "PRETTY_NAME": "RHEL 9"}
    assert gi.family_of("linux", "ubuntu") == "debian"
    assert gi.family_of("linux", "rocky") == "rhel"
    assert gi.family_of("windows", "windows") == "windows"
    assert gi.package_management_of("rhel", "centos", 7) == "yum"
    assert gi.package_management_of("rhel", "rhel", 9) == "dnf"


class FakeHandle:
    def __init__(self) -> None:
        self.uuids = {"1111": "/dev/sda2"}

    def findfs_uuid(self, uuid: str) -> str:
        if uuid not in self.uuids:
            raise RuntimeError("not found")
        return self.uuids[uuid]

    def findfs_label(self, label: str) -> str:
        raise RuntimeError("not found")

    def list_partitions(self) -> list[str]:
        return ["/dev/sda1", "/dev/sda2"]

    def list_devices(self) -> list[str]:
        return ["/dev/sda"]


def test_fstab_resolution() -> None:
    g: Any = FakeHandle()
    fstab = (
        "UUID=0000 / ext4 defaults 0 1\nUUID=1111 /boot ext4 defaults 0 2\n/dev/vda1 /srv xfs defaults 0 0\n"
    )
    fstab += "tmpfs /tmp tmpfs defaults 0 0\n/dev/vdb1 none swap sw 0 0\nLABEL=gone /opt ext4 nofail 0 0\n"
    assert gi._fstab_mountpoints(g, "/dev/sda1", fstab) == {
        "/": "/dev/sda1",
        "/boot": "/dev/sda2",
        "/srv": "/dev/sda1",
    }
    assert gi._fstab_mountpoints(g, "/dev/sda1", "LABEL=gone /opt ext4 defaults 0 0\n") is None


# appliance, domains, mount


def test_probe_format(tmp_path: Path) -> None:
    qcow = tmp_path / "a.qcow2"
    qcow.write_bytes(b"QFI\xfb" + bytes(100))
    assert probe_format(str(qcow)) == "qcow2"
    raw = tmp_path / "a.img"
    raw.write_bytes(bytes(1024 * 1024))
    assert probe_format(str(raw)) == "raw"
    text = tmp_path / "a.txt"
    text.write_text("hello\n")
    with pytest.raises(InvalidArgument, match="is not a disk image"):
        probe_format(str(text))
    with pytest.raises(NotFound, match="does not exist"):
        probe_format(str(tmp_path / "missing"))


def test_new_handle_forces_tcg_when_kvm_is_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("guestfs")
    from pyvirt.guest import appliance

    monkeypatch.delenv("LIBGUESTFS_BACKEND_SETTINGS", raising=False)
    monkeypatch.setattr(appliance, "kvm_usable", lambda: (False, "test"))
    g = appliance.new_handle()
    assert "force_tcg" in g.get_backend_settings()
    g.close()
    monkeypatch.setattr(appliance, "kvm_usable", lambda: (True, "test"))
    g = appliance.new_handle()
    assert "force_tcg" not in g.get_backend_settings()
    g.close()


def test_fs_mount_parsing(tmp_path: Path) -> None:
    assert parse_fs_mount("/dev/sda2") == parse_fs_mount("/dev/sda2:/")
    m = parse_fs_mount("/dev/sda1:/boot:noatime:ext4")
    assert (m.device, m.mountpoint, m.options, m.fstype) == ("/dev/sda1", "/boot", "noatime", "ext4")
    with pytest.raises(InvalidArgument):
        parse_fs_mount("/dev/sda1:boot")
    assert record_path(tmp_path) == record_path(str(tmp_path) + "/.")

"""pyvirtd.conf: every setting typed and checked, anything unknown refused by name and file, and the
example file in contrib/ in step with the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.daemon.config import ConfigError, DaemonConfig, load, parse, settings

CONTRIB = Path(__file__).resolve().parents[3] / "contrib/pyvirtd.conf"


def test_no_file_is_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.conf") == DaemonConfig()


def test_settings_are_read() -> None:
    config = parse(
        'log_level = 3\nmax_clients = 7\nunix_sock_group = "kvm"\n'
        'tls_allowed_dn_list = ["O=pyvirt,CN=admin", "O=pyvirt,CN=ops-*"]\nmax_backups = 0\n',
        "/etc/pyvirt/pyvirtd.conf",
    )
    assert config.log_level == 3 and config.max_clients == 7 and config.unix_sock_group == "kvm"
    assert config.tls_allowed_dn_list == ("O=pyvirt,CN=admin", "O=pyvirt,CN=ops-*")
    assert config.max_backups == 0
    assert DaemonConfig().user == DaemonConfig().group == "pyvirt-qemu"
    assert parse('user = "root"\ngroup = "root"\n', "/x").user == "root"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_client = 5", "/x/pyvirtd.conf: unknown setting 'max_client' (did you mean 'max_clients'?)"),
        ("frobnicate = 1", "/x/pyvirtd.conf: unknown setting 'frobnicate' (pyvirtd takes: log_level,"),
        ('max_clients = "none"', "/x/pyvirtd.conf: max_clients must be a whole number, not 'none'"),
        ("max_clients = 0", "/x/pyvirtd.conf: max_clients must be at least 1, not 0"),
        ("log_level = 5", "log_level must be 1 (debug), 2 (info), 3 (warning) or 4 (error), not 5"),
        ('unix_sock_rw_perms = "rw"', 'unix_sock_rw_perms must be an octal mode such as "0660"'),
        ("unix_sock_ro_perms = 666", 'unix_sock_ro_perms must be a "string", not 666'),
        ("tls_port = 70000", "tls_port must be a port number (1-65535), not 70000"),
        ('tls_allowed_dn_list = "CN=a"', 'tls_allowed_dn_list must be a list of "strings"'),
        ("listen_tls = 2", "listen_tls must be 0 or 1, not 2"),
        ("max_backups = -1", "max_backups must not be negative, not -1"),
        ('user = ""', "user must be a user or group name, not ''"),
        ('group = "-g0"', "group must be a user or group name, not '-g0'"),
        ("max_clients = ", "/x/pyvirtd.conf: expected a value at end of file"),
    ],
)
def test_bad_settings_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text + "\n", "/x/pyvirtd.conf")
    assert message in str(err.value)


def test_dn_allow_list_with_shell_wildcards() -> None:
    anyone = DaemonConfig()
    assert anyone.dn_allowed("O=pyvirt,CN=whoever")
    listed = DaemonConfig(tls_allowed_dn_list=("O=pyvirt,CN=admin", "O=pyvirt,CN=ops-?", "O=lab,CN=[ab]*"))
    assert listed.dn_allowed("O=pyvirt,CN=admin")
    assert listed.dn_allowed("O=pyvirt,CN=ops-1")
    assert listed.dn_allowed("O=lab,CN=bob")
    assert not listed.dn_allowed("O=pyvirt,CN=ops-12")
    assert not listed.dn_allowed("O=lab,CN=carol")
    assert not listed.dn_allowed("O=pyvirt,CN=Admin")  # case matters, as in libvirt
    assert not listed.dn_allowed("")
    assert not DaemonConfig(tls_allowed_dn_list=()).dn_allowed("O=pyvirt,CN=admin")


def test_tls_files_default_to_the_pki_dir() -> None:
    pki = Path("/etc/pki/pyvirt")
    assert DaemonConfig().tls_files(pki) == {
        "ca": pki / "cacert.pem",
        "cert": pki / "servercert.pem",
        "key": pki / "serverkey.pem",
    }
    other = DaemonConfig(ca_file="/srv/ca.pem", crl_file="/srv/crl.pem").tls_files(pki)
    assert other["ca"] == Path("/srv/ca.pem") and other["crl"] == Path("/srv/crl.pem")


def test_the_example_file_shows_every_setting_with_its_default() -> None:
    lines = CONTRIB.read_text().splitlines()
    shown = {ln[1:].split("=")[0].strip(): ln[1:] for ln in lines if ln.startswith("#") and " = " in ln}
    assert sorted(shown) == sorted(f.name for f in settings())
    # Uncommented, the file parses; every value but the allow-list's example is the default.
    config = parse("\n".join(line for name, line in shown.items() if name != "tls_allowed_dn_list"), "ex")
    assert config == DaemonConfig()
    assert parse(shown["tls_allowed_dn_list"], "ex").tls_allowed_dn_list

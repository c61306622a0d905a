"""swtpm's command lines (pyvirt.qemu.swtpm) as libvirt 9.0 gives them, the passphrase by descriptor;
the state found, and the daemon's local CA configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.qemu import swtpm

PATHS = swtpm.Paths(
    state=Path("/s/swtpm/U/tpm2"),
    log=Path("/l/d-swtpm.log"),
    run_dir=Path("/r/d.channels"),
    config=Path("/s/swtpm-config/swtpm_setup.conf"),
)


def test_setup_of_a_new_tpm_2_with_its_endorsement_key() -> None:
    argv = swtpm.setup_argv(PATHS, "2.0", "d:U", pwd_fd=7, pcr_banks=["sha1", "sha256"], incoming=False)
    assert argv == [
        *("swtpm_setup", "--config", "/s/swtpm-config/swtpm_setup.conf", "--tpm2"),
        *("--pwdfile-fd", "7", "--cipher", "aes-256-cbc"),
        *("--tpm-state", "/s/swtpm/U/tpm2", "--logfile", "/l/d-swtpm.log", "--vmid", "d:U"),
        *("--createek", "--create-ek-cert", "--create-platform-cert", "--lock-nvram"),
        *("--pcr-banks", "sha1,sha256", "--not-overwrite"),
    ]


def test_setup_for_a_restore_and_of_a_tpm_1_2() -> None:
    """A restore into a domain without state: a blank one, which the saved state overwrites."""
    argv = swtpm.setup_argv(PATHS, "1.2", "d:U", pwd_fd=None, pcr_banks=None, incoming=True)
    assert argv == [
        *("swtpm_setup", "--config", "/s/swtpm-config/swtpm_setup.conf"),
        *("--tpm-state", "/s/swtpm/U/tpm2", "--logfile", "/l/d-swtpm.log", "--overwrite"),
    ]


def test_reconfigure_of_the_pcr_banks() -> None:
    assert swtpm.reconfigure_argv(PATHS, ["sha512"], pwd_fd=5) == [
        *("swtpm_setup", "--config", "/s/swtpm-config/swtpm_setup.conf", "--tpm2"),
        *("--pwdfile-fd", "5", "--cipher", "aes-256-cbc"),
        *("--tpm-state", "/s/swtpm/U/tpm2", "--logfile", "/l/d-swtpm.log"),
        *("--pcr-banks", "sha512", "--reconfigure"),
    ]


@pytest.mark.parametrize(
    ("version", "key_fds", "tail"),
    [
        ("2.0", None, ["--terminate", "--tpm2"]),
        ("1.2", None, ["--terminate"]),
        (
            "2.0",
            (8, 9),
            [
                *("--terminate", "--tpm2", "--key", "pwdfd=8,mode=aes-256-cbc"),
                *("--migration-key", "pwdfd=9,mode=aes-256-cbc"),
            ],
        ),
    ],
)
def test_swtpm_socket(version: str, key_fds: tuple[int, int] | None, tail: list[str]) -> None:
    argv = swtpm.swtpm_argv(PATHS, version, key_fds=key_fds)
    assert argv[: -len(tail)] == [
        *("swtpm", "socket", "--ctrl", "type=unixio,path=/r/d.channels/swtpm.sock,mode=0600"),
        *("--tpmstate", "dir=/s/swtpm/U/tpm2,mode=0600", "--log", "file=/l/d-swtpm.log"),
        *("--pid", "file=/r/d.channels/swtpm.pid"),
    ]
    assert argv[-len(tail) :] == tail


def test_the_passphrase_goes_through_a_pipe() -> None:
    fd = swtpm.passphrase_pipe(b"secret words")
    try:
        assert os.read(fd, 100) == b"secret words"
        assert os.read(fd, 100) == b""  # the write end is closed: swtpm reads to the end
    finally:
        os.close(fd)


def test_state_found_and_ca_configuration(tmp_path: Path) -> None:
    assert not swtpm.has_state(tmp_path)
    (tmp_path / "tpm2-00.permall").write_bytes(b"x")
    assert swtpm.has_state(tmp_path)
    conf = swtpm.write_ca_config(tmp_path / "etc", tmp_path / "ca")
    assert f"create_certs_tool_config = {tmp_path}/etc/swtpm-localca.conf" in conf.read_text()
    assert f"statedir = {tmp_path}/ca\n" in (tmp_path / "etc/swtpm-localca.conf").read_text()

"""The man pages made from the command table: groff formats them without a warning, man renders
them, and they carry every command and option the table declares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvirt.cli.commands import COMMANDS
from pyvirt.cli.help import option_rows

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("man")
    subprocess.run([sys.executable, str(REPO / "scripts/make-man.py"), str(out)], check=True)
    return out


@pytest.mark.parametrize("page", ["man1/pyvirt.1", "man8/pyvirtd.8"])
def test_groff_formats_without_warnings(pages: Path, page: str) -> None:
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(pages / page)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


def rendered(path: Path) -> str:
    env = {**os.environ, "MANWIDTH": "2000", "MAN_KEEP_FORMATTING": "", "LC_ALL": "C.UTF-8"}
    out = subprocess.run(["man", "-l", str(path)], env=env, capture_output=True, text=True, check=True)
    return " ".join(out.stdout.replace("\u2010", "-").split())


def test_pyvirt_page_has_every_command_and_option(pages: Path) -> None:
    text = rendered(pages / "man1/pyvirt.1")
    for cmd in COMMANDS:
        if cmd.group is None:
            assert f" {cmd.name} " not in text.split("COMMANDS", 1)[1]
            continue
        for sub in cmd.sub or (cmd,):
            assert sub.summary in text, sub.name
            for spelled, help_text in option_rows(sub):
                assert f"{spelled} {help_text}" in text, (sub.name, spelled)


def test_pyvirtd_page_has_the_daemon_options(pages: Path) -> None:
    text = rendered(pages / "man8/pyvirtd.8")
    for option in ("--system", "--session", "--listen-tls [ADDR:]PORT", "--no-autostart", "--config CONFIG"):
        assert option in text


def test_pyvirtd_page_has_every_setting_of_pyvirtd_conf(pages: Path) -> None:
    from pyvirt.daemon.config import settings

    text = rendered(pages / "man8/pyvirtd.8")
    for field in settings():
        assert f"{field.name} = " in text, field.name
    assert 'unix_sock_rw_perms = "0600"' in text and "tls_allowed_dn_list = (unset)" in text


def test_setup_installed_the_current_pages(pages: Path) -> None:
    venv_man = Path(sys.executable).parent.parent / "share/man"
    for page in ("man1/pyvirt.1", "man8/pyvirtd.8"):
        assert (venv_man / page).read_text() == (pages / page).read_text(), f"run make man ({page})"

"""bash completion, run for real: bash sources the installed completion script, calls its
function with COMP_WORDS/COMP_CWORD set as readline would, and the names come from a real daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Daemon

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "contrib/bash-completion/pyvirt"
DATA = REPO / "tests/data"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


def bash_words(line: str) -> list[str]:
    """COMP_WORDS as readline makes them: words split at blanks, and at ``:`` and ``=`` (each of
    which is a word of its own: after ``qemu:`` the word under the cursor is ``:``)."""
    words: list[str] = []
    for word in line.split(" "):
        if not word:  # the line ends with a blank: a new, empty word
            words.append("")
            continue
        piece = ""
        for char in word:
            if char in ":=":
                words += [piece] if piece else []
                words.append(char)
                piece = ""
            else:
                piece += char
        words += [piece] if piece else []
    return words


def complete(daemon: Daemon, line: str, cwd: Path | None = None) -> list[str]:
    """COMPREPLY (sorted, as bash shows it) with the cursor at the end of ``line``."""
    words = bash_words(line)
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = (
        f"source '{SCRIPT}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n"
        "_pyvirt\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = {**daemon.env, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stderr == ""
    return sorted(line for line in out.stdout.splitlines() if line)


def test_setup_installed_the_script() -> None:
    installed = BIN.parent / "share/bash-completion/completions/pyvirt"
    assert installed.read_text() == SCRIPT.read_text()


def test_verbs_options_and_names_from_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    for name in ("web01", "web02", "db01"):
        xml = tmp_path / f"{name}.xml"
        xml.write_text((DATA / "domain/minimal.xml").read_text().replace("minimal", name).replace(
            "<uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>", ""))  # fmt: skip
        daemon.cli("define", str(xml)).ok()
    daemon.cli("net-define", str(DATA / "network/bridge.xml")).ok()
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    daemon.cli("pool-create-as", "scratch", "dir", "--target", str(pool_dir)).ok()
    daemon.cli("vol-create-as", "scratch", "disk-a.img", "1M").ok()
    daemon.cli("vol-create-as", "scratch", "disk-b.img", "1M").ok()

    assert complete(daemon, "pyvirt domi") == [
        "domid",
        "domif-getlink",
        "domif-setlink",
        "domifaddr",
        "domiflist",
        "domifstat",
        "domiftune",
        "dominfo",
    ]
    assert complete(daemon, "pyvirt start web") == ["web01", "web02"]
    assert complete(daemon, "pyvirt start --domain d") == ["db01"]
    assert complete(daemon, "pyvirt start web01 --p") == ["--paused"]
    assert complete(daemon, "pyvirt net-info ") == ["host-bridge"]
    assert complete(daemon, "pyvirt pool-info s") == ["scratch"]
    assert complete(daemon, "pyvirt vol-info --pool scratch disk") == ["disk-a.img", "disk-b.img"]
    assert complete(daemon, "pyvirt vol-info ") == [
        str(pool_dir / "disk-a.img"),
        str(pool_dir / "disk-b.img"),
    ]
    assert complete(daemon, "pyvirt img c") == ["check", "commit", "compare", "convert", "create"]
    assert complete(daemon, "pyvirt img info --out") == ["--output"]
    assert complete(daemon, "pyvirt sysprep -d db") == ["db01"]
    assert complete(daemon, "pyvirt help net-d") == [
        "net-define",
        "net-destroy",
        "net-dhcp-leases",
        "net-dumpxml",
    ]
    # bash cuts words at ':' and '=': the candidates are cut alike.
    assert complete(daemon, "pyvirt -c qemu:///s") == ["///session", "///system"]
    assert complete(daemon, "pyvirt --connect=qemu:") == [":///session", ":///system"]
    assert complete(daemon, f"pyvirt -c qemu+unix:///system?socket={daemon.socket} start web") == [
        "web01",
        "web02",
    ]
    # A file argument: bash completes the path.
    (tmp_path / "dom.xml").write_text("")
    assert complete(daemon, "pyvirt define do", cwd=tmp_path) == ["dom.xml"]
    # A daemon the -c names that is not there: nothing, and no error in the command line.
    assert complete(daemon, "pyvirt -c qemu+unix:///system?socket=/nonexistent start ") == []

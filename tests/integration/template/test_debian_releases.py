"""Every Debian release ``template build --os`` offers.

In ``make test`` (short, for every release): debootstrap knows the suite, Debian's archive serves it,
and the template's packages (TEMPLATE_PACKAGES) resolve there with all their dependencies
(``debootstrap --print-debs``: the Release file and package index, no package downloaded). The full
build and boot of debian-12 is test_template.py's.

The long form, ``make test-templates`` (a first debootstrap takes minutes per release, a Debian boot
under TCG several more): each release's template is built, then launched with ``--wait-ip`` on QEMU
user networking, where no pyvirt network leases an address: the address comes from the
qemu-guest-agent the template carries. Then, logged in on the serial console as the launch's --user
with its --password (cloud-init 20.4 of Debian 11 reads only the old form of chpasswd, 22.2 and later
the new one: the seed is written for the template's version): the hostname cloud-init set, the root
file system grown to the launch's --disk-size, cloud-init done, the --user-data merged in, the guest
agent active, the SSH key in the user's authorized_keys, sudo. ``PYVIRT_TEMPLATE_RELEASES`` picks
releases (``all``, or ``debian-11,debian-13``); unset, the long test is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.guest.debootstrap import RELEASES, TEMPLATE_PACKAGES
from tests.integration.template.test_template import CACHE, KEY, _login, _run
from tests.support.daemon import Console, Daemon, running_daemon

WANTED = os.environ.get("PYVIRT_TEMPLATE_RELEASES", "")
SELECTED = sorted(RELEASES) if WANTED == "all" else [r for r in WANTED.split(",") if r]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not all(shutil.which(t) for t in ("debootstrap", "sfdisk", "mkfs.ext4")),
        reason="template build needs root, debootstrap, sfdisk and mkfs.ext4",
    ),
]


def _archive_packages(lists: Path) -> set[str]:
    """The package names in the ``*_Packages`` index debootstrap fetched into ``lists``."""
    (index,) = lists.glob("*_main_binary-amd64_Packages")
    return set(re.findall(r"^Package: (\S+)$", index.read_text(errors="replace"), re.M))


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_release_resolves_from_the_archive(release: str, tmp_path: Path) -> None:
    rel = RELEASES[release]
    assert Path(f"/usr/share/debootstrap/scripts/{rel.suite}").is_file()
    argv = [
        "debootstrap", "--print-debs", "--keep-debootstrap-dir", "--variant=minbase",
        f"--include={','.join(TEMPLATE_PACKAGES)}", rel.suite, str(tmp_path / "root"), rel.mirror,
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The last line: what the tree would hold beyond the required base, the template's packages and
    # what they pull in. debootstrap lists an --include it cannot find without a word, so each name
    # is looked up in the archive's own index.
    debs = set(result.stdout.strip().splitlines()[-1].split())
    assert {"cloud-init", "qemu-guest-agent", "python3-cryptography", "grub-pc-bin"} <= debs, debs
    archive = _archive_packages(tmp_path / "root/var/lib/apt/lists")
    missing = (debs | set(TEMPLATE_PACKAGES)) - archive
    assert not missing, f"{rel.pretty}: {sorted(missing)} not in {rel.mirror} {rel.suite} main"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    with running_daemon(extra_env={"PYVIRT_TEMPLATE_CACHE": str(CACHE)}) as d:
        yield d


USER_DATA = """#cloud-config
write_files:
  - {path: /etc/pyvirt-user-data, content: "merged\\n"}
"""
PASSWORD = "pyvirt:test"  # a colon: the old chpasswd list form splits on the first one only


@pytest.mark.skipif(not SELECTED, reason="the long template test: make test-templates")
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("release", SELECTED)
def test_release_builds_launches_and_boots(daemon: Daemon, release: str, tmp_path: Path) -> None:
    started = time.monotonic()
    build = daemon.cli("template", "build", "--os", release, "--size", "2G", release, timeout=2400)
    print(f"{release}: built in {time.monotonic() - started:.0f} s\n{build.err}")
    build.ok()
    listing = daemon.cli("template", "list").ok().out
    assert re.search(rf"^ {release}\s+{release}\s+2 GiB\s", listing, re.M), listing
    (tmpl,) = [
        t for t in json.loads(daemon.cli("template", "list", "--json").ok().out) if t["name"] == release
    ]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", tmpl["cloud_init"]), tmpl  # what the seed is written for
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    user_data = tmp_path / "user-data"
    user_data.write_text(USER_DATA)
    name = f"vm-{release}"
    launched = daemon.cli(
        "launch", release, name, "--network", "user", "--memory", "512M", "--disk-size", "3G",
        "--ssh-key", str(key), "--user", "tester", "--password", PASSWORD, "--user-data", str(user_data),
        "--wait-ip", "--timeout", "1500", timeout=1600,
    )  # fmt: skip
    print(f"{release}: launched, address after {time.monotonic() - started:.0f} s: {launched.out}")
    launched.ok()
    # QEMU user networking's address, which only the guest agent can tell.
    assert re.fullmatch(r"10\.0\.2\.\d+\n", launched.out), launched.out
    console = Console(daemon, name)
    try:
        _login(console, "tester", PASSWORD)  # the password launch gave the user
        facts = {
            "hostname": _run(console, "hostname"),
            "root_bytes": _run(console, "df -B1 --output=size / | tail -1"),
            "status": _run(console, "cloud-init status --wait"),
            "agent": _run(console, "systemctl is-active qemu-guest-agent"),
            "keys": _run(console, "cat ~/.ssh/authorized_keys"),
            "user_data": _run(console, "cat /etc/pyvirt-user-data"),
            "sudo": _run(console, "sudo -n id -u"),
            "console": _run(console, "tty"),
        }
        print(release, facts)
    finally:
        console.close()
        daemon.cli("destroy", name)
    assert facts["hostname"] == name
    assert (2 << 30) < int(facts["root_bytes"]) < (3 << 30)  # grown from the template's 2 GiB
    assert "status: done" in facts["status"]
    assert facts["agent"] == "active"
    assert KEY in facts["keys"].splitlines()
    assert facts["user_data"] == "merged"
    assert facts["sudo"] == "0"
    assert facts["console"] == "/dev/ttyS0"

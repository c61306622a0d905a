"""``pyvirt install --location`` on Debian 12's real netboot installer (debian-installer-12-netboot-amd64)
under TCG: with ``--extra-args console=ttyS0`` the installer's first question reaches the serial console.

The package is fetched with ``apt-get download`` into ``.cache/debian-installer`` the first time (the
test is skipped when that is impossible: no apt, no archive reachable), and its netboot tree is laid out
as a Debian mirror has it (``current/images/MANIFEST``, ``netboot/debian-installer/amd64``), which is
where virt-install looks.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
CACHE = REPO / ".cache/debian-installer"
PACKAGE = "debian-installer-12-netboot-amd64"
IMAGES = "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"


def _netboot() -> Path:
    """The extracted package (cached): its text-frontend kernel and initrd."""
    done = CACHE / "extracted" / IMAGES
    if (done / "linux").exists() and (done / "initrd.gz").exists():
        return done
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("apt-get and dpkg-deb are needed to fetch Debian's netboot installer")
    CACHE.mkdir(parents=True, exist_ok=True)
    debs = sorted(CACHE.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        result = subprocess.run(["apt-get", "download", PACKAGE], cwd=CACHE, capture_output=True, text=True)
        debs = sorted(CACHE.glob(f"{PACKAGE}_*.deb"))
        if result.returncode != 0 or not debs:
            pytest.skip(f"cannot fetch {PACKAGE}: {result.stderr.strip()[-300:]}")
    shutil.rmtree(CACHE / "extracted", ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(CACHE / "extracted")], check=True)
    return done


def test_debian_netboot_installer_reaches_its_first_question(daemon: Daemon, tmp_path: Path) -> None:
    images = _netboot()
    tree = tmp_path / "installer-amd64"
    netboot = tree / "current/images/netboot/debian-installer/amd64"
    netboot.mkdir(parents=True)
    (tree / "current/images/MANIFEST").write_text("Debian 12 installer images (netboot)\n")
    for name in ("linux", "initrd.gz"):
        (netboot / name).symlink_to(images / name)
    daemon.cli(
        "install", "--name", "di", "--memory", "1024", "--vcpus", "1", "--os-variant", "debian11",
        "--location", str(tree), "--extra-args", "console=ttyS0", "--disk", "size=2",
        "--network", "none", "--graphics", "none", "--virt-type", "qemu", "--noautoconsole",
    ).ok()  # fmt: skip
    console = Console(daemon, "di")
    try:
        # the newt front end's first screen: the language question (its title, then its choices)
        console.expect(r"Select a language|Choose the language", timeout=600)
        console.expect(r"English", timeout=60)
    finally:
        console.close()
    daemon.cli("destroy", "di").ok()
    daemon.cli("undefine", "--remove-all-storage", "di").ok()

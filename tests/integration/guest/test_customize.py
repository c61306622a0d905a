"""pyvirt customize on real disks: file edits, commands in the guest, and --prepare-template per OS family.

Launches: one customize of the Debian tree (all steps in one run), one --prepare-template of the RHEL
tree; the results are read on the host (debugfs), without a launch.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from pyvirt.cli.guest import customize_main
from tests.integration.guest.disks import diff, overlay, snapshot_disk

pytestmark = pytest.mark.slow

KERNEL_ARGS = "console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"


@pytest.fixture(scope="module")
def results(base_disks: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    deb_base, rhel_base, deb_before, rhel_before = base_disks
    tmp = tmp_path_factory.mktemp("customize")
    deb = overlay(deb_base, tmp / "deb.qcow2")
    rhel = overlay(rhel_base, tmp / "rhel.qcow2")
    status = customize_main(
        ["-q", "-a", str(deb),
         "--write", "/etc/motd:Welcome: to pyvirt",
         "--append-line", "/etc/hosts:10.0.0.2 db",
         "--append-line", "/etc/new.conf:x=1",
         "--delete", "/home/alice/*.txt",
         "--run-command", "echo ran > /root/ran.txt && id -u >> /root/ran.txt",
         "--prepare-template",
         "--run-command", "sh -n /usr/local/sbin/pyvirt-growroot"]
    )  # fmt: skip
    assert status == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = customize_main(["--json", "--format", "qcow2", "-a", str(rhel), "--prepare-template"])
    assert status == 0
    deb_after = snapshot_disk(deb, root=2, boot=1)
    rhel_after = snapshot_disk(rhel, root=1)
    return {
        "deb": diff(deb_before, deb_after),
        "deb_after": deb_after,
        "rhel": diff(rhel_before, rhel_after),
        "rhel_after": rhel_after,
        "rhel_json": json.loads(out.getvalue()),
    }


def test_write_append_delete_run(results: dict[str, Any]) -> None:
    after = results["deb_after"]
    removed, _, _ = results["deb"]
    assert after["/etc/motd"][2] == "Welcome: to pyvirt"
    assert after["/etc/hosts"][2].endswith("::1\tlocalhost ip6-localhost\n10.0.0.2 db\n")
    assert after["/etc/new.conf"][2] == "x=1\n"
    assert removed == {"/home/alice/notes.txt"}
    assert after["/root/ran.txt"][2] == "ran\n0\n"


def test_prepare_template_debian(results: dict[str, Any]) -> None:
    after = results["deb_after"]
    grub = after["/etc/default/grub"][2].splitlines()
    assert f'GRUB_CMDLINE_LINUX="{KERNEL_ARGS}"' in grub
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"' in grub
    assert 'GRUB_TERMINAL="console serial"' in grub and "#GRUB_TERMINAL=console" not in grub
    assert any(line.startswith("GRUB_SERIAL_COMMAND=") for line in grub)
    eth0 = after["/etc/network/interfaces.d/eth0"][2]
    assert "auto eth0" in eth0 and "iface eth0 inet dhcp" in eth0
    interfaces = after["/etc/network/interfaces"][2]
    assert "ens3" not in interfaces and "source /etc/network/interfaces.d/*" in interfaces
    assert "iface lo inet loopback" in interfaces
    script = after["/usr/local/sbin/pyvirt-growroot"]
    assert script[1] == 0o755 and "resize2fs" in script[2] and "xfs_growfs" in script[2]
    unit = after["/etc/systemd/system/pyvirt-growroot.service"][2]
    assert "ExecStart=/usr/local/sbin/pyvirt-growroot" in unit and "ConditionPathExists=!" in unit
    link = after["/etc/systemd/system/multi-user.target.wants/pyvirt-growroot.service"]
    assert link == ["link", 0, "/etc/systemd/system/pyvirt-growroot.service"]
    assert "/etc/selinux/config" not in after


def test_prepare_template_rhel(results: dict[str, Any]) -> None:
    after = results["rhel_after"]
    removed, _, _ = results["rhel"]
    ifcfg = after["/etc/sysconfig/network-scripts/ifcfg-eth0"][2].splitlines()
    for line in ("DEVICE=eth0", "BOOTPROTO=dhcp", "ONBOOT=yes", "NOZEROCONF=yes"):
        assert line in ifcfg
    assert not any(line.startswith(("HWADDR=", "UUID=")) for line in ifcfg)
    assert removed == {"/etc/sysconfig/network-scripts/ifcfg-ens3"}
    assert "NOZEROCONF=yes" in after["/etc/sysconfig/network"][2]
    selinux = after["/etc/selinux/config"][2].splitlines()
    assert "SELINUX=disabled" in selinux and "SELINUXTYPE=targeted" in selinux
    assert "SELINUX=enforcing" not in selinux
    grub = after["/etc/default/grub"][2].splitlines()
    assert f'GRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet {KERNEL_ARGS}"' in grub
    assert "/etc/systemd/system/multi-user.target.wants/pyvirt-growroot.service" in after


def test_json(results: dict[str, Any]) -> None:
    """--json prints the run as data only."""
    report = results["rhel_json"]
    assert report["dry_run"] is False and report["changes"], report
    assert any("grub" in change.lower() for change in report["changes"]), report["changes"]


def test_install_without_network_is_a_clear_error(base_disks: Any, tmp_path: Path, capsys: Any) -> None:
    disk = overlay(base_disks[0], tmp_path / "deb.qcow2")
    before = disk.read_bytes()
    assert customize_main(["-a", str(disk), "--no-network", "--install", "cloud-guest-utils"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --install cloud-guest-utils: the appliance has no network")
    assert disk.read_bytes() == before
    # --network: the appliance has one, so the install reaches the guest's package manager (which this
    # test tree lacks: nothing is fetched).
    assert customize_main(["-a", str(disk), "--network", "--install", "cloud-guest-utils"]) == 1
    err = capsys.readouterr().err
    assert "--install cloud-guest-utils failed in the guest" in err and "apt-get: not found" in err, err


def test_bad_arguments(capsys: Any, tmp_path: Path) -> None:
    assert customize_main(["-a", str(tmp_path / "missing.qcow2"), "--write", "/x:y"]) == 1
    assert "missing.qcow2 does not exist" in capsys.readouterr().err
    assert customize_main(["-a", "x.img", "--write", "nocolon"]) == 1
    assert "expected FILE:CONTENT" in capsys.readouterr().err
    assert customize_main(["-a", "x.img", "--hostname", "bad_name!"]) == 1
    assert "invalid hostname" in capsys.readouterr().err

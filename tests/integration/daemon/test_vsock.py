"""A domain with a <vsock> (pyvirt.conf.vsock) is defined and written back; on a host without
/dev/vhost-vsock its start is refused by name before any QEMU runs, and it stays shut off."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml


@pytest.mark.skipif(os.path.exists("/dev/vhost-vsock"), reason="this host has vhost-vsock")
def test_vsock_start_refused_without_the_hosts_device(daemon: Daemon, tmp_path: Path) -> None:
    vsock = "<vsock model='virtio'><cid auto='no' address='5'/></vsock>"
    path = tmp_path / "vs1.xml"
    path.write_text(domain_xml("vs1", extra_devices=vsock))
    daemon.cli("define", str(path)).ok()
    assert "<cid auto='no' address='5'/>" in daemon.cli("dumpxml", "vs1").ok().out
    result = daemon.cli("start", "vs1")
    assert result.rc == 1 and "/dev/vhost-vsock" in result.err, result.err
    assert daemon.cli("domstate", "vs1").ok().out.strip() == "shut off"
    assert "vs1" not in daemon.qemu_pids()


def test_an_automatic_cid_shows_as_start_would_choose_it(daemon: Daemon, tmp_path: Path) -> None:
    """domxml-to-native of <cid auto='yes'/>: the lowest CID no running domain holds (3 here)."""
    path = tmp_path / "vs2.xml"
    path.write_text(domain_xml("vs2", extra_devices="<vsock model='virtio'><cid auto='yes'/></vsock>"))
    argv = daemon.cli("domxml-to-native", "qemu-argv", str(path)).ok().out
    assert "-device vhost-vsock-pci,id=vsock0,guest-cid=3,bus=pci.0,addr=0x2 " in argv, argv

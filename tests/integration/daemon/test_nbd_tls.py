"""An NBD disk over TLS on a real guest under TCG: qemu-nbd serves the root disk with x509 credentials
on the loopback, the guest boots from it through QEMU's TLS client (the credentials from the daemon's
NBD TLS directory, the server's name given by tlsHostname); without the client credentials the start is
refused by name. A network NVRAM (``<nvram type='network'>``) over TLS is opened the same way."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import copy_disk, domain_xml, guest_artifacts
from tests.support.nbd import OVMF_VARS, nvram_domain_xml, pflash1_node
from tests.support.nbdtls import credentials as _credentials
from tests.support.nbdtls import serve as _serve

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_server(tmp_path: Path, daemon: Daemon) -> Iterator[int]:
    root = copy_disk(guest_artifacts(), tmp_path / "root.qcow2")
    server_dir = tmp_path / "server"
    _credentials(tmp_path / "ca", server_dir, daemon.root / "etc/pki/pyvirt/qemu")
    with _serve(server_dir, root, "qcow2", "root") as port:
        yield port


def test_a_guest_boots_from_nbd_over_tls(daemon: Daemon, tmp_path: Path, tls_server: int) -> None:
    disk = (
        "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
        "<source protocol='nbd' name='root' tls='yes' tlsHostname='nbd.test'>"
        f"<host name='127.0.0.1' port='{tls_server}'/></source><target dev='vda' bus='virtio'/></disk>"
    )
    text = domain_xml("nbdtls", disk=tmp_path / "placeholder.qcow2")
    text = text[: text.index("<disk")] + disk + text[text.index("</disk>") + len("</disk>") :]
    daemon.define(text)
    assert "tls='yes' tlsHostname='nbd.test'" in daemon.cli("dumpxml", "nbdtls").ok().out
    daemon.cli("start", "nbdtls").ok()
    Console(daemon, "nbdtls").expect("pyvirt-guest: ready")
    daemon.cli("destroy", "nbdtls").ok()
    (daemon.root / "etc/pki/pyvirt/qemu/client-key.pem").unlink()
    refused = daemon.cli("start", "nbdtls")
    assert refused.rc == 1 and "client-key.pem missing" in refused.err


def test_nvram_served_over_nbd_with_tls(daemon: Daemon, tmp_path: Path) -> None:
    """QEMU opens the NVRAM through its TLS client (started paused: the firmware need not run)."""
    vars_copy = tmp_path / "vars.fd"
    shutil.copyfile(OVMF_VARS, vars_copy)
    server_dir = tmp_path / "server"
    _credentials(tmp_path / "ca", server_dir, daemon.root / "etc/pki/pyvirt/qemu")
    with _serve(server_dir, vars_copy, "raw", "vars") as port:
        source = (
            "<source protocol='nbd' name='vars' tls='yes' tlsHostname='nbd.test'>"
            f"<host name='127.0.0.1' port='{port}'/></source>"
        )
        daemon.define(nvram_domain_xml("nvtls", source))
        assert "tls='yes' tlsHostname='nbd.test'" in daemon.cli("dumpxml", "nvtls").ok().out
        daemon.cli("start", "--paused", "nvtls").ok()
        flash = pflash1_node(daemon, "nvtls")
        assert flash["drv"] == "nbd" and "vars" in str(flash["file"]), flash
        daemon.cli("destroy", "nvtls").ok()
        (daemon.root / "etc/pki/pyvirt/qemu/client-key.pem").unlink()
        refused = daemon.cli("start", "--paused", "nvtls")
        assert refused.rc == 1 and "client-key.pem missing" in refused.err, refused

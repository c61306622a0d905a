"""NBD disks over TLS (pyvirt.conf.nbd_tls): parsed, written back, the credentials object and the NBD
node's tls-creds/tls-hostname, and the start refused without the credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf import nbd_tls
from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv

XML = """<domain type='qemu'><name>n</name><memory>65536</memory><os><type>hvm</type></os><devices>
<disk type='network' device='disk'><source protocol='nbd' name='e' {tls}><host name='h.example' port='10809'/>
</source><target dev='vda' bus='virtio'/></disk></devices></domain>"""


def test_tls_reaches_the_nbd_node_with_its_credentials(tmp_path: Path) -> None:
    dom = load_domain_xml(XML.format(tls="tls='yes' tlsHostname='nbd.example'"))
    assert "tls='yes' tlsHostname='nbd.example'" in format_domain(dom)
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x", nbd_tls_dir=str(tmp_path)))
    creds = argv[argv.index("-object") + 1]
    assert creds == (
        f'{{"qom-type":"tls-creds-x509","id":"pyvirt-1-storage-tls0","dir":"{tmp_path}",'
        '"endpoint":"client","verify-peer":true}'
    )
    node = next(arg for arg in argv if arg.startswith('{"driver":"nbd"'))
    assert '"tls-creds":"pyvirt-1-storage-tls0","tls-hostname":"nbd.example"' in node
    plain = build_argv(
        load_domain_xml(XML.format(tls="tls='no'")), RuntimeContext(accel="tcg", monitor_path="/x")
    )
    assert "-object" not in plain and not any("tls-creds" in arg for arg in plain)


def test_the_start_needs_the_client_credentials(tmp_path: Path) -> None:
    dom = load_domain_xml(XML.format(tls="tls='yes'"))
    with pytest.raises(PyvirtError, match=r"ca-cert\.pem, client-cert\.pem, client-key\.pem missing"):
        nbd_tls.require_host(dom, str(tmp_path))
    for name in nbd_tls.FILES:
        (tmp_path / name).touch()
    nbd_tls.require_host(dom, str(tmp_path))
    nbd_tls.require_host(load_domain_xml(XML.format(tls="")), "/nonexistent")  # no TLS: nothing needed


def test_a_tls_hostname_without_tls_is_refused() -> None:
    with pytest.raises(PyvirtError, match="tlsHostname of 'devices/disk/source' needs tls='yes'"):
        load_domain_xml(XML.format(tls="tlsHostname='x'"))


NVRAM = """<domain type='qemu'><name>v</name><memory>65536</memory><os><type machine='q35'>hvm</type>
<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
<nvram type='network'><source protocol='{protocol}' name='vars' {tls}><host name='h.example' port='10809'/>
{auth}</source></nvram></os></domain>"""


def test_a_network_nvram_over_tls(tmp_path: Path) -> None:
    """The NVRAM's NBD node gets the same credentials as a disk's; the start needs them."""
    dom = load_domain_xml(NVRAM.format(protocol="nbd", tls="tls='yes' tlsHostname='nv.example'", auth=""))
    assert "tls='yes' tlsHostname='nv.example'" in format_domain(dom)
    argv = build_argv(dom, RuntimeContext(accel="tcg", monitor_path="/x", nbd_tls_dir=str(tmp_path)))
    assert '"id":"pyvirt-pflash1-storage-tls0"' in argv[argv.index("-object") + 1]
    node = next(arg for arg in argv if arg.startswith('{"driver":"nbd"'))
    assert '"tls-creds":"pyvirt-pflash1-storage-tls0","tls-hostname":"nv.example"' in node
    with pytest.raises(PyvirtError, match=r"client-key\.pem missing"):
        nbd_tls.require_host(dom, str(tmp_path))

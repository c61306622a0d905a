"""Credentials of network sources other than disks (pyvirt.daemon.disk_secrets): an iSCSI hostdev's and
an iSCSI NVRAM's CHAP password reach QEMU as a network disk's does, a ``secret`` object encrypted with
the domain's master key named by the ``iscsi`` node's ``password-secret``, never in clear; refused when
nothing gave the value (a command line built outside a start). tests/integration/daemon/test_iscsi.py
logs in to a real target with them; test_libvirt_oracle compares them with libvirt 9.0's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.conf.domain_xml import format_domain, load_domain_xml
from pyvirt.daemon.disk_secrets import network_sources, pretend_all
from pyvirt.errors import PyvirtError
from pyvirt.qemu.command import RuntimeContext, build_argv
from tests.support.argv import json_values

AUTH = "<auth username='chap-user'><secret type='iscsi' usage='{usage}'/></auth>"
XML = f"""<domain type='qemu'><name>c</name><memory>65536</memory><os><type machine='q35'>hvm</type>
<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
<nvram type='network'><source protocol='iscsi' name='iqn.2026-12.test:vars/1'><host name='127.0.0.1'/>
{AUTH.format(usage="vars")}</source></nvram></os><devices>
<disk type='network' device='disk'><driver name='qemu' type='raw'/>
<source protocol='iscsi' name='iqn.2026-12.test:disk/1'><host name='127.0.0.1'/>{AUTH.format(usage="disk")}
</source><target dev='vda' bus='virtio'/></disk>
<controller type='scsi' model='virtio-scsi'/>
<hostdev mode='subsystem' type='scsi'><source protocol='iscsi' name='iqn.2026-12.test:lun/1'>
<host name='127.0.0.1' port='3261'/>{AUTH.format(usage="lun")}</source></hostdev>
</devices></domain>"""
SECRET_IDS = {
    "pyvirt-1-storage-auth-secret0": b"disk-password",
    "pyvirt-hostdev0-backend-storage-auth-secret0": b"lun-password",
    "pyvirt-pflash1-storage-auth-secret0": b"vars-password",
}


def test_each_network_source_is_named_by_its_node() -> None:
    dom = load_domain_xml(XML)
    assert [(node, src.name) for node, src in network_sources(dom)] == [
        ("pyvirt-1", "iqn.2026-12.test:disk/1"),
        ("pyvirt-hostdev0-backend", "iqn.2026-12.test:lun/1"),
        ("pyvirt-pflash1", "iqn.2026-12.test:vars/1"),
    ]


def test_hostdev_and_nvram_chap_reach_qemu_encrypted_only() -> None:
    dom = load_domain_xml(XML)
    ctx = RuntimeContext(accel="tcg", monitor_path="/x")
    ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, SECRET_IDS, Path("/run/x"))
    argv = build_argv(dom, ctx)
    assert not any(value.decode() in " ".join(argv) for value in SECRET_IDS.values())
    values = json_values(argv, "-object", "-blockdev")
    secrets = {v["id"]: v for v in values if v.get("qom-type") == "secret" and v["id"] != "masterKey0"}
    assert set(secrets) == set(SECRET_IDS)
    assert all(s["keyid"] == "masterKey0" and s["format"] == "base64" and s["iv"] for s in secrets.values())
    iscsi = {str(v["node-name"]): v for v in values if v.get("driver") == "iscsi"}
    lun = iscsi["pyvirt-hostdev0-backend"]
    assert (lun["portal"], lun["target"], lun["lun"]) == ("127.0.0.1:3261", "iqn.2026-12.test:lun", 1)
    assert (lun["user"], lun["password-secret"]) == (
        "chap-user",
        "pyvirt-hostdev0-backend-storage-auth-secret0",
    )
    nvram = iscsi["pyvirt-pflash1-storage"]
    assert (nvram["user"], nvram["password-secret"]) == ("chap-user", "pyvirt-pflash1-storage-auth-secret0")
    # each secret object comes before the node that names it
    order = [v.get("id") or v.get("node-name") for v in values]
    assert order.index("pyvirt-hostdev0-backend-storage-auth-secret0") < order.index(
        "pyvirt-hostdev0-backend"
    )
    assert order.index("pyvirt-pflash1-storage-auth-secret0") < order.index("pyvirt-pflash1-storage")


def test_written_back_with_their_auth() -> None:
    text = format_domain(load_domain_xml(XML))
    assert text.count("<auth username='chap-user'>") == 3
    assert "<secret type='iscsi' usage='lun'/>" in text and "<secret type='iscsi' usage='vars'/>" in text


@pytest.mark.parametrize(("drop", "what"), [("lun", "hostdev 0"), ("vars", "the NVRAM")])
def test_without_the_value_the_command_line_is_refused(drop: str, what: str) -> None:
    dom = load_domain_xml(XML)
    ctx = RuntimeContext(accel="tcg", monitor_path="/x")
    values = {k: v for k, v in SECRET_IDS.items() if not v.startswith(drop.encode())}
    ctx.master_key_path, _, ctx.net_secrets = pretend_all({}, values, Path("/run/x"))
    with pytest.raises(PyvirtError, match=f"{what} has credentials or cookies: they are given to QEMU only"):
        build_argv(dom, ctx)

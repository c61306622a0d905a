"""iSCSI for real: a tgtd on 127.0.0.1 (tests/support/iscsi.py) serves LUNs to one UEFI guest under TCG,
booted once for the module, whose every iSCSI connection is QEMU's libiscsi (Debian's qemu-block-extra):

- ``<disk type='network' protocol='iscsi'>`` without credentials and with ``<auth>`` CHAP, read and
  written by the guest (virtio-blk), the writes seen in the target's backing files; one with CHAP
  hot-plugged and unplugged, its secret object with it;
- ``<hostdev type='scsi'><source protocol='iscsi'>`` with CHAP, QEMU's scsi-generic on the LUN: the
  guest's SCSI bus shows the target's LUN (its INQUIRY product id), read and written through it;
- ``<nvram type='network'>`` on an iSCSI LUN with CHAP: OVMF boots the guest with its variable store on
  the target and writes variables into it.

A wrong CHAP secret, or none where the target asks for one, fails the start with libiscsi's reason.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml, guest_artifacts
from tests.support.iscsi import LUN, Target, require_tgtd

pytestmark = pytest.mark.slow
OVMF = Path("/usr/share/OVMF")
CHAP = ("pyvirt-initiator", "chap-secret-4711")
PRODUCT = "PYVIRT-LUN"  # the hostdev LUN's INQUIRY product id, as the guest reads it
SIZE = 4 * 1024 * 1024


@dataclass
class Lab:
    tgt: Target
    files: dict[str, Path]  # target name -> its LUN's backing file
    iqns: dict[str, str]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_tgtd()
    scratch = Path(tempfile.mkdtemp(prefix="pvt-iscsi-", dir="/tmp"))
    try:
        files = {}
        for name in ("plain", "chap", "lun", "hot"):
            files[name] = scratch / f"{name}.raw"
            files[name].write_bytes(f"pyvirt-iscsi-{name}".encode().ljust(SIZE, b"\0"))
        files["vars"] = scratch / "vars.fd"
        shutil.copyfile(OVMF / "OVMF_VARS_4M.fd", files["vars"])
        with Target(scratch) as tgt:
            iqns = {
                "plain": tgt.add("plain", files["plain"]),
                "chap": tgt.add("chap", files["chap"], chap=CHAP),
                "lun": tgt.add("lun", files["lun"], chap=CHAP, product=PRODUCT),
                "vars": tgt.add("vars", files["vars"], chap=CHAP),
                "hot": tgt.add("hot", files["hot"], chap=CHAP),
            }
            yield Lab(tgt, files, iqns)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def source(lab: Lab, name: str, usage: str | None = "pyvirt-chap") -> str:
    auth = f"<auth username='{CHAP[0]}'><secret type='iscsi' usage='{usage}'/></auth>" if usage else ""
    return (
        f"<source protocol='iscsi' name='{lab.iqns[name]}/{LUN}'>"
        f"<host name='127.0.0.1' port='{lab.tgt.port}'/>{auth}</source>"
    )


def define_secret(daemon: Daemon, scratch: Path, usage: str, value: str) -> None:
    path = scratch / f"{usage}.xml"
    path.write_text(
        f"<secret ephemeral='no' private='yes'><usage type='iscsi'><target>{usage}</target></usage></secret>"
    )
    uuid = daemon.cli("secret-define", str(path)).ok().out.split()[1]
    daemon.cli("secret-set-value", uuid, "--base64", base64.b64encode(value.encode()).decode()).ok()


def define(daemon: Daemon, scratch: Path, name: str, text: str) -> None:
    path = scratch / f"{name}.xml"
    path.write_text(text)
    daemon.cli("define", str(path)).ok()


def uefi_domain(name: str, nvram: str, devices: str) -> str:
    art = guest_artifacts()
    assert art.vmlinuz is not None
    text = domain_xml(name, memory_mib=256, extra_devices=devices)
    text = text.replace("machine='pc'", "machine='q35'").replace('machine="pc"', 'machine="q35"')
    text = text.replace(str(art.kernel), str(art.vmlinuz))
    loader = f"<loader readonly='yes' type='pflash'>{OVMF}/OVMF_CODE_4M.fd</loader><nvram type='network'>"
    return text.replace("</os>", f"{loader}{nvram}</nvram></os>")


@pytest.fixture(scope="module")
def guest(module_daemon: Daemon, lab: Lab) -> Iterator[Console]:
    daemon = module_daemon
    define_secret(daemon, lab.tgt.scratch, "pyvirt-chap", CHAP[1])
    disks = "".join(
        f"<disk type='network' device='disk'><driver name='qemu' type='raw'/>{source(lab, name, usage)}"
        f"<target dev='{dev}' bus='virtio'/><serial>{name}</serial></disk>"
        for name, dev, usage in (("plain", "vdb", None), ("chap", "vdc", "pyvirt-chap"))
    )
    hostdev = f"<hostdev mode='subsystem' type='scsi'>{source(lab, 'lun')}</hostdev>"
    controller = "<controller type='scsi' index='0' model='virtio-scsi'/>"
    # root ports: the devices take the first ones (as libvirt places them), the rest for the hot-plug
    controller += "".join(f"<controller type='pci' index='{i}' model='pcie-root-port'/>" for i in range(1, 7))
    define(
        daemon,
        lab.tgt.scratch,
        "isc1",
        uefi_domain("isc1", source(lab, "vars"), disks + controller + hostdev),
    )
    daemon.cli("start", "isc1").ok()
    console = Console(daemon, "isc1")
    console.expect("pyvirt-guest: ready", 300)
    yield console
    console.close()
    daemon.cli("destroy", "isc1").ok()


def test_disks_on_iscsi_with_and_without_chap(guest: Console, lab: Lab) -> None:
    for name in ("plain", "chap"):
        dev = "/dev/" + guest.virtio_disk(name)
        assert guest.run(f"head -c {len('pyvirt-iscsi-') + len(name)} {dev}; echo") == f"pyvirt-iscsi-{name}"
        guest.run(f"printf 'written-by-guest-{name}' | dd of={dev} bs=512 seek=1 conv=fsync 2>/dev/null")
        with lab.files[name].open("rb") as backing:
            backing.seek(512)
            assert backing.read(len(f"written-by-guest-{name}")) == f"written-by-guest-{name}".encode()


def test_hostdev_lun_on_iscsi_with_chap(guest: Console, lab: Lab) -> None:
    """scsi-generic on the LUN: the guest sees the target's own INQUIRY data, and its sd driver reads
    and writes the LUN through it."""
    found = guest.run(
        "for d in /sys/bus/scsi/devices/*; do [ -f $d/model ] && echo $(cat $d/model) $(ls $d/block); done"
    )
    assert PRODUCT in found, found
    disk = found.split(PRODUCT)[1].split()[0]
    assert guest.run(f"head -c 16 /dev/{disk}; echo") == "pyvirt-iscsi-lun"
    guest.run(f"printf 'written-through-sg' | dd of=/dev/{disk} bs=512 seek=2 conv=fsync 2>/dev/null")
    with lab.files["lun"].open("rb") as backing:
        backing.seek(1024)
        assert backing.read(18) == b"written-through-sg"


def test_uefi_variables_on_iscsi_with_chap(guest: Console, lab: Lab) -> None:
    """The firmware booted the guest with its variable store on the target, and wrote to it."""
    assert guest.run("test -d /sys/firmware/efi && echo uefi") == "uefi"
    assert lab.files["vars"].read_bytes() != (OVMF / "OVMF_VARS_4M.fd").read_bytes()


def secret_objects(daemon: Daemon, name: str) -> set[str]:
    query = '{"execute":"qom-list","arguments":{"path":"/objects"}}'
    listed = json.loads(daemon.cli("qemu-monitor-command", name, query).ok().out)["return"]
    return {o["name"] for o in listed if o["type"] == "child<secret>" and o["name"] != "masterKey0"}


def test_a_disk_on_iscsi_with_chap_plugged_and_unplugged(
    module_daemon: Daemon, guest: Console, lab: Lab
) -> None:
    """Its password reaches the running QEMU as at start (a secret object under the master key), and
    goes with the disk."""
    daemon = module_daemon
    before = secret_objects(daemon, "isc1")
    assert len(before) == 3  # the CHAP disk's, the hostdev's and the NVRAM's, from the start
    path = lab.tgt.scratch / "hot-disk.xml"
    path.write_text(
        f"<disk type='network' device='disk'><driver name='qemu' type='raw'/>{source(lab, 'hot')}"
        "<target dev='vdd' bus='virtio'/><serial>hot</serial></disk>"
    )
    daemon.cli("attach-device", "isc1", str(path), "--live").ok()
    added = secret_objects(daemon, "isc1") - before
    assert len(added) == 1 and next(iter(added)).endswith("-storage-auth-secret0"), (before, added)
    dev = "/dev/" + guest.virtio_disk("hot")
    assert guest.run(f"head -c 16 {dev}; echo") == "pyvirt-iscsi-hot"
    daemon.cli("detach-device", "isc1", str(path), "--live").ok()
    guest.virtio_disk("hot", present=False)
    assert secret_objects(daemon, "isc1") == before


@pytest.mark.parametrize(("usage", "value"), [("pyvirt-wrong", "not-the-secret"), (None, "")])
def test_a_wrong_or_missing_chap_secret_fails_the_start(
    module_daemon: Daemon, lab: Lab, usage: str | None, value: str
) -> None:
    daemon = module_daemon
    if usage is not None:
        define_secret(daemon, lab.tgt.scratch, usage, value)
    name = f"isc-{usage or 'none'}"
    disk = (
        f"<disk type='network' device='disk'><driver name='qemu' type='raw'/>{source(lab, 'chap', usage)}"
        "<target dev='vdb' bus='virtio'/></disk>"
    )
    define(daemon, lab.tgt.scratch, name, domain_xml(name, extra_devices=disk))
    result = daemon.cli("start", name)
    assert result.rc == 1
    assert "iSCSI" in result.err and "Failed to log in to target" in result.err, result.err
    assert daemon.state(name) == "shut off"
    daemon.cli("undefine", name).ok()

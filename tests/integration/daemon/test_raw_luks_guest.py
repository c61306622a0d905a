"""A real TCG guest on a raw LUKS volume (``<driver type='raw'/>`` + ``<encryption format='luks'>``, made
by vol-create as libvirt makes one): the guest reads what the host put in and writes what qemu-img reads
back with the secret after it stops. An encrypted medium is put into its cdrom by update-device (its
secret object added before the medium, as hot-plug does) and read by the guest, then ejected."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from pyvirt.image.luks_raw import LuksContainer
from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
PASSPHRASE = "raw luks guest passphrase"
UUID = "7e0d3c55-2b8a-4a61-9f1c-5d2e8b4a7c90"
MARKER = b"HOST-PUT-THIS-IN-RAW-LUKS"
WRITTEN = "GUEST-WROTE-RAW-LUKS"
ON_CD = b"ENCRYPTED-MEDIUM"
CIPHER = "<cipher name='aes' size='128' mode='cbc' hash='sha256'/><ivgen name='essiv' hash='sha256'/>"


def _encryption(extra: str = "") -> str:
    return f"<encryption format='luks'><secret type='passphrase' uuid='{UUID}'/>{extra}</encryption>"


def test_guest_on_a_raw_luks_volume(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    folder = tmp_path / "pool"
    d.cli("pool-create-as", "gp", "dir", "--target", str(folder), "--build").ok()
    (tmp_path / "s.xml").write_text(
        f"<secret ephemeral='no' private='yes'><uuid>{UUID}</uuid><usage type='volume'>"
        f"<volume>{folder / 'data.img'}</volume></usage></secret>"
    )
    d.cli("secret-define", str(tmp_path / "s.xml")).ok()
    d.cli("secret-set-value", UUID, "--base64", base64.b64encode(PASSPHRASE.encode()).decode()).ok()
    for name, extra in (("data.img", CIPHER), ("cd.img", "")):
        (tmp_path / "v.xml").write_text(
            f"<volume><name>{name}</name><capacity unit='M'>8</capacity>"
            f"<target><format type='raw'/>{_encryption(extra)}</target></volume>"
        )
        d.cli("vol-create", "gp", str(tmp_path / "v.xml")).ok()
    data, medium = folder / "data.img", folder / "cd.img"
    with LuksContainer(str(data), PASSPHRASE.encode(), readonly=False) as c:
        c.write(0, MARKER)
    with LuksContainer(str(medium), PASSPHRASE.encode(), readonly=False) as c:
        c.write(0, ON_CD)

    disks = (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{data}'/>"
        f"<target dev='vdb' bus='virtio'/>{_encryption()}</disk>"
        "<controller type='scsi' index='0' model='virtio-scsi'/>"
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sdc' bus='scsi'/>"
        "<readonly/></disk>"
    )
    (tmp_path / "dom.xml").write_text(domain_xml("rawluks", extra_devices=disks))
    d.cli("define", str(tmp_path / "dom.xml")).ok()
    d.cli("start", "rawluks").ok()
    console = Console(d, "rawluks")
    console.expect(READY)
    pid = d.qemu_pids()["rawluks"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b'"driver":"luks"' in cmdline and b'"key-secret":"pyvirt-' in cmdline
    assert PASSPHRASE.encode() not in cmdline
    # the guest boots from its initramfs: the data disk is its first, vda
    assert console.run(f"dd if=/dev/vda bs={len(MARKER)} count=1 2>/dev/null") == MARKER.decode()
    console.run(f"printf {WRITTEN} | dd of=/dev/vda bs=512 seek=8 2>/dev/null; sync")

    # an encrypted medium into the empty cdrom (update-device), read, then ejected
    cd_xml = tmp_path / "cd.xml"
    cd_xml.write_text(
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
        f"<source file='{medium}'/><target dev='sdc' bus='scsi'/><readonly/>{_encryption()}</disk>"
    )
    d.cli("update-device", "rawluks", str(cd_xml), "--live").ok()
    assert str(medium) in d.cli("domblklist", "rawluks").ok().out
    assert f"<secret type='passphrase' uuid='{UUID}'/>" in d.cli("dumpxml", "rawluks").ok().out
    head = "dd if=/dev/sr0 bs=2048 count=1 2>/dev/null | dd bs=16 count=1 2>/dev/null"
    read = f"for i in $(seq 60); do {head} | grep -q ENCRYPTED && break; sleep 0.5; done; {head}"
    assert console.run(read, 60) == ON_CD.decode()
    secrets = _secret_objects(d)
    assert len(secrets) == 2  # the data disk's and the medium's
    d.cli("change-media", "rawluks", "sdc", "--eject").ok()
    assert str(medium) not in d.cli("domblklist", "rawluks").ok().out
    assert len(_secret_objects(d)) == 1  # the medium's went with it
    console.close()
    d.cli("destroy", "rawluks").ok()

    # qemu-img reads what the guest wrote, with the passphrase
    with LuksContainer(str(data), PASSPHRASE.encode()) as c:
        assert c.read(0, len(MARKER)) == MARKER and c.read(4096, len(WRITTEN)) == WRITTEN.encode()
    (tmp_path / "pw").write_text(PASSPHRASE)
    out = tmp_path / "plain.raw"
    subprocess.run(
        ["qemu-img", "convert", "--object", f"secret,id=k,file={tmp_path / 'pw'}", "--image-opts",
         f"driver=luks,file.filename={data},key-secret=k", "-O", "raw", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    plain = out.read_bytes()
    assert plain[: len(MARKER)] == MARKER and plain[4096 : 4096 + len(WRITTEN)] == WRITTEN.encode()


def _secret_objects(d: Daemon) -> list[str]:
    out = (
        d.cli(
            "qemu-monitor-command",
            "rawluks",
            json.dumps({"execute": "qom-list", "arguments": {"path": "/objects"}}),
        )
        .ok()
        .out
    )
    return [o["name"] for o in json.loads(out)["return"] if o["name"].endswith("-encryption-secret0")]

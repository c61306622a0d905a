"""Appliances without a daemon: VMware's and VirtualBox's OVF read and mapped, manifests checked,
disks converted, and every kind of bad package refused by name."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.guest import ovf, template
from pyvirt.guest.hardware import Hardware
from pyvirt.image.api import convert, create_image, image_info
from tests.support.ova import SOUND_AND_CD, Spec, make_ova, manifest, virtualbox_ovf, vmware_ovf


def _ovf_folder(tmp_path: Path, text: str, disk: bool = True) -> Path:
    path = tmp_path / "app.ovf"
    path.write_text(text)
    if disk:
        create_image(str(tmp_path / "src.qcow2"), "qcow2", 8 << 20)
        convert(str(tmp_path / "src.qcow2"), str(tmp_path / "disk1.vmdk"), "vmdk", src_fmt="qcow2",
                options={"subformat": "streamOptimized"})  # fmt: skip
    return path


def test_vmware_ovf_is_mapped(tmp_path: Path) -> None:
    spec = Spec(vcpus=2, memory_mib=2048, firmware="efi", controller="scsi", nic="VmxNet3",
                extra_items=SOUND_AND_CD, disk_capacity=16 << 30)  # fmt: skip
    app = ovf.read_appliance(_ovf_folder(tmp_path, vmware_ovf(spec)))
    assert (app.name, app.os, app.vcpus, app.memory, app.firmware) == (
        "appliance", "debian11_64Guest", 2, 2 << 30, "efi",
    )  # fmt: skip
    (disk,) = app.disks
    assert (disk.disk_id, disk.file, disk.capacity, disk.bus) == ("vmdisk1", "disk1.vmdk", 16 << 30, "scsi")
    assert [(n.model, n.network, n.original) for n in app.nics] == [("virtio", "VM Network", "VmxNet3")]
    assert app.hardware() == Hardware(2, 2 << 30, "efi", ("scsi",), ("virtio",))
    notes = "\n".join(app.notes)
    assert "SCSI lsilogic becomes virtio-scsi" in notes and "VmxNet3 adapter becomes virtio" in notes
    assert "Sound card (sound card): not imported" in notes and "CD/DVD drive 1 (CD drive)" in notes


def test_virtualbox_ovf_is_mapped(tmp_path: Path) -> None:
    spec = Spec(vcpus=1, memory_mib=512, firmware="efi", controller="ide", nic="E1000")
    app = ovf.read_appliance(_ovf_folder(tmp_path, virtualbox_ovf(spec)))
    assert (app.os, app.memory, app.firmware) == ("Debian_64", 512 << 20, "efi")
    # IDE on an EFI machine (q35, which has none) becomes SATA, and says so.
    assert [d.bus for d in app.disks] == ["sata"] and "IDE becomes SATA" in " ".join(app.notes)
    assert [n.model for n in app.nics] == ["e1000"]
    bios = ovf.read_appliance(_ovf_folder(tmp_path, virtualbox_ovf(Spec(controller="ide")), disk=False))
    assert bios.firmware == "bios" and [d.bus for d in bios.disks] == ["ide"]


def test_a_fresh_raw_disk_is_no_appliance(tmp_path: Path) -> None:
    # 64 GiB of zeros (sparse): tarfile alone takes it for an empty archive, after reading it all.
    zeros = tmp_path / "fresh.raw"
    with open(zeros, "wb") as f:
        f.truncate(64 << 30)
    assert not ovf.is_appliance(zeros)
    (tmp_path / "notes.txt").write_text("x\n")
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    assert not ovf.is_appliance(plain)  # a tar, without an .ovf


def test_ova_manifest_checked_and_disks_converted(tmp_path: Path) -> None:
    src = tmp_path / "src.qcow2"
    create_image(str(src), "qcow2", 8 << 20)
    vmdk = tmp_path / "disk1.vmdk"
    convert(str(src), str(vmdk), "vmdk", src_fmt="qcow2", options={"subformat": "streamOptimized"})
    ova = make_ova(
        tmp_path / "a.ova", "a.ovf", vmware_ovf(Spec(disk_capacity=16 << 20)), {"disk1.vmdk": vmdk}
    )
    assert ovf.is_appliance(ova) and not ovf.is_appliance(src)
    app = ovf.read_appliance(ova)
    assert app.is_ova and app.digests["disk1.vmdk"][0] == "sha256"
    out = tmp_path / "out"
    out.mkdir()
    (disk,) = ovf.convert_disks(app, out)
    info = image_info(str(disk))
    assert info["format"] == "qcow2" and info["virtual-size"] == 16 << 20  # grown to the OVF's capacity
    assert sorted(p.name for p in out.iterdir()) == ["disk-0.qcow2"]
    # A disk that is not what the manifest says is refused.
    app.digests["disk1.vmdk"] = ("sha256", "0" * 64)
    with pytest.raises(InvalidArgument, match="does not match the manifest's SHA256 digest"):
        ovf.convert_disks(app, out)


def test_virtualbox_manifest_layout() -> None:
    text = manifest({"x.ovf": b"abc"}, "SHA1", vbox=True)
    assert text.startswith("SHA1 (x.ovf) = ")
    assert ovf._parse_manifest(text, "x.mf") == {
        "x.ovf": ("sha1", "a9993e364706816aba3e25717850c26c9cd0d89d")
    }
    with pytest.raises(InvalidArgument, match="cannot read"):
        ovf._parse_manifest("MD5(x)= 00\n", "x.mf")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda t: t.replace("<VirtualSystem ", "<VirtualSystemCollection><VirtualSystem ", 1).replace(
                "</VirtualSystem>", "</VirtualSystem><VirtualSystem ovf:id='b'/></VirtualSystemCollection>"
            ),
            "describes 2 virtual machines",
        ),
        (
            lambda t: t.replace('ovf:id="file1"/>', 'ovf:id="file1" ovf:compression="gzip"/>'),
            r"compressed \(gzip\)",
        ),
        (lambda t: t.replace("ovf:/disk/vmdisk1", "ovf:/disk/nosuch"), "names the disk 'ovf:/disk/nosuch'"),
        (
            lambda t: t.replace('ovf:fileRef="file1"', 'ovf:fileRef="file9"'),
            "file 'file9', not in <References>",
        ),
        (lambda t: t.replace("byte * 2^20", "pages"), "allocation units 'pages'"),
        (lambda t: t.replace("<Envelope ", "<Wrapper ").replace("</Envelope>", "</Wrapper>"), "not an OVF"),
        (lambda t: '<!DOCTYPE x [<!ENTITY a "b">]>' + t.split("\n", 1)[1], "not allowed"),
    ],
)
def test_bad_ovf_refused(tmp_path: Path, mutate: object, message: str) -> None:
    assert callable(mutate)
    path = _ovf_folder(tmp_path, mutate(vmware_ovf(Spec())))
    with pytest.raises(InvalidArgument, match=message):
        ovf.read_appliance(path)


def test_missing_disk_file_refused_and_nothing_imported(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    store = template.TemplateStore(pool)
    path = _ovf_folder(tmp_path, vmware_ovf(Spec(extra_disk_ref="disk2.vmdk")))
    with pytest.raises(InvalidArgument, match=r"file disk2.vmdk \(disk vmdisk2\), which the folder"):
        template.import_image(store, str(path), "app")
    ova = make_ova(tmp_path / "m.ova", "m.ovf", vmware_ovf(Spec(extra_disk_ref="gone.vmdk")),
                   {"disk1.vmdk": tmp_path / "disk1.vmdk"})  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"file gone.vmdk \(disk vmdisk2\), which the OVA"):
        template.import_image(store, str(ova), "app")
    assert list(pool.iterdir()) == []


@pytest.mark.parametrize("fmt", ["raw", "vmdk", "vdi", "qcow2"])
def test_plain_images_import(tmp_path: Path, fmt: str) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    image = tmp_path / f"img.{fmt}"
    create_image(str(image), fmt, 4 << 20)
    tmpl = template.import_image(template.TemplateStore(pool), str(image), "plain")
    assert (
        tmpl.virtual_size == 4 << 20
        and tmpl.hardware.is_default()
        and image_info(tmpl.path)["format"] == "qcow2"
    )


def test_appliance_template_keeps_its_machine(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    path = _ovf_folder(tmp_path, virtualbox_ovf(Spec(vcpus=3, memory_mib=256, nic="E1000")))
    said: list[str] = []
    tmpl = template.import_image(template.TemplateStore(pool), str(path), "vb", say=said.append)
    assert tmpl.os == "Debian_64" and tmpl.hardware == Hardware(3, 256 << 20, "bios", ("sata",), ("e1000",))
    assert any("3 vCPU, 256 MiB, BIOS, disks sata, NIC e1000" in line for line in said), said
    assert template.TemplateStore(pool).get("vb").hardware == tmpl.hardware

"""``pyvirt install --print-xml`` against virt-install 4.1 ``--print-xml --dry-run`` (the oracle), option
set by option set, element by element after removing what is random (UUIDs, MACs, generated paths).

One pyvirtd (with a network named ``default``, as the oracle's libvirtd has) and one private libvirtd
(tests/support/virtinstall.py) serve the whole matrix. Where virt-install adds something pyvirt does
not run yet, it is removed from the oracle's side by name in :data:`PYVIRT_LACKS` and pyvirt says so
in its notes; nothing else may differ. Without virt-install (a fresh CI machine), pyvirt's own
output is still checked for the facts each case is about.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.virtinstall import Oracle

NETWORK = """<network><name>default</name><bridge name='pvinst0'/>
<ip address='192.168.231.1' netmask='255.255.255.0'/></network>"""

# What virt-install adds that pyvirt does not run yet (pyvirt reports each in its notes).
PYVIRT_LACKS = (
    "./os/smbios",
    "./sysinfo",
)


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    import os
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="pvi-", dir="/tmp"))
    os.chmod(path, 0o755)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path / "cloud.qcow2"), "1G"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path / "data.raw"), "1G"], check=True)
    (path / "iso").mkdir()
    (path / "iso/README").write_text("not an installer\n")
    subprocess.run(["genisoimage", "-quiet", "-o", str(path / "plain.iso"), str(path / "iso")], check=True)
    # A Debian installer tree (virt-install's "url" layout) made of a kernel and an initrd.
    deb = path / "installer-amd64/current/images"
    (deb / "netboot/debian-installer/amd64").mkdir(parents=True)
    (deb / "MANIFEST").write_text("Debian installer images\n")
    (deb / "netboot/debian-installer/amd64/linux").write_bytes(b"kernel")
    (deb / "netboot/debian-installer/amd64/initrd.gz").write_bytes(b"initrd")
    # A .treeinfo tree (Fedora's layout).
    tree = path / "treeinfo"
    (tree / "images/pxeboot").mkdir(parents=True)
    (tree / ".treeinfo").write_text(
        "[general]\nfamily = Fedora\nversion = 36\narch = x86_64\n"
        "[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n"
    )
    (tree / "images/pxeboot/vmlinuz").write_bytes(b"kernel")
    (tree / "images/pxeboot/initrd.img").write_bytes(b"initrd")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pyvirtd(work: Path) -> Iterator[Daemon]:
    d = Daemon()
    d.start()
    try:
        (work / "net.xml").write_text(NETWORK)
        d.cli("net-define", str(work / "net.xml")).ok()
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle | None]:
    if Oracle.missing():
        yield None
        return
    with Oracle() as o:
        yield o


COMMON = "--virt-type qemu --noautoconsole"
CASES = {
    "linux-import": (
        "--name c1 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 --network none"
    ),
    "linux-cdrom-new-disk": (
        "--name c2 --memory 2048 --os-variant debian11 --cdrom {w}/plain.iso --disk size=4"
    ),
    "linux-uefi-vnc": (
        "--name c3 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 --boot "
        "uefi --graphics vnc,listen=0.0.0.0,password=secret --network none"
    ),
    "topology-maxmem": (
        "--name c4 --memory 1024,maxmemory=2048 --vcpus "
        "2,maxvcpus=4,sockets=1,cores=2,threads=2 --os-variant debian11 --import --disk "
        "{w}/cloud.qcow2 --graphics none --network none"
    ),
    "disks-every-bus": (
        "--name c5 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 --disk "
        "{w}/data.raw,bus=sata --disk size=1,bus=scsi --disk size=1,bus=usb,cache=none "
        "--graphics none --network none"
    ),
    "location-debian": (
        "--name c6 --memory 1024 --os-variant debian11 --location {w}/installer-amd64 "
        "--extra-args console=ttyS0 --disk {w}/cloud.qcow2 --graphics none --network none"
    ),
    "location-treeinfo": (
        "--name c7 --memory 1024 --os-variant fedora36 --location {w}/treeinfo --disk "
        "{w}/cloud.qcow2 --graphics none --network none"
    ),
    "cloud-init": (
        "--name c8 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 "
        "--cloud-init root-password-generate=on --graphics none --network none"
    ),
    "nics": (
        "--name c9 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 "
        "--network network=default --network network=default,model=e1000e --network user "
        "--graphics none"
    ),
    "generic-bios": (
        "--name c10 --memory 512 --os-variant detect=on,require=off --import --disk "
        "{w}/cloud.qcow2 --graphics none --network none"
    ),
    "windows": (
        "--name c11 --memory 4096 --os-variant win10 --cdrom {w}/plain.iso --disk "
        "{w}/data.raw --network network=default --graphics vnc"
    ),
    "win11-uefi": (
        "--name c12 --memory 4096 --os-variant win11 --cdrom {w}/plain.iso --disk "
        "{w}/data.raw --network none --graphics vnc --tpm none"
    ),
    # (active_pcr_banks.* left out: virt-install 4.1 writes <active_pcr_banks> under <tpm>, where
    # libvirt does not read it; pyvirt puts it in <backend>: tests/unit/install/test_build.py)
    "tpm-options": (
        "--name c15 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 --graphics none "
        "--network none --tpm emulator,model=tpm-tis,backend.version=2.0,backend.persistent_state=on"
    ),
    "tpm-passthrough": (
        "--name c16 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2 --graphics none "
        "--network none --tpm /dev/tpm0"
    ),
    "default-spice": ("--name c13 --memory 1024 --os-variant debian11 --import --disk {w}/cloud.qcow2"),
    "boot-order": (
        "--name c14 --memory 1024 --os-variant debian11 --import --disk "
        "{w}/cloud.qcow2,boot.order=1 --network network=default --graphics none --boot "
        "menu=on"
    ),
}


def _documents(text: str) -> list[ET.Element]:
    return [ET.fromstring(doc) for doc in re.findall(r"<domain.*?</domain>", text, re.S)]


def _normalise(root: ET.Element, lacks: tuple[str, ...] = ()) -> ET.Element:
    for path in lacks:
        for parent in root.iter():
            for child in list(parent):
                if child in root.findall(path):
                    parent.remove(child)
    for node in root.iter():
        if node.tag == "uuid":
            node.text = "UUID"
        if node.tag == "mac" and "address" in node.attrib:
            node.set("address", "MAC")
        if node.tag == "source" and "file" in node.attrib:
            node.set("file", _generated(node.attrib["file"]))
        if node.tag in ("kernel", "initrd") and node.text:
            node.text = _generated(node.text)
    return root


def _generated(path: str) -> str:
    """Paths the tools choose themselves, by what they are: a new disk in the default pool, a copied
    installer file, the cloud-init seed."""
    if path.endswith("cloudinit.iso"):
        return "SEED"
    match = re.match(r".*/(?:virtinst-\w+-|[\w-]+-[0-9a-f]{8}-)(linux|initrd\.gz|vmlinuz|initrd\.img)$", path)
    if match:
        return "BOOT/" + match.group(1)
    for pool in ("/var/lib/libvirt/images/", "/var/lib/pyvirt/images/"):
        if pool in path:
            return "POOL/" + path.split(pool, 1)[1]
    return path


def _canon(node: ET.Element) -> object:
    return (node.tag, sorted(node.attrib.items()), (node.text or "").strip(), [_canon(c) for c in node])


def _diff(a: ET.Element, b: ET.Element, path: str = "") -> list[str]:
    where = f"{path}/{a.tag}"
    out = []
    if a.tag != b.tag:
        return [f"{where}: element {a.tag} vs {b.tag}"]
    if a.attrib != b.attrib:
        out.append(f"{where}: attributes {a.attrib} vs {b.attrib}")
    if (a.text or "").strip() != (b.text or "").strip():
        out.append(f"{where}: text {a.text!r} vs {b.text!r}")
    ca, cb = list(a), list(b)
    for x, y in zip(ca, cb, strict=False):
        out += _diff(x, y, where)
    if len(ca) != len(cb):
        extra = ca[len(cb) :] or cb[len(ca) :]
        side = "pyvirt" if len(ca) > len(cb) else "virt-install"
        out.append(f"{where}: only {side} has {[e.tag for e in extra]}")
    return out


def _pyvirt(d: Daemon, args: str) -> str:
    return d.cli("install", "--print-xml", *shlex.split(args)).ok().out


@pytest.mark.parametrize("case", sorted(CASES))
def test_print_xml_matches_virt_install(
    case: str, work: Path, pyvirtd: Daemon, oracle: Oracle | None
) -> None:
    args = f"{CASES[case].format(w=work)} {COMMON}"
    ours = _documents(_pyvirt(pyvirtd, args))
    assert ours, "pyvirt printed no domain"
    for doc in ours:  # every document pyvirt prints is one its own parser takes
        assert doc.find("name") is not None
    if oracle is None:
        pytest.skip(f"virt-install oracle unavailable: {Oracle.missing()}")
    result = oracle.run("--print-xml", "--dry-run", *shlex.split(args))
    assert result.returncode == 0, result.stderr
    theirs = _documents(result.stdout)
    assert len(ours) == len(theirs), f"pyvirt printed {len(ours)} steps, virt-install {len(theirs)}"
    for index, (mine, ref) in enumerate(zip(ours, theirs, strict=True)):
        differences = _diff(_normalise(mine), _normalise(ref, PYVIRT_LACKS))
        assert not differences, f"step {index + 1}:\n" + "\n".join(differences)


def test_print_xml_step(work: Path, pyvirtd: Daemon) -> None:
    args = CASES["location-debian"].format(w=work) + " " + COMMON
    both = _documents(_pyvirt(pyvirtd, args))
    first = _documents(pyvirtd.cli("install", "--print-xml", "1", *shlex.split(args)).ok().out)
    second = _documents(pyvirtd.cli("install", "--print-xml", "2", *shlex.split(args)).ok().out)
    assert len(both) == 2 and len(first) == 1 and len(second) == 1
    assert first[0].findtext("on_reboot") == "destroy" and first[0].find("os/kernel") is not None
    assert second[0].find("on_reboot") is None and second[0].find("os/kernel") is None
    assert second[0].find("os/boot").get("dev") == "hd"
    # nothing was made: the generated names are free and no domain was defined
    assert pyvirtd.cli("list", "--all", "--name").ok().out.strip() == ""


def test_refusals_name_the_suboption(work: Path, pyvirtd: Daemon) -> None:
    base = ["--print-xml", "--name", "r", "--memory", "512", "--os-variant", "debian11", "--network", "none"]
    disk = ("--import", "--disk", f"{work}/cloud.qcow2")
    cases = {
        ("--import", "--disk", f"{work}/cloud.qcow2,discard_granularity=4096"): "discard_granularity",
        (*disk, "--tpm", "type=external"): "--tpm type=external",
        (*disk, "--graphics", "vnc,keymap=de"): "keymap",
        (*disk, "--boot", "uefi,loader_secure=yes"): "loader_secure",
        (*disk, "--memory", "512,hotplugmemorymax=4096"): "hotplugmemorymax",
        (*disk, "--check", "path_in_use=off"): "--check",
        ("--location", f"{work}/installer-amd64", "--disk", "size=1", "--initrd-inject", "/etc/hostname"): (
            "--initrd-inject"
        ),
    }
    for extra, word in cases.items():
        argv = [a for a in base if not (extra.count("--memory") and a in ("--memory", "512"))]
        result = pyvirtd.cli("install", *argv, *extra)
        assert result.rc == 1 and result.err.startswith("error: ") and word in result.err, (extra, result.err)


def test_failed_start_leaves_nothing(work: Path, pyvirtd: Daemon) -> None:
    """The network is defined but not started: the start fails, and the disk made and the definition
    are removed again."""
    images = pyvirtd.pool_dir
    result = pyvirtd.cli("install", "--name", "fs", "--memory", "256", "--os-variant", "debian11", "--import",
                         "--disk", "size=1", "--network", "network=default", "--graphics", "none",
                         "--virt-type", "qemu", "--noautoconsole")  # fmt: skip
    assert result.rc == 1 and "default" in result.err
    assert not (images / "fs.qcow2").exists()
    assert pyvirtd.cli("list", "--all", "--name").ok().out.strip() == ""


def test_bad_input_leaves_nothing(work: Path, pyvirtd: Daemon) -> None:
    images = pyvirtd.pool_dir
    before = sorted(p.name for p in images.iterdir())
    # an unknown OS
    result = pyvirtd.cli("install", "--name", "b1", "--memory", "512", "--os-variant", "nosuchos9",
                         "--import", "--disk", f"{work}/cloud.qcow2", "--network", "none")  # fmt: skip
    assert result.rc == 1 and "nosuchos9" in result.err
    # no OS at all: refused as virt-install 4.1 refuses it, with the ways out
    result = pyvirtd.cli("install", "--name", "b2", "--memory", "512", "--import", "--disk",
                         f"{work}/cloud.qcow2", "--network", "none")  # fmt: skip
    assert result.rc == 1 and "--os-variant" in result.err and "require=off" in result.err
    # a size that disagrees with an existing image
    result = pyvirtd.cli("install", "--name", "b3", "--memory", "512", "--os-variant", "debian11", "--import",
                         "--disk", f"{work}/cloud.qcow2,size=5", "--network", "none")  # fmt: skip
    assert result.rc == 1 and "5 GiB" in result.err and "1 GiB" in result.err
    # an ISO that is not an installer, as --location
    result = pyvirtd.cli(
        *("install", "--name", "b4", "--memory", "512", "--os-variant", "debian11", "--location"),
        *(f"{work}/plain.iso", "--disk", "size=1", "--network", "none"),
    )
    assert result.rc == 1 and "not an installer" in result.err
    # an appliance: installed with --import only; an OVF that references a disk it does not hold
    from tests.support.ova import Spec, make_ova, vmware_ovf

    ova = make_ova(
        work / "app.ova", "app.ovf", vmware_ovf(Spec(disk_file="d1.vmdk")), {"d1.vmdk": work / "cloud.qcow2"}
    )
    result = pyvirtd.cli("install", "--name", "b5", "--memory", "512", "--os-variant", "debian11", "--cdrom",
                         f"{work}/plain.iso", "--disk", str(ova), "--network", "none")  # fmt: skip
    assert result.rc == 1 and "an OVA/OVF appliance is installed with --import" in result.err, result.err
    two = vmware_ovf(Spec(disk_file="d1.vmdk", extra_disk_ref="d2.vmdk"))
    missing = make_ova(work / "two.ova", "two.ovf", two, {"d1.vmdk": work / "cloud.qcow2"})
    result = pyvirtd.cli("install", "--name", "b6", "--os-variant", "debian11", "--import", "--disk",
                         str(missing), "--network", "none")  # fmt: skip
    assert result.rc == 1 and "references the file d2.vmdk (disk vmdisk2)" in result.err, result.err
    assert sorted(p.name for p in images.iterdir()) == before
    assert pyvirtd.cli("list", "--all", "--name").ok().out.strip() == ""
    boot = pyvirtd.root / "var/lib/pyvirt/boot"
    assert not boot.exists() or not list(boot.iterdir())


def test_appliance_import_matches_virt_install(work: Path, pyvirtd: Daemon, oracle: Oracle | None) -> None:
    """pyvirt install --import --disk X.ova: the domain virt-install makes (it has no appliance import)
    for the options the OVF stands for: its vCPUs, memory, machine (pc: a BIOS appliance), disk bus and
    NIC model, with the disk converted to a new qcow2 in the default pool."""
    from tests.support.ova import Spec, make_ova, vmware_ovf

    spec = Spec(name="vm", vcpus=2, memory_mib=160, disk_file="d1.vmdk", nic="E1000")
    ova = make_ova(work / "vm.ova", "vm.ovf", vmware_ovf(spec), {"d1.vmdk": work / "cloud.qcow2"})
    argv = ["--name", "o1", "--os-variant", "debian11", "--import", "--disk", str(ova), "--graphics", "none"]
    result = pyvirtd.cli("install", "--print-xml", *argv, *COMMON.split()).ok()
    (dom,) = _documents(result.out)
    source = dom.find("devices/disk/source")
    pool_disk = str(pyvirtd.pool_dir / "o1.qcow2")
    assert source.get("file") == pool_disk and not Path(pool_disk).exists()  # --print-xml converts nothing
    assert dom.findtext("vcpu") == "2" and dom.findtext("memory") == str(160 << 10)
    machine = dom.find("os/type").get("machine")
    assert machine.startswith("pc-i440fx-") and dom.find("devices/disk/target").get("bus") == "sata"
    assert dom.find("devices/interface/model").get("type") == "e1000"
    if oracle is None:
        pytest.skip(f"virt-install oracle unavailable: {Oracle.missing()}")
    equivalent = [
        "--name", "o1", "--os-variant", "debian11", "--import", "--disk", f"{work}/cloud.qcow2,bus=sata",
        "--graphics", "none", "--vcpus", "2", "--memory", "160", "--machine", machine,
        "--network", "network=default,model=e1000",
    ]  # fmt: skip
    ref = oracle.run("--print-xml", "--dry-run", *equivalent, *COMMON.split())
    assert ref.returncode == 0, ref.stderr
    (theirs,) = _documents(ref.stdout)
    source.set("file", f"{work}/cloud.qcow2")
    differences = _diff(_normalise(dom), _normalise(theirs, PYVIRT_LACKS))
    assert not differences, "\n".join(differences)


def _compare(d: Daemon, oracle: Oracle | None, argv: list[str]) -> list[ET.Element]:
    """pyvirt's documents for ``argv``, checked against virt-install's when the oracle is here."""
    ours = _documents(d.cli("install", "--print-xml", *argv, *COMMON.split()).ok().out)
    if oracle is not None:
        result = oracle.run("--print-xml", "--dry-run", *argv, *COMMON.split())
        assert result.returncode == 0, result.stderr
        theirs = _documents(result.stdout)
        assert len(ours) == len(theirs)
        for mine, ref in zip(ours, theirs, strict=True):
            differences = _diff(_normalise(copy.deepcopy(mine)), _normalise(ref, PYVIRT_LACKS))
            assert not differences, "\n".join(differences)
    return ours


def test_device_options_match_virt_install(work: Path, pyvirtd: Daemon, oracle: Oracle | None) -> None:
    """pyvirt install with --cpu, --machine, --arch, --video, --console, --serial, --channel, --rng,
    --watchdog, --controller and --boot's firmware features, as virt-install makes them."""
    base = ["--memory", "1024", "--os-variant", "debian11", "--import", "--disk", f"{work}/cloud.qcow2"]
    (dom,) = _compare(pyvirtd, oracle, [
        "--name", "k1", *base, "--graphics", "vnc", "--network", "none", "--cpu", "host-passthrough",
        "--machine", "pc", "--arch", "x86_64", "--video", "vga", "--console", "pty,target.type=virtio",
        "--serial", "pty", "--serial", f"file,path={work}/serial.log",
        "--channel", "unix,target.type=virtio,name=org.qemu.guest_agent.0", "--rng", "/dev/urandom",
        "--watchdog", "i6300esb,action=poweroff", "--controller", "type=scsi,model=virtio-scsi",
    ])  # fmt: skip
    assert dom.find("cpu").get("mode") == "host-passthrough" and dom.find("os/type").get("machine") == "pc"
    assert dom.find("devices/watchdog").get("action") == "poweroff"
    assert [s.get("type") for s in dom.findall("devices/serial")] == ["pty", "file"]
    assert dom.find("devices/console/target").get("type") == "virtio"
    (dom,) = _compare(pyvirtd, oracle, [
        "--name", "k2", *base, "--graphics", "none", "--network", "none", "--cpu", "qemu64", "--rng", "none",
        "--controller", "usb3", "--serial", f"unix,path={work}/serial.sock,mode=bind",
    ])  # fmt: skip
    assert dom.findtext("cpu/model") == "qemu64" and dom.find("devices/rng") is None
    (dom,) = _compare(pyvirtd, oracle, [
        "--name", "k3", *base, "--graphics", "none", "--network", "none",
        "--boot", "uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=no",
    ])  # fmt: skip
    assert dom.find("os").get("firmware") == "efi"
    assert dom.find("os/firmware/feature").attrib == {"enabled": "no", "name": "secure-boot"}


def test_cdrom_and_cloud_init_match_virt_install(work: Path, pyvirtd: Daemon, oracle: Oracle | None) -> None:
    """pyvirt install and the two phases of --cdrom (Linux and Windows) and --cloud-init installs."""
    install, final = _compare(pyvirtd, oracle, [
        "--name", "k4", "--memory", "1024", "--os-variant", "debian11", "--cdrom", f"{work}/plain.iso",
        "--disk", "size=2", "--network", "none", "--graphics", "none",
    ])  # fmt: skip
    assert [b.get("dev") for b in install.findall("os/boot")] == ["cdrom", "hd"]
    assert install.find("devices/disk[@device='cdrom']/source").get("file") == f"{work}/plain.iso"
    assert final.find("devices/disk[@device='cdrom']/source") is None  # Linux: the media leaves
    install, final = _compare(pyvirtd, oracle, [
        "--name", "k5", "--memory", "4096", "--os-variant", "win10", "--cdrom", f"{work}/plain.iso",
        "--disk", f"{work}/data.raw", "--network", "none", "--graphics", "vnc",
    ])  # fmt: skip
    assert final.find("devices/disk[@device='cdrom']/source") is not None  # Windows keeps it
    assert final.find("devices/disk[@device='disk']/target").get("bus") == "sata"
    assert final.find("clock").get("offset") == "localtime"
    install, final = _compare(pyvirtd, oracle, [
        "--name", "k6", "--memory", "1024", "--os-variant", "debian11", "--import", "--disk",
        f"{work}/cloud.qcow2", "--cloud-init", "root-password-generate=on,disable=on", "--network", "none",
        "--graphics", "none",
    ])  # fmt: skip
    assert install.findtext("on_reboot") == "destroy" and final.find("on_reboot") is None
    seed = install.find("devices/disk[@device='cdrom']/source").get("file")
    assert seed.endswith("cloudinit.iso") and final.find("devices/disk[@device='cdrom']/source") is None

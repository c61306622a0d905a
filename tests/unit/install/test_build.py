"""pyvirt.install.build against fixed OS and host facts: defaults, targets, refusals (no daemon)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig
from pyvirt.install.build import Host, Pool, _generate_target, plan
from pyvirt.install.osinfo import GENERIC, OSFacts, Resources

_PCI = "http://pcisig.com/pci/"
LINUX = OSFacts(
    "debian11", "http://debian.org/debian/11", "Debian 11", "linux",
    frozenset({_PCI + "1af4/1001", _PCI + "1af4/1041", _PCI + "1af4/1000", _PCI + "1af4/1005",
               _PCI + "1af4/1002", _PCI + "1af4/1003", _PCI + "1b36/0004", "http://qemu.org/chipset/x86/q35"}),
    ("virtio-net",), (("x86_64", "efi", True),),
    Resources(
        {"all": {"ram": 1 << 30, "n-cpus": 1, "storage": 10 << 30}}, {"all": {"ram": 1 << 30, "n-cpus": -1}}
    ),
)  # fmt: skip


def host(tmp: Path) -> Host:
    return Host(
        kvm=False, emulator="/usr/bin/qemu-system-x86_64", pc_machine="pc-i440fx-7.2", networks=["default"],
        pools={"default": Pool("default", str(tmp))}, default_pool_path=str(tmp), domains=["taken"],
        boot_dir=str(tmp / "boot"), uefi=True,
    )  # fmt: skip


def test_recommended_resources_and_q35(tmp_path: Path) -> None:
    p = plan({"name": "a", "import_install": True, "disk": [{"size": "2"}]}, LINUX, host(tmp_path))
    dom = ET.fromstring(p.final)
    assert dom.findtext("memory") == str(1 << 20) and dom.findtext("vcpu") == "2"  # twice the minimum
    assert dom.find("os/type").get("machine") == "q35"
    assert len(dom.findall("devices/controller[@model='pcie-root-port']")) == 14
    assert p.volumes[0].path == str(tmp_path / "a.qcow2") and p.volumes[0].capacity == 2 << 30
    assert p.install is None  # an import has no install phase


def test_generic_gets_pc_ide_and_usb2(tmp_path: Path) -> None:
    p = plan({"name": "g", "memory": {"memory": "512"}, "import_install": True, "disk": [{"size": "1"}]},
             GENERIC, host(tmp_path))  # fmt: skip
    dom = ET.fromstring(p.final)
    assert dom.find("os/type").get("machine") == "pc-i440fx-7.2"
    assert dom.find("devices/disk/target").attrib == {"dev": "hda", "bus": "ide"}
    assert [c.get("model") for c in dom.findall("devices/controller")][:2] == ["ich9-ehci1", "ich9-uhci1"]


def test_targets_follow_the_last_used() -> None:
    assert _generate_target("virtio", []) == "vda"
    assert _generate_target("virtio", ["vda", "vdb"]) == "vdc"
    assert _generate_target("sata", ["sdb"]) == "sdc"  # after the last used, as virt-install
    assert _generate_target("sata", ["sda", "sdc"]) == "sdd"
    with pytest.raises(InvalidArgument):
        _generate_target("ide", ["hda", "hdb", "hdc", "hdd"])


def test_refusals(tmp_path: Path) -> None:
    base = {"name": "r", "import_install": True, "disk": [{"size": "1"}], "memory": {"memory": "512"}}
    with pytest.raises(UnsupportedConfig, match="io_uring="):
        plan({**base, "disk": [{"size": "1", "io_uring": "on"}]}, LINUX, host(tmp_path))
    with pytest.raises(InvalidArgument, match="exists already"):
        plan({**base, "name": "taken"}, LINUX, host(tmp_path))
    with pytest.raises(InvalidArgument, match="alternative install methods"):
        plan({**base, "cdrom": "/nonexistent.iso"}, LINUX, host(tmp_path))
    with pytest.raises(InvalidArgument, match="does not match 3 vCPUs"):
        plan({**base, "vcpus": {"vcpus": "3", "sockets": "2", "cores": "2"}}, LINUX, host(tmp_path))
    with pytest.raises(UnsupportedConfig, match="--tpm type=external"):
        plan({**base, "tpm": [{"type": "external"}]}, LINUX, host(tmp_path))
    with pytest.raises(UnsupportedConfig, match="--tpm profile="):
        plan({**base, "tpm": [{"type": "emulator", "profile": "x"}]}, LINUX, host(tmp_path))


def test_tpm_default_on_uefi_with_swtpm_and_options(tmp_path: Path) -> None:
    """virt-install's rules: a UEFI guest gets an emulated TPM (CRB) when the host has swtpm, unless
    --tpm none; --tpm /dev/tpm0 is a passthrough; the options land in <backend>."""
    base = {"name": "t", "import_install": True, "disk": [{"size": "1"}], "boot": {"uefi": "on"}}
    with_swtpm = dataclasses.replace(host(tmp_path), tpm_emulator=True)
    tpm = ET.fromstring(plan(base, LINUX, with_swtpm).final).find("devices/tpm")
    assert tpm is not None and tpm.attrib == {"model": "tpm-crb"}
    assert [(e.tag, e.attrib) for e in tpm] == [("backend", {"type": "emulator"})]
    assert ET.fromstring(plan(base, LINUX, host(tmp_path)).final).find("devices/tpm") is None
    none = plan({**base, "tpm": [{"type": "none"}]}, LINUX, with_swtpm)
    assert ET.fromstring(none.final).find("devices/tpm") is None
    passthrough = plan({**base, "tpm": [{"type": "/dev/tpm0"}]}, LINUX, host(tmp_path))
    assert ET.fromstring(passthrough.final).find("devices/tpm/backend/device").get("path") == "/dev/tpm0"
    opts = {"type": "emulator", "backend.version": "2.0", "active_pcr_banks.sha1": "on"}
    opts |= {"backend.encryption.secret": "6dd3e4a5-1d76-44ce-961f-f119f5aad935"}
    backend = ET.fromstring(plan({**base, "tpm": [opts]}, LINUX, host(tmp_path)).final).find(
        "devices/tpm/backend"
    )
    assert backend is not None and backend.get("version") == "2.0"
    assert backend.find("encryption").get("secret") == "6dd3e4a5-1d76-44ce-961f-f119f5aad935"
    assert [bank.tag for bank in backend.find("active_pcr_banks")] == ["sha1"]

"""Firmware selection from QEMU's firmware descriptors, checked against libvirt 9.0's choices on Debian 12."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvirt.conf.domain import Loader
from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.errors import OperationFailed
from pyvirt.qemu import firmware

DATA = Path(__file__).resolve().parents[2] / "data"
TEST_DIR = DATA / "qemu" / "firmware"
DESCRIPTORS = firmware.load_descriptors([str(TEST_DIR)])
HOST_DIR = Path("/usr/share/qemu/firmware")  # Debian's ovmf package, installed by make setup
OVMF = "/usr/share/OVMF/"


def test_the_test_descriptors_are_debians() -> None:
    """The golden tests' descriptors say what the host's (from the ovmf package) say."""
    host = {Path(fw.path).name: fw for fw in firmware.load_descriptors([str(HOST_DIR)])}
    assert host, f"no firmware descriptors in {HOST_DIR}: install the ovmf package (make setup)"
    for fw in DESCRIPTORS:
        theirs = host[Path(fw.path).name]
        assert (fw.interfaces, fw.executable, fw.nvram_template, fw.targets, fw.features) == (
            theirs.interfaces, theirs.executable, theirs.nvram_template, theirs.targets, theirs.features
        )  # fmt: skip


def domain(machine: str = "q35", os_extra: str = "", features: str = "<acpi/>", pm: str = "") -> str:
    return f"""<domain type='qemu'><name>fw</name><memory unit='MiB'>128</memory>
      <os firmware='efi'><type arch='x86_64' machine='{machine}'>hvm</type>{os_extra}</os>
      <features>{features}</features>{pm}</domain>"""


def feature(name: str, enabled: str) -> str:
    return f"<feature enabled='{enabled}' name='{name}'/>"


@pytest.mark.parametrize(
    ("machine", "os_extra", "code", "template", "smm"),
    [
        # libvirt 9.0 on Debian 12: a plain firmware='efi' gets secure boot with Microsoft keys, and SMM.
        ("q35", "", "OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd", True),
        ("pc-q35-7.2", "", "OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd", True),
        ("pc", "", "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", False),
        ("pc-i440fx-7.2", "", "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", False),
        (
            "q35",
            f"<firmware>{feature('secure-boot', 'no')}</firmware>",
            "OVMF_CODE_4M.fd",
            "OVMF_VARS_4M.fd",
            False,
        ),
        (
            "q35",
            f"<firmware>{feature('enrolled-keys', 'no')}</firmware>",
            "OVMF_CODE_4M.secboot.fd",
            "OVMF_VARS_4M.fd",
            True,
        ),
        (
            "q35",
            f"<firmware>{feature('secure-boot', 'yes')}{feature('enrolled-keys', 'yes')}</firmware>",
            "OVMF_CODE_4M.ms.fd",
            "OVMF_VARS_4M.ms.fd",
            True,
        ),
        ("q35", "<loader secure='yes'/>", "OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd", True),
        (
            "q35",
            f"<loader>{OVMF}OVMF_CODE_4M.secboot.fd</loader>",
            "OVMF_CODE_4M.secboot.fd",
            "OVMF_VARS_4M.fd",
            True,
        ),
        (
            "q35",
            f"<nvram template='{OVMF}OVMF_VARS_4M.fd'/>",
            "OVMF_CODE_4M.secboot.fd",
            "OVMF_VARS_4M.fd",
            True,
        ),
    ],
)
def test_selection(machine: str, os_extra: str, code: str, template: str, smm: bool) -> None:
    dom = load_domain_xml(domain(machine, os_extra))
    firmware.fill_domain(dom, DESCRIPTORS)
    assert dom.os.loader is not None
    assert (dom.os.loader.path, dom.os.loader.type, dom.os.loader.readonly) == (OVMF + code, "pflash", True)
    assert dom.os.nvram_template == OVMF + template
    assert ("smm" in dom.features) == smm
    assert dom.os.firmware is None  # resolved in the running definition


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            domain("pc", f"<firmware>{feature('secure-boot', 'yes')}</firmware>"),
            "Unable to find any firmware to satisfy 'efi' with secure-boot=yes on machine 'pc-i440fx-7.2'",
        ),
        (domain("pc", "", pm="<pm><suspend-to-disk enabled='yes'/></pm>"), "Unable to find any firmware"),
        (domain("q35", f"<loader>{OVMF}OVMF_CODE.fd</loader>"), "Unable to find any firmware"),
        (domain("q35", "", features="<acpi/><smm state='off'/>"), "SMM turned off"),
    ],
)
def test_unsatisfiable_requests_are_errors(text: str, message: str) -> None:
    dom = load_domain_xml(text)
    with pytest.raises(OperationFailed, match=message):
        firmware.fill_domain(dom, DESCRIPTORS)


def test_bios_without_descriptors_is_qemus_own() -> None:
    dom = load_domain_xml(domain().replace("firmware='efi'", "firmware='bios'"))
    firmware.fill_domain(dom, DESCRIPTORS)
    assert dom.os.loader is None and dom.os.firmware is None


def test_etc_overrides_and_an_empty_file_masks(tmp_path: Path) -> None:
    etc, share = tmp_path / "etc", tmp_path / "share"
    etc.mkdir()
    share.mkdir()
    for fw in (TEST_DIR / name for name in sorted(p.name for p in TEST_DIR.glob("*.json"))):
        (share / fw.name).write_text(fw.read_text())
    (etc / "40-edk2-x86_64-secure-enrolled.json").write_text("")  # masked by the administrator
    custom = json.loads((TEST_DIR / "60-edk2-x86_64.json").read_text())
    custom["mapping"]["executable"]["filename"] = "/opt/fw/CODE.fd"
    (etc / "60-edk2-x86_64.json").write_text(json.dumps(custom))
    paths = firmware.descriptor_paths([str(etc), str(share)])
    assert [p.name for p in paths] == ["50-edk2-x86_64-secure.json", "60-edk2-x86_64.json"]
    assert paths[1].parent == etc
    descriptors = firmware.load_descriptors([str(etc), str(share)])
    dom = load_domain_xml(domain())
    firmware.fill_domain(dom, descriptors)
    assert dom.os.loader is not None and dom.os.loader.path == OVMF + "OVMF_CODE_4M.secboot.fd"
    dom = load_domain_xml(domain("pc"))
    firmware.fill_domain(dom, descriptors)
    assert dom.os.loader is not None and dom.os.loader.path == "/opt/fw/CODE.fd"


def test_a_broken_descriptor_is_named(tmp_path: Path) -> None:
    (tmp_path / "10-broken.json").write_text("{")
    with pytest.raises(OperationFailed, match=r"10-broken\.json"):
        firmware.load_descriptors([str(tmp_path)])


def test_nvram_of_an_old_style_loader(tmp_path: Path) -> None:
    """A loader given by path without a template takes its descriptor's, or the distribution's name."""
    text = (
        domain()
        .replace(" firmware='efi'", "")
        .replace("</type>", f"</type><loader type='pflash'>{OVMF}OVMF_CODE_4M.ms.fd</loader>")
    )
    dom = load_domain_xml(text)
    assert firmware.nvram_template(dom, DESCRIPTORS) == OVMF + "OVMF_VARS_4M.ms.fd"
    dom.os.loader = Loader(path=OVMF + "OVMF_CODE.fd")
    assert firmware.nvram_template(dom, DESCRIPTORS) == OVMF + "OVMF_VARS.fd"
    template = tmp_path / "VARS.fd"
    template.write_bytes(b"vars" * 16)
    dom.os.nvram_template = str(template)
    firmware.make_nvram(dom, tmp_path / "nvram" / "fw_VARS.fd", DESCRIPTORS)
    assert (tmp_path / "nvram" / "fw_VARS.fd").read_bytes() == b"vars" * 16
    dom.os.nvram_template = str(tmp_path / "missing.fd")
    with pytest.raises(OperationFailed, match="no NVRAM template found"):
        firmware.make_nvram(dom, tmp_path / "other.fd", DESCRIPTORS)

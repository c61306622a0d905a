"""Firmware from QEMU's firmware descriptors (``docs/interop/firmware.json``), chosen as libvirt does.

``<os firmware='efi'>`` (or ``'bios'``) asks for firmware by interface; the descriptors installed with the
firmware (``/usr/share/qemu/firmware/*.json``, overridden by ``/etc/qemu/firmware``) say what each build
is: its files, the machines it runs on, and its features (``secure-boot``, ``enrolled-keys``,
``requires-smm``, ``acpi-s3``...). As libvirt 9.0: the descriptors are taken in file-name order and the
first that satisfies the domain wins, so on Debian 12 a plain ``firmware='efi'`` q35 guest gets
``OVMF_CODE_4M.ms.fd`` (secure boot, Microsoft keys enrolled) with SMM, and ``<firmware><feature>``
requests, ``<loader secure='yes'>``, a given loader path or NVRAM template, and ``<pm>`` S3/S4 narrow the
choice. A loader given without a template finds its template the same way (libvirt's old-style UEFI).
The choice fills the running definition only; the config keeps ``firmware='efi'``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyvirt.conf.domain import Domain, Loader
from pyvirt.errors import OperationFailed

#: Highest priority first; a file name found in an earlier directory hides the same name later, and an
#: empty file hides it altogether (QEMU's interop rules).
DESCRIPTOR_DIRS = ("/etc/qemu/firmware", "/usr/share/qemu/firmware")
#: QEMU 7.2's machine aliases, as the descriptors' globs expect canonical names.
MACHINE_ALIASES = {"pc": "pc-i440fx-7.2", "q35": "pc-q35-7.2"}
_INTERFACES = {"efi": "uefi", "bios": "bios"}


@dataclass(frozen=True)
class Descriptor:
    """One firmware descriptor file."""

    path: str
    interfaces: tuple[str, ...]
    device: str  # flash | memory | kernel
    mode: str  # flash: split | combined | stateless
    executable: str
    executable_format: str
    nvram_template: str | None
    nvram_template_format: str
    targets: tuple[tuple[str, tuple[str, ...]], ...]  # (architecture, machine globs)
    features: frozenset[str]


def descriptor_paths(dirs: tuple[str, ...] | list[str] = DESCRIPTOR_DIRS) -> list[Path]:
    """The descriptor files in effect, in the order they are tried."""
    by_name: dict[str, Path] = {}
    for directory in dirs:
        base = Path(directory)
        if base.is_dir():
            for entry in sorted(base.glob("*.json")):
                by_name.setdefault(entry.name, entry)
    return [by_name[name] for name in sorted(by_name) if by_name[name].stat().st_size > 0]


def parse_descriptor(path: Path) -> Descriptor:
    """Read one descriptor; a malformed one is an error naming the file, as in libvirt."""
    try:
        doc = json.loads(path.read_text())
        mapping = doc["mapping"]
        device = str(mapping["device"])
        if device == "flash":
            executable = mapping["executable"]
            template = mapping.get("nvram-template")
            exe_path, exe_format = str(executable["filename"]), str(executable.get("format", "raw"))
            nvram = str(template["filename"]) if template else None
            nvram_format = str(template.get("format", "raw")) if template else "raw"
        else:
            exe_path, exe_format, nvram, nvram_format = str(mapping["filename"]), "raw", None, "raw"
        targets = tuple(
            (str(t["architecture"]), tuple(str(m) for m in t.get("machines", []))) for t in doc["targets"]
        )
        return Descriptor(
            path=str(path),
            interfaces=tuple(str(i) for i in doc["interface-types"]),
            device=device,
            mode=str(mapping.get("mode", "split")),
            executable=exe_path,
            executable_format=exe_format,
            nvram_template=nvram,
            nvram_template_format=nvram_format,
            targets=targets,
            features=frozenset(str(f) for f in doc.get("features", [])),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise OperationFailed(f"cannot read the firmware descriptor {path}: {err}") from err


def load_descriptors(dirs: tuple[str, ...] | list[str] = DESCRIPTOR_DIRS) -> list[Descriptor]:
    return [parse_descriptor(path) for path in descriptor_paths(dirs)]


def canonical_machine(machine: str | None) -> str:
    name = machine or "pc"
    return MACHINE_ALIASES.get(name, name)


def matches(dom: Domain, fw: Descriptor) -> bool:
    """Whether ``fw`` satisfies ``dom`` (libvirt's qemuFirmwareMatchDomain)."""
    loader = dom.os.loader
    if dom.os.firmware is not None:
        want = _INTERFACES[dom.os.firmware]
    elif loader is not None:
        want = "bios" if loader.type == "rom" else "uefi"
    else:
        return False
    device = "memory" if loader is not None and loader.type == "rom" else "flash"
    if loader is not None and loader.path and (fw.device != device or fw.executable != loader.path):
        return False
    if dom.os.nvram_template is not None and fw.nvram_template != dom.os.nvram_template:
        return False
    if want not in fw.interfaces:
        return False
    machine = canonical_machine(dom.os.machine)
    if not any(
        arch == dom.os.arch and any(fnmatch.fnmatchcase(machine, glob) for glob in globs)
        for arch, globs in fw.targets
    ):
        return False
    if dom.pm_suspend_to_mem and "acpi-s3" not in fw.features:
        return False
    if dom.pm_suspend_to_disk and "acpi-s4" not in fw.features:
        return False
    for name, wanted in dom.os.firmware_features.items():
        if wanted != (name in fw.features):
            return False
    if loader is not None and loader.secure and "requires-smm" not in fw.features:
        return False
    stateless = loader is not None and bool(loader.stateless)
    return not (fw.device == "flash" and fw.mode != ("stateless" if stateless else "split"))


def select(dom: Domain, descriptors: list[Descriptor]) -> Descriptor | None:
    return next((fw for fw in descriptors if matches(dom, fw)), None)


def fill_domain(dom: Domain, descriptors: list[Descriptor] | None = None) -> None:
    """Resolve ``firmware='efi'``/``'bios'`` into a loader, NVRAM template and SMM, in place.

    A ``'bios'`` request that no descriptor serves keeps QEMU's own SeaBIOS; an ``'efi'`` one is an
    error that says what was asked for.
    """
    if dom.os.firmware is None:
        return
    fw = select(dom, load_descriptors() if descriptors is None else descriptors)
    if fw is None:
        if dom.os.firmware == "bios":
            dom.os.firmware = None
            return
        wanted = ", ".join(f"{name}={'yes' if on else 'no'}" for name, on in dom.os.firmware_features.items())
        raise OperationFailed(
            f"Unable to find any firmware to satisfy '{dom.os.firmware}'"
            + (f" with {wanted}" if wanted else "")
            + f" on machine '{canonical_machine(dom.os.machine)}' (descriptors: {', '.join(DESCRIPTOR_DIRS)})"
        )
    _apply(dom, fw)


def _apply(dom: Domain, fw: Descriptor) -> None:
    if fw.device == "flash":
        for what, fmt in (("flash", fw.executable_format), ("nvram template", fw.nvram_template_format)):
            if fmt != "raw":
                raise OperationFailed(f"unsupported {what} format '{fmt}' in {fw.path}")
        loader = dom.os.loader or Loader(path="")
        loader.type, loader.readonly, loader.path = "pflash", True, fw.executable
        dom.os.loader = loader
        if not loader.stateless:
            dom.os.nvram_template = fw.nvram_template
    elif fw.device == "memory":
        dom.os.loader = Loader(path=fw.executable, type="rom")
    else:
        dom.os.kernel = fw.executable
    if "requires-smm" in fw.features:
        if dom.feature_attrs.get("smm", {}).get("state") == "off":
            raise OperationFailed("domain has SMM turned off but the chosen firmware requires it")
        if "smm" not in dom.features:
            dom.features.append("smm")
    dom.os.firmware = None


def nvram_template(dom: Domain, descriptors: list[Descriptor] | None = None) -> str:
    """The template a new NVRAM file is copied from.

    The one the domain names; else the template of the descriptor of its loader; else the name the
    distributions give it (``..._CODE...`` → ``..._VARS...``).
    """
    if dom.os.nvram_template:
        return dom.os.nvram_template
    assert dom.os.loader is not None
    fw = select(dom, load_descriptors() if descriptors is None else descriptors)
    if fw is not None and fw.nvram_template:
        return fw.nvram_template
    template = dom.os.loader.path.replace("_CODE", "_VARS")
    for suffix in (".secboot.fd", ".ms.fd"):
        template = template.replace(suffix, ".fd")
    return template


def make_nvram(dom: Domain, nvram: Path, descriptors: list[Descriptor] | None = None) -> None:
    """Create the domain's NVRAM file from its template."""
    template = nvram_template(dom, descriptors)
    if not os.path.exists(template):
        code = dom.os.loader.path if dom.os.loader else ""
        raise OperationFailed(f"no NVRAM template found for firmware '{code}' (looked for {template})")
    nvram.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, nvram)

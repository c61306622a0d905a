"""An OS's facts from osinfo-db, read through libosinfo (Debian's gir1.2-libosinfo-1.0 over python3-gi).

libosinfo is the library virt-install reads the same database with, so an OS's devices, resources and
firmware (with their inheritance along derives-from and upgrades) come out the same. What pyvirt needs
is copied into :class:`OSFacts`; the database is loaded once per process (about 0.3 s), in a thread
by the daemon. ``generic`` is virt-install's own variant: no devices, no resources.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from pyvirt.errors import InvalidArgument, OperationFailed

_PCI = "http://pcisig.com/pci/"
VIRTIO_DISK = (_PCI + "1af4/1001", _PCI + "1af4/1042")
VIRTIO_SCSI = (_PCI + "1af4/1004", _PCI + "1af4/1048")
VIRTIO_NET = (_PCI + "1af4/1000", _PCI + "1af4/1041")
VIRTIO1_NET = (_PCI + "1af4/1041",)
VIRTIO_RNG = (_PCI + "1af4/1005", _PCI + "1af4/1044")
VIRTIO_GPU = (_PCI + "1af4/1050",)
VIRTIO_BALLOON = (_PCI + "1af4/1002", _PCI + "1af4/1045")
VIRTIO_SERIAL = (_PCI + "1af4/1003", _PCI + "1af4/1043")
QEMU_XHCI = (_PCI + "1b36/0004",)
Q35 = ("http://qemu.org/chipset/x86/q35",)


@dataclass(frozen=True)
class Resources:
    """Per-architecture numbers (bytes, CPUs); -1 or absent means unknown."""

    minimum: dict[str, dict[str, int]] = field(default_factory=dict)
    recommended: dict[str, dict[str, int]] = field(default_factory=dict)

    def _get(self, table: dict[str, dict[str, int]], key: str, arch: str) -> int | None:
        for which in (arch, "all"):
            value = table.get(which, {}).get(key, -1)
            if value != -1:
                return value if value > 0 else None
        return None

    def minimum_of(self, key: str, arch: str) -> int | None:
        return self._get(self.minimum, key, arch)

    def recommended_of(self, key: str, arch: str) -> int | None:
        """The recommended value, else twice the minimum (virt-install's approximation)."""
        value = self._get(self.recommended, key, arch)
        if value:
            return value
        low = self.minimum_of(key, arch)
        return low * 2 if low else None


@dataclass(frozen=True)
class OSFacts:
    short_id: str
    full_id: str | None  # None for "generic"
    name: str
    family: str
    devices: frozenset[str]  # device ids
    net_models: tuple[str, ...]
    firmware: tuple[tuple[str, str, bool], ...]  # (arch, type, supported)
    resources: Resources

    @property
    def generic(self) -> bool:
        return self.short_id == "generic"

    @property
    def windows(self) -> bool:
        return self.family in ("win9x", "winnt", "win16")

    @property
    def linux_generic(self) -> bool:
        return re.fullmatch(r"linux\d{4}", self.short_id) is not None

    @property
    def clock(self) -> str:
        return "localtime" if self.windows or self.family == "solaris" else "utc"

    def supports(self, ids: tuple[str, ...]) -> bool:
        return any(dev in self.devices for dev in ids)

    def supports_q35(self) -> bool:
        if self.supports(VIRTIO_NET) and not self.supports(VIRTIO1_NET):
            return False
        return self.supports(Q35)

    def requires_efi(self, arch: str) -> bool:
        def supported(kind: str, default: bool) -> bool:
            for fw_arch, fw_type, ok in self.firmware:
                if fw_arch == arch and fw_type == kind:
                    return ok
            return default

        return (supported("efi", False) and not supported("bios", True)) or self.short_id == "win11"


GENERIC = OSFacts("generic", None, "Generic or unknown OS", "", frozenset(), (), (), Resources())

_lock = threading.Lock()
_db: Any = None


def _database() -> Any:
    global _db
    with _lock:
        if _db is None:
            try:
                import gi  # type: ignore[import-untyped]

                gi.require_version("Libosinfo", "1.0")
                from gi.repository import Libosinfo  # type: ignore[import-untyped]
            except (ImportError, ValueError) as err:
                raise OperationFailed(
                    "libosinfo is not available to pyvirtd (Debian: python3-gi, gir1.2-libosinfo-1.0 "
                    f"and osinfo-db): {err}"
                ) from err
            loader = Libosinfo.Loader()
            loader.process_default_path()
            _db = (Libosinfo, loader.get_db())
        return _db


def _resources(items: Any) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for res in items.get_elements():
        table[res.get_architecture()] = {
            "ram": res.get_ram(),
            "n-cpus": res.get_n_cpus(),
            "storage": res.get_storage(),
        }
    return table


def _facts(os: Any) -> OSFacts:
    devices = os.get_all_devices(None).get_elements()
    firmware = os.get_complete_firmware_list(None).get_elements()
    return OSFacts(
        short_id=os.get_short_id(),
        full_id=os.get_id(),
        name=os.get_name() or os.get_short_id(),
        family=os.get_family() or "",
        devices=frozenset(dev.get_id() for dev in devices),
        net_models=tuple(dev.get_name() for dev in devices if re.match("net", dev.get_class() or "")),
        firmware=tuple((fw.get_architecture(), fw.get_firmware_type(), fw.is_supported()) for fw in firmware),
        resources=Resources(
            _resources(os.get_minimum_resources()), _resources(os.get_recommended_resources())
        ),
    )


def lookup(short_id: str) -> OSFacts:
    """The OS with this short id (``debian11``, ``win11``, ``generic``); InvalidArgument if unknown."""
    if short_id == "generic":
        return GENERIC
    libosinfo, db = _database()
    for os in db.get_os_list().get_elements():
        if short_id in (os.get_short_id_list() or [os.get_short_id()]):
            return _facts(os)
    del libosinfo
    raise InvalidArgument(
        f"--os-variant {short_id}: unknown OS name (osinfo-db knows none by that name; "
        "see `osinfo-query os` for the names, or use --os-variant generic)"
    )


def lookup_id(full_id: str) -> OSFacts:
    _, db = _database()
    os = db.get_os(full_id)
    if os is None:
        raise InvalidArgument(f"unknown osinfo id {full_id}")
    return _facts(os)


def detect_tree(location: str) -> OSFacts | None:
    """The OS of an installer tree (a directory URL), by osinfo-db's tree rules (its .treeinfo)."""
    libosinfo, db = _database()
    try:
        tree = libosinfo.Tree.create_from_location(location, None)
    except Exception:
        return None
    found = db.guess_os_from_tree(tree)
    os = found[0] if isinstance(found, tuple) else found
    return _facts(os) if os is not None else None


def detect_media(path: str) -> OSFacts | None:
    """The OS of an installer ISO, by osinfo-db's media rules (volume id, publisher, ...)."""
    libosinfo, db = _database()
    try:
        media = libosinfo.Media.create_from_location_with_flags(path, None, 0)
    except Exception:
        return None
    matched, matched_media = db.identify_media(media), media
    del matched_media
    if not matched:
        return None
    os = media.get_os()
    return _facts(os) if os is not None else None

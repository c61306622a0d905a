"""What the guest agent reports, in libvirt's shapes: the typed parameters of ``guestinfo``
(``user.0.name``, ``os.id``, ``fs.0.disk.0.alias``...) and domifaddr's rows; pure functions of the
agent's replies and the domain's definition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain

#: A PCI address (domain, bus, slot, function) → the domain's disk target there
Targets = dict[tuple[int, int, int, int], str]

# libvirt's names of the fields of guest-get-osinfo, in its order
OS_FIELDS = (
    "id",
    "name",
    "pretty-name",
    "version",
    "version-id",
    "machine",
    "variant",
    "variant-id",
    "kernel-release",
    "kernel-version",
)


def user_params(users: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"user.count": len(users)}
    for i, user in enumerate(users):
        out[f"user.{i}.name"] = user.get("user", "")
        if user.get("domain"):
            out[f"user.{i}.domain"] = user["domain"]
        if "login-time" in user:
            out[f"user.{i}.login-time"] = int(float(user["login-time"]) * 1000)
    return out


def os_params(info: dict[str, Any]) -> dict[str, Any]:
    return {f"os.{key}": info[key] for key in OS_FIELDS if key in info}


def timezone_params(info: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if info.get("zone"):
        out["timezone.name"] = info["zone"]
    out["timezone.offset"] = int(info.get("offset", 0))
    return out


def pci_key(address: dict[str, Any] | None) -> tuple[int, int, int, int] | None:
    if not isinstance(address, dict):
        return None
    try:
        return (
            int(address.get("domain", 0)),
            int(address["bus"]),
            int(address["slot"]),
            int(address["function"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def disk_target(disk: dict[str, Any], targets: Targets, dom: Domain) -> str | None:
    """The domain's target name of a disk the guest agent describes (PCI address, serial, or name)."""
    found = targets.get(pci_key(disk.get("pci-controller")) or (-1, -1, -1, -1))
    if found is not None and disk.get("bus-type") == "virtio":
        return found
    serial = disk.get("serial")
    for config in dom.devices.disks:
        if serial and config.serial == serial:
            return config.target_dev
    dev = str(disk.get("dev", "")).rsplit("/", 1)[-1]
    for config in dom.devices.disks:
        if dev and config.target_dev == dev.rstrip("0123456789"):
            return config.target_dev
    return None


def filesystem_params(filesystems: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"fs.count": len(filesystems)}
    for i, fs in enumerate(filesystems):
        out[f"fs.{i}.name"] = fs["name"]
        out[f"fs.{i}.mountpoint"] = fs["mountpoint"]
        out[f"fs.{i}.fstype"] = fs["fstype"]
        if fs["total_bytes"] is not None:
            out[f"fs.{i}.total-bytes"] = int(fs["total_bytes"])
        if fs["used_bytes"] is not None:
            out[f"fs.{i}.used-bytes"] = int(fs["used_bytes"])
        out[f"fs.{i}.disk.count"] = len(fs["disks"])
        for j, disk in enumerate(fs["disks"]):
            for key in ("alias", "serial", "device"):
                if disk[key]:
                    out[f"fs.{i}.disk.{j}.{key}"] = disk[key]
    return out


def interface_params(ifaces: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"if.count": len(ifaces)}
    for i, iface in enumerate(ifaces):
        out[f"if.{i}.name"] = iface.get("name", "")
        if iface.get("hardware-address"):
            out[f"if.{i}.hwaddr"] = iface["hardware-address"]
        addrs = iface.get("ip-addresses") or []
        out[f"if.{i}.addr.count"] = len(addrs)
        for j, addr in enumerate(addrs):
            out[f"if.{i}.addr.{j}.type"] = addr.get("ip-address-type", "")
            out[f"if.{i}.addr.{j}.addr"] = addr.get("ip-address", "")
            out[f"if.{i}.addr.{j}.prefix"] = int(addr.get("prefix", 0))
    return out


def interface_addresses(ifaces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """guest-network-get-interfaces as domifaddr's rows (an interface without address: N/A)."""
    out: list[dict[str, Any]] = []
    for iface in ifaces:
        name, mac = iface.get("name"), iface.get("hardware-address") or "-"
        addrs = iface.get("ip-addresses") or []
        if not addrs:
            out.append({"name": name, "mac": mac, "protocol": "N/A", "address": "N/A"})
        for addr in addrs:
            out.append(
                {
                    "name": name,
                    "mac": mac,
                    "protocol": addr.get("ip-address-type", ""),
                    "address": f"{addr.get('ip-address', '')}/{addr.get('prefix', 0)}",
                }
            )
    return out


def disk_params(disks: list[dict[str, Any]], targets: Targets, dom: Domain) -> dict[str, Any]:
    """guest-get-disks as libvirt's ``disk.*`` parameters."""
    out: dict[str, Any] = {"disk.count": len(disks)}
    for i, disk in enumerate(disks):
        out[f"disk.{i}.name"] = disk.get("name", "")
        out[f"disk.{i}.partition"] = bool(disk.get("partition"))
        deps = disk.get("dependencies") or []
        if deps:
            out[f"disk.{i}.dependency.count"] = len(deps)
            for j, dep in enumerate(deps):
                out[f"disk.{i}.dependency.{j}.name"] = dep
        address = disk.get("address") or {}
        if address.get("serial"):
            out[f"disk.{i}.serial"] = address["serial"]
        if address:
            alias = disk_target(address, targets, dom)
            if alias:
                out[f"disk.{i}.alias"] = alias
        if disk.get("alias"):
            out[f"disk.{i}.guest_alias"] = disk["alias"]
    return out

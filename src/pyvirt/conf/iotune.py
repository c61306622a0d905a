"""A disk's ``<iotune>`` (blkdeviotune): libvirt's throttling limits, in libvirt's order, and the
combinations QEMU refuses, checked when the XML is read."""

from __future__ import annotations

from pyvirt.errors import InvalidArgument

# libvirt's (and virsh's) names, in libvirt's order; group_name is text, every other a count.
NAMES = (
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
    "total_bytes_sec_max",
    "read_bytes_sec_max",
    "write_bytes_sec_max",
    "total_iops_sec_max",
    "read_iops_sec_max",
    "write_iops_sec_max",
    "size_iops_sec",
    "group_name",
    "total_bytes_sec_max_length",
    "read_bytes_sec_max_length",
    "write_bytes_sec_max_length",
    "total_iops_sec_max_length",
    "read_iops_sec_max_length",
    "write_iops_sec_max_length",
)

#: Limits of one kind: a total and a read or write one cannot be set together.
GROUPS = (
    ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec"),
    ("total_iops_sec", "read_iops_sec", "write_iops_sec"),
    ("total_bytes_sec_max", "read_bytes_sec_max", "write_bytes_sec_max"),
    ("total_iops_sec_max", "read_iops_sec_max", "write_iops_sec_max"),
    ("total_bytes_sec_max_length", "read_bytes_sec_max_length", "write_bytes_sec_max_length"),
    ("total_iops_sec_max_length", "read_iops_sec_max_length", "write_iops_sec_max_length"),
)


def check(values: dict[str, int | str], where: str) -> None:
    """Refuse, naming them, a total beside a read or write limit of its kind, and a negative value."""
    for name, value in values.items():
        if name not in NAMES:
            raise InvalidArgument(f"invalid argument: {where} has no limit '{name}'")
        if name != "group_name" and int(value) < 0:
            raise InvalidArgument(f"invalid argument: {where} {name} must not be negative")
    for total, read, write in GROUPS:
        if values.get(total) and (values.get(read) or values.get(write)):
            raise InvalidArgument(
                f"invalid argument: {where}: {total} cannot be set at the same time as {read} or {write}"
            )


def nonzero(values: dict[str, int | str]) -> dict[str, int | str]:
    """The limits set (0 and an empty group name mean none), in libvirt's order."""
    return {name: values[name] for name in NAMES if values.get(name)}

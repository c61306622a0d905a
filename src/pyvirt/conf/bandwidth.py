"""A NIC's ``<bandwidth>``: directions and their rates (KiB/s) and bursts (KiB), as libvirt has them,
checked where pyvirt can honour them (a tap's traffic control, :mod:`pyvirt.network.shaping`)."""

from __future__ import annotations

from pyvirt.errors import InvalidArgument

DIRECTIONS = ("inbound", "outbound")
FIELDS = ("average", "peak", "burst", "floor")
MAX_RATE = 1 << 32  # KiB/s: libvirt's bound


def check(bandwidth: dict[str, dict[str, int]], where: str) -> None:
    """Refuse what a tap cannot be given, naming it: a floor (a network's QoS), an unknown field, a
    peak or burst without an average, or a peak below the average."""
    for direction, values in bandwidth.items():
        if direction not in DIRECTIONS:
            raise InvalidArgument(f"invalid argument: {where} has no direction '{direction}'")
        for name, value in values.items():
            if name not in FIELDS:
                raise InvalidArgument(f"invalid argument: {where}/{direction} has no parameter '{name}'")
            if not 0 <= value < MAX_RATE:
                raise InvalidArgument(f"invalid argument: {where}/{direction} {name} {value} is out of range")
        if values.get("floor"):
            raise InvalidArgument(
                f"invalid argument: {where}/{direction} floor: a floor needs a network with <bandwidth> QoS, "
                "which pyvirt's networks do not have"
            )
        average, peak = values.get("average", 0), values.get("peak", 0)
        if not average and (peak or values.get("burst")):
            raise InvalidArgument(f"invalid argument: {where}/{direction}: peak and burst need an average")
        if peak and peak < average:
            raise InvalidArgument(
                f"invalid argument: {where}/{direction}: peak {peak} is below average {average}"
            )

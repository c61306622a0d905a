"""virsh's --mode lists for shutdown and reboot, as libvirt 9.0's QEMU driver takes them."""

from __future__ import annotations

import pytest

from pyvirt.daemon.agent_power import parse_modes
from pyvirt.errors import InvalidArgument, UnsupportedConfig


@pytest.mark.parametrize(
    ("text", "order"),
    [
        (None, []),
        ("acpi", ["acpi"]),
        ("agent", ["agent"]),
        ("acpi,agent", ["agent", "acpi"]),  # the agent first, whatever the order given
        ("agent,acpi", ["agent", "acpi"]),
        ("acpi,acpi", ["acpi"]),
    ],
)
def test_agent_comes_first(text: str | None, order: list[str]) -> None:
    assert parse_modes(text) == order


def test_unknown_and_unsupported_modes_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="Unknown mode bogus value"):
        parse_modes("acpi,bogus")
    with pytest.raises(UnsupportedConfig, match="cannot shut down a domain by signal"):
        parse_modes("signal,agent,acpi")
    with pytest.raises(UnsupportedConfig, match="cannot reboot a domain by initctl"):
        parse_modes("initctl", reboot=True)

"""Waiting for a guest's address (``pyvirt launch --wait-ip``, :meth:`pyvirt.client.api.Domain.wait_address`).

The lease comes first: a guest on a pyvirt network has one as soon as its DHCP client is done, and
the daemon reads it from the network's dnsmasq without asking the guest. A guest elsewhere (a bridge,
QEMU user networking) may still say its address through its guest agent: that is asked when the
daemon can (``domifaddr --source agent``), and skipped while it cannot. Loopback and link-local
addresses are not answers.
"""

from __future__ import annotations

import time

from pyvirt.errors import OperationFailed, UnsupportedConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyvirt.api import types
    from pyvirt.client.api import Domain


def usable(address: types.InterfaceAddress) -> bool:
    """An IPv4 address another machine can reach the guest on."""
    ip = address["address"].split("/", 1)[0]
    return address["protocol"] == "ipv4" and not ip.startswith(("127.", "169.254."))


def wait_address(dom: Domain, timeout: float, interval: float = 0.5) -> types.InterfaceAddress:
    """The first usable address of running domain ``dom``; TimeoutError after ``timeout`` seconds,
    InvalidState if the domain stops meanwhile."""
    deadline = time.monotonic() + timeout
    agent = True
    while True:
        for address in dom.interface_addresses():
            if usable(address):
                return address
        if agent:
            try:
                found = dom.interface_addresses("agent")
            except UnsupportedConfig:
                agent = False  # no agent channel (or a daemon without agent support): leases only
            except OperationFailed:
                found = []  # the agent does not answer yet
            else:
                for address in found:
                    if usable(address):
                        return address
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"domain {dom.name} has no IPv4 address after {timeout:.0f} s (no DHCP lease from a pyvirt "
                "network, no answer from a guest agent)"
            )
        time.sleep(interval)

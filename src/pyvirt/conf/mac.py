"""MAC addresses: the one generator (QEMU's 52:54:00 prefix, as libvirt picks them) and the unicast check."""

from __future__ import annotations

import re
import secrets
from collections.abc import Container
from random import Random

MAC_PREFIX = "52:54:00"
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")


def random_mac(taken: Container[str] = (), *, rng: Random | None = None) -> str:
    """A random ``52:54:00:xx:xx:xx`` address not in ``taken`` (lower case); ``rng`` for tests."""
    while True:
        tail = rng.randbytes(3) if rng is not None else secrets.token_bytes(3)
        mac = MAC_PREFIX + "".join(f":{byte:02x}" for byte in tail)
        if mac not in taken:
            return mac


def is_mac(text: str) -> bool:
    """Six colon-separated hex bytes."""
    return _MAC.fullmatch(text) is not None


def is_unicast_mac(text: str) -> bool:
    """A well-formed MAC whose first byte has the multicast bit clear (usable by a NIC)."""
    return is_mac(text) and int(text[:2], 16) & 1 == 0

"""pyvirt: a Python management plane for KVM/QEMU hosts.

The daemon ``pyvirtd`` manages QEMU processes, networks and storage; the client ``pyvirt`` speaks
virsh's verbs to it. ``pyvirt.open(uri)`` returns a connection for use from Python.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.client.api import Connection


def open(uri: str | None = None, readonly: bool = False) -> Connection:
    """Open a connection to a pyvirtd, like ``libvirt.open(uri)``."""
    from pyvirt.client.api import Connection

    return Connection.open(uri, readonly=readonly)

"""An NBD disk over TLS: ``<source protocol='nbd' tls='yes' tlsHostname='NAME'>``, as libvirt 9.0 runs it.

QEMU gets a ``tls-creds-x509`` object (``endpoint=client``, ``verify-peer=on``) reading the client
credentials from the daemon's NBD TLS directory, libvirt's ``nbd_tls_x509_cert_dir``: here
``PKI_DIR/qemu`` (``/etc/pki/pyvirt/qemu`` for the system daemon) with ``ca-cert.pem``,
``client-cert.pem`` and ``client-key.pem``; the NBD node names it in ``tls-creds``, and
``tlsHostname`` becomes ``tls-hostname`` (the name the server's certificate must carry, instead of the
host's). The three files are handed to QEMU's user read-only while it runs; a start without them is
refused by name before QEMU runs. ``tls='no'`` is plain NBD, as written. A network NVRAM
(``<nvram type='network'>`` on NBD) over TLS gets the same credentials, as libvirt 9.0 gives them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pyvirt.errors import UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.conf.domain import DiskConfig, Domain

DEFAULT_DIR = "/etc/pki/pyvirt/qemu"
FILES = ("ca-cert.pem", "client-cert.pem", "client-key.pem")


def uses_tls(disk: DiskConfig) -> bool:
    return disk.source_tls == "yes"


def creds_id(node: str) -> str:
    return f"{node}-storage-tls0"


def creds_object(node: str, directory: str) -> dict[str, object]:
    return {
        "qom-type": "tls-creds-x509",
        "id": creds_id(node),
        "dir": directory,
        "endpoint": "client",
        "verify-peer": True,
    }


def storage_props(disk: DiskConfig, node: str) -> dict[str, object]:
    """The NBD node's ``tls-creds`` and ``tls-hostname``."""
    if not uses_tls(disk):
        return {}
    props: dict[str, object] = {"tls-creds": creds_id(node)}
    if disk.source_tls_hostname:
        props["tls-hostname"] = disk.source_tls_hostname
    return props


def in_use(dom: Domain) -> bool:
    """Whether a disk, a layer of a disk's given chain (conf.backing_chain) or the network NVRAM
    (``<nvram type='network'>``) of ``dom`` is NBD over TLS."""
    layers = [layer.remote for disk in dom.devices.disks for layer in disk.backing or [] if layer.remote]
    return any(uses_tls(disk) for disk in [*dom.devices.disks, *layers]) or (
        dom.os.nvram_source is not None and uses_tls(dom.os.nvram_source)
    )


def require_host(dom: Domain, directory: str) -> None:
    if in_use(dom):
        missing = [name for name in FILES if not os.path.exists(os.path.join(directory, name))]
        if missing:
            raise UnsupportedConfig(
                f"unsupported configuration: NBD over TLS needs the client credentials in "
                f"{directory} ({', '.join(missing)} missing)"
            )

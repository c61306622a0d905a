"""Handing an encrypted disk's passphrase to QEMU without ever putting it on a command line.

As libvirt does: each start makes a random 256-bit master key, written for QEMU alone (mode 0600,
owned by its user, in the domain's run folder that Landlock lets it read) and named on the command
line as the ``secret`` object ``masterKey0``; each disk's passphrase goes on the command line only
encrypted with it (AES-256-CBC, a random IV), as a ``secret`` object whose ``keyid`` is the master
key. ``ps`` and the domain's log show the ciphertext; the passphrase stays in the daemon and QEMU.
The folder, and the key with it, goes when the domain stops.
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.errors import UnsupportedConfig

if TYPE_CHECKING:
    from pyvirt.conf.disk_encryption import DiskEncryption
    from pyvirt.conf.domain import Domain
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.secrets import SecretStore
    from pyvirt.qemu.ownership import Identity

MASTER_KEY_FILE = "master-key.aes"


def passphrase_of(secrets: SecretStore | None, enc: DiskEncryption) -> bytes:
    """The value of the secret an ``<encryption>`` names (by UUID, or by its volume usage)."""
    if secrets is None:
        raise UnsupportedConfig("unsupported configuration: encrypted disks need the secret driver")
    if enc.secret_uuid is not None:
        return secrets.value(secrets.get(enc.secret_uuid))
    assert enc.secret_usage is not None
    return secrets.value(secrets.by_usage("volume", enc.secret_usage))


def passphrases(reg: DomainRegistry, dom: Domain) -> dict[int, bytes]:
    """Each encrypted disk's passphrase (by disk index), from the secret its ``<encryption>`` names.
    A secret that is missing or has no value is refused here, before anything is started."""
    out: dict[int, bytes] = {}
    for index, disk in enumerate(dom.devices.disks):
        if disk.encryption is not None:
            out[index] = passphrase_of(reg.secrets, disk.encryption)
    return out


def seal(
    values: dict[int, bytes], folder: Path, ident: Identity | None
) -> tuple[str | None, dict[int, tuple[str, str]]]:
    """Write a new master key into ``folder`` for QEMU's user and encrypt each passphrase with it:
    (the key's path, disk index → (ciphertext, IV) in base64). Nothing is written without a value."""
    if not values:
        return None, {}
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = os.urandom(32)
    path = folder / MASTER_KEY_FILE
    with contextlib.suppress(FileNotFoundError):  # left by a start that failed
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if ident is not None:
            os.fchown(fd, ident.uid, ident.gid)
        os.write(fd, key)
    finally:
        os.close(fd)
    sealed: dict[int, tuple[str, str]] = {}
    for index, value in values.items():
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        plain = padder.update(value) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        data = encryptor.update(plain) + encryptor.finalize()
        sealed[index] = (base64.b64encode(data).decode(), base64.b64encode(iv).decode())
    return str(path), sealed

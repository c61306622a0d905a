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
from typing import TYPE_CHECKING, TypeVar

from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.qemu.command import MASTER_KEY_ID, disk_secret_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from pyvirt.conf.disk_encryption import DiskEncryption
    from pyvirt.conf.domain import DiskConfig, Domain
    from pyvirt.conf.network_disk import NetworkSource
    from pyvirt.daemon.domains import DomainObject
    from pyvirt.qemu.monitor import Monitor

    Undo = Callable[[], Awaitable[None]]
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.secrets import SecretStore
    from pyvirt.qemu.ownership import Identity

MASTER_KEY_FILE = "master-key.aes"
K = TypeVar("K", int, str, "int | str")


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


def network_sources(dom: Domain) -> Iterator[tuple[str, NetworkSource]]:
    """Each network source of ``dom`` that may carry credentials or cookies (conf.network_disk): a
    disk's, its given chain's layers on servers, an iSCSI hostdev's, the NVRAM's, with the node name
    its secret objects are named after."""
    from pyvirt.conf import backing_chain, hostdev

    for index, disk in enumerate(dom.devices.disks):
        node = f"pyvirt-{index + 1}"
        if disk.net is not None:
            yield node, disk.net
        for name, remote in backing_chain.remotes(disk, node):  # its given chain's layers on servers
            if remote.net is not None:
                yield name, remote.net
    for index, dev in enumerate(dom.devices.hostdevs):
        if dev.iscsi is not None:
            yield hostdev.iscsi_node(index), dev.iscsi
    if (nvram := dom.os.nvram_source) is not None and nvram.net is not None:
        yield "pyvirt-pflash1", nvram.net


def network_values(reg: DomainRegistry, dom: Domain) -> dict[str, bytes]:
    """The password, cephx key or cookies of each network source (:func:`network_sources`), by the id
    of the secret object that carries it; a secret missing or without a value is refused before any
    start."""
    out: dict[str, bytes] = {}
    for node, net in network_sources(dom):
        out.update(source_values(reg, net, node))
    return out


def source_values(reg: DomainRegistry, net: NetworkSource, node: str) -> dict[str, bytes]:
    """The password or key and the cookies of the server ``net`` whose block nodes are ``node``-*,
    by the id of the secret object that carries each."""
    from pyvirt.conf import network_disk

    out: dict[str, bytes] = {}
    if (auth := net.auth) is not None:
        if reg.secrets is None:
            raise UnsupportedConfig("unsupported configuration: disk credentials need the secret driver")
        if auth.secret_uuid is not None:
            secret = reg.secrets.get(auth.secret_uuid)
        else:
            assert auth.secret_usage is not None
            secret = reg.secrets.by_usage(auth.secret_type, auth.secret_usage)
        out[network_disk.auth_secret_id(node)] = reg.secrets.value(secret)
    if net.cookies:
        out[network_disk.cookie_secret_id(node)] = network_disk.cookie_string(net).encode()
    return out


def seal_all(
    passphrases: dict[int, bytes], network: dict[str, bytes], folder: Path, ident: Identity | None
) -> tuple[str | None, dict[int, tuple[str, str]], dict[str, tuple[str, str]]]:
    """:func:`seal` for encrypted disks' passphrases and network disks' secrets under one master key."""
    values = _merged(passphrases, network)
    path, sealed = seal(values, folder, ident)
    return path, _ints(sealed), _strs(sealed)


def pretend_all(
    passphrases: dict[int, bytes], network: dict[str, bytes], folder: Path
) -> tuple[str | None, dict[int, tuple[str, str]], dict[str, tuple[str, str]]]:
    """:func:`pretend` for both kinds, as :func:`seal_all`."""
    values = _merged(passphrases, network)
    path, sealed = pretend(values, folder)
    return path, _ints(sealed), _strs(sealed)


def _merged(passphrases: dict[int, bytes], network: dict[str, bytes]) -> dict[int | str, bytes]:
    out: dict[int | str, bytes] = {}
    out.update(passphrases.items())
    out.update(network.items())
    return out


def _ints(sealed: dict[int | str, tuple[str, str]]) -> dict[int, tuple[str, str]]:
    return {key: value for key, value in sealed.items() if isinstance(key, int)}


def _strs(sealed: dict[int | str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {key: value for key, value in sealed.items() if isinstance(key, str)}


def seal(
    values: dict[K, bytes], folder: Path, ident: Identity | None
) -> tuple[str | None, dict[K, tuple[str, str]]]:
    """Write a new master key into ``folder`` for QEMU's user and encrypt each passphrase with it:
    (the key's path, disk index → (ciphertext, IV) in base64). Nothing is written without a value."""
    if not values:
        return None, {}
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
    return str(path), {index: _encrypt(key, value) for index, value in values.items()}


def pretend(values: dict[K, bytes], folder: Path) -> tuple[str | None, dict[K, tuple[str, str]]]:
    """As :func:`seal`, for a command line that is only shown (domxml-to-native, as libvirt's): the key's
    path is where a start would write it, and each passphrase is encrypted under a random key that is
    thrown away, so the line has the shape start gives it and opens nothing."""
    if not values:
        return None, {}
    key = os.urandom(32)
    return str(folder / MASTER_KEY_FILE), {index: _encrypt(key, value) for index, value in values.items()}


def _encrypt(key: bytes, value: bytes) -> tuple[str, str]:
    """``value`` under ``key`` as QEMU's secret object decrypts it: (ciphertext, IV) in base64."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(value) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    return base64.b64encode(data).decode(), base64.b64encode(iv).decode()


async def plug_secret(reg: DomainRegistry, obj: DomainObject, disk: DiskConfig, node: str) -> Undo:
    """The secret object of an encrypted disk plugged into running ``obj`` (its nodes named ``node``-*),
    added over QMP; the domain's master key too when it started without one. Returns the undo."""
    assert disk.encryption is not None
    return await plug_values(reg, obj, {disk_secret_id(node): passphrase_of(reg.secrets, disk.encryption)})


async def plug_values(reg: DomainRegistry, obj: DomainObject, values: dict[str, bytes]) -> Undo:
    """A secret object per value (by its id) for running ``obj``, each encrypted with the domain's
    master key, added over QMP (the key too when it started without one). Returns the undo: the
    objects deleted, newest first, and a master key this call added with them."""
    assert obj.proc is not None
    monitor = obj.proc.monitor
    folder = reg.layout.qemu_run_dir / f"{obj.name}.channels"
    path = folder / MASTER_KEY_FILE
    added: list[str] = []

    async def undo() -> None:
        for secret_id in reversed(added):
            with contextlib.suppress(OperationFailed):
                await monitor.execute("object-del", {"id": secret_id})
        if added[:1] == [MASTER_KEY_ID]:  # the key came with this plug: nothing else uses it
            path.unlink(missing_ok=True)

    try:
        if values and not path.exists():
            key_path, _ = seal(values, folder, reg.confinement.ident)
            master = {"qom-type": "secret", "id": MASTER_KEY_ID, "format": "raw", "file": key_path}
            try:
                await monitor.execute("object-add", master)
            except BaseException:
                path.unlink()
                raise
            added.append(MASTER_KEY_ID)
        for secret_id, value in values.items():
            data, iv = _encrypt(path.read_bytes(), value)
            obj_args = {"qom-type": "secret", "id": secret_id, "data": data, "keyid": MASTER_KEY_ID}
            await monitor.execute("object-add", {**obj_args, "iv": iv, "format": "base64"})
            added.append(secret_id)
    except BaseException:
        await undo()
        raise
    return undo


async def drop_secret(monitor: Monitor, node: str) -> None:
    """Delete the secret object of the disk whose nodes were ``node``-* (gone already: nothing to do)."""
    with contextlib.suppress(OperationFailed):
        await monitor.execute("object-del", {"id": disk_secret_id(node)})

"""Secrets: libvirt's secret objects (``secret-*``), their values kept by the daemon alone.

A persistent secret is ``UUID.xml`` and, once it has a value, ``UUID.base64`` in the daemon's secret
folder (``/etc/pyvirt/secrets``, mode 0700, files 0600, written atomically), as libvirt keeps
``/etc/libvirt/secrets``; an ephemeral one lives in this process's memory only. A value is never
logged and never leaves the daemon on a read-only connection (the table marks the actions that carry
one); a private secret's value is not given to any client at all, only to the QEMU of a domain that
uses it (:mod:`pyvirt.daemon.disk_secrets`).

Its actions (``secret.*``) are declared in :mod:`pyvirt.api.table`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt import store
from pyvirt.conf.secret import SecretDef, format_secret, parse_secret, parse_uuid
from pyvirt.errors import AccessDenied, InvalidArgument, NotFound, OperationFailed, PyvirtError, XMLError

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import Request
    from pyvirt.daemon.routes import Handlers

log = logging.getLogger(__name__)

#: The largest value a secret may hold (a passphrase or a key; libvirt's virsh reads at most 1 KiB).
MAX_VALUE = 64 * 1024


class SecretStore:
    """Every secret the daemon knows, with its value; persistent ones mirrored in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._defs: dict[str, SecretDef] = {}
        self._values: dict[str, bytes] = {}

    # Files

    def _xml_file(self, uuid: str) -> Path:
        return self.directory / f"{uuid}.xml"

    def _value_file(self, uuid: str) -> Path:
        return self.directory / f"{uuid}.base64"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def load(self) -> None:
        """Read the persistent secrets (a file that cannot be read is logged and skipped, as libvirt)."""
        if not self.directory.is_dir():
            return
        self._ensure_dir()
        for path in sorted(self.directory.glob("*.xml")):
            try:
                secret = parse_secret(path.read_text())
                if secret.uuid != path.stem:
                    raise XMLError(f"<uuid> does not match secret file name '{path}'")
                value_file = self._value_file(secret.uuid)
                if value_file.exists():
                    self._values[secret.uuid] = base64.b64decode(value_file.read_bytes(), validate=True)
            except (OSError, PyvirtError, binascii.Error) as err:
                log.error("Error reading secret %s: %s", path.name, err)
                continue
            secret.ephemeral = False
            self._defs[secret.uuid] = secret

    def _save_config(self, secret: SecretDef) -> None:
        self._ensure_dir()
        store.atomic_write(self._xml_file(secret.uuid), format_secret(secret).encode(), 0o600)

    def _save_value(self, uuid: str, value: bytes) -> None:
        self._ensure_dir()
        store.atomic_write(self._value_file(uuid), base64.b64encode(value), 0o600)

    def _delete_files(self, uuid: str) -> None:
        for path in (self._value_file(uuid), self._xml_file(uuid)):
            store.remove(path)

    # Lookups

    def list(self) -> list[SecretDef]:
        return sorted(self._defs.values(), key=lambda s: s.uuid)

    def get(self, key: str) -> SecretDef:
        """The secret with this UUID (with or without dashes)."""
        try:
            uuid = parse_uuid(key, "uuid")
        except XMLError:
            raise InvalidArgument(f"'{key}' is not a valid secret UUID") from None
        secret = self._defs.get(uuid)
        if secret is None:
            raise NotFound(f"Secret not found: no secret with matching uuid '{uuid}'")
        return secret

    def by_usage(self, usage_type: str, usage_id: str) -> SecretDef:
        for secret in self._defs.values():
            if secret.usage_type == usage_type and secret.usage_id == usage_id:
                return secret
        raise NotFound(f"Secret not found: no secret with matching usage '{usage_id}'")

    def has_value(self, uuid: str) -> bool:
        return uuid in self._values

    def value(self, secret: SecretDef) -> bytes:
        """The value, for the daemon's own use (a domain's disk): private secrets too."""
        value = self._values.get(secret.uuid)
        if value is None:
            raise NotFound(f"Secret not found: secret '{secret.uuid}' does not have a value")
        return value

    # Changes

    def define(self, xml: str) -> SecretDef:
        """Define a secret, or redefine one of the same UUID (libvirt's rules: same usage, still private)."""
        new = parse_secret(xml)
        old = self._defs.get(new.uuid)
        if old is not None:
            if old.usage_id != new.usage_id:
                raise OperationFailed(
                    f"a secret with UUID {new.uuid} is already defined for use with {old.usage_id}"
                )
            if old.private and not new.private:
                raise OperationFailed("cannot change private flag on existing secret")
        elif new.usage_type is not None:
            for other in self._defs.values():
                if other.usage_type == new.usage_type and other.usage_id == new.usage_id:
                    raise OperationFailed(
                        f"a secret with UUID {other.uuid} already defined for use with {new.usage_id}"
                    )
        if not new.ephemeral:
            if old is not None and old.ephemeral and new.uuid in self._values:
                self._save_value(new.uuid, self._values[new.uuid])
            try:
                self._save_config(new)
            except BaseException:
                if old is not None and old.ephemeral:
                    with contextlib.suppress(OSError):
                        store.remove(self._value_file(new.uuid))
                raise
        elif old is not None and not old.ephemeral:
            self._delete_files(new.uuid)
        self._defs[new.uuid] = new
        return new

    def undefine(self, secret: SecretDef) -> None:
        if not secret.ephemeral:
            self._delete_files(secret.uuid)
        self._defs.pop(secret.uuid, None)
        self._values.pop(secret.uuid, None)

    def set_value(self, secret: SecretDef, value: bytes) -> None:
        if not secret.ephemeral:
            self._save_value(secret.uuid, value)
        self._values[secret.uuid] = value


def secret_info(secrets: SecretStore, secret: SecretDef) -> dict[str, Any]:
    return {
        "uuid": secret.uuid,
        "ephemeral": secret.ephemeral,
        "private": secret.private,
        "description": secret.description,
        "usage_type": secret.usage_type,
        "usage_id": secret.usage_id,
        "has_value": secrets.has_value(secret.uuid),
    }


class SecretAPI:
    """The ``secret.*`` actions over one :class:`SecretStore`; lifecycle events of kind ``secret``."""

    def __init__(self, directory: Path, events: EventBus) -> None:
        self.store = SecretStore(directory)
        self.events = events
        self.store.load()

    async def startup(self, domains: DomainRegistry) -> None:
        domains.secrets = self.store

    def handlers(self) -> Handlers:
        return {
            "secret.list": self.list_secrets,
            "secret.define": self.define,
            "secret.info": self.info,
            "secret.xml": self.dumpxml,
            "secret.set_value": self.set_value,
            "secret.get_value": self.get_value,
            "secret.undefine": self.undefine,
        }

    async def list_secrets(self, req: Request) -> list[dict[str, Any]]:
        return [secret_info(self.store, s) for s in self.store.list()]

    async def define(self, req: Request) -> dict[str, Any]:
        secret = self.store.define(req.data["xml"])
        self.events.publish("secret", secret.uuid, "defined")
        return secret_info(self.store, secret)

    async def info(self, req: Request) -> dict[str, Any]:
        return secret_info(self.store, self.store.get(req.params["uuid"]))

    async def dumpxml(self, req: Request) -> dict[str, Any]:
        return {"xml": format_secret(self.store.get(req.params["uuid"]))}

    async def set_value(self, req: Request) -> dict[str, Any]:
        secret = self.store.get(req.params["uuid"])
        try:
            value = base64.b64decode(req.data["value"], validate=True)
        except binascii.Error:
            raise InvalidArgument("the secret value is not valid base64") from None
        if len(value) > MAX_VALUE:
            raise InvalidArgument(f"a secret value may hold at most {MAX_VALUE} bytes")
        self.store.set_value(secret, value)
        self.events.publish("secret", secret.uuid, "value-changed")
        return {}

    async def get_value(self, req: Request) -> dict[str, Any]:
        secret = self.store.get(req.params["uuid"])
        if secret.private:
            raise AccessDenied("Invalid secret: secret is private")
        return {"value": base64.b64encode(self.store.value(secret)).decode()}

    async def undefine(self, req: Request) -> dict[str, Any]:
        secret = self.store.get(req.params["uuid"])
        self.store.undefine(secret)
        self.events.publish("secret", secret.uuid, "undefined")
        return {"uuid": secret.uuid}

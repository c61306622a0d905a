"""The storage driver: directory pools, their persistent definitions and run state, and their volumes.

On disk, as libvirt lays it out: ``storage_config_dir/NAME.xml`` holds each pool's definition,
``storage_autostart_dir/NAME.xml`` is a symlink to it for autostart pools, and ``run_dir/storage/NAME.xml``
marks an active pool (its definition as started), so a restarted daemon keeps active pools active
while a rebooted host (an empty run folder) starts only the autostart ones.

A transient pool (``pool-create``) has only its run-state file and is gone once destroyed. Creating a pool
over an inactive persistent one of the same name and UUID starts it with the new definition; the
persistent definition takes over again when it is destroyed.

The driver is synchronous and thread-safe: pool state sits behind one lock, held only for bookkeeping.
Slow volume work (allocating, copying, resizing) runs outside it; the volume's path is marked busy
meanwhile so that nothing else deletes, resizes or streams into a volume being built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyvirt.conf.disk_encryption import DiskEncryption
from pyvirt.conf.names import validate_name
from pyvirt.conf.storage import (
    BackingStore,
    PoolDef,
    PoolSizes,
    VolumeDef,
    VolumeInfo,
    format_pool,
    format_pool_config,
    format_volume,
    parse_pool,
)
from pyvirt.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound, OperationFailed
from pyvirt.paths import Layout
from pyvirt.storage import volumes
from pyvirt.store import atomic_symlink, atomic_write, remove

log = logging.getLogger(__name__)

DEFAULT_MARKER = ".default-defined"
DEFAULT_POOL_MODE = 0o711


@dataclass
class PoolObject:
    config: PoolDef  # the definition in effect (the live one while active)
    active: bool = False
    autostart: bool = False
    persistent: bool = True
    next_config: PoolDef | None = None  # the persistent definition, while a different one is live


@dataclass
class PoolStatus:
    name: str
    uuid: str
    type: str
    path: str
    active: bool
    state: str  # libvirt's: inactive, running
    persistent: bool
    autostart: bool
    capacity: int | None
    allocation: int | None
    available: int | None
    volumes: int | None


def _volume_dict(info: VolumeInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "path": info.path,
        "key": info.path,
        "type": info.type,
        "format": info.format,
        "capacity": info.capacity,
        "allocation": info.allocation,
        "physical": info.physical,
        "backing": info.backing.path if info.backing else None,
        "backing_format": info.backing.format if info.backing else None,
    }


class StorageDriver:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.config_dir = layout.storage_config_dir
        self.autostart_dir = layout.storage_autostart_dir
        self.state_dir = layout.run_dir / "storage"
        for folder in (self.config_dir, self.autostart_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._pools: dict[str, PoolObject] = {}
        self._busy: dict[str, str] = {}  # real path → what is being done to it
        self._shared: dict[str, tuple[str, int]] = {}  # real path → (what, how many readers)
        # The <encryption> an encrypted volume was made with (its secret, its <cipher>): vol-dumpxml
        # shows it, as libvirt shows its volume definition, until the volume is rewritten or the pool
        # refreshed (then the secret is found by the volume's path, and the cipher is not shown).
        self._made_with: dict[str, DiskEncryption] = {}

    # Files

    def _config_path(self, name: str) -> Path:
        return self.config_dir / f"{name}.xml"

    def _autostart_path(self, name: str) -> Path:
        return self.autostart_dir / f"{name}.xml"

    def _state_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.xml"

    def load(self) -> None:
        """Read every definition; a pool whose state file survived (daemon restart) stays active."""
        with self._lock:
            self._pools.clear()
            for path in sorted(self.config_dir.glob("*.xml")):
                try:
                    pool = parse_pool(path.read_text())
                except Exception as err:
                    log.error("ignoring %s: %s", path, err)
                    continue
                if pool.name != path.stem:
                    log.error("ignoring %s: it defines pool '%s'", path, pool.name)
                    continue
                obj = PoolObject(pool, autostart=self._autostart_path(pool.name).is_symlink())
                live = self._live_definition(pool.name, pool.uuid)
                if live is not None:
                    obj.next_config = None if live == pool else pool
                    obj.config, obj.active = live, True
                self._pools[pool.name] = obj
            for state in sorted(self.state_dir.glob("*.xml")):
                if state.stem not in self._pools:
                    live = self._live_definition(state.stem, None)
                    if live is not None:
                        self._pools[live.name] = PoolObject(live, active=True, persistent=False)

    def _live_definition(self, name: str, uuid: str | None) -> PoolDef | None:
        """The definition pool ``name`` runs, from a run-state file that survived and is sound.

        A state file that names another pool (or another UUID than ``uuid``), does not parse, or whose
        target folder is gone is removed: the pool is then inactive (or, if transient, gone).
        """
        path = self._state_path(name)
        if not path.exists():
            return None
        try:
            live = parse_pool(path.read_text())
        except Exception as err:
            log.error("ignoring %s: %s", path, err)
            remove(path)
            return None
        if live.name != name or (uuid is not None and live.uuid != uuid):
            log.error("ignoring %s: it is not the state of pool '%s'", path, name)
            remove(path)
            return None
        if not os.path.isdir(live.target_path):
            log.warning("pool %s: target %s is gone; marking it inactive", name, live.target_path)
            remove(path)
            return None
        return live

    def ensure_default(self) -> None:
        """Define, build, start and autostart ``default`` at the images folder, once in the host's life."""
        with self._lock:
            marker = self.config_dir / DEFAULT_MARKER
            if marker.exists():
                return
            if "default" not in self._pools:
                target = str(self.layout.images_dir)
                if not any(obj.config.target_path == target for obj in self._pools.values()):
                    self.define(PoolDef(name="default", uuid=str(uuidlib.uuid4()), target_path=target))
                    self.build("default")
                    self.start("default")
                    self.set_autostart("default", True)
            atomic_write(marker, b"", 0o644)

    def autostart_all(self) -> None:
        """Start every autostart pool that is not active; failures are logged, not raised."""
        with self._lock:
            for name, obj in sorted(self._pools.items()):
                if obj.autostart and not obj.active:
                    try:
                        self.start(name)
                    except Exception as err:
                        log.error("autostart of pool '%s' failed: %s", name, err)

    # Pools

    def lookup(self, key: str) -> PoolObject:
        """A pool by name, then by UUID."""
        with self._lock:
            obj = self._pools.get(key)
            if obj is not None:
                return obj
            with contextlib.suppress(ValueError):
                wanted = str(uuidlib.UUID(key))
                for obj in self._pools.values():
                    if obj.config.uuid == wanted:
                        return obj
        raise NotFound(f"Storage pool not found: no storage pool with matching name '{key}'")

    def _active(self, name: str) -> PoolObject:
        obj = self.lookup(name)
        if not obj.active:
            raise InvalidState(
                f"Requested operation is not valid: storage pool '{obj.config.name}' is not active"
            )
        return obj

    def status(self, name: str, *, count_volumes: bool = False) -> PoolStatus:
        with self._lock:
            return self._status_of(self.lookup(name), count_volumes=count_volumes)

    @staticmethod
    def _status_of(obj: PoolObject, *, count_volumes: bool = False) -> PoolStatus:
        sizes: PoolSizes | None = None
        count = None
        if obj.active:
            with contextlib.suppress(OSError):
                sizes = volumes.pool_sizes(obj.config.target_path)
            if count_volumes:
                with contextlib.suppress(OSError):
                    count = sum(1 for _ in volumes.volume_names(obj.config.target_path))
        return PoolStatus(
            name=obj.config.name,
            uuid=obj.config.uuid,
            type=obj.config.type,
            path=obj.config.target_path,
            active=obj.active,
            state="running" if obj.active else "inactive",
            persistent=obj.persistent,
            autostart=obj.autostart,
            capacity=sizes.capacity if sizes else None,
            allocation=sizes.allocation if sizes else None,
            available=sizes.available if sizes else None,
            volumes=count,
        )

    def list_pools(self) -> list[PoolStatus]:
        with self._lock:
            return [self.status(name) for name in sorted(self._pools)]

    def define_xml(self, xml: str) -> PoolStatus:
        return self.define(parse_pool(xml))

    def define(self, pool: PoolDef) -> PoolStatus:
        """Define a new pool or redefine an inactive one (same name and UUID)."""
        with self._lock:
            existing = self._pools.get(pool.name)
            for obj in self._pools.values():
                if obj is existing:
                    continue
                if obj.config.uuid == pool.uuid:
                    raise AlreadyExists(
                        f"operation failed: pool '{obj.config.name}' is already defined with uuid {pool.uuid}"
                    )
                if os.path.normpath(obj.config.target_path) == os.path.normpath(pool.target_path):
                    raise AlreadyExists(
                        f"operation failed: Storage source conflict with pool: '{obj.config.name}'"
                    )
            if existing is not None:
                if existing.config.uuid != pool.uuid:
                    raise AlreadyExists(
                        f"operation failed: pool '{pool.name}' already exists "
                        f"with uuid {existing.config.uuid}"
                    )
                if existing.active and (existing.next_config is not None or not existing.persistent):
                    return self._define_behind_live(existing, pool)
                if existing.active and existing.config.target_path != pool.target_path:
                    raise InvalidState(
                        f"Requested operation is not valid: storage pool '{pool.name}' is active; "
                        "destroy it before changing its target path"
                    )
            atomic_write(self._config_path(pool.name), format_pool_config(pool).encode(), 0o600)
            if existing is not None:
                existing.config = pool
                return self.status(pool.name)
            self._pools[pool.name] = PoolObject(pool)
            return self.status(pool.name)

    def _define_behind_live(self, obj: PoolObject, pool: PoolDef) -> PoolStatus:
        """Persist ``pool`` for a pool running another definition: it takes effect at destroy."""
        atomic_write(self._config_path(pool.name), format_pool_config(pool).encode(), 0o600)
        obj.persistent = True
        obj.next_config = None if pool == obj.config else pool
        return self.status(pool.name)

    def create_xml(self, xml: str, *, build: bool = False) -> PoolStatus:
        return self.create(parse_pool(xml), build=build)

    def create(self, pool: PoolDef, *, build: bool = False) -> PoolStatus:
        """Start ``pool`` at once (``pool-create``): a new transient pool, or an inactive persistent pool
        of the same name and UUID running ``pool`` as its live definition until destroyed."""
        with self._lock:
            existing = self._check_create(pool)
            if build:
                self._build_target(pool)
            self._check_target(pool)
            atomic_write(self._state_path(pool.name), format_pool(pool).encode(), 0o600)
            if existing is None:
                self._pools[pool.name] = PoolObject(pool, active=True, persistent=False)
            else:
                existing.next_config = None if pool == existing.config else existing.config
                existing.config = pool
                existing.active = True
            return self.status(pool.name)

    def _check_create(self, pool: PoolDef) -> PoolObject | None:
        """libvirt's duplicate checks for a pool to start: the inactive pool it replaces, if any."""
        for obj in self._pools.values():
            if obj.config.uuid == pool.uuid and obj.config.name != pool.name:
                raise AlreadyExists(
                    f"operation failed: pool '{obj.config.name}' is already defined with uuid {pool.uuid}"
                )
        existing = self._pools.get(pool.name)
        if existing is not None:
            if existing.config.uuid != pool.uuid:
                raise AlreadyExists(
                    f"operation failed: pool '{pool.name}' already exists with uuid {existing.config.uuid}"
                )
            if existing.active:
                raise InvalidState(
                    f"Requested operation is not valid: pool is already active as '{pool.name}'"
                )
        for obj in self._pools.values():
            if obj is not existing and os.path.normpath(obj.config.target_path) == os.path.normpath(
                pool.target_path
            ):
                raise AlreadyExists(
                    f"operation failed: Storage source conflict with pool: '{obj.config.name}'"
                )
        return existing

    def build(self, name: str) -> None:
        """Create the target folder (and its parents); an existing folder is left as it is."""
        with self._lock:
            obj = self.lookup(name)
            if obj.active:
                raise InvalidState(
                    f"Requested operation is not valid: storage pool '{obj.config.name}' is already active"
                )
            self._build_target(obj.config)

    @staticmethod
    def _build_target(config: PoolDef) -> None:
        path = config.target_path
        perms = config.permissions
        try:
            if not os.path.isdir(path):
                os.makedirs(path, exist_ok=True)
                os.chmod(path, perms.mode if perms.mode is not None else DEFAULT_POOL_MODE)
            elif perms.mode is not None:
                os.chmod(path, perms.mode)
            if perms.owner is not None or perms.group is not None:
                os.chown(
                    path,
                    -1 if perms.owner is None else perms.owner,
                    -1 if perms.group is None else perms.group,
                )
        except OSError as err:
            raise OperationFailed(f"cannot create path '{path}': {err.strerror}") from err

    def start(self, name: str) -> None:
        with self._lock:
            obj = self.lookup(name)
            if obj.active:
                raise InvalidState(
                    f"Requested operation is not valid: storage pool '{obj.config.name}' is already active"
                )
            self._check_target(obj.config)
            obj.active = True
            atomic_write(self._state_path(obj.config.name), format_pool(obj.config).encode(), 0o600)

    @staticmethod
    def _check_target(config: PoolDef) -> None:
        path = config.target_path
        try:
            os.listdir(path)
        except OSError as err:
            raise OperationFailed(f"cannot open directory '{path}': {err.strerror}") from err

    def destroy(self, name: str) -> PoolStatus:
        """Stop the pool; the status returned is its last, also for a transient pool now gone."""
        with self._lock:
            obj = self._active(name)
            self._deactivate(obj)
            return self._status_of(obj)

    def _deactivate(self, obj: PoolObject) -> None:
        """Mark ``obj`` inactive: a transient pool is forgotten, a persistent one gets its definition back."""
        remove(self._state_path(obj.config.name))
        obj.active = False
        if not obj.persistent:
            del self._pools[obj.config.name]
        elif obj.next_config is not None:
            obj.config, obj.next_config = obj.next_config, None

    def refresh(self, name: str) -> None:
        """Volumes are read from the folder on every request; refreshing checks the folder is still there."""
        with self._lock:
            obj = self._active(name)
            folder = os.path.join(obj.config.target_path, "")
            for path in [p for p in self._made_with if p.startswith(folder)]:
                self.forget_encryption(path)
            try:
                self._check_target(obj.config)
            except OperationFailed:
                self._deactivate(obj)
                raise

    def undefine(self, name: str) -> None:
        with self._lock:
            obj = self.lookup(name)
            if obj.active:
                raise InvalidState(
                    f"Requested operation is not valid: storage pool '{obj.config.name}' is still active"
                )
            remove(self._autostart_path(obj.config.name))
            remove(self._config_path(obj.config.name))
            del self._pools[obj.config.name]

    def set_autostart(self, name: str, enabled: bool) -> None:
        with self._lock:
            obj = self.lookup(name)
            if not obj.persistent:
                raise InvalidState("internal error: pool has no config file")
            link = self._autostart_path(obj.config.name)
            if enabled:
                atomic_symlink(f"../{obj.config.name}.xml", link)
            else:
                remove(link)
            obj.autostart = enabled

    def dumpxml(self, name: str, *, inactive: bool = False) -> str:
        with self._lock:
            obj = self.lookup(name)
            if inactive or not obj.active:
                return format_pool(obj.next_config or obj.config)
            path = obj.config.target_path
            try:
                return format_pool(obj.config, volumes.pool_sizes(path), volumes.target_permissions(path))
            except OSError:
                return format_pool(obj.config)

    # Volumes

    def _folder(self, pool: str) -> str:
        with self._lock:
            return self._active(pool).config.target_path

    def pool_of_path(self, path: str) -> tuple[str, str]:
        """The (pool, volume) a volume key or path names; NotFound otherwise."""
        folder, name = os.path.split(os.path.normpath(path))
        with self._lock:
            for pool_name, obj in sorted(self._pools.items()):
                if obj.active and os.path.normpath(obj.config.target_path) == folder:
                    with contextlib.suppress(InvalidArgument, NotFound):
                        volumes.describe(folder, name)
                        return pool_name, name
        raise NotFound(f"Storage volume not found: no storage vol with matching path '{path}'")

    def list_volumes(self, pool: str) -> list[dict[str, Any]]:
        folder = self._folder(pool)
        out = []
        for name in sorted(volumes.volume_names(folder), key=str.casefold):
            with contextlib.suppress(NotFound):
                out.append(_volume_dict(volumes.describe(folder, name)))
        return out

    def volume(self, pool: str, name: str) -> VolumeInfo:
        validate_name(name, "volume")
        return volumes.describe(self._folder(pool), name)

    def volume_info(self, pool: str, name: str) -> dict[str, Any]:
        return _volume_dict(self.volume(pool, name))

    def volume_xml(self, pool: str, name: str) -> str:
        return format_volume(self.volume(pool, name))

    def volume_path(self, pool: str, name: str) -> str:
        """For ``<disk type='volume'>``: the volume's path; the pool must be active and hold the volume."""
        try:
            return self.volume(pool, name).path
        except NotFound as err:
            if "pool" in err.message:
                raise
            raise NotFound(
                f"Storage volume not found: no storage vol with matching name '{name}' in pool '{pool}'"
            ) from err

    @contextlib.contextmanager
    def busy(self, path: str, what: str, *, shared: bool = False) -> Iterator[None]:
        """Mark ``path`` busy for the duration; refuse when something else is already at it.

        A ``shared`` mark is a reader's (a clone copying or backing onto the file): any number may hold
        one together, but none while an exclusive mark is held, nor an exclusive one while they are.
        """
        real = os.path.realpath(path)
        with self._lock:
            what_now = self._busy.get(real) or (self._shared[real][0] if real in self._shared else None)
            if what_now is not None and not (shared and real in self._shared):
                name = os.path.basename(path)
                raise InvalidState(f"Requested operation is not valid: volume '{name}' is busy ({what_now})")
            if shared:
                first, count = self._shared.get(real, (what, 0))
                self._shared[real] = (first, count + 1)
            else:
                self._busy[real] = what
        try:
            yield
        finally:
            with self._lock:
                if not shared:
                    self._busy.pop(real, None)
                elif self._shared[real][1] > 1:
                    self._shared[real] = (self._shared[real][0], self._shared[real][1] - 1)
                else:
                    del self._shared[real]

    def check_not_busy(self, paths: list[str]) -> None:
        with self._lock:
            for path in paths:
                real = os.path.realpath(path)
                what = self._busy.get(real) or (self._shared[real][0] if real in self._shared else None)
                if what is not None:
                    raise InvalidState(
                        "Requested operation is not valid: "
                        f"volume '{os.path.basename(path)}' is busy ({what})"
                    )

    @staticmethod
    def check_not_in_use(info: VolumeInfo, in_use: Mapping[str, str], action: str) -> None:
        """Refuse when ``info`` is a disk of a running domain, or in the backing chain of one.

        ``in_use`` maps every disk path of the running domains to the domain's name.
        """
        real = os.path.realpath(info.path)
        for disk, domain in sorted(in_use.items()):
            if real in volumes.backing_chain(disk):
                how = "" if os.path.realpath(disk) == real else f" (as a backing file of {disk})"
                raise InvalidState(
                    f"Requested operation is not valid: cannot {action} volume '{info.name}': "
                    f"it is in use by running domain '{domain}'{how}"
                )

    def _resolve_backing(self, pool: str, folder: str, backing: BackingStore) -> BackingStore:
        """A backing volume named by name in the pool, or by path (key): an existing file, format known."""
        candidates = [backing.path] if backing.path.startswith("/") else []
        with contextlib.suppress(InvalidArgument):
            candidates.insert(0, volumes.volume_path(folder, backing.path))
        for path in candidates:
            if os.path.isfile(path):
                fmt = backing.format
                if fmt is None:
                    fmt = volumes.describe(os.path.dirname(path), os.path.basename(path)).format
                return BackingStore(path=os.path.normpath(path), format=fmt)
        raise NotFound(f"Storage volume not found: no storage vol with matching path '{backing.path}'")

    def create_volume(
        self, pool: str, vol: VolumeDef, *, prealloc_metadata: bool = False, passphrase: bytes | None = None
    ) -> dict[str, Any]:
        """vol-create; an encrypted volume with ``passphrase``, the value of its ``<encryption>``'s secret."""
        folder = self._folder(pool)
        if vol.backing is not None:
            vol.backing = self._resolve_backing(pool, folder, vol.backing)
        self._check_space(folder, vol)
        with self.busy(volumes.volume_path(folder, vol.name), "being created"):
            path = volumes.create(folder, vol, prealloc_metadata=prealloc_metadata, passphrase=passphrase)
        if vol.encryption is not None:
            self._made_with[path] = vol.encryption
        return self.volume_info(pool, vol.name)

    def made_with(self, path: str) -> DiskEncryption | None:
        """The ``<encryption>`` the volume at ``path`` was made with, while it is remembered."""
        return self._made_with.get(path)

    def forget_encryption(self, path: str) -> None:
        self._made_with.pop(path, None)

    def create_volume_from(
        self,
        pool: str,
        vol: VolumeDef,
        source: VolumeInfo,
        *,
        prealloc_metadata: bool = False,
        reflink: bool = False,
        passphrase: bytes | None = None,
        source_passphrase: bytes | None = None,
    ) -> dict[str, Any]:
        """``vol-create-from``: ``vol`` in ``pool`` holding the content of the volume ``source``; with
        ``<encryption>``, encrypted with ``passphrase`` (an encrypted source read with its own)."""
        folder = self._folder(pool)
        if os.path.lexists(volumes.volume_path(folder, vol.name)):
            raise AlreadyExists(f"internal error: storage volume name '{vol.name}' already in use.")
        vol.capacity = max(vol.capacity or 0, source.capacity)
        self._check_space(folder, vol)
        with (
            self.busy(source.path, "being copied"),
            self.busy(volumes.volume_path(folder, vol.name), "being created"),
        ):
            path = volumes.create_from(
                folder,
                vol,
                source,
                prealloc_metadata=prealloc_metadata,
                reflink=reflink,
                passphrase=passphrase,
                source_passphrase=source_passphrase,
            )
        if vol.encryption is not None:
            self._made_with[path] = vol.encryption
        return self.volume_info(pool, vol.name)

    def wipe_volume(
        self, pool: str, name: str, algorithm: str, *, in_use: Mapping[str, str]
    ) -> dict[str, Any]:
        info = self.volume(pool, name)
        self.check_not_in_use(info, in_use, "wipe")
        with self.busy(info.path, "being wiped"):
            volumes.wipe(info, algorithm)
        self.forget_encryption(info.path)
        return self.volume_info(pool, name)

    @staticmethod
    def _check_space(folder: str, vol: VolumeDef) -> None:
        if vol.format != "raw" or not vol.capacity:
            return
        need = vol.capacity if vol.allocation is None else min(vol.allocation, vol.capacity)
        with contextlib.suppress(OSError):
            if need > volumes.pool_sizes(folder).available:
                raise OperationFailed("operation failed: Not enough space left in storage pool")

    def clone_volume(
        self,
        pool: str,
        name: str,
        new_name: str,
        *,
        prealloc_metadata: bool = False,
        reflink: bool = False,
        secret: tuple[DiskEncryption, bytes] | None = None,
    ) -> dict[str, Any]:
        """vol-clone; an encrypted volume with ``secret`` (its ``<encryption>`` and value): the clone is
        a new LUKS image (its own master key) made with the same secret, as libvirt makes it."""
        folder = self._folder(pool)
        source = self.volume(pool, name)
        validate_name(new_name, "volume")
        if source.encryption is not None and secret is None:
            raise OperationFailed(f"operation failed: cloning the encrypted volume '{name}' needs its secret")
        made = self.made_with(source.path)
        cipher = made.cipher if made is not None else None
        with (
            self.busy(source.path, "being cloned"),
            self.busy(volumes.volume_path(folder, new_name), "being created"),
        ):
            path = volumes.clone(
                folder,
                source,
                new_name,
                prealloc_metadata=prealloc_metadata,
                reflink=reflink,
                passphrase=secret[1] if secret else None,
                cipher=cipher,
            )
        if secret is not None:
            self._made_with[path] = dataclasses.replace(secret[0], cipher=cipher)
        return self.volume_info(pool, new_name)

    def resize_volume(
        self,
        pool: str,
        name: str,
        capacity: int,
        *,
        delta: bool,
        shrink: bool,
        allocate: bool,
        in_use: Mapping[str, str],
        passphrase: bytes | None = None,
    ) -> dict[str, Any]:
        """vol-resize; an encrypted qcow2 is opened with ``passphrase``, its secret's value (a raw LUKS
        container's payload is only cut or extended)."""
        info = self.volume(pool, name)
        self.check_not_in_use(info, in_use, "resize")
        if delta:
            capacity = info.capacity - capacity if shrink else info.capacity + capacity
        if capacity < 0:
            raise InvalidArgument("invalid argument: can't shrink capacity below zero")
        if capacity < info.capacity and not shrink:
            raise InvalidArgument(
                "invalid argument: Can't shrink capacity below current capacity "
                "unless shrink flag explicitly specified"
            )
        if capacity > info.capacity and allocate:
            with contextlib.suppress(OSError):
                if capacity - info.capacity > volumes.pool_sizes(os.path.dirname(info.path)).available:
                    raise OperationFailed("operation failed: Not enough space left in storage pool")
        with self.busy(info.path, "being resized"):
            volumes.resize(info, capacity, shrink=shrink, allocate=allocate, passphrase=passphrase)
        return self.volume_info(pool, name)

    def delete_volume(self, pool: str, name: str, *, in_use: Mapping[str, str]) -> None:
        info = self.volume(pool, name)
        self.check_not_in_use(info, in_use, "delete")
        self.forget_encryption(info.path)
        with self.busy(info.path, "being deleted"):
            try:
                os.unlink(info.path)
            except FileNotFoundError:
                pass
            except OSError as err:
                raise OperationFailed(f"cannot unlink file '{info.path}': {err.strerror}") from err

    def open_volume(
        self, pool: str, name: str, *, write: bool, in_use: Mapping[str, str]
    ) -> tuple[VolumeInfo, int]:
        """An open file descriptor on the volume file, for upload (``write``) or download."""
        info = self.volume(pool, name)
        if write:
            self.check_not_in_use(info, in_use, "upload to")
        flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(info.path, flags)
        except OSError as err:
            raise OperationFailed(f"cannot open volume '{info.path}': {err.strerror}") from err
        return info, fd

    def run_busy(self, path: str, what: str, fn: Callable[[], Any]) -> Any:
        with self.busy(path, what):
            return fn()

"""Where pyvirt keeps things: system, session and ``PYVIRT_ROOT`` layouts, in one place.

System mode (root, ``qemu:///system``) follows libvirt's layout under ``pyvirt`` names:
``/etc/pyvirt/qemu/NAME.xml``, ``/var/lib/pyvirt/images``, ``/run/pyvirt``, ``/var/log/pyvirt/qemu``.
Session mode (``qemu:///session``) uses the XDG directories of the user. ``PYVIRT_ROOT=DIR`` prefixes
every system path with DIR, for daemon and client alike, so tests and demos never touch the real /etc.
"""

from __future__ import annotations

import os
from pathlib import Path


class Layout:
    """Every directory and socket the daemon and client agree on.

    A plain class rather than a dataclass: the CLI imports this module on every run, and
    ``dataclasses`` pulls in ``inspect`` (several milliseconds of start-up).
    """

    def __init__(
        self,
        *,
        mode: str,  # "system" or "session"
        config_dir: Path,  # pyvirtd.conf lives here
        qemu_config_dir: Path,  # domain XML
        autostart_dir: Path,
        network_config_dir: Path,
        network_autostart_dir: Path,
        storage_config_dir: Path,
        storage_autostart_dir: Path,
        state_dir: Path,
        images_dir: Path,
        run_dir: Path,
        qemu_run_dir: Path,
        network_run_dir: Path,
        log_dir: Path,
        pki_dir: Path,
        cache_dir: Path,
    ) -> None:
        self.mode = mode
        self.config_dir = config_dir
        self.qemu_config_dir = qemu_config_dir
        self.autostart_dir = autostart_dir
        self.network_config_dir = network_config_dir
        self.network_autostart_dir = network_autostart_dir
        self.storage_config_dir = storage_config_dir
        self.storage_autostart_dir = storage_autostart_dir
        self.state_dir = state_dir
        self.images_dir = images_dir
        self.run_dir = run_dir
        self.qemu_run_dir = qemu_run_dir
        self.network_run_dir = network_run_dir
        self.log_dir = log_dir
        self.pki_dir = pki_dir
        self.cache_dir = cache_dir

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))

    def __repr__(self) -> str:
        return f"Layout(mode={self.mode!r}, run_dir={str(self.run_dir)!r})"

    @property
    def socket(self) -> Path:
        return self.run_dir / "pyvirt-sock"

    @property
    def socket_ro(self) -> Path:
        return self.run_dir / "pyvirt-sock-ro"

    @property
    def daemon_pidfile(self) -> Path:
        return self.run_dir / "pyvirtd.pid"

    @property
    def secret_dir(self) -> Path:
        """Persistent secrets and their values (libvirt's /etc/libvirt/secrets), root-only."""
        return self.config_dir / "secrets"

    def domain_xml(self, name: str) -> Path:
        return self.qemu_config_dir / f"{name}.xml"

    def domain_log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def save_dir(self) -> Path:
        """Managed save images (libvirt's /var/lib/libvirt/qemu/save)."""
        return self.state_dir / "qemu/save"

    def managed_save(self, name: str) -> Path:
        return self.save_dir / f"{name}.save"

    @property
    def auto_dump_dir(self) -> Path:
        """Where a watchdog's ``dump`` action writes guest memory (libvirt's /var/lib/libvirt/qemu/dump)."""
        return self.state_dir / "qemu/dump"

    def ensure(self) -> None:
        """Create the directories the daemon writes to (idempotent)."""
        for path in (
            self.qemu_config_dir,
            self.autostart_dir,
            self.network_config_dir,
            self.network_autostart_dir,
            self.storage_config_dir,
            self.storage_autostart_dir,
            self.images_dir,
            self.qemu_run_dir,
            self.network_run_dir,
            self.log_dir,
            self.cache_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)


def system_layout(root: str | os.PathLike[str] | None = None) -> Layout:
    """The system layout, optionally prefixed by ``root``."""
    base = Path(root) if root else Path("/")

    def p(path: str) -> Path:
        return base / path.lstrip("/")

    return Layout(
        mode="system",
        config_dir=p("/etc/pyvirt"),
        qemu_config_dir=p("/etc/pyvirt/qemu"),
        autostart_dir=p("/etc/pyvirt/qemu/autostart"),
        network_config_dir=p("/etc/pyvirt/qemu/networks"),
        network_autostart_dir=p("/etc/pyvirt/qemu/networks/autostart"),
        storage_config_dir=p("/etc/pyvirt/storage"),
        storage_autostart_dir=p("/etc/pyvirt/storage/autostart"),
        state_dir=p("/var/lib/pyvirt"),
        images_dir=p("/var/lib/pyvirt/images"),
        run_dir=p("/run/pyvirt"),
        qemu_run_dir=p("/run/pyvirt/qemu"),
        network_run_dir=p("/run/pyvirt/network"),
        log_dir=p("/var/log/pyvirt/qemu"),
        pki_dir=p("/etc/pki/pyvirt"),
        cache_dir=p("/var/cache/pyvirt"),
    )


def session_layout() -> Layout:
    """The per-user layout under the XDG base directories."""
    home = Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "pyvirt"
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share") / "pyvirt"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "pyvirt"
    runtime_env = os.environ.get("XDG_RUNTIME_DIR")
    run = Path(runtime_env) / "pyvirt" if runtime_env else Path(f"/tmp/pyvirt-{os.getuid()}")
    return Layout(
        mode="session",
        config_dir=config,
        qemu_config_dir=config / "qemu",
        autostart_dir=config / "qemu/autostart",
        network_config_dir=config / "qemu/networks",
        network_autostart_dir=config / "qemu/networks/autostart",
        storage_config_dir=config / "storage",
        storage_autostart_dir=config / "storage/autostart",
        state_dir=data,
        images_dir=data / "images",
        run_dir=run,
        qemu_run_dir=run / "qemu",
        network_run_dir=run / "network",
        log_dir=cache / "qemu/log",
        pki_dir=home / ".pki/pyvirt",
        cache_dir=cache,
    )


def layout_for(mode: str) -> Layout:
    """The layout for ``mode`` ("system" or "session"), honouring ``PYVIRT_ROOT``."""
    root = os.environ.get("PYVIRT_ROOT")
    if root:
        return system_layout(root)
    if mode == "system":
        return system_layout()
    return session_layout()


def default_mode() -> str:
    """System mode for root, session mode for everyone else (libvirt's default)."""
    return "system" if os.geteuid() == 0 else "session"

"""``pyvirtd``: the management daemon.

Serves the JSON API on a Unix socket (mode 0600, or the group set in pyvirtd.conf) and a read-only
socket beside it (mode 0666, queries only). On start it loads the domain definitions, re-attaches to
every QEMU an earlier daemon left running, and starts the autostart domains. On SIGTERM/SIGINT it
closes its sockets and exits; the QEMU processes keep running and are re-adopted by the next daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from pyvirt import __version__
from pyvirt.paths import Layout, default_mode, layout_for

log = logging.getLogger("pyvirtd")


def build_parser() -> argparse.ArgumentParser:
    """pyvirtd's options (also the OPTIONS of its man page, ``scripts/make-man.py``)."""
    parser = argparse.ArgumentParser(
        prog="pyvirtd",
        description="pyvirt management daemon: runs QEMU domains, networks and storage, "
        "and serves the pyvirt API on a Unix socket.",
        epilog="Environment: PYVIRT_ROOT=DIR prefixes every system path with DIR (for tests and demos).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--system", action="store_const", const="system", dest="mode", help="system mode (root)"
    )
    mode.add_argument("--session", action="store_const", const="session", dest="mode", help="per-user mode")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--no-autostart", action="store_true", help="do not start autostart domains")
    parser.add_argument(
        "--listen-tls",
        nargs="?",
        const="16514",
        metavar="[ADDR:]PORT",
        help="also serve qemu+tls:// (mutual TLS, certificates from 'pyvirt pki'); default 0.0.0.0:16514",
    )
    parser.add_argument("--config", type=Path, help="configuration file (default: CONFIG_DIR/pyvirtd.conf)")
    parser.add_argument("--version", action="version", version=f"pyvirtd {__version__}")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def read_config(path: Path) -> dict[str, str]:
    """libvirtd.conf-style ``key = "value"`` lines; '#' starts a comment."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SystemExit(f"error: {path}:{number}: expected 'key = value'")
        out[key.strip()] = value.strip().strip("\"'")
    return out


def max_clients(config: dict[str, str]) -> int:
    """``max_clients`` of pyvirtd.conf (libvirtd.conf's name): the connections served at once."""
    from pyvirt.daemon.http import MAX_CLIENTS

    text = config.get("max_clients", str(MAX_CLIENTS))
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(f"error: max_clients in pyvirtd.conf must be a positive integer, not '{text}'")
    return int(text)


def keepalive_interval(config: dict[str, str]) -> float:
    """``keepalive_interval`` of pyvirtd.conf (libvirtd.conf's name): seconds between the keepalive
    beats sent while a request runs or a stream is open (clients time out on silence alone)."""
    from pyvirt.daemon.keepalive import KEEPALIVE_INTERVAL

    text = config.get("keepalive_interval", str(int(KEEPALIVE_INTERVAL)))
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(
            f"error: keepalive_interval in pyvirtd.conf must be a positive integer, not '{text}'"
        )
    return float(text)


def bind_socket(path: Path, mode: int, group: str | None = None) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, mode)
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError as err:
            raise SystemExit(f"error: unix_sock_group '{group}' does not exist") from err
        os.chown(path, -1, gid)
    sock.listen(128)
    return sock


def take_pidfile(layout: Layout) -> int:
    fd = os.open(layout.daemon_pidfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        other = os.pread(fd, 32, 0).decode().strip()
        raise SystemExit(
            f"error: another pyvirtd (pid {other or '?'}) is already running for {layout.run_dir}"
        ) from err
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def serve(args: argparse.Namespace) -> None:
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import HTTPServer
    from pyvirt.daemon.server import API
    from pyvirt.qemu.kvmprobe import kvm_usable

    mode = args.mode or default_mode()
    layout = layout_for(mode)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.ensure()
    pidfd = take_pidfile(layout)
    config = read_config(args.config or layout.config_dir / "pyvirtd.conf")
    client_cap = max_clients(config)
    beat = keepalive_interval(config)
    usable, reason = kvm_usable()
    if usable:
        log.info("KVM: %s", reason)
    else:
        log.warning("KVM is not usable (%s): only <domain type='qemu'> (TCG) domains can run", reason)

    events = EventBus()
    extras: list[object] = []
    networks = None
    storage = None
    with contextlib.suppress(ImportError):
        from pyvirt.daemon.networks import NetworkAPI  # type: ignore[import-not-found,unused-ignore]

        net_api = NetworkAPI(layout, events)
        networks = net_api.hook()
        extras.append(net_api)
    with contextlib.suppress(ImportError):
        from pyvirt.daemon.storage import StorageAPI  # type: ignore[import-not-found,unused-ignore]

        storage_api = StorageAPI(layout, events)
        storage = storage_api.hook()
        extras.append(storage_api)
    from pyvirt.daemon.clones import CloneAPI, network_names

    extras.append(CloneAPI(storage_api.driver, events, network_names(net_api)))
    domains = DomainRegistry(layout, events, accel_check=kvm_usable, networks=networks, storage=storage)
    for extra in extras:
        setup = getattr(extra, "startup", None)
        if setup is not None:
            await setup(domains)
    domains.load_configs()
    await domains.reattach_all()
    api = API(domains, events, extras)
    server = HTTPServer(api.router, max_clients=client_cap, keepalive_interval=beat)
    if args.listen_tls:  # first: a daemon that cannot serve TLS as asked does not serve at all
        from pyvirt.daemon.tls import TLSSetupError, start_tls_listener

        try:
            await start_tls_listener(server, args.listen_tls, layout.pki_dir)
        except TLSSetupError as err:
            raise SystemExit(f"error: {err}") from err
    sock_mode = int(config.get("unix_sock_rw_perms", "0600"), 8)
    main_sock = bind_socket(layout.socket, sock_mode, config.get("unix_sock_group"))
    ro_sock = bind_socket(layout.socket_ro, int(config.get("unix_sock_ro_perms", "0666"), 8))
    await server.listen_unix(main_sock)
    await server.listen_unix(ro_sock, readonly=True)
    log.info("pyvirtd %s listening on %s (%s mode)", __version__, layout.socket, layout.mode)
    if not args.no_autostart:
        for extra in extras:
            auto = getattr(extra, "autostart", None)
            if auto is not None:
                await auto()
        await domains.autostart_all()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down; running domains keep running")
    await server.close()
    await domains.shutdown_all()
    for path in (layout.socket, layout.socket_ro):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    os.close(pidfd)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("qemu.qmp").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

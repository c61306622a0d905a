"""``pyvirtd``: the management daemon.

Serves the JSON API on a Unix socket (mode 0600, or the group set in pyvirtd.conf) and a read-only
socket beside it (mode 0666, queries only), or on the two sockets systemd passes (socket activation);
tells systemd when it is ready (``Type=notify``, see :mod:`pyvirt.daemon.systemd`). On start it
loads the domain definitions, re-attaches to every QEMU an earlier daemon left running, and starts
the autostart domains. On SIGTERM/SIGINT it closes its sockets and exits; the QEMU processes keep
running and are re-adopted by the next daemon.
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
from typing import TYPE_CHECKING, Any

from pyvirt import __version__
from pyvirt.daemon import systemd
from pyvirt.paths import Layout, default_mode, layout_for

if TYPE_CHECKING:
    from pyvirt.daemon.config import DaemonConfig

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
    parser.add_argument(
        "--listen-metrics",
        metavar="ADDR:PORT",
        help="also serve Prometheus metrics over plain HTTP at http://ADDR:PORT/metrics (read-only; "
        "they are at /metrics on the API's sockets too)",
    )
    parser.add_argument("--config", type=Path, help="configuration file (default: CONFIG_DIR/pyvirtd.conf)")
    parser.add_argument("--version", action="version", version=f"pyvirtd {__version__}")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def bind_socket(path: Path, mode: int, group: str | None = None, backlog: int = 128) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, mode)
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError as err:
            raise SystemExit(f"error: unix_sock_group '{group}' in pyvirtd.conf does not exist") from err
        os.chown(path, -1, gid)
    sock.listen(backlog)
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


async def rotate_logs(layout: Layout) -> None:
    """Keep the QEMU logs within pyvirtd.conf's max_size (see :mod:`pyvirt.qemu.logs`)."""
    from pyvirt.qemu import logs

    while True:
        await asyncio.sleep(logs.CHECK_INTERVAL)
        await asyncio.to_thread(logs.rotate_all, layout.log_dir)


def tls_listen(args: argparse.Namespace, config: DaemonConfig) -> str | None:
    """Where to serve qemu+tls://: ``--listen-tls``, else ``listen_tls = 1`` in pyvirtd.conf."""
    if args.listen_tls:
        return str(args.listen_tls)
    if not config.listen_tls:
        return None
    host = f"[{config.listen_addr}]" if ":" in config.listen_addr else config.listen_addr
    return f"{host}:{config.tls_port}"


def activated_sockets(layout: Layout, passed: list[socket.socket]) -> dict[str, socket.socket]:
    """The sockets systemd passed, by the path each is bound to, and ``"tls"`` for a TCP one (the
    TLS listener, pyvirtd-tls.socket); one pyvirtd does not serve is refused."""
    out = {}
    for sock in passed:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            if "tls" in out:
                raise SystemExit("error: systemd passed more than one TCP socket; pyvirtd serves TLS on one")
            out["tls"] = sock
            continue
        path = systemd.bound_path(sock)
        if path not in (str(layout.socket), str(layout.socket_ro)):
            raise SystemExit(
                f"error: systemd passed a socket pyvirtd does not serve ({path or sock.family.name}); "
                f"its .socket units must listen on {layout.socket} and {layout.socket_ro}"
            )
        out[path] = sock
    return out


async def listen_metrics(where: str | None, monitoring: Any) -> Any:
    """The plain HTTP metrics listener of ``--listen-metrics ADDR:PORT`` (None: none)."""
    if not where:
        return None
    from pyvirt.daemon.http import HTTPServer
    from pyvirt.daemon.routes import metrics_router

    host, sep, port = where.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SystemExit(f"error: --listen-metrics {where}: expected ADDR:PORT (127.0.0.1:9177)")
    server = HTTPServer(metrics_router(monitoring.scrape))
    server.observer = monitoring.metrics.observe
    try:
        await server.listen_tcp(host.strip("[]"), int(port))
    except OSError as err:
        raise SystemExit(f"error: --listen-metrics {where}: {err.strerror}") from err
    log.info("serving metrics on http://%s/metrics", where)
    return server


async def serve(
    args: argparse.Namespace, layout: Layout, config: DaemonConfig, passed: list[socket.socket]
) -> None:
    from pyvirt.daemon.confinement import Confinement
    from pyvirt.daemon.domains import DomainRegistry
    from pyvirt.daemon.events import EventBus
    from pyvirt.daemon.http import HTTPServer
    from pyvirt.daemon.routes import RouteTableError
    from pyvirt.daemon.server import API
    from pyvirt.errors import OperationFailed
    from pyvirt.qemu import logs, process
    from pyvirt.qemu.kvmprobe import kvm_usable
    from pyvirt.store import sweep_temp_files

    activated = activated_sockets(layout, passed)
    socket_activated = bool(activated)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.ensure()
    pidfd = take_pidfile(layout)
    # Only now, with the pidfile held: no other daemon is writing into these directories.
    for path in sweep_temp_files(layout.config_dir, layout.run_dir):
        log.warning("removed %s, left by a write that an earlier daemon did not finish", path)
    logs.configure(config.max_size, config.max_backups)
    process.configure(config.monitor_timeout)
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
    from pyvirt.daemon.agent_api import AgentAPI
    from pyvirt.daemon.clones import CloneAPI, network_names
    from pyvirt.daemon.provision import LaunchAPI

    clone_api = CloneAPI(storage_api.driver, events, network_names(net_api))
    extras += [clone_api, LaunchAPI(clone_api)]
    from pyvirt.daemon.monitoring import MonitoringAPI

    monitoring = MonitoringAPI(net_api, storage_api)
    extras.append(monitoring)
    from pyvirt.daemon.hostinfo import HostInfoAPI

    extras.append(HostInfoAPI())
    extras.append(AgentAPI(net_api))
    from pyvirt.daemon.display import DisplayAPI

    extras.append(DisplayAPI())
    from pyvirt.daemon.snapshots import SnapshotAPI

    extras.append(SnapshotAPI(layout, events))
    from pyvirt.daemon.installs import InstallAPI

    extras.append(InstallAPI(storage_api.driver, events, network_names(net_api)))
    from pyvirt.daemon.saves import SaveAPI

    extras.append(SaveAPI())
    from pyvirt.daemon.device_api import DeviceAPI

    extras.append(DeviceAPI())
    from pyvirt.daemon.nodedevs import NodedevAPI

    extras.append(NodedevAPI())
    from pyvirt.daemon.nodedev_info import NodedevInfoAPI

    extras.append(NodedevInfoAPI())
    from pyvirt.daemon.secrets import SecretAPI

    extras.append(SecretAPI(layout.secret_dir, events))
    try:
        confinement = Confinement.for_daemon(layout, config.user, config.group)
    except OperationFailed as err:
        raise SystemExit(f"error: {err}") from err
    domains = DomainRegistry(
        layout, events, accel_check=kvm_usable, networks=networks, storage=storage, confinement=confinement
    )
    try:  # before anything is started or re-adopted
        api = API(domains, events, extras)
    except RouteTableError as err:
        raise SystemExit(f"error: {err}") from err
    for extra in extras:
        setup = getattr(extra, "startup", None)
        if setup is not None:
            await setup(domains)
    domains.load_configs()
    await domains.reattach_all()
    server = HTTPServer(
        api.router,
        max_clients=config.max_clients,
        keepalive_interval=config.keepalive_interval,
        backlog=config.max_queued_clients,
    )
    server.observer = monitoring.metrics.observe
    metrics_server = await listen_metrics(args.listen_metrics, monitoring)
    listen: str | socket.socket | None = activated.pop("tls", None) or tls_listen(args, config)
    if listen:  # first: a daemon that cannot serve TLS as asked does not serve at all
        from pyvirt.daemon.tls import TLSSetupError, start_tls_listener

        try:
            await start_tls_listener(server, listen, layout.pki_dir, config)
        except TLSSetupError as err:
            raise SystemExit(f"error: {err}") from err
    backlog = config.max_queued_clients
    rw_mode, ro_mode = int(config.unix_sock_rw_perms, 8), int(config.unix_sock_ro_perms, 8)
    # The read-only socket first: a client that reaches the main socket finds both (tests wait on it).
    ro_sock = activated.pop(str(layout.socket_ro), None) or bind_socket(
        layout.socket_ro, ro_mode, None, backlog
    )
    main_sock = activated.pop(str(layout.socket), None) or bind_socket(
        layout.socket, rw_mode, config.unix_sock_group or None, backlog
    )
    await server.listen_unix(main_sock)
    await server.listen_unix(ro_sock, readonly=True)
    log.info(
        "pyvirtd %s listening on %s (%s mode%s)",
        __version__,
        layout.socket,
        layout.mode,
        ", sockets from systemd" if socket_activated else "",
    )
    systemd.notify("READY=1", f"STATUS=serving on {layout.socket}")
    if not args.no_autostart:
        for extra in extras:
            auto = getattr(extra, "autostart", None)
            if auto is not None:
                await auto()
        await domains.autostart_all()

    rotator = asyncio.create_task(rotate_logs(layout))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down; running domains keep running")
    systemd.notify("STOPPING=1")
    rotator.cancel()
    await server.close()
    if metrics_server is not None:
        await metrics_server.close()
    await domains.shutdown_all()
    if not socket_activated:  # systemd's sockets stay, to start the next daemon
        for path in (layout.socket, layout.socket_ro):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    os.close(pidfd)


def main(argv: list[str] | None = None) -> int:
    from pyvirt.daemon.config import ConfigError, load

    args = parse_args(argv)
    passed = systemd.listen_fds()  # first: nothing may inherit them
    layout = layout_for(args.mode or default_mode())
    try:
        config = load(args.config or layout.config_dir / "pyvirtd.conf")
    except ConfigError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else config.logging_level,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("qemu.qmp").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, layout, config, passed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

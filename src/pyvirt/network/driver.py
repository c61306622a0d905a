"""The network driver: define, start, destroy and inspect virtual networks; plug guest taps into them.

All state lives on disk so a new daemon process re-adopts running networks:
``network_config_dir/NAME.xml`` (persistent definitions), ``network_autostart_dir/NAME.xml`` (symlinks),
and in ``network_run_dir``: ``NAME.json`` (the live definition of a running network) beside the
dnsmasq files. Starting a network is a sequence of kernel steps with a revert stack: a failure undoes
what was done, and bad input is refused before anything is touched. Methods are synchronous and
serialised by a lock; the daemon calls them from a worker thread.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyvirt.conf.mac import is_unicast_mac
from pyvirt.conf.names import validate_name
from pyvirt.conf.network import Network
from pyvirt.conf.network_validate import apply_defaults, subnets_overlap, validate_network
from pyvirt.conf.network_xml import format_network_xml, parse_network_xml
from pyvirt.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound, OperationFailed
from pyvirt.network import dnsmasq, links, shaping
from pyvirt.network.dnsmasq import DnsmasqFiles, Lease
from pyvirt.network.firewall import Firewall, build_rules, chain_id
from pyvirt.network.netns import NetnsRunner
from pyvirt.paths import Layout
from pyvirt.revert import Revert
from pyvirt.store import atomic_symlink, atomic_write, remove

log = logging.getLogger(__name__)

DEFAULT_MARKER = ".default-defined"
TAP_PREFIX = "vnet"


@dataclass(frozen=True)
class NetworkStatus:
    name: str
    uuid: str
    active: bool
    autostart: bool
    persistent: bool
    bridge: str | None


@dataclass
class _Live:
    """A running network as recorded in ``NAME.json``."""

    net: Network
    dnsmasq_pid: int | None
    started: float


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as err:
        raise OperationFailed(f"cannot set {path} to {value}: {err.strerror}") from err


def _plug(tap: str | None, bridge: str, mac: str, mtu: int | None, owner: int | None = None) -> str:
    """Create the tap (the kernel numbers ``vnet%d``), attach it to ``bridge``; undone on failure.

    ``owner``: the uid an unprivileged QEMU attaches to it as."""
    if tap is not None and links.exists(tap):
        raise AlreadyExists(f"network device '{tap}' already exists")
    name = links.create_tap(tap or f"{TAP_PREFIX}%d", owner=owner)
    try:
        links.attach(name, bridge, mac=mac, mtu=mtu)
    except BaseException:
        links.delete_link(name)
        raise
    return name


class NetworkDriver:
    """Virtual networks on bridges, nftables and dnsmasq (see the module docstring)."""

    def __init__(self, layout: Layout, *, netns: str | None = None) -> None:
        self.layout = layout
        self.config_dir = layout.network_config_dir
        self.autostart_dir = layout.network_autostart_dir
        self.run_dir = layout.network_run_dir
        for d in (self.config_dir, self.autostart_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._ns = NetnsRunner(netns)
        self._fw = Firewall()
        self._lock = threading.RLock()

    def close(self) -> None:
        self._ns.run(links.close_netlink)
        self._ns.close()

    # ------------------------------------------------------------------------------------ disk state

    def _config_path(self, name: str) -> Path:
        return self.config_dir / f"{name}.xml"

    def _autostart_path(self, name: str) -> Path:
        return self.autostart_dir / f"{name}.xml"

    def _state_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def _files(self, name: str) -> DnsmasqFiles:
        return DnsmasqFiles.under(self.run_dir, name)

    def _load_config(self, name: str) -> Network | None:
        try:
            text = self._config_path(name).read_text()
        except FileNotFoundError:
            return None
        return parse_network_xml(text)

    def _configs(self) -> dict[str, Network]:
        out: dict[str, Network] = {}
        for path in sorted(self.config_dir.glob("*.xml")):
            try:
                net = parse_network_xml(path.read_text())
            except Exception:
                log.exception("ignoring unreadable network config %s", path)
                continue
            out[net.name] = net
        return out

    def _load_live(self, name: str) -> _Live | None:
        try:
            data = json.loads(self._state_path(name).read_text())
        except FileNotFoundError:
            return None
        return _Live(parse_network_xml(data["xml"]), data.get("dnsmasq_pid"), float(data.get("started", 0)))

    def _lives(self) -> dict[str, _Live]:
        out: dict[str, _Live] = {}
        for path in sorted(self.run_dir.glob("*.json")):
            try:
                live = self._load_live(path.stem)
            except Exception:
                log.exception("ignoring unreadable network state %s", path)
                continue
            if live is not None:
                out[live.net.name] = live
        return out

    def _save_live(self, live: _Live) -> None:
        data = {"xml": format_network_xml(live.net), "dnsmasq_pid": live.dnsmasq_pid, "started": live.started}
        atomic_write(self._state_path(live.net.name), (json.dumps(data, indent=1) + "\n").encode())

    def _status(self, name: str, config: Network | None, live: _Live | None) -> NetworkStatus:
        net = live.net if live is not None else config
        assert net is not None
        return NetworkStatus(
            name=name,
            uuid=net.uuid,
            active=live is not None,
            autostart=config is not None and self._autostart_path(name).is_symlink(),
            persistent=config is not None,
            bridge=net.bridge.name,
        )

    def _lookup(self, name: str) -> tuple[Network | None, _Live | None]:
        validate_name(name, "network")
        config, live = self._load_config(name), self._load_live(name)
        if config is None and live is None:
            raise NotFound(f"network '{name}' not found")
        return config, live

    # -------------------------------------------------------------------------------------- queries

    def list(self) -> list[NetworkStatus]:
        with self._lock:
            configs, lives = self._configs(), self._lives()
            return [self._status(n, configs.get(n), lives.get(n)) for n in sorted(set(configs) | set(lives))]

    def info(self, name: str) -> NetworkStatus:
        with self._lock:
            config, live = self._lookup(name)
            return self._status(name, config, live)

    def dumpxml(self, name: str, *, inactive: bool = False) -> str:
        with self._lock:
            config, live = self._lookup(name)
            if live is not None and (not inactive or config is None):
                return format_network_xml(live.net)
            assert config is not None
            return format_network_xml(config)

    def arp_table(self) -> builtins.list[tuple[str, str]]:
        """The host's (the network namespace's) IPv4 neighbours: (address, MAC)."""
        return self._ns.run(links.neighbours)

    def leases(self, name: str, mac: str | None = None) -> builtins.list[Lease]:
        with self._lock:
            _config, live = self._lookup(name)
            if live is None:
                raise InvalidState(f"network '{name}' is not active")
            now = time.time()
            out = []
            for lease in dnsmasq.read_leases(self._files(name), live.net):
                if lease.expiry and lease.expiry < now:
                    continue
                if mac is not None and (lease.mac or "") != mac.lower():
                    continue
                out.append(lease)
            return out

    # -------------------------------------------------------------------------- define / undefine

    def _prepare(self, xml: str, *, previous: Network | None) -> Network:
        """Parse, fill defaults (keeping the previous definition's bridge and MAC), validate, and check
        that name, UUID and bridge do not clash with another network."""
        net = parse_network_xml(xml)
        validate_name(net.name, "network")
        others = {n: c for n, c in self._configs().items() if n != net.name}
        for n, live in self._lives().items():
            if n != net.name:
                others.setdefault(n, live.net)
        for other in others.values():
            if other.uuid == net.uuid:
                raise AlreadyExists(f"network '{other.name}' already has UUID {net.uuid}")
        if previous is not None and net.managed and previous.managed:
            if not net.bridge.name:
                net.bridge.name = previous.bridge.name
            if net.mac is None:
                net.mac = previous.mac
        used = {o.bridge.name for o in others.values() if o.managed and o.bridge.name}
        if net.managed and net.bridge.name in used:
            owner = next(o.name for o in others.values() if o.bridge.name == net.bridge.name)
            raise AlreadyExists(f"bridge name '{net.bridge.name}' is already used by network '{owner}'")
        existing = self._ns.run(links.link_names)
        apply_defaults(net, bridge_taken=lambda b: b in used or b in existing)
        validate_network(net)
        return net

    def define(self, xml: str) -> NetworkStatus:
        with self._lock:
            name = parse_network_xml(xml).name
            validate_name(name, "network")
            previous = self._load_config(name)
            live = self._load_live(name)
            net = self._prepare(xml, previous=previous or (live.net if live else None))
            old = previous or (live.net if live else None)
            if old is not None and old.uuid != net.uuid:
                if net.uuid_given:
                    raise AlreadyExists(f"network '{name}' already exists with UUID {old.uuid}")
                net.uuid = old.uuid
            atomic_write(self._config_path(name), format_network_xml(net).encode(), 0o644)
            return self._status(name, net, live)

    def undefine(self, name: str) -> None:
        with self._lock:
            config, _live = self._lookup(name)
            if config is None:
                raise InvalidState(f"network '{name}' is transient: destroy it instead")
            with contextlib.suppress(FileNotFoundError):
                self._autostart_path(name).unlink()
            self._config_path(name).unlink()

    def set_autostart(self, name: str, enabled: bool) -> None:
        with self._lock:
            config, _live = self._lookup(name)
            if config is None:
                raise InvalidState(f"network '{name}' is transient: autostart needs a persistent network")
            link = self._autostart_path(name)
            if enabled:
                target = os.path.relpath(self._config_path(name), self.autostart_dir)
                if link.is_symlink() and os.readlink(link) == target:
                    return
                atomic_symlink(target, link)
            else:
                remove(link)

    # ----------------------------------------------------------------------------- start / destroy

    def create(self, xml: str) -> NetworkStatus:
        with self._lock:
            name = parse_network_xml(xml).name
            validate_name(name, "network")
            if self._load_config(name) is not None or self._load_live(name) is not None:
                raise AlreadyExists(f"network '{name}' already exists")
            net = self._prepare(xml, previous=None)
            live = self._start(net)
            return self._status(name, None, live)

    def start(self, name: str) -> None:
        with self._lock:
            config, live = self._lookup(name)
            if live is not None:
                raise InvalidState(f"network '{name}' is already active")
            assert config is not None
            self._start(config)

    def _check_startable(self, net: Network) -> None:
        bridge = net.bridge.name
        assert bridge is not None
        exists = self._ns.run(links.link_exists, bridge)
        if not net.managed:
            if not exists:
                raise NotFound(f"network '{net.name}': host bridge '{bridge}' does not exist")
            if self._ns.run(links.link_kind, bridge) != "bridge":
                raise InvalidArgument(f"network '{net.name}': host device '{bridge}' is not a bridge")
            return
        if exists:
            raise AlreadyExists(f"network '{net.name}': bridge name '{bridge}' is already in use by a device")
        for other in self._lives().values():
            if other.net.managed and other.net.bridge.name == bridge:
                raise AlreadyExists(f"bridge name '{bridge}' is used by active network '{other.net.name}'")
            for mine in net.ips:
                for theirs in other.net.ips:
                    if subnets_overlap(mine.network, theirs.network):
                        raise InvalidArgument(
                            f"network '{net.name}': subnet {mine.network} overlaps {theirs.network} "
                            f"of active network '{other.net.name}'"
                        )
        for route in self._ns.run(links.routes):
            for mine in net.ips:
                if subnets_overlap(mine.network, route.network):
                    raise InvalidArgument(
                        f"network '{net.name}': subnet {mine.network} overlaps host route {route.network}"
                        + (f" on {route.dev}" if route.dev else "")
                    )

    def _start(self, net: Network) -> _Live:
        self._check_startable(net)
        files = self._files(net.name)
        live = _Live(net, None, time.time())
        with Revert() as revert:
            if net.managed:
                self._start_managed(net, files, revert, live)
            self._save_live(live)
            revert.success()
        return live

    def _start_managed(self, net: Network, files: DnsmasqFiles, revert: Revert, live: _Live) -> None:
        bridge = net.bridge.name
        assert bridge is not None
        run = self._ns.run
        run(links.create_bridge, bridge, mac=net.mac, mtu=net.mtu, stp=net.bridge.stp, delay=net.bridge.delay)
        revert.add(lambda: run(links.delete_link, bridge), f"delete bridge {bridge}")
        for ip in net.ips:
            run(links.add_address, bridge, ip.address, ip.prefix)
        run(links.set_up, bridge)
        if net.mode in ("nat", "route"):
            if net.ipv4():
                run(_write_sysctl, "/proc/sys/net/ipv4/ip_forward", "1")
            if net.ipv6():
                run(_write_sysctl, "/proc/sys/net/ipv6/conf/all/forwarding", "1")
        cid = chain_id(net)
        revert.add(lambda: run(self._fw.remove, cid), "remove firewall rules")
        run(self._fw.add, net)
        if net.needs_dnsmasq:
            revert.add(lambda: self._remove_files(files), "remove dnsmasq files")
            dnsmasq.write_files(net, files)
            live.dnsmasq_pid = run(dnsmasq.start, files)
            pid = live.dnsmasq_pid
            revert.add(lambda: dnsmasq.stop(pid, files), "stop dnsmasq")

    def _remove_files(self, files: DnsmasqFiles) -> None:
        for path in files.all():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def destroy(self, name: str) -> NetworkStatus:
        """Stop the network; its status after (a transient network's last: it no longer exists)."""
        with self._lock:
            config, live = self._lookup(name)
            if live is None:
                raise InvalidState(f"network '{name}' is not active")
            self._teardown(live.net, live.dnsmasq_pid)
            return dataclasses.replace(self._status(name, config, live), active=False)

    def _teardown(self, net: Network, pid: int | None) -> None:
        """Remove everything a start made; tolerant of pieces already gone."""
        files = self._files(net.name)
        errors: builtins.list[str] = []

        def attempt(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception as err:
                errors.append(f"{what}: {err}")

        if net.managed:
            # dnsmasq exits while the rules and the bridge go
            pids = {p for p in (pid, dnsmasq.read_pid(files)) if p is not None}
            signalled = [p for p in pids if dnsmasq.terminate(p, files)]
            attempt("removing firewall rules", lambda: self._ns.run(self._fw.remove, chain_id(net)))
            bridge = net.bridge.name
            if bridge:
                attempt(f"deleting bridge {bridge}", lambda: self._ns.run(links.delete_link, bridge))
            for p in signalled:
                attempt("stopping dnsmasq", functools.partial(dnsmasq.wait_gone, p))
            self._remove_files(files)
        with contextlib.suppress(FileNotFoundError):
            self._state_path(net.name).unlink()
        if errors:
            raise OperationFailed(f"network '{net.name}' stopped, but: " + "; ".join(errors))

    # ------------------------------------------------------------------------- daemon start-up

    def ensure_default(self) -> None:
        """System mode: define ``default`` (NAT, DHCP) with autostart, once in the host's life."""
        with self._lock:
            if self.layout.mode != "system":
                return
            marker = self.config_dir / DEFAULT_MARKER
            if marker.exists():
                return
            if self._load_config("default") is None and self._load_live("default") is None:
                self.define(self._default_xml())
                self.set_autostart("default", True)
            atomic_write(marker, b"", 0o644)

    def _default_xml(self) -> str:
        taken = [ip.network for c in self._configs().values() for ip in c.ips]
        taken += [r.network for r in self._ns.run(links.routes)]
        third = 122
        for candidate in range(122, 255):
            subnet = ipaddress.ip_network(f"192.168.{candidate}.0/24")
            if not any(subnets_overlap(subnet, t) for t in taken):
                third = candidate
                break
        used = {c.bridge.name for c in self._configs().values()}
        bridge = "<bridge name='pvbr0'/>" if "pvbr0" not in used else ""
        return (
            f"<network><name>default</name><forward mode='nat'/>{bridge}"
            f"<ip address='192.168.{third}.1' netmask='255.255.255.0'><dhcp>"
            f"<range start='192.168.{third}.2' end='192.168.{third}.254'/></dhcp></ip></network>"
        )

    def autostart_all(self) -> None:
        """Start every autostart network that is not running; failures are logged, not raised."""
        with self._lock:
            for link in sorted(self.autostart_dir.glob("*.xml")):
                name = link.stem
                try:
                    if self._load_live(name) is None and self._load_config(name) is not None:
                        self.start(name)
                except Exception:
                    log.exception("autostart of network '%s' failed", name)

    def readopt(self) -> None:
        """Keep running networks whose bridge and dnsmasq are alive; clean up the remains of others."""
        with self._lock:
            for name, live in self._lives().items():
                net = live.net
                ok = True
                if net.bridge.name and not self._ns.run(links.link_exists, net.bridge.name):
                    ok = False
                files = self._files(name)
                if ok and net.managed and net.needs_dnsmasq:
                    pid = dnsmasq.running_pid(files)
                    if pid is None:
                        log.warning("dnsmasq of network '%s' is gone: restarting it", name)
                        try:
                            dnsmasq.write_files(net, files)
                            pid = self._ns.run(dnsmasq.start, files)
                        except Exception:
                            log.exception("cannot restart dnsmasq of network '%s'", name)
                            ok = False
                    if pid != live.dnsmasq_pid:
                        live.dnsmasq_pid = pid
                        self._save_live(live)
                if ok and not build_rules(net).empty and not self._ns.run(self._fw.present, chain_id(net)):
                    log.warning("firewall rules of network '%s' are gone: adding them again", name)
                    self._ns.run(self._fw.add, net)
                if not ok:
                    log.warning("network '%s' did not survive: marking it inactive", name)
                    try:
                        self._teardown(net, live.dnsmasq_pid)
                    except Exception:
                        log.exception("cleaning up network '%s'", name)

    # ----------------------------------------------------------------------------------- taps

    def _bridge_for(self, network: str | None, bridge: str | None) -> tuple[str, int | None]:
        if network is not None:
            _config, live = self._lookup(network)
            if live is None:
                raise InvalidState(f"network '{network}' is not active: start it first (net-start {network})")
            name = live.net.bridge.name
            assert name is not None
            if bridge is not None and bridge != name:
                raise InvalidArgument(f"network '{network}' uses bridge '{name}', not '{bridge}'")
            if not self._ns.run(links.exists, name):
                raise InvalidState(f"bridge '{name}' of network '{network}' is missing")
            return name, live.net.mtu
        if bridge is None:
            raise InvalidArgument("plug_tap needs a network or a bridge")
        if not self._ns.run(links.link_exists, bridge):
            raise NotFound(f"bridge '{bridge}' does not exist")
        if self._ns.run(links.link_kind, bridge) != "bridge":
            raise InvalidArgument(f"device '{bridge}' is not a bridge")
        return bridge, None

    def plug_tap(
        self,
        *,
        network: str | None,
        bridge: str | None,
        mac: str,
        tap: str | None = None,
        owner: int | None = None,
    ) -> str:
        """Create a persistent tap (``vnetN`` unless named), attach it to the bridge, bring it up;
        ``owner`` is the uid of the (unprivileged) QEMU that opens it."""
        if not is_unicast_mac(mac):
            raise InvalidArgument(f"invalid unicast MAC address '{mac}'")
        if tap is not None and (len(tap.encode()) > 15 or "/" in tap or "%" in tap or not tap):
            raise InvalidArgument(f"invalid tap name '{tap}'")
        with self._lock:
            br, mtu = self._bridge_for(network, bridge)
            # the host side of the tap gets the guest MAC with 0xfe first, so the bridge never takes
            # the guest's own address as its own
            host_mac = "fe" + mac.lower()[2:]
            # One trip to the namespace thread: with twenty guests starting, each trip waits its turn
            # for a CPU.
            return self._ns.run(_plug, tap, br, host_mac, mtu, owner)

    def plug_ethernet(
        self,
        *,
        tap: str | None,
        mac: str,
        owner: int | None,
        addresses: links.TapAddresses,
        routes: links.TapRoutes,
    ) -> str:
        """An ethernet interface's tap on no bridge (``vnetN`` unless named), set up as libvirt does
        (conf.net_ethernet); removed again if that fails."""
        if not is_unicast_mac(mac):
            raise InvalidArgument(f"invalid unicast MAC address '{mac}'")
        with self._lock:
            if tap is not None and self._ns.run(links.exists, tap):
                raise AlreadyExists(f"network device '{tap}' already exists")
            name = self._ns.run(links.create_tap, tap or f"{TAP_PREFIX}%d", owner=owner)
            try:
                self._ns.run(links.configure_tap, name, "fe" + mac.lower()[2:], addresses, routes)
            except BaseException:
                self._ns.run(links.delete_link, name)
                raise
            return name

    def tap_kind(self, tap: str) -> str | None:
        """The kind of network device ``tap`` (``tun`` for a tap), None when there is none."""
        with self._lock:
            return self._ns.run(links.link_kind, tap) if self._ns.run(links.link_exists, tap) else None

    def unplug_tap(self, tap: str) -> None:
        """Delete ``tap`` and the IFB device shaping its outbound traffic, if any."""
        with self._lock:
            self._ns.run(shaping.remove, tap)
            if not self._ns.run(links.link_exists, tap):
                return
            if self._ns.run(links.link_kind, tap) != "tun":
                raise InvalidArgument(f"device '{tap}' is not a tap")
            self._ns.run(links.delete_link, tap)

    def set_link(self, tap: str, up: bool) -> None:
        with self._lock:
            self._ns.run(links.set_up, tap, up)

    def open_tap(self, tap: str, *, vnet_hdr: bool = True) -> int:
        """A file descriptor on ``tap`` for QEMU's ``-netdev tap,fd=N`` (the caller closes it)."""
        return self._ns.run(links.open_tap, tap, vnet_hdr=vnet_hdr)

"""Bridges, taps, addresses and routes through netlink (pyroute2), plus the tun ioctls netlink lacks.

Every function acts on the network namespace of the calling thread (see :mod:`pyvirt.network.netns`).
Kernel errors become :class:`OperationFailed` naming the device and the operation.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvirt.errors import AlreadyExists, NotFound, OperationFailed, PyvirtError

if TYPE_CHECKING:
    from pyroute2 import IPRoute


def _nlerr() -> Any:
    """pyroute2's NetlinkError (it carries ``.code``, an errno), imported on first use: pyroute2 costs
    the daemon ~14 MB, so it is only loaded once the host has a network or a tap to manage."""
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254


@dataclass(frozen=True)
class Route:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    dev: str | None


_local = threading.local()


@contextmanager
def _netlink(what: str) -> Iterator[IPRoute]:
    """This thread's netlink socket (bound to the thread's namespace when first made, and kept: a new
    socket costs more than most requests). A kernel error is an answer; any other failure may leave
    the socket mid-conversation, so it is closed and the next call makes a fresh one."""
    ipr = getattr(_local, "ipr", None)
    if ipr is None:
        from pyroute2 import IPRoute

        ipr = _local.ipr = IPRoute()
    try:
        yield ipr
    except _nlerr() as err:
        raise OperationFailed(f"{what}: {os.strerror(err.code) if err.code else err}") from err
    except (PyvirtError, KeyboardInterrupt):
        raise
    except BaseException:
        _local.ipr = None
        ipr.close()
        raise


def close_netlink() -> None:
    """Close this thread's netlink socket, if it has one (a thread leaving a namespace calls this)."""
    ipr = getattr(_local, "ipr", None)
    if ipr is not None:
        _local.ipr = None
        ipr.close()


def _index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NotFound(f"network device '{name}' does not exist")
    return int(found[0])


def link_exists(name: str) -> bool:
    with _netlink(f"looking up device {name}") as ipr:
        return bool(ipr.link_lookup(ifname=name))


def link_names() -> set[str]:
    with _netlink("listing network devices") as ipr:
        return {str(link.get("ifname")) for link in ipr.get_links()}


def link_kind(name: str) -> str | None:
    """The device's kind (``bridge``, ``tun``, ``veth``...), None for plain devices; NotFound if absent."""
    with _netlink(f"reading device {name}") as ipr:
        links = ipr.get_links(_index(ipr, name))
        info = links[0].get("IFLA_LINKINFO") if links else None
        return str(info.get("IFLA_INFO_KIND")) if info is not None and info.get("IFLA_INFO_KIND") else None


def create_bridge(name: str, *, mac: str | None, mtu: int | None, stp: bool, delay: int) -> None:
    """Create bridge ``name`` (down, no address yet). The forward delay is set before STP is enabled:
    the kernel refuses a delay under 2 s on a bridge that already runs STP."""
    with _netlink(f"creating bridge {name}") as ipr:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except _nlerr() as err:
            if err.code == errno.EEXIST:
                raise AlreadyExists(f"bridge name '{name}' is already in use by a network device") from err
            raise
        try:
            idx = _index(ipr, name)
            settings: dict[str, object] = {}
            if mac is not None:
                settings["address"] = mac
            if mtu is not None:
                settings["mtu"] = mtu
            if settings:
                ipr.link("set", index=idx, **settings)
            ipr.link("set", index=idx, kind="bridge", br_forward_delay=delay * 100)
            if stp:
                ipr.link("set", index=idx, kind="bridge", br_stp_state=1)
        except BaseException:
            ipr.link("del", ifname=name)
            raise


def add_address(dev: str, address: str, prefix: int) -> None:
    iface = ipaddress.ip_interface(f"{address}/{prefix}")
    with _netlink(f"adding address {iface} to {dev}") as ipr:
        idx = _index(ipr, dev)
        if iface.version == 4:
            ipr.addr(
                "add",
                index=idx,
                address=address,
                prefixlen=prefix,
                broadcast=str(iface.network.broadcast_address),
            )
        else:
            # no duplicate address detection: dnsmasq must be able to bind the address at once
            ipr.addr("add", index=idx, address=address, prefixlen=prefix, flags=IFA_F_NODAD)


def set_up(dev: str, up: bool = True) -> None:
    with _netlink(f"setting {dev} {'up' if up else 'down'}") as ipr:
        ipr.link("set", index=_index(ipr, dev), state="up" if up else "down")


def is_up(dev: str) -> bool:
    with _netlink(f"reading device {dev}") as ipr:
        links = ipr.get_links(_index(ipr, dev))
        return bool(links) and int(links[0]["flags"]) & 1 == 1


def delete_link(dev: str, *, missing_ok: bool = True) -> None:
    with _netlink(f"deleting device {dev}") as ipr:
        found = ipr.link_lookup(ifname=dev)
        if not found:
            if missing_ok:
                return
            raise NotFound(f"network device '{dev}' does not exist")
        ipr.link("del", index=found[0])


def master_of(dev: str) -> str | None:
    """The bridge ``dev`` is enslaved to, if any."""
    with _netlink(f"reading device {dev}") as ipr:
        links = ipr.get_links(_index(ipr, dev))
        master = links[0].get("IFLA_MASTER") if links else None
        if not master:
            return None
        found = ipr.get_links(master)
        return str(found[0].get("ifname")) if found else None


# neighbour states without a usable address (linux/neighbour.h): NUD_INCOMPLETE, NUD_FAILED
_NUD_UNUSABLE = 0x01 | 0x20


def neighbours() -> list[tuple[str, str]]:
    """The IPv4 neighbour (ARP) table: (address, MAC) of every resolved entry."""
    out: list[tuple[str, str]] = []
    with _netlink("listing neighbours") as ipr:
        for entry in ipr.get_neighbours(family=socket.AF_INET):
            dst, mac = entry.get("NDA_DST"), entry.get("NDA_LLADDR")
            if dst and mac and not int(entry["state"]) & _NUD_UNUSABLE:
                out.append((str(dst), str(mac).lower()))
    return out


def routes() -> list[Route]:
    """Routes of the main table in both families, the default routes left out."""
    out: list[Route] = []
    with _netlink("listing routes") as ipr:
        names = {int(link["index"]): str(link.get("ifname")) for link in ipr.get_links()}
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
                dst = r.get("dst")
                length = int(r["dst_len"])
                if dst is None or length == 0:
                    continue
                try:
                    network = ipaddress.ip_network(f"{dst}/{length}", strict=False)
                except ValueError:
                    continue
                if network.is_link_local or network.is_multicast:
                    continue
                oif = r.get("oif")
                out.append(Route(network, names.get(int(oif)) if oif is not None else None))
    return out


def _tun_ifreq(name: str, flags: int) -> bytes:
    return struct.pack("16sH22x", name.encode(), flags)


def create_tap(name: str, *, owner: int | None = None) -> str:
    """Create persistent tap ``name`` (it outlives this process; QEMU or the daemon opens it later).

    A name with ``%d`` (``vnet%d``) lets the kernel pick the first free number, as libvirt does;
    the name the tap got is returned.
    """
    if len(name.encode()) > 15:
        raise OperationFailed(f"tap name '{name}' is longer than 15 bytes")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifreq = fcntl.ioctl(fd, TUNSETIFF, _tun_ifreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
        if owner is not None:
            fcntl.ioctl(fd, TUNSETOWNER, owner)
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise AlreadyExists(f"network device '{name}' already exists") from err
        raise OperationFailed(f"creating tap {name}: {err.strerror}") from err
    finally:
        os.close(fd)
    return ifreq[:16].split(b"\0", 1)[0].decode()


def open_tap(name: str, *, vnet_hdr: bool = True) -> int:
    """Open existing tap ``name`` and return a file descriptor for QEMU (``-netdev tap,fd=N``)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _tun_ifreq(name, flags))
    except OSError as err:
        os.close(fd)
        raise OperationFailed(f"opening tap {name}: {err.strerror}") from err
    return fd


def attach(dev: str, bridge: str, *, mac: str | None = None, mtu: int | None = None) -> None:
    """Enslave ``dev`` to ``bridge`` and bring it up; ``mtu`` defaults to the bridge's.

    One netlink request (the kernel applies address and MTU before the flags and the master): on a
    host busy with starting guests, every request this thread makes is paid many times over.
    """
    try:
        idx, br_idx = socket.if_nametoindex(dev), socket.if_nametoindex(bridge)
    except OSError as err:
        missing = dev if not exists(dev) else bridge
        raise NotFound(f"network device '{missing}' does not exist") from err
    with _netlink(f"attaching {dev} to bridge {bridge}") as ipr:
        if mtu is None:
            mtu = int(ipr.get_links(br_idx)[0].get("IFLA_MTU"))
        settings: dict[str, object] = {"mtu": mtu, "master": br_idx, "state": "up"}
        if mac is not None:
            settings["address"] = mac
        ipr.link("set", index=idx, **settings)


def exists(dev: str) -> bool:
    """Whether network device ``dev`` exists (``if_nametoindex``: no netlink dump)."""
    try:
        socket.if_nametoindex(dev)
    except OSError:
        return False
    return True


# An ethernet interface's host-side (address, prefix, peer) addresses and (network, prefix, gateway) routes
TapAddresses = list[tuple[str, int | None, str | None]]
TapRoutes = list[tuple[str, int | None, str]]


def configure_tap(dev: str, mac: str, addresses: TapAddresses, routes: TapRoutes) -> None:
    """An ethernet interface's tap: its host-side MAC, up, with ``(address, prefix, peer)`` addresses
    and ``(network, prefix, gateway)`` routes, as libvirt sets them (``<interface type='ethernet'>``)."""
    with _netlink(f"configuring tap {dev}") as ipr:
        idx = _index(ipr, dev)
        ipr.link("set", index=idx, address=mac, state="up")
        for address, prefix, peer in addresses:
            length = prefix if prefix is not None else (32 if ":" not in address else 128)
            extra: dict[str, object] = {"address": peer} if peer else {}
            ipr.addr("add", index=idx, local=address, prefixlen=length, **({"address": address} | extra))
        for network, prefix, gateway in routes:
            length = prefix if prefix is not None else (32 if ":" not in network else 128)
            ipr.route("add", dst=f"{network}/{length}", gateway=gateway, oif=idx)

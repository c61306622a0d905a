"""Fixtures for network integration tests: every bridge, rule and dnsmasq lives in namespaces made here.

``netns`` makes namespaces named ``pvtest-...`` and, at teardown, kills whatever runs in them and
deletes them. Nothing is created in the machine's own namespace and no namespace has a route out.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyvirt.network.driver import NetworkDriver
from pyvirt.paths import Layout, system_layout

NEEDED = ("ip", "nft", "dnsmasq", "busybox")


def _require() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def in_ns(ns: str, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)


def _kill_ns_processes(ns: str) -> None:
    pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def netns() -> Iterator[Callable[[str], str]]:
    """A factory: ``netns("c1")`` creates namespace ``pvtest-<random>-c1`` with lo up."""
    _require()
    made: list[str] = []
    tag = secrets.token_hex(3)

    def make(role: str) -> str:
        name = f"pvtest-{tag}-{role}"
        sh("ip", "netns", "add", name)
        made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    yield make
    for name in reversed(made):
        _kill_ns_processes(name)
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def host_ns(netns: Callable[[str], str]) -> str:
    """The namespace standing for the host: the driver's bridges, rules and dnsmasq go here."""
    return netns("host")


@pytest.fixture
def layout() -> Iterator[Layout]:
    # dnsmasq drops to 'nobody' and re-reads its hosts files on SIGHUP: the tree must be traversable
    root = Path(tempfile.mkdtemp(prefix="pvtest-net-"))
    root.chmod(0o755)
    lay = system_layout(root)
    lay.ensure()
    yield lay
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def driver(layout: Layout, host_ns: str) -> Iterator[NetworkDriver]:
    drv = NetworkDriver(layout, netns=host_ns)
    yield drv
    drv.close()


DHCP_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    if [ -n "$router" ]; then ip route replace default via "${router%% *}" dev "$interface"; fi
    ;;
esac
"""


@pytest.fixture
def dhcp_script(tmp_path: Path) -> Path:
    path = tmp_path / "udhcpc.sh"
    path.write_text(DHCP_SCRIPT)
    path.chmod(0o755)
    return path


class NetTools:
    """Helpers the tests use to build clients around the driver's namespace."""

    def __init__(self, make: Callable[[str], str], script: Path) -> None:
        self.make = make
        self.script = script

    sh = staticmethod(sh)
    in_ns = staticmethod(in_ns)

    def add_client(self, host: str, bridge: str, mac: str, role: str) -> str:
        """A namespace with ``eth0`` (MAC ``mac``) whose veth peer is plugged into ``bridge`` in ``host``."""
        client = self.make(role)
        peer = f"v{secrets.token_hex(3)}"
        sh("ip", "-n", host, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", client)
        sh("ip", "-n", host, "link", "set", peer, "master", bridge, "up")
        sh("ip", "-n", client, "link", "set", "eth0", "address", mac, "up")
        return client

    def dhcp(self, client: str, hostname: str | None = None) -> str:
        """Run busybox udhcpc once in ``client``; return the address it bound."""
        args = ["busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-t", "8", "-T", "1", "-s", str(self.script)]
        if hostname:
            args += ["-x", f"hostname:{hostname}"]
        proc = in_ns(client, *args, check=False, timeout=30)
        assert proc.returncode == 0, f"no DHCP lease: {proc.stdout} {proc.stderr}"
        out = in_ns(client, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout.split()
        return out[out.index("inet") + 1]

    def links(self, ns: str) -> dict[str, dict[str, Any]]:
        return {str(x["ifname"]): x for x in json.loads(in_ns(ns, "ip", "-j", "addr").stdout)}

    def ruleset(self, ns: str) -> str:
        return in_ns(ns, "nft", "list", "ruleset").stdout


@pytest.fixture
def tools(netns: Callable[[str], str], dhcp_script: Path) -> NetTools:
    return NetTools(netns, dhcp_script)

"""Seam between the offline tools and the domain registry: a domain's disks, and whether it runs.

For now this reads the on-disk state directly (the persistent XML in the QEMU config directory, the
run record in the QEMU run directory) so the tools work with or without a daemon. It is kept to these
two functions so that it can become two API calls without touching the tools.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from pyvirt.errors import InvalidArgument, NotFound, XMLError
from pyvirt.paths import Layout, default_mode, layout_for


def _layout(connect_uri: str | None) -> Layout:
    if not connect_uri:
        return layout_for(default_mode())
    from pyvirt.uri import parse_uri

    uri = parse_uri(connect_uri)
    if not uri.is_local:
        raise InvalidArgument(f"offline guest tools need a local connection, not {connect_uri}")
    return layout_for(uri.mode)


def resolve_domain_disks(name: str, connect_uri: str | None = None) -> list[tuple[str, str | None]]:
    """(path, format) of each file or block disk of domain ``name``, in XML order; CD-ROMs excluded."""
    path = _layout(connect_uri).domain_xml(name)
    if not path.exists():
        raise NotFound(f"domain {name} not found (no {path})")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise XMLError(f"cannot parse the XML of domain {name} ({path}): {err}") from err
    disks: list[tuple[str, str | None]] = []
    for disk in root.findall("./devices/disk"):
        if disk.get("device", "disk") not in ("disk", "lun"):
            continue
        source = disk.find("source")
        if source is None:
            continue
        src = source.get("file") or source.get("dev")
        if not src:
            continue
        driver = disk.find("driver")
        fmt = driver.get("type") if driver is not None else None
        disks.append((src, fmt))
    if not disks:
        raise InvalidArgument(f"domain {name} has no file or block disks")
    return disks


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded_pid(run_dir: Path, name: str) -> int | None:
    pidfile = run_dir / f"{name}.pid"
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pass
    record = run_dir / f"{name}.json"
    try:
        pid = json.loads(record.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


def domain_is_running(name: str, connect_uri: str | None = None) -> bool:
    """True if the QEMU of domain ``name`` is alive (its pid in the run directory answers)."""
    pid = _recorded_pid(_layout(connect_uri).qemu_run_dir, name)
    return pid is not None and pid > 0 and _pid_alive(pid)

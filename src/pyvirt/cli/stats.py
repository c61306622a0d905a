"""Domain statistics verbs, with virsh 9.0's output: domstats, dommemstat, domblkstat, domifstat,
cpu-stats, domif-getlink, domcontrol."""

from __future__ import annotations

from pyvirt.cli.domain import CommandFailed, _domain
from pyvirt.cli.output import emit
from pyvirt.errors import InvalidArgument, InvalidState, NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection

# domstats' group flags, and the daemon's group names.
_GROUPS = (
    ("state", "state"),
    ("cpu_total", "cpu-total"),
    ("balloon", "balloon"),
    ("vcpu", "vcpu"),
    ("interface", "interface"),
    ("block", "block"),
)
_UNSUPPORTED_GROUPS = ("perf", "iothread", "memory", "dirtyrate", "vm")
_FILTERS = ("active", "inactive", "persistent", "transient", "running", "paused", "shutoff", "other")


def _names(a: Parsed) -> list[str]:
    value = a.get("domain")
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]  # type: ignore[attr-defined]


def cmd_domstats(opts: GlobalOptions, a: Parsed) -> int:
    for flag in _UNSUPPORTED_GROUPS:
        if a.flag(flag):
            raise InvalidArgument(
                f"--{flag}: pyvirt has no '{flag}' statistics group (it has --state --cpu-total "
                "--balloon --vcpu --interface --block)"
            )
    if a.flag("backing"):
        raise InvalidArgument("--backing: pyvirt reports no statistics of backing images")
    # --raw: every value is an integer or a string, which virsh prints the same either way.
    # --nowait: pyvirt's statistics never wait for a job to finish, so they are always "instant".
    # --enforce: every group pyvirt accepts is reported, or refused above.
    groups = [name for flag, name in _GROUPS if a.flag(flag)]
    filters = [word for word in _FILTERS if a.flag(f"list_{word}")]
    names = _names(a)
    if names and filters:
        raise InvalidArgument("domain list filters (--list-*) cannot be combined with a list of domains")
    conn = opts.connect()
    try:
        records = conn.domain_stats(names or None, groups=groups or None, filters=filters or None)
    except NotFound as err:
        missing = next((n for n in names if _exists(conn, n) is False), names[0] if names else "")
        raise PyvirtError(f"failed to get domain '{missing}'") from err
    text = "\n".join(
        f"Domain: '{rec['name']}'\n" + "".join(f"  {k}={v}\n" for k, v in rec["fields"].items())
        for rec in records
    )
    emit(text + "\n")
    return 0


def _exists(conn: Connection, name: str) -> bool:
    try:
        conn.domain(name)
    except NotFound:
        return False
    return True


def _one(conn: Connection, name: str, groups: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = dict(conn.domain_stats([name], groups=groups)[0]["fields"])
    return fields


def cmd_dommemstat(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.client.api import Domain

    conn = opts.connect()
    dom = Domain(conn, a.text("domain"))  # no lookup first: one request (NotFound says which domain)
    period = a.opt("period")
    scoped = a.flag("live") or a.flag("config") or a.flag("current")
    if a.flag("current") and (a.flag("live") or a.flag("config")):
        raise InvalidArgument("Options --current and --live/--config are mutually exclusive")
    if period is None:
        if scoped:
            raise InvalidArgument("--live, --config and --current choose where --period goes: give --period")
        stats = _run("Failed to get memory statistics", lambda: dom.memory_stats(), dom.name)
        emit("".join(f"{k} {v}\n" for k, v in stats.items()) + "\n")
        return 0
    seconds = int(period)
    if seconds < 0:
        raise InvalidArgument(f"Invalid collection period value '{seconds}'")
    _run(
        "Unable to change balloon collection period.",
        lambda: dom.set_memory_stats_period(seconds, live=a.flag("live"), config=a.flag("config")),
        dom.name,
    )
    emit("\n")
    return 0


def _run(context: str, call: Any, key: str) -> Any:
    try:
        return call()
    except NotFound as err:
        raise PyvirtError(f"failed to get domain '{key}'") from err
    except PyvirtError as err:
        raise CommandFailed(context, err) from err


_BLK_HUMAN = {
    "rd_req": "number of read operations:",
    "rd_bytes": "number of bytes read:",
    "wr_req": "number of write operations:",
    "wr_bytes": "number of bytes written:",
    "flush_operations": "number of flush operations:",
    "rd_total_times": "total duration of reads (ns):",
    "wr_total_times": "total duration of writes (ns):",
    "flush_total_times": "total duration of flushes (ns):",
}
_BLK_KEYS = (
    ("rd_req", "rd.reqs"),
    ("rd_bytes", "rd.bytes"),
    ("wr_req", "wr.reqs"),
    ("wr_bytes", "wr.bytes"),
    ("flush_operations", "fl.reqs"),
    ("rd_total_times", "rd.times"),
    ("wr_total_times", "wr.times"),
    ("flush_total_times", "fl.times"),
)


def cmd_domblkstat(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    device = a.opt("device") or ""
    context = f"Failed to get block stats {dom.name} {device}"
    if not dom.info()["id"]:
        raise CommandFailed(context, InvalidState("Requested operation is not valid: domain is not running"))
    fields = _one(conn, dom.name, ["block"])
    count = int(fields.get("block.count", 0))
    indexes = [
        i
        for i in range(count)
        if not device or device in (fields.get(f"block.{i}.name"), fields.get(f"block.{i}.path"))
    ]
    if device and not indexes:
        raise CommandFailed(context, InvalidArgument(f"invalid argument: invalid path: {device}"))
    values: dict[str, int] = {}
    for name, key in _BLK_KEYS:
        found = [fields[f"block.{i}.{key}"] for i in indexes if f"block.{i}.{key}" in fields]
        if found:
            values[name] = sum(found)
    if a.flag("human"):
        text = f"Device: {device}\n" + "".join(f" {_BLK_HUMAN[k]:<31} {v}\n" for k, v in values.items())
    else:
        text = "".join(f"{device} {k} {v}\n" for k, v in values.items())
    emit(text + "\n")
    return 0


_IF_KEYS = ("rx.bytes", "rx.pkts", "rx.errs", "rx.drop", "tx.bytes", "tx.pkts", "tx.errs", "tx.drop")
_IF_NAMES = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop")


def _interface_index(conn: Connection, name: str, iface: str, *, inactive: bool = False) -> int | None:
    """The position of the NIC ``iface`` (its tap's name or its MAC) in the domain's devices."""
    devices = conn.domain(name).devices(inactive=inactive)["interfaces"]
    for index, nic in enumerate(devices):
        if iface == nic["interface"] or (nic["mac"] and iface.lower() == nic["mac"].lower()):
            return index
    return None


def cmd_domifstat(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    iface = a.text("interface")
    context = f"Failed to get interface stats {dom.name} {iface}"
    if not dom.info()["id"]:
        raise CommandFailed(context, InvalidState("Requested operation is not valid: domain is not running"))
    index = _interface_index(conn, dom.name, iface)
    fields = _one(conn, dom.name, ["interface"]) if index is not None else {}
    if index is None or f"net.{index}.name" not in fields:
        raise CommandFailed(context, InvalidArgument(f"invalid argument: '{iface}' is not a known interface"))
    values = {name: fields[f"net.{index}.{key}"] for name, key in zip(_IF_NAMES, _IF_KEYS, strict=True)}
    emit("".join(f"{iface} {k} {v}\n" for k, v in values.items()) + "\n")
    return 0


def _seconds(name: str, ns: int) -> str:
    return f"\t{name:<12} {ns // 1_000_000_000:9d}.{ns % 1_000_000_000:09d} seconds\n"


def _signed(a: Parsed, name: str) -> int | None:
    value = a.opt(name)
    return None if value is None else int(value)


def cmd_cpu_stats(opts: GlobalOptions, a: Parsed) -> int:
    # virsh 9.0's cmdCPUStats: each host CPU's figures (from --start, at most --count of them), then the
    # totals; --total alone: the totals only; --start or --count alone: the CPUs only.
    start, count = _signed(a, "start"), _signed(a, "count")
    if start is not None and start < 0:
        raise InvalidArgument("Invalid value for start CPU")
    if count is not None and count < 0:
        raise InvalidArgument("Invalid value for number of CPUs to show")
    show_total = a.flag("total")
    show_per_cpu = start is not None or count is not None
    if not show_total and not show_per_cpu:
        show_total = show_per_cpu = True
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    context = f"Failed to retrieve CPU statistics for domain '{dom.name}'"
    if not dom.info()["id"]:
        raise CommandFailed(context, InvalidState("Requested operation is not valid: domain is not running"))
    text = ""
    if show_per_cpu:
        first = start or 0
        try:
            host_cpus = dom.percpu_stats(count=True)["host_cpus"]
        except PyvirtError as err:
            raise CommandFailed(context, err) from err
        if first >= host_cpus:
            raise InvalidArgument(f"Start CPU {first} is out of range (min: 0, max: {host_cpus - 1})")
        if count is None or count > host_cpus:
            if count is not None:
                text += f"Only {host_cpus} CPUs available to show\n"
            count = host_cpus - first
        try:
            cpus = dom.percpu_stats()["cpus"]
        except PyvirtError as err:
            emit(text)
            raise CommandFailed(context, err) from err
        for index in range(first, min(first + count, len(cpus))):
            times = cpus[index]
            text += f"CPU{index}:\n" + _seconds("cpu_time", times["cpu_time"])
            text += _seconds("vcpu_time", times["vcpu_time"])
    if show_total:
        fields = _one(conn, dom.name, ["cpu-total"])
        text += "Total:\n"
        for name, key in (("cpu_time", "cpu.time"), ("user_time", "cpu.user"), ("system_time", "cpu.system")):
            text += _seconds(name, int(fields.get(key, 0)))
    emit(text + "\n")
    return 0


def cmd_domif_getlink(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.conf.xmlutil import XNode, editable, parse_document

    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    iface = a.text("interface")
    devices = editable(parse_document(dom.xml(inactive=a.flag("config")))).find("devices")
    for nic in (devices or XNode("devices")).findall("interface"):
        target = nic.find("target")
        mac = nic.find("mac")
        names = {target.get("dev") if target is not None else None}
        if mac is not None and mac.get("address"):
            names.add(str(mac.get("address")).lower())
        if iface in names or iface.lower() in names:
            link = nic.find("link")
            state = (link.get("state") if link is not None else None) or "up"
            emit(f"{iface} {state}\n")
            return 0
    raise PyvirtError(f"Interface ({'dev' if ':' not in iface else 'mac'}: {iface}) not found.")


def cmd_domcontrol(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    if not dom.info()["id"]:
        raise InvalidState("Requested operation is not valid: domain is not running")
    # Each request to a domain's QEMU is answered in turn; none holds its monitor for long, so the
    # control interface is always "ok" (virsh's "occupied" comes with long libvirt jobs).
    emit("ok\n\n")
    return 0

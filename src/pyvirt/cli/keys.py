"""The screen, keyboard and monitor verbs (send-key, screenshot, domdisplay, qemu-monitor-command,
inject-nmi) and the job verbs (domjobinfo, domjobabort), with virsh 9.0's output and messages."""

from __future__ import annotations

from pyvirt.cli.domain import _domain, _guard
from pyvirt.cli.output import emit
from pyvirt.errors import InvalidArgument, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions

# virsh's order of display types
_DISPLAYS = ("vnc", "spice", "rdp", "dbus")


def cmd_send_key(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    holdtime = int(a.opt("holdtime") or 0)
    if holdtime < 0:
        raise InvalidArgument("Unable to parse integer parameter holdtime")
    dom.send_key(a.texts("keycode"), codeset=a.opt("codeset") or "linux", holdtime=holdtime)
    emit("\n")
    return 0


def cmd_screenshot(opts: GlobalOptions, a: Parsed) -> int:
    import os
    import time

    dom = _domain(opts.connect(), a.text("domain"))
    screen = int(a.opt("screen") or 0)
    if screen < 0:
        raise InvalidArgument("Unable to parse integer parameter screen")
    data = _guard(f"could not take a screenshot of {dom.name}", lambda: dom.screenshot(screen))
    path = a.opt("file") or f"{dom.name}-{time.strftime('%Y-%m-%d-%H:%M:%S')}.png"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as err:
        raise PyvirtError(f"cannot create file {path}: {err.strerror}") from err
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    emit(f"Screenshot saved to {path}, with type of image/png\n")
    return 0


def display_urls(xml: str, wanted: str | None, include_password: bool) -> list[str]:
    """virsh domdisplay's URIs of the running domain's graphics, in virsh's order of types."""
    from pyvirt.conf.xmlutil import XNode, editable, parse_document

    devices = editable(parse_document(xml)).find("devices") or XNode("devices")
    urls = []
    for kind in _DISPLAYS:
        if wanted is not None and kind != wanted:
            continue
        gfx = devices.find("graphics", type=kind)
        if gfx is None:
            continue
        listen = gfx.find("listen")
        socket = gfx.get("socket") or (listen.get("socket") if listen is not None else None)
        port = int(gfx.get("port") or -1)
        tls_port = int(gfx.get("tlsPort") or -1)
        if socket is None and port <= 0 and tls_port <= 0:
            continue  # no port (yet): nothing to connect to
        passwd = gfx.get("passwd") if include_password else None
        if socket is not None:
            urls.append(f"{kind}+unix://{socket}")
            continue
        host = gfx.get("listen") or (listen.get("address") if listen is not None else None) or ""
        if host in ("", "0.0.0.0", "::"):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        url = f"{kind}://" + (f":{passwd}@" if passwd and kind == "vnc" else "") + host
        if port > 0:
            url += f":{port - 5900 if kind == 'vnc' else port}"
        query = ""
        if tls_port > 0:
            query += f"tls-port={tls_port}&"
        if passwd and kind != "vnc":
            query += f"password={passwd}&"
        urls.append(url + (f"?{query.rstrip('&')}" if query else ""))
    return urls


def cmd_domdisplay(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    if dom.info(cached=True)["id"] is None:
        raise PyvirtError("Domain is not running")
    wanted = a.opt("type")
    include_password = a.flag("include_password")
    urls = display_urls(dom.xml(security_info=include_password), wanted, include_password)
    if not urls:
        if wanted is not None:
            raise PyvirtError(f"No graphical display with type '{wanted}' found")
        raise PyvirtError("No graphical display found")
    if not a.flag("all"):
        urls = urls[:1]
    emit("".join(f"{url}\n" for url in urls) + ("\n" if a.flag("all") else ""))
    return 0


def cmd_qemu_monitor_command(opts: GlobalOptions, a: Parsed) -> int:
    import json

    if a.opt("pass_fds") is not None:
        raise InvalidArgument(
            "--pass-fds: file descriptors cannot be passed through the daemon's API (QEMU runs confined; "
            "pyvirtd hands files to it itself)"
        )
    hmp = a.flag("hmp")
    for other in ("pretty", "return_value"):
        if hmp and a.flag(other):
            raise InvalidArgument(f"Options --hmp and --{other.replace('_', '-')} are mutually exclusive")
    dom = _domain(opts.connect(), a.text("domain"))
    reply = dom.monitor_command(" ".join(a.texts("cmd")), hmp=hmp)
    if not hmp and (a.flag("pretty") or a.flag("return_value")):
        value = json.loads(reply)
        if a.flag("return_value"):
            if "return" not in value:
                raise PyvirtError(f"Failed to extract the 'return' value of: {reply}")
            value = value["return"]
        reply = json.dumps(
            value, indent=2 if a.flag("pretty") else None, separators=None if a.flag("pretty") else (",", ":")
        )
        emit(f"{reply}\n")  # virsh prints a value it formatted with one newline, QEMU's reply with two
        return 0
    emit(f"{reply}\n\n")
    return 0


def cmd_inject_nmi(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    dom.inject_nmi()
    emit("\n")
    return 0


_OPERATIONS = {"Save": 2, "Restore": 3, "Outgoing migration": 5, "Snapshot": 6}


def cmd_domjobinfo(opts: GlobalOptions, a: Parsed) -> int:
    for flag in ("completed", "keep_completed", "anystats"):
        if a.flag(flag):
            raise InvalidArgument(
                f"--{flag.replace('_', '-')}: pyvirtd keeps no statistics of finished or failed jobs"
            )
    dom = _domain(opts.connect(), a.text("domain"))
    info = dom.job_info()
    stats = dict(info.get("stats") or {})
    if not stats:  # a daemon that gives the few figures of older versions
        for key in ("time_elapsed_ms", "data_total", "data_processed", "data_remaining"):
            if key in info:
                stats[key.removesuffix("_ms")] = int(info[key])  # type: ignore[literal-required]
    if a.flag("rawstats"):
        kinds = {"None": 0, "Bounded": 1, "Unbounded": 2}
        text = f"Job type: {kinds.get(info['type'], 0)}\n\n"
        if info["type"] != "None":  # libvirt's virDomainJobOperation
            text += f"operation: {_OPERATIONS.get(info['operation'], 0)}\n"
            text += "".join(f"{key}: {value}\n" for key, value in stats.items())
        emit(text + "\n")
        return 0
    text = f"{'Job type:':<17} {info['type']:<12}\n"
    if info["type"] != "None":
        text += f"{'Operation:':<17} {info['operation']:<12}\n"
        text += _job_lines(stats)
    emit(text + "\n")
    return 0


def _job_lines(stats: dict[str, int]) -> str:
    """virsh 9.0's cmdDomjobinfo lines of a running job's statistics (a job of pyvirt's is unbounded)."""

    def line(label: str, value: str) -> str:
        return f"{label:<17} {value}\n"

    def count(label: str, key: str, unit: str = "") -> str:
        return line(label, f"{stats[key]:<12}" + (f" {unit}" if unit else "")) if key in stats else ""

    def sizes(*pairs: tuple[str, str]) -> str:
        if not any(stats.get(key) for _, key in pairs):
            return ""
        return "".join(line(label, _capacity(stats.get(key, 0))) for label, key in pairs)

    text = line("Time elapsed:", f"{stats.get('time_elapsed', 0):<12} ms")
    text += sizes(
        ("Data processed:", "data_processed"),
        ("Data remaining:", "data_remaining"),
        ("Data total:", "data_total"),
    )
    text += sizes(
        ("Memory processed:", "memory_processed"),
        ("Memory remaining:", "memory_remaining"),
        ("Memory total:", "memory_total"),
    )
    if stats.get("memory_bps"):
        text += line("Memory bandwidth:", _capacity(stats["memory_bps"]) + "/s")
    text += count("Dirty rate:", "memory_dirty_rate", "pages/s")
    text += count("Page size:", "memory_page_size", "bytes")
    text += count("Iteration:", "memory_iteration")
    text += count("Postcopy requests:", "memory_postcopy_requests")
    text += count("Constant pages:", "memory_constant")
    text += count("Normal pages:", "memory_normal")
    if "memory_normal_bytes" in stats:
        text += line("Normal data:", _capacity(stats["memory_normal_bytes"]))
    text += count("Expected downtime:", "downtime", "ms")
    text += count("Setup time:", "setup_time", "ms")
    if "compression_cache" in stats:
        text += line("Compression cache:", _capacity(stats["compression_cache"]))
    if "compression_bytes" in stats:
        text += line("Compressed data:", _capacity(stats["compression_bytes"]))
    for label, key in (
        ("Compressed pages:", "compression_pages"),
        ("Compression cache misses:", "compression_cache_misses"),
        ("Compression overflows:", "compression_overflow"),
    ):
        if key in stats:
            text += line(label, f"{stats[key]:<13}")
    if "auto_converge_throttle" in stats:
        text += line("Auto converge throttle:", f"{stats['auto_converge_throttle']:<13}")
    return text


def _capacity(size: int) -> str:
    """virsh's vshPrettyCapacity: the size in the largest unit that keeps it at least 1, 3 decimals."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{value:.3f} {unit}"


def cmd_domjobabort(opts: GlobalOptions, a: Parsed) -> int:
    if a.flag("postcopy"):
        raise InvalidArgument("--postcopy: pyvirt has no post-copy migration to interrupt")
    dom = _domain(opts.connect(), a.text("domain"))
    dom.abort_job()
    emit("\n")
    return 0

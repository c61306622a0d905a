"""blockcommit, blockpull, blockcopy, blockjob, blockresize, domblkinfo and domblkerror, with virsh's
options, progress lines (``Block Commit: [ 42 %]`` on stderr) and messages.

As virsh does, ``--wait`` and its friends are the client's: it polls the job twice a second, prints
the progress with ``--verbose``, aborts the job after ``--timeout`` seconds or on Ctrl+C, and pivots
(``--pivot``) or ends (``--keep-overlay``, ``--finish``) a job that reached its ready phase.
"""

from __future__ import annotations

import sys

from pyvirt.cli.domain import _domain, _guard, _read_file
from pyvirt.cli.output import emit, emit_json, table
from pyvirt.errors import InvalidArgument

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Domain

TYPE_NAMES = {
    "pull": "Block Pull",
    "copy": "Block Copy",
    "commit": "Block Commit",
    "active_commit": "Active Block Commit",
}


def event_lines(event: Mapping[str, Any], wanted: str | None, every: bool) -> list[str]:
    """virsh's lines for a block job event: ``block-job`` names the disk by path, ``block-job-2`` by
    target; ``--all`` prints both."""
    kind, target, path = str(event["detail"]).split(":", 2)
    what = f"{TYPE_NAMES.get(kind, 'Unknown job')} for %s {event['event']}\n"
    names = ["block-job", "block-job-2"] if every else [wanted or "block-job"]
    return [
        f"event '{name}' for domain '{event['name']}': " + what % (target if name == "block-job-2" else path)
        for name in names
    ]


def io_error_lines(event: Mapping[str, Any], wanted: str | None, every: bool) -> list[str]:
    """virsh's lines for a disk I/O error: ``io-error`` (path, alias, action) and ``io-error-reason``
    (and why: ``enospc`` or nothing); ``--all`` prints both."""
    import json

    d = json.loads(str(event["detail"]))
    head = f"for domain '{event['name']}': {d['path']} ({d['alias']}) {d['action']}"
    names = ["io-error", "io-error-reason"] if every else [wanted or "io-error"]
    return [
        f"event '{name}' {head}" + (f" due to {d['reason']}\n" if name == "io-error-reason" else "\n")
        for name in names
    ]


def _exclusive(a: Parsed, *pairs: tuple[str, str]) -> None:
    for one, other in pairs:
        if a.get(one.replace("-", "_")) and a.get(other.replace("-", "_")):
            raise InvalidArgument(f"Options --{one} and --{other} are mutually exclusive")


def _bandwidth(a: Parsed, name: str = "bandwidth") -> int:
    """--bandwidth in bytes/s: MiB/s, or bytes/s with --bytes."""
    value = a.opt(name)
    if value is None:
        return 0
    number = int(value)
    if number < 0 or number >= 1 << 44:
        raise InvalidArgument(
            f"Scaled numeric value '{value}' for <--{name}> option is malformed or out of range"
        )
    return number if a.flag("bytes") else number << 20


def _timeout(a: Parsed) -> float:
    value = a.opt("timeout")
    if value is None:
        return 0.0
    if int(value) <= 0:
        raise InvalidArgument(f"Numeric value '{value}' for <timeout> option is malformed or out of range")
    return float(value)


def progress(label: str, remaining: int, total: int) -> None:
    """virsh's progress line: ``\\rLabel: [ 42 %]`` on stderr; 100 only once nothing remains."""
    percent = 100
    if remaining:
        percent = min(100 - remaining * 100 // total, 99) if total else 0
    sys.stdout.flush()
    sys.stderr.write(f"\r{label}: [{percent:3d} %]")
    sys.stderr.flush()


def wait_job(dom: Domain, disk: str, label: str, *, verbose: bool, timeout: float, async_abort: bool) -> str:
    """Poll the disk's job until it is ready or ends (aborting it after ``timeout`` seconds or on
    Ctrl+C, as virsh); returns ready, completed, failed or canceled."""
    import time

    start = time.monotonic()
    last: tuple[int, int] | None = None
    result = ""
    while not result:
        try:
            info = dom.block_job(disk)
            state = info["state"]
            if state in ("ready", "completed", "failed", "canceled"):
                result = str(state)
                break
            here = (int(info.get("cur", 0)), int(info.get("end", 0)))
            if verbose and here != last:
                progress(label, here[1] - here[0], here[1])
            last = here
            if timeout and time.monotonic() - start > timeout:
                raise KeyboardInterrupt
            time.sleep(0.5)
        except KeyboardInterrupt:
            _guard(
                f"failed to abort job for disk '{disk}'",
                lambda: dom.block_job_abort(disk, wait=not async_abort),
            )
            result = "canceled"
    if verbose and result in ("completed", "ready"):
        progress(label, 0, 1)
    return result


def _ended(result: str, what: str, dom: Domain, disk: str) -> bool:
    """virsh's line for a waited-for job that was aborted or failed (the command then exits 1); a
    failure's cause goes to stderr."""
    if result not in ("canceled", "failed"):
        return False
    emit(f"\n{what} {'aborted' if result == 'canceled' else 'failed'}\n")
    if result == "failed":
        cause = dom.block_job(disk).get("error")
        sys.stdout.flush()
        sys.stderr.write(f"error: {cause or 'the block job failed'}\n")
    return True


def _finish_ready(dom: Domain, disk: str, *, pivot: bool, finish: bool, async_abort: bool, kept: str) -> None:
    """A ready copy or active commit: pivot to the new image, end it keeping the old one, or leave it."""
    if pivot:
        _guard(
            f"failed to pivot job for disk {disk}",
            lambda: dom.block_job_abort(disk, pivot=True, wait=not async_abort),
        )
        emit("\nSuccessfully pivoted\n")
    elif finish:
        _guard(
            f"failed to finish job for disk {disk}", lambda: dom.block_job_abort(disk, wait=not async_abort)
        )
        emit(f"\n{kept}\n")


def _needs_wait(blocking: bool, a: Parsed, ends: str) -> None:
    if blocking:
        return
    for name in ("verbose", "async"):
        if a.flag(name):
            raise InvalidArgument(
                f"--{name} requires at least one of --timeout, --wait, --pivot, or --{ends}"
            )


def cmd_blockcommit(opts: GlobalOptions, a: Parsed) -> int:
    _exclusive(a, ("pivot", "keep-overlay"))
    pivot, finish = a.flag("pivot"), a.flag("keep_overlay")
    active = a.flag("active") or pivot or finish
    timeout = _timeout(a)
    blocking = a.flag("wait") or pivot or finish or bool(timeout)
    _needs_wait(blocking, a, "keep-overlay")
    bandwidth = _bandwidth(a)
    dom = _domain(opts.connect(), a.text("domain"))
    disk = a.text("path")
    dom.block_commit(
        disk,
        base=a.opt("base"),
        top=a.opt("top"),
        active=active,
        shallow=a.flag("shallow"),
        bandwidth=bandwidth,
        keep_relative=a.flag("keep_relative"),
        delete=a.flag("delete"),
    )
    if not blocking:
        emit("Active Block Commit started\n" if active else "Block Commit started\n")
        return 0
    async_abort = a.flag("async")
    result = wait_job(
        dom, disk, "Block commit", verbose=a.flag("verbose"), timeout=timeout, async_abort=async_abort
    )
    if _ended(result, "Commit", dom, disk):
        return 1
    if not active:
        emit("\nCommit complete\n")
    elif pivot or finish:
        _finish_ready(
            dom,
            disk,
            pivot=pivot,
            finish=finish,
            async_abort=async_abort,
            kept="Commit complete, overlay image kept",
        )
    else:
        emit("\nNow in synchronized phase\n")
    return 0


def cmd_blockpull(opts: GlobalOptions, a: Parsed) -> int:
    blocking = a.flag("wait")
    for name in ("verbose", "async", "timeout"):
        if a.get(name) and not blocking:
            raise InvalidArgument(f"Option --{name} requires --wait")
    timeout = _timeout(a)
    bandwidth = _bandwidth(a)
    dom = _domain(opts.connect(), a.text("domain"))
    disk = a.text("path")
    dom.block_pull(disk, base=a.opt("base"), bandwidth=bandwidth, keep_relative=a.flag("keep_relative"))
    if not blocking:
        emit("Block Pull started\n")
        return 0
    result = wait_job(
        dom, disk, "Block Pull", verbose=a.flag("verbose"), timeout=timeout, async_abort=a.flag("async")
    )
    if _ended(result, "Pull", dom, disk):
        return 1
    emit("\nPull complete\n")
    return 0


def _copy_xml(path: str) -> tuple[str, str | None, bool]:
    """blockcopy --xml: (destination, format, is a block device) from a ``<disk>`` document."""
    from pyvirt.conf.xmlutil import Elem, parse_document
    from pyvirt.errors import XMLError

    root = Elem(parse_document(_read_file(path)))
    if root.tag != "disk":
        raise XMLError(f"unexpected root element <{root.tag}>, expecting <disk>")
    kind = root.choice("type", ("file", "block")) or "file"
    source = root.child("source")
    if source is None:
        raise XMLError("missing element 'disk/source'")
    dest = source.require("file" if kind == "file" else "dev")
    source.done()
    fmt = None
    if (driver := root.child("driver")) is not None:
        driver.choice("name", ("qemu",))
        fmt = driver.attr("type")
        driver.done()
    root.done()
    return dest, fmt, kind == "block"


def cmd_blockcopy(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.conf.xmlescape import escape_attr

    _exclusive(a, ("dest", "xml"), ("format", "xml"), ("blockdev", "xml"), ("pivot", "finish"))
    if not a.opt("dest") and not a.get("xml"):
        raise InvalidArgument("need either --dest or --xml")
    pivot, finish = a.flag("pivot"), a.flag("finish")
    timeout = _timeout(a)
    blocking = a.flag("wait") or pivot or finish or bool(timeout)
    _needs_wait(blocking, a, "finish")
    bandwidth = _bandwidth(a)
    if a.get("xml"):
        dest, fmt, blockdev = _copy_xml(str(a["xml"]))
    else:
        dest, fmt, blockdev = a.text("dest"), a.opt("format"), a.flag("blockdev")
    if a.flag("print_xml"):
        kind, attr = ("block", "dev") if blockdev else ("file", "file")
        driver = f"  <driver type='{escape_attr(fmt)}'/>\n" if fmt else ""
        emit(f"<disk type='{kind}'>\n  <source {attr}='{escape_attr(dest)}'/>\n{driver}</disk>\n")
        return 0
    granularity = int(a.text("granularity")) if a.opt("granularity") else None
    buf_size = int(a.text("buf_size")) if a.opt("buf_size") else None
    dom = _domain(opts.connect(), a.text("domain"))
    disk = a.text("path")
    # --transient-job: every pyvirt job is one (a job ends with its QEMU; nothing of it is persisted).
    dom.block_copy(
        disk,
        dest,
        format=fmt,
        blockdev=blockdev,
        shallow=a.flag("shallow"),
        reuse_external=a.flag("reuse_external"),
        bandwidth=bandwidth,
        granularity=granularity,
        buf_size=buf_size,
        synchronous_writes=a.flag("synchronous_writes"),
    )
    if not blocking:
        emit("Block Copy started\n")
        return 0
    async_abort = a.flag("async")
    result = wait_job(
        dom, disk, "Block Copy", verbose=a.flag("verbose"), timeout=timeout, async_abort=async_abort
    )
    if _ended(result, "Copy", dom, disk):
        return 1
    if pivot or finish:
        _finish_ready(
            dom, disk, pivot=pivot, finish=finish, async_abort=async_abort, kept="Successfully copied"
        )
    else:
        emit("\nNow in mirroring phase\n")
    return 0


def pretty(value: int) -> tuple[float, str]:
    """vshPrettyCapacity: the value scaled to the largest binary unit below it."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024:
            return size, unit
        size /= 1024
    return size, "EiB"


def cmd_blockjob(opts: GlobalOptions, a: Parsed) -> int:
    raw = a.flag("raw")
    bandwidth_given = a.opt("bandwidth") is not None
    _exclusive(
        a,
        ("raw", "abort"),
        ("raw", "pivot"),
        ("raw", "async"),
        ("raw", "bandwidth"),
        ("info", "abort"),
        ("info", "pivot"),
        ("info", "async"),
        ("info", "bandwidth"),
        ("bytes", "abort"),
        ("bytes", "pivot"),
        ("bytes", "async"),
    )
    dom = _domain(opts.connect(), a.text("domain"))
    disk = a.text("path")
    if bandwidth_given:
        speed = _bandwidth(a)
        dom.block_job_set_speed(disk, speed)
        emit("\n")
        return 0
    if a.flag("abort") or a.flag("pivot") or a.flag("async"):
        dom.block_job_abort(disk, pivot=a.flag("pivot"), wait=not a.flag("async"))
        emit("\n")
        return 0
    job = dom.block_job(disk)
    if opts.json:
        emit_json(job)
        return 0
    if job["state"] not in ("running", "ready"):
        emit("\n" if raw else f"No current block job for {disk}\n")
        return 0
    kind = str(job["type"])
    cur, end, speed = int(job.get("cur", 0)), int(job.get("end", 0)), int(job.get("bandwidth", 0))
    if raw:
        shown = speed if a.flag("bytes") else speed >> 20
        emit(f" type={kind}\n bandwidth={shown}\n cur={cur}\n end={end}\n\n")
        return 0
    progress(TYPE_NAMES.get(kind, "Unknown job"), end - cur, end)
    if speed:
        value, unit = pretty(speed)
        emit(f"    Bandwidth limit: {speed} bytes/s ({value:.3f} {unit}/s)")
    emit("\n\n")
    return 0


def _size(text: str) -> int:
    """blockresize's size: a scaled integer, KiB without a unit."""
    from pyvirt.conf.units import parse_scaled

    body = text.strip()
    if body.isdigit():
        return int(body) * 1024
    try:
        return parse_scaled(body)
    except InvalidArgument:
        raise InvalidArgument(
            f"Scaled numeric value '{text}' for <--size> option is malformed or out of range"
        ) from None


def cmd_blockresize(opts: GlobalOptions, a: Parsed) -> int:
    size = _size(a.text("size"))
    dom = _domain(opts.connect(), a.text("domain"))
    disk = a.text("path")
    _guard(f"Failed to resize block device '{disk}'", lambda: dom.block_resize(disk, size))
    emit(f"Block device '{disk}' is resized\n")
    return 0


def _cells(values: list[int], human: bool) -> list[str]:
    if not any(values):
        return ["-", "-", "-"]
    if not human:
        return [str(v) for v in values]
    return ["{:.3f} {}".format(*pretty(v)) for v in values]


def cmd_domblkinfo(opts: GlobalOptions, a: Parsed) -> int:
    _exclusive(a, ("all", "device"))
    dom = _domain(opts.connect(), a.text("domain"))
    human = a.flag("human")
    if a.flag("all"):
        rows = []
        for disk in dom.devices()["disks"]:
            sizes = [0, 0, 0]
            if disk["source"]:
                info = dom.block_info(disk["target"])
                sizes = [info["capacity"], info["allocation"], info["physical"]]
            rows.append([disk["target"], *_cells(sizes, human)])
        emit(table(["Target", "Capacity", "Allocation", "Physical"], rows) + "\n")
        return 0
    device = a.opt("device")
    if not device:
        raise InvalidArgument("command 'domblkinfo' requires <device> option")
    info = dom.block_info(device)
    cells = _cells([info["capacity"], info["allocation"], info["physical"]], human)
    emit(
        "".join(
            f"{label:<15} {value}\n"
            for label, value in zip(("Capacity:", "Allocation:", "Physical:"), cells, strict=True)
        )
        + "\n"
    )
    return 0


def cmd_domblkerror(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    found = dom.block_errors()
    if not found:
        emit("No errors found\n\n")
        return 0
    emit("".join(f"{e['disk']}: {e['error']}\n" for e in found) + "\n")
    return 0

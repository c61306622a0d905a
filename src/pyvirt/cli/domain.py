"""Domain verbs, with virsh 9.0's output and messages."""

from __future__ import annotations

import sys

from pyvirt.cli.output import emit, emit_json, fields, message, table
from pyvirt.errors import InvalidArgument, NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")
    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection, Domain


class CommandFailed(PyvirtError):
    """virsh's two-line error: what failed, then why."""

    def __init__(self, context: str, cause: PyvirtError) -> None:
        super().__init__(f"{context}\nerror: {cause}")
        self.code = cause.code


def _guard(context: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except NotFound as err:
        if "omain not found" in str(err):
            raise CommandFailed(context, err) from err
        raise
    except PyvirtError as err:
        if isinstance(err, CommandFailed):
            raise
        raise CommandFailed(context, err) from err


def _domain(conn: Connection, key: str) -> Domain:
    """Resolve now, so an unknown domain gives virsh's 'failed to get domain' error."""
    try:
        return conn.domain(key)
    except NotFound as err:
        raise PyvirtError(f"failed to get domain '{key}'") from err


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as err:
        raise InvalidArgument(f"Failed to open file '{path}': {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise InvalidArgument(f"file '{path}' is not UTF-8 text") from err


def cmd_define(opts: GlobalOptions, a: Parsed) -> int:
    path = str(a["file"])
    conn = opts.connect()
    dom = _guard(f"Failed to define domain from {path}", lambda: conn.define_xml(_read_file(path)))
    message(f"Domain '{dom.name}' defined from {path}")
    return 0


def cmd_create(opts: GlobalOptions, a: Parsed) -> int:
    path = str(a["file"])
    conn = opts.connect()
    dom = _guard(
        f"Failed to create domain from {path}",
        lambda: conn.create_xml(_read_file(path), paused=a.flag("paused"), autodestroy=a.flag("autodestroy")),
    )
    message(f"Domain '{dom.name}' created from {path}")
    if a.get("console"):
        from pyvirt.cli.console import attach

        return attach(conn, dom.name)
    return 0


def cmd_undefine(opts: GlobalOptions, a: Parsed) -> int:
    if a.flag("nvram") and a.flag("keep_nvram"):
        raise InvalidArgument("Options --nvram and --keep-nvram are mutually exclusive")
    if a.flag("tpm") and a.flag("keep_tpm"):
        raise InvalidArgument("Options --tpm and --keep-tpm are mutually exclusive")
    conn = opts.connect()
    dom = _domain(conn, str(a["domain"]))
    result = _guard(
        f"Failed to undefine domain '{dom.name}'",
        lambda: dom.undefine(
            remove_storage=a.flag("remove_all_storage"),
            nvram=a.flag("nvram"),
            keep_nvram=a.flag("keep_nvram"),
            tpm=a.flag("tpm"),
            keep_tpm=a.flag("keep_tpm"),
            snapshots_metadata=a.flag("snapshots_metadata"),
            managed_save=a.flag("managed_save"),
        ),
    )
    for path in result.get("removed", []):
        emit(f"Volume '{path}' removed.\n")
    message(f"Domain '{dom.name}' has been undefined")
    return 0


def cmd_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), str(a["domain"]))
    emit(
        dom.xml(
            inactive=a.flag("inactive"),
            security_info=a.flag("security_info"),
            migratable=a.flag("migratable"),
        )
    )
    return 0


def cmd_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    return edit_xml(dom.xml(inactive=True), f"Domain '{dom.name}'", conn.define_xml)


def cmd_list(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    doms: list[Any] = conn.list_domains()
    doms = _filter(doms, a)
    running = sorted((d for d in doms if d["id"] is not None), key=lambda d: d["id"])
    inactive = sorted((d for d in doms if d["id"] is None), key=lambda d: d["name"])
    doms = running + inactive
    if opts.json or a.get("json"):
        emit_json(doms)
        return 0
    if a.get("name") or a.get("uuid") or a.get("id"):
        lines = []
        for d in doms:
            cells = []
            if a.get("id"):
                if d["id"] is None:
                    continue
                cells.append(str(d["id"]))
            if a.get("uuid"):
                cells.append(d["uuid"])
            if a.get("name"):
                cells.append(d["name"])
            lines.append(" ".join(cells))
        emit("".join(f"{line}\n" for line in lines) + "\n")
        return 0
    header = ["Id", "Name", "State"]
    rows = [[str(d["id"]) if d["id"] is not None else "-", d["name"], _list_state(d, a)] for d in doms]
    if a.flag("title"):
        header.append("Title")
        for row, d in zip(rows, doms, strict=True):
            row.append(conn.domain(d["uuid"]).info(cached=True)["title"] or "")
    emit(table(header, rows) + "\n")
    return 0


def _list_state(d: dict[str, Any], a: Parsed) -> str:
    """The State cell: ``saved`` for an inactive domain with a managed save with --managed-save."""
    if a.flag("managed_save") and d["id"] is None and d.get("managed_save"):
        return "saved"
    return str(d["state"])


def _filter(doms: list[dict[str, Any]], a: dict[str, Any]) -> list[dict[str, Any]]:
    states = {
        "state_running": "running",
        "state_shutoff": "shut off",
        "state_paused": "paused",
    }
    wanted = {state for flag, state in states.items() if a.get(flag)}
    other = bool(a.get("state_other"))
    if wanted or other:
        doms = [
            d
            for d in doms
            if d["state"] in wanted or (other and d["state"] not in ("running", "shut off", "paused"))
        ]
    elif a.get("inactive"):
        doms = [d for d in doms if d["id"] is None]
    elif not a.get("all"):
        doms = [d for d in doms if d["id"] is not None]
    if a.get("autostart"):
        doms = [d for d in doms if d["autostart"]]
    if a.get("no_autostart"):
        doms = [d for d in doms if not d["autostart"]]
    if a.get("persistent"):
        doms = [d for d in doms if d["persistent"]]
    if a.get("transient"):
        doms = [d for d in doms if not d["persistent"]]
    if a.get("with_managed_save"):
        doms = [d for d in doms if d.get("managed_save")]
    if a.get("without_managed_save"):
        doms = [d for d in doms if not d.get("managed_save")]
    return doms


def cmd_dominfo(opts: GlobalOptions, a: Parsed) -> int:
    key = str(a["domain"])
    try:
        info = opts.connect().domain(key).info(cached=True)
    except NotFound as err:
        raise PyvirtError(f"failed to get domain '{key}'") from err
    if opts.json or a.get("json"):
        emit_json(info)
        return 0
    pairs: list[tuple[str, Any]] = [
        ("Id:", info["id"] if info["id"] is not None else "-"),
        ("Name:", info["name"]),
        ("UUID:", info["uuid"]),
        ("OS Type:", info["os_type"]),
        ("State:", info["state"]),
        ("CPU(s):", info["vcpus"]),
    ]
    if info["cpu_time_ns"]:
        pairs.append(("CPU time:", f"{info['cpu_time_ns'] / 1e9:.1f}s"))
    pairs += [
        ("Max memory:", f"{info['max_memory_kib']} KiB"),
        ("Used memory:", f"{info['used_memory_kib']} KiB"),
        ("Persistent:", "yes" if info["persistent"] else "no"),
        ("Autostart:", "enable" if info["autostart"] else "disable"),
        ("Managed save:", "yes" if info.get("managed_save") else "no"),
        ("Security model:", info.get("security_model", "none")),
        ("Security DOI:", "0"),
    ]
    if info.get("security_label"):
        pairs.append(("Security label:", f"{info['security_label']} (enforcing)"))
    for i, text in enumerate(info.get("messages") or []):
        pairs.append(("Messages:" if i == 0 else "", text))
    emit(fields(pairs) + "\n")
    return 0


def cmd_domstate(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), str(a["domain"]))
    info = dom.info(cached=True)
    if opts.json or a.get("json"):
        emit_json({"state": info["state"], "reason": info["reason"]})
        return 0
    if a.get("reason"):
        emit(f"{info['state']} ({info['reason']})\n\n")
    else:
        emit(f"{info['state']}\n\n")
    return 0


def cmd_domid(opts: GlobalOptions, a: Parsed) -> int:
    info = _domain(opts.connect(), str(a["domain"])).info(cached=True)
    emit(f"{info['id'] if info['id'] is not None else '-'}\n\n")
    return 0


def cmd_domuuid(opts: GlobalOptions, a: Parsed) -> int:
    info = _domain(opts.connect(), str(a["domain"])).info(cached=True)
    emit(f"{info['uuid']}\n\n")
    return 0


def cmd_domname(opts: GlobalOptions, a: Parsed) -> int:
    info = _domain(opts.connect(), str(a["domain"])).info(cached=True)
    emit(f"{info['name']}\n\n")
    return 0


def _lifecycle(
    opts: GlobalOptions,
    a: Parsed,
    failure: str,
    success: str,
    call: Callable[[Domain, dict[str, Any]], object],
) -> tuple[Connection, Domain, dict[str, Any]] | None:
    conn = opts.connect()
    dom = _domain(conn, str(a["domain"]))
    _guard(failure.format(name=dom.name), lambda: call(dom, a))
    message(success.format(name=dom.name))
    return conn, dom, a


def cmd_start(opts: GlobalOptions, a: Parsed) -> int:
    done = _lifecycle(
        opts,
        a,
        "Failed to start domain '{name}'",
        "Domain '{name}' started",
        lambda d, a: d.start(
            paused=bool(a.get("paused")),
            autodestroy=bool(a.get("autodestroy")),
            force_boot=bool(a.get("force_boot")),
            bypass_cache=bool(a.get("bypass_cache")),
        ),
    )
    if done is not None and done[2].get("console"):
        from pyvirt.cli.console import attach

        return attach(done[0], done[1].name)
    return 0


# virsh's modes; QEMU can do acpi and agent (the daemon refuses the others, naming them).
_MODES = ("acpi", "agent", "initctl", "signal", "paravirt")


def _check_mode(a: Parsed, expecting: str) -> str | None:
    """virsh's --mode: a comma-separated list of methods, tried in order by the daemon."""
    mode = a.opt("mode")
    for word in (mode or "").split(",") if mode is not None else []:
        if word not in _MODES:
            raise InvalidArgument(f"Unknown mode {word} value, expecting {expecting}")
    return mode


def cmd_shutdown(opts: GlobalOptions, a: Parsed) -> int:
    mode = _check_mode(a, "'acpi', 'agent', 'initctl', 'signal', or 'paravirt'")
    _lifecycle(
        opts,
        a,
        "Failed to shutdown domain '{name}'",
        "Domain '{name}' is being shutdown",
        lambda d, a: d.shutdown(mode=mode),
    )
    return 0


def cmd_reboot(opts: GlobalOptions, a: Parsed) -> int:
    mode = _check_mode(a, "'acpi', 'agent', 'initctl', 'signal' or 'paravirt'")
    _lifecycle(
        opts,
        a,
        "Failed to reboot domain '{name}'",
        "Domain '{name}' is being rebooted",
        lambda d, a: d.reboot(mode=mode),
    )
    return 0


def cmd_reset(opts: GlobalOptions, a: Parsed) -> int:
    _lifecycle(
        opts,
        a,
        "Failed to reset domain '{name}'",
        "Domain '{name}' was reset",
        lambda d, a: d.reset(),
    )
    return 0


def cmd_destroy(opts: GlobalOptions, a: Parsed) -> int:
    _lifecycle(
        opts,
        a,
        "Failed to destroy domain '{name}'",
        "Domain '{name}' destroyed",
        lambda d, a: d.destroy(graceful=bool(a.get("graceful")), remove_logs=bool(a.get("remove_logs"))),
    )
    return 0


def cmd_suspend(opts: GlobalOptions, a: Parsed) -> int:
    _lifecycle(
        opts,
        a,
        "Failed to suspend domain '{name}'",
        "Domain '{name}' suspended",
        lambda d, a: d.suspend(),
    )
    return 0


def cmd_resume(opts: GlobalOptions, a: Parsed) -> int:
    _lifecycle(
        opts,
        a,
        "Failed to resume domain '{name}'",
        "Domain '{name}' resumed",
        lambda d, a: d.resume(),
    )
    return 0


def cmd_autostart(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), str(a["domain"]))
    disable = bool(a.get("disable"))
    if disable:
        _guard(f"Failed to unmark domain '{dom.name}' as autostarted", lambda: dom.set_autostart(False))
        message(f"Domain '{dom.name}' unmarked as autostarted")
    else:
        _guard(f"Failed to mark domain '{dom.name}' as autostarted", lambda: dom.set_autostart(True))
        message(f"Domain '{dom.name}' marked as autostarted")
    return 0


def cmd_domblklist(opts: GlobalOptions, a: Parsed) -> int:
    devices = _domain(opts.connect(), str(a["domain"])).devices(inactive=a.flag("inactive"))
    if opts.json or a.get("json"):
        emit_json(devices["disks"])
        return 0
    if a.get("details"):
        rows = [[d["type"], d["device"], d["target"], d["source"] or "-"] for d in devices["disks"]]
        emit(table(["Type", "Device", "Target", "Source"], rows) + "\n")
    else:
        rows = [[d["target"], d["source"] or "-"] for d in devices["disks"]]
        emit(table(["Target", "Source"], rows) + "\n")
    return 0


def cmd_domiflist(opts: GlobalOptions, a: Parsed) -> int:
    devices = _domain(opts.connect(), str(a["domain"])).devices(inactive=a.flag("inactive"))
    if opts.json or a.get("json"):
        emit_json(devices["interfaces"])
        return 0
    rows = [
        [i["interface"] or "-", i["type"], i["source"] or "-", i["model"] or "-", i["mac"] or "-"]
        for i in devices["interfaces"]
    ]
    emit(table(["Interface", "Type", "Source", "Model", "MAC"], rows) + "\n")
    return 0


def cmd_vncdisplay(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), str(a["domain"]))
    vnc = dom.devices()["vnc"]
    if not vnc:
        raise PyvirtError("Failed to get VNC port. Is this domain using VNC?")
    listen = vnc["listen"] if vnc["listen"] not in ("0.0.0.0", "::") else ""
    password = _vnc_password(dom) if a.flag("include_password") else None
    emit(f"{f':{password}@' if password else ''}{listen}:{vnc['display']}\n\n")
    return 0


def _vnc_password(dom: Domain) -> str | None:
    """The VNC password, from the secure XML (refused on a read-only connection, as virsh's)."""
    from pyvirt.conf.xmlutil import editable, parse_document

    xml = _guard("Failed to get VNC password", lambda: dom.xml(security_info=True))
    devices = editable(parse_document(xml)).find("devices")
    graphics = devices.find("graphics", type="vnc") if devices is not None else None
    return graphics.get("passwd") if graphics is not None else None


# virsh's words where they are not the daemon's event name capitalized.
_VIRSH_EVENTS = {"pmsuspended": "PMSuspended"}
_VIRSH_DETAILS = {"wakeup": "Event wakeup", "ioerror": "I/O Error"}
# virsh's event types pyvirtd delivers: lifecycle and agent-lifecycle (the daemon's event kinds domain
# and agent), and the domain events whose names are virsh's.
_DEVICE_EVENTS = ("device-added", "device-removed", "tray-change", "rtc-change", "watchdog")
_IO_ERROR_EVENTS = ("io-error", "io-error-reason")
_EVENT_TYPES = (
    "lifecycle",
    "agent-lifecycle",
    *_DEVICE_EVENTS,
    "block-job",
    "block-job-2",
    *_IO_ERROR_EVENTS,
)


def _event_line(event: dict[str, object]) -> tuple[str, str]:
    """(virsh's event type, its line after the domain's name) of one daemon event."""
    name, detail = str(event["event"]), str(event["detail"])
    if event["kind"] == "agent":
        return "agent-lifecycle", f": state: '{name}' reason: '{detail}'"
    if name == "tray-change":
        device, _, state = detail.partition(" ")
        return name, f" disk {device}: {state}"
    if name in _DEVICE_EVENTS:
        return name, f": {detail}"
    kind = _VIRSH_EVENTS.get(name, name.capitalize())
    return "lifecycle", f": {kind} {_VIRSH_DETAILS.get(detail, detail.capitalize())}"


def cmd_event(opts: GlobalOptions, a: Parsed) -> int:
    import signal
    import time

    wanted = a.opt("event")
    if wanted is not None and wanted not in _EVENT_TYPES:
        raise InvalidArgument(
            f"event type '{wanted}' is not delivered: pyvirtd sends the event types "
            + ", ".join(_EVENT_TYPES)
        )
    # --all: every event type pyvirtd delivers; by default (as --event lifecycle), lifecycle events.
    conn = opts.connect()
    timeout = a.get("timeout")
    if timeout is not None:
        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        signal.alarm(int(str(timeout)))
    count = 0
    try:
        for event in conn.events():
            if a.get("domain") and event["name"] != a["domain"]:
                continue
            if event["kind"] == "block-job":  # virsh's block-job (by path) and block-job-2 (by target)
                if not a.get("all") and wanted not in ("block-job", "block-job-2"):
                    continue
                from pyvirt.cli.blockjob import event_lines

                lines = event_lines(dict(event), wanted, bool(a.get("all")))
            elif event["kind"] == "domain" and event["event"] == "io-error":
                if not a.get("all") and wanted not in _IO_ERROR_EVENTS:
                    continue
                from pyvirt.cli.blockjob import io_error_lines

                lines = io_error_lines(dict(event), wanted, bool(a.get("all")))
            elif event["kind"] in ("domain", "agent"):
                kind, line = _event_line(dict(event))
                if not a.get("all") and kind != (wanted or "lifecycle"):
                    continue
                lines = [f"event '{kind}' for domain '{event['name']}'{line}\n"]
            else:
                continue
            stamp = (
                time.strftime("%Y-%m-%d %H:%M:%S%z: ", time.localtime(event["time"]))
                if a.get("timestamp")
                else ""
            )
            emit("".join(stamp + text for text in lines))
            sys.stdout.flush()
            count += len(lines)
            if not a.get("loop"):
                break
    except KeyboardInterrupt:
        pass
    emit(f"events received: {count}\n\n")
    return 0

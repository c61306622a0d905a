"""save, restore, managedsave and the save-image verbs, with virsh 9.0's options, messages and progress."""

from __future__ import annotations

import os
import sys

from pyvirt.cli.domain import _domain, _guard, _read_file
from pyvirt.cli.output import emit, message
from pyvirt.errors import InvalidArgument, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from pyvirt.cli.args import Parsed
    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection, Domain

    T = TypeVar("T")


def _state_flags(a: Parsed) -> tuple[bool, bool]:
    if a.flag("running") and a.flag("paused"):
        raise InvalidArgument("Options --running and --paused are mutually exclusive")
    return a.flag("running"), a.flag("paused")


def _path(conn: Connection, path: str) -> str:
    """A file named on a local connection, made absolute (the daemon reads it from its own /)."""
    if conn.uri.transport == "unix" and not os.path.isabs(path):
        return os.path.abspath(path)
    return path


def _with_progress(conn: Connection, dom: Domain, label: str, verbose: bool, call: Callable[[], T]) -> T:
    """Run ``call``; with ``verbose``, show virsh's ``Label: [ 42 %]`` progress meanwhile (on stderr),
    polled from the daemon's job of ``dom`` on a second connection."""
    if not verbose:
        return call()
    import threading

    from pyvirt.client.api import Connection as Conn
    from pyvirt.client.api import open_transport

    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as err:
            failure.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    watcher = Conn(open_transport(conn.uri, conn.readonly), conn.uri, conn.readonly)
    try:
        while True:
            worker.join(0.5)
            if not worker.is_alive():
                break
            try:
                job = watcher.domain(dom.name).job_info()
            except PyvirtError:
                continue
            if job["type"] != "None" and job.get("data_total"):
                total, remaining = job.get("data_total", 0), job.get("data_remaining", 0)
                percent = min(99, int(100 - remaining * 100 / total)) if total else 0
                _progress(label, percent)
    finally:
        watcher.close()
    if failure:
        sys.stderr.write("\n")
        raise failure[0]
    _progress(label, 100)
    return result[0]


def _progress(label: str, percent: int) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"\r{label}: [{percent:3d} %]")
    sys.stderr.flush()


def cmd_save(opts: GlobalOptions, a: Parsed) -> int:
    running, paused = _state_flags(a)
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    path = _path(conn, a.text("file"))
    xml_file = a.opt("xml")
    xml = _read_file(xml_file) if xml_file else None
    _guard(
        f"Failed to save domain '{dom.name}' to {path}",
        lambda: _with_progress(
            conn,
            dom,
            "Save",
            a.flag("verbose"),
            lambda: dom.save(
                path, xml=xml, running=running, paused=paused, bypass_cache=a.flag("bypass_cache")
            ),
        ),
    )
    emit("\n")
    message(f"Domain '{dom.name}' saved to {path}")
    return 0


def cmd_restore(opts: GlobalOptions, a: Parsed) -> int:
    running, paused = _state_flags(a)
    conn = opts.connect()
    path = _path(conn, a.text("file"))
    xml_file = a.opt("xml")
    xml = _read_file(xml_file) if xml_file else None
    _guard(
        f"Failed to restore domain from {path}",
        lambda: conn.restore(
            path, xml=xml, running=running, paused=paused, bypass_cache=a.flag("bypass_cache")
        ),
    )
    message(f"Domain restored from {path}")
    return 0


def cmd_save_image_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    emit(conn.save_image_xml(_path(conn, a.text("file")), security_info=a.flag("security_info")))
    return 0


def cmd_save_image_define(opts: GlobalOptions, a: Parsed) -> int:
    running, paused = _state_flags(a)
    conn = opts.connect()
    path = _path(conn, a.text("file"))
    xml = _read_file(a.text("xml"))
    _guard(
        f"Failed to update {path}",
        lambda: conn.save_image_define(path, xml, running=running, paused=paused),
    )
    message(f"State file {path} updated.")
    return 0


def cmd_save_image_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    running, paused = _state_flags(a)
    conn = opts.connect()
    path = _path(conn, a.text("file"))
    original = conn.save_image_xml(path, security_info=True)
    return edit_xml(
        original,
        f"Saved image {path}",
        lambda xml: conn.save_image_define(path, xml, running=running, paused=paused),
        success=f"State file {path} edited.",
    )


def cmd_managedsave(opts: GlobalOptions, a: Parsed) -> int:
    running, paused = _state_flags(a)
    conn = opts.connect()
    dom = _domain(conn, a.text("domain"))
    _guard(
        f"Failed to save domain '{dom.name}' state",
        lambda: _with_progress(
            conn,
            dom,
            "Managedsave",
            a.flag("verbose"),
            lambda: dom.managed_save(running=running, paused=paused, bypass_cache=a.flag("bypass_cache")),
        ),
    )
    emit("\n")
    message(f"Domain '{dom.name}' state saved by pyvirt")
    return 0


def cmd_managedsave_remove(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    if not dom.info(cached=True)["managed_save"]:
        message(f"Domain '{dom.name}' has no manage save image; removal skipped")
        return 0
    _guard(f"Failed to remove managed save image for domain '{dom.name}'", dom.managed_save_remove)
    message(f"Removed managedsave image for domain '{dom.name}'")
    return 0


def cmd_managedsave_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    dom = _domain(opts.connect(), a.text("domain"))
    emit(dom.managed_save_xml(security_info=a.flag("security_info")))
    return 0


def cmd_managedsave_define(opts: GlobalOptions, a: Parsed) -> int:
    running, paused = _state_flags(a)
    dom = _domain(opts.connect(), a.text("domain"))
    xml = _read_file(a.text("xml"))
    _guard(
        f"Failed to update {dom.name} XML configuration",
        lambda: dom.managed_save_define(xml, running=running, paused=paused),
    )
    message(f"Managed save state file of domain '{dom.name}' updated.")
    return 0


def cmd_managedsave_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    running, paused = _state_flags(a)
    dom = _domain(opts.connect(), a.text("domain"))
    original = dom.managed_save_xml(security_info=True)
    return edit_xml(
        original,
        f"Managed save image of domain '{dom.name}'",
        lambda xml: dom.managed_save_define(xml, running=running, paused=paused),
        success=f"Managed save image of Domain '{dom.name}' XML configuration edited.",
    )

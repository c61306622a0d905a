"""Storage verbs (``pool-*``, ``vol-*``), with virsh 9.0's options, output and messages.

Volumes are named as virsh names them: ``VOL --pool POOL`` (by name in the pool, then by path), or a
volume's path (its key) alone. ``vol-upload``/``vol-download`` stream the file through the daemon in
1 MiB frames (:mod:`pyvirt.storage.stream`); ``--sparse`` carries holes without their zeros.
"""

from __future__ import annotations

import os

from pyvirt.cli.args import Parsed, filter_by_flags
from pyvirt.cli.domain import _guard, _read_file
from pyvirt.cli.output import emit, emit_json, message, table
from pyvirt.errors import InvalidArgument, NotFound, PyvirtError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyvirt.cli.main import GlobalOptions
    from pyvirt.client.api import Connection, StoragePool, Volume


def pretty(value: int) -> str:
    """vshPrettyCapacity with ``%.2lf %s``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    size = float(value)
    for index, unit in enumerate(units):
        if size < 1024 or index == len(units) - 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _pool(conn: Connection, key: str) -> StoragePool:
    try:
        return conn.pool(key)
    except NotFound as err:
        raise PyvirtError(f"failed to get pool '{key}'\nerror: {err}") from err


def _volume(conn: Connection, key: str, pool_key: str | None, pool_option: str = "pool") -> Volume:
    """virsh's volume lookup: by name in ``--pool``, then by key or path.

    ``pool_option`` is the option that names the pool, for the hint when the volume is not found.
    """
    pool = None
    if pool_key is not None:
        pool = _pool(conn, pool_key)
        if not pool.info(cached=True)["active"]:
            raise PyvirtError(f"pool '{pool_key}' is not active")
        try:
            return pool.volume(key)
        except (NotFound, InvalidArgument):
            pass
    cause = f"Storage volume not found: no storage vol with matching path '{key}'"
    try:
        found = conn.volume_by_path(key) if key.startswith("/") else None
    except NotFound:
        found = None
    if found is None:
        hint = "" if pool is not None else f", specifying --{pool_option} might help"
        raise PyvirtError(f"failed to get vol '{key}'{hint}\nerror: {cause}")
    if pool is not None and found.pool.name != pool.name:
        raise PyvirtError(f"Requested volume '{key}' is not in pool '{pool.name}'")
    return found


# ------------------------------------------------------------------------------------------------- pools


def cmd_pool_list(opts: GlobalOptions, a: Parsed) -> int:
    every: list[Any] = sorted(opts.connect().list_pools(), key=lambda p: p["name"].casefold())
    pools = filter_by_flags(every, a)
    types = a.opt("type")
    if types:
        pools = [p for p in pools if p["type"] in types.split(",")]
    if opts.json or a.flag("json"):
        emit_json(pools)
        return 0
    if a.flag("name") or a.flag("uuid"):
        lines = []
        for p in pools:
            if a.flag("name") and a.flag("uuid"):
                lines.append(f"{p['uuid']:<36} {p['name']}")
            else:
                lines.append(f"{p['uuid']:<36}" if a.flag("uuid") else f"{p['name']:<20}")
        emit("".join(line + "\n" for line in lines) + "\n")
        return 0
    if not a.flag("details"):
        rows = [
            [p["name"], "active" if p["active"] else "inactive", "yes" if p["autostart"] else "no"]
            for p in pools
        ]
        emit(table(["Name", "State", "Autostart"], rows) + "\n")
        return 0
    rows = []
    for p in pools:
        sizes = [
            pretty(p[k]) if p["active"] and p[k] is not None else "-"
            for k in ("capacity", "allocation", "available")
        ]
        rows.append(
            [
                p["name"],
                p["state"],
                "yes" if p["autostart"] else "no",
                "yes" if p["persistent"] else "no",
                *sizes,
            ]
        )
    header = ["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation", "Available"]
    emit(table(header, rows) + "\n")
    return 0


def cmd_pool_info(opts: GlobalOptions, a: Parsed) -> int:
    info: Any = _pool(opts.connect(), a.text("pool")).info(cached=True)
    if opts.json or a.flag("json"):
        emit_json(info)
        return 0
    out = [
        f"{'Name:':<15} {info['name']}",
        f"{'UUID:':<15} {info['uuid']}",
        f"{'State:':<15} {info['state']}",
        f"{'Persistent:':<15} {'yes' if info['persistent'] else 'no'}",
        f"{'Autostart:':<15} {'yes' if info['autostart'] else 'no'}",
    ]
    if info["active"] and info["capacity"] is not None:
        for label, key in (
            ("Capacity:", "capacity"),
            ("Allocation:", "allocation"),
            ("Available:", "available"),
        ):
            value = str(info[key]) if a.flag("bytes") else pretty(info[key])
            out.append(f"{label:<15} {value}")
    emit("\n".join(out) + "\n\n")
    return 0


def _pool_xml(name: str, pool_type: str, a: Parsed) -> str:
    from pyvirt.conf.xmlutil import serialize, x

    root = x("pool", {"type": pool_type}).add(x("name", text=name))
    source = x("source")
    for option, tag, attr in (
        ("source_host", "host", "name"),
        ("source_path", "dir", "path"),
        ("source_dev", "device", "path"),
        ("source_name", "name", None),
        ("source_format", "format", "type"),
    ):
        value = a.opt(option)
        if value is not None:
            source.add(x(tag, {attr: value}) if attr else x(tag, text=value))
    if source.children:
        root.add(source)
    target = a.opt("target")
    if target is not None:
        root.add(x("target").add(x("path", text=target)))
    return serialize(root)


def cmd_pool_define_as(opts: GlobalOptions, a: Parsed) -> int:
    name, pool_type = a.text("name"), a.text("type")
    xml = _pool_xml(name, pool_type, a)
    if a.flag("print_xml"):
        emit(xml + "\n")
        return 0
    conn = opts.connect()
    _guard(f"Failed to define pool {name}", lambda: conn.define_pool(xml))
    message(f"Pool {name} defined")
    return 0


_BUILD_FLAGS = ["build", "no-overwrite", "overwrite"]


def _build_requested(a: Parsed) -> bool:
    """virsh's --build/--overwrite/--no-overwrite: any of them builds the pool before starting it."""
    if a.flag("overwrite") and a.flag("no_overwrite"):
        raise PyvirtError("Options --overwrite and --no-overwrite are mutually exclusive")
    return a.flag("build") or a.flag("overwrite") or a.flag("no_overwrite")


def _create_pool(conn: Connection, xml: str, build: bool, failure: str) -> StoragePool:
    return _guard(failure, lambda: conn.create_pool(xml, build=build))


def cmd_pool_create(opts: GlobalOptions, a: Parsed) -> int:
    build = _build_requested(a)
    path = a.text("file")
    xml = _read_file(path)
    pool = _create_pool(opts.connect(), xml, build, f"Failed to create pool from {path}")
    message(f"Pool {pool.name} created from {path}")
    return 0


def cmd_pool_create_as(opts: GlobalOptions, a: Parsed) -> int:
    build = _build_requested(a)
    name = a.text("name")
    xml = _pool_xml(name, a.text("type"), a)
    if a.flag("print_xml"):
        emit(xml + "\n")
        return 0
    _create_pool(opts.connect(), xml, build, f"Failed to create pool {name}")
    message(f"Pool {name} created")
    return 0


def cmd_pool_edit(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.cli.edit import edit_xml

    conn = opts.connect()
    pool = _pool(conn, a.text("pool"))
    return edit_xml(pool.xml(inactive=True), f"Pool {pool.name}", conn.define_pool)


def cmd_pool_define(opts: GlobalOptions, a: Parsed) -> int:
    path = a.text("file")
    conn = opts.connect()
    pool = _guard(f"Failed to define pool from {path}", lambda: conn.define_pool(_read_file(path)))
    message(f"Pool {pool.name} defined from {path}")
    return 0


def _pool_action(opts: GlobalOptions, a: Parsed, verb: str, action: str, failure: str, success: str) -> int:
    # --overwrite/--no-overwrite choose whether a file system is made over existing data (libvirt's
    # fs pools); a dir pool's build makes its folder either way. Both at once are refused.
    build = verb in ("pool-build", "pool-start") and _build_requested(a)
    conn = opts.connect()
    pool = _pool(conn, a.text("pool"))
    name = pool.name
    calls: dict[str, Callable[[], object]] = {
        "build": pool.build,
        "start": pool.start,
        "destroy": pool.destroy,
        "refresh": pool.refresh,
        "autostart": lambda: pool.set_autostart(not a.flag("disable")),
        "": pool.undefine,
    }
    if verb == "pool-autostart" and a.flag("disable"):
        failure, success = (
            "failed to unmark pool {name} as autostarted",
            "Pool {name} unmarked as autostarted",
        )
    if verb == "pool-start" and build:
        _guard(f"Failed to start pool {name}", pool.build)
    _guard(failure.format(name=name), calls[action])
    message(success.format(name=name))
    return 0


def cmd_pool_build(opts: GlobalOptions, a: Parsed) -> int:
    return _pool_action(
        opts, a, "pool-build", "build", "Failed to build pool {name}", "Pool {name} built",
    )  # fmt: skip


def cmd_pool_start(opts: GlobalOptions, a: Parsed) -> int:
    return _pool_action(
        opts, a, "pool-start", "start", "Failed to start pool {name}", "Pool {name} started",
    )  # fmt: skip


def cmd_pool_destroy(opts: GlobalOptions, a: Parsed) -> int:
    return _pool_action(
        opts, a, "pool-destroy", "destroy", "Failed to destroy pool {name}", "Pool {name} destroyed"
    )


def cmd_pool_refresh(opts: GlobalOptions, a: Parsed) -> int:
    return _pool_action(
        opts, a, "pool-refresh", "refresh", "Failed to refresh pool {name}", "Pool {name} refreshed"
    )


def cmd_pool_autostart(opts: GlobalOptions, a: Parsed) -> int:
    return _pool_action(
        opts, a, "pool-autostart", "autostart", "failed to mark pool {name} as autostarted",
        "Pool {name} marked as autostarted",
    )  # fmt: skip


def cmd_pool_undefine(opts: GlobalOptions, a: Parsed) -> int:
    return _pool_action(
        opts,
        a,
        "pool-undefine",
        "",
        "Failed to undefine pool {name}",
        "Pool {name} has been undefined",
    )


def cmd_pool_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    emit(_pool(conn, a.text("pool")).xml(inactive=a.flag("inactive")))
    return 0


# ----------------------------------------------------------------------------------------------- volumes


def cmd_vol_list(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    vols = _guard("Failed to list volumes", _pool(conn, a.text("pool")).list_volumes)
    if opts.json or a.flag("json"):
        emit_json(vols)
        return 0
    if not a.flag("details"):
        emit(table(["Name", "Path"], [[v["name"], v["path"]] for v in vols]) + "\n")
        return 0
    rows = [[v["name"], v["path"], v["type"], pretty(v["capacity"]), pretty(v["allocation"])] for v in vols]
    emit(table(["Name", "Path", "Type", "Capacity", "Allocation"], rows) + "\n")
    return 0


def cmd_vol_info(opts: GlobalOptions, a: Parsed) -> int:
    info = _volume(opts.connect(), a.text("vol"), a.opt("pool")).info(cached=True)
    if opts.json or a.flag("json"):
        emit_json(info)
        return 0
    second = ("Physical:", info["physical"]) if a.flag("physical") else ("Allocation:", info["allocation"])
    out = [f"{'Name:':<15} {info['name']}", f"{'Type:':<15} {info['type']}"]
    for label, value in (("Capacity:", info["capacity"]), second):
        out.append(f"{label:<15} {value} bytes" if a.flag("bytes") else f"{label:<15} {pretty(value)}")
    emit("\n".join(out) + "\n\n")
    return 0


def cmd_vol_create_as(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.conf.storage import volume_xml
    from pyvirt.conf.units import parse_scaled

    conn = opts.connect()
    pool = _pool(conn, a.text("pool"))
    name = a.text("name")
    capacity = parse_scaled(a.text("capacity"))
    allocation_text = a.opt("allocation")
    allocation = parse_scaled(allocation_text) if allocation_text is not None else None
    backing_path = None
    backing_vol = a.opt("backing_vol")
    if backing_vol is not None:
        backing_path = _volume(conn, backing_vol, pool.name).path()
    xml = volume_xml(
        name,
        capacity,
        allocation=allocation,
        fmt=a.opt("format"),
        backing_path=backing_path,
        backing_format=a.opt("backing_vol_format"),
    )
    if a.flag("print_xml"):
        emit(xml + "\n")
        return 0
    prealloc = a.flag("prealloc_metadata")
    _guard(f"Failed to create vol {name}", lambda: pool.create_volume_xml(xml, prealloc_metadata=prealloc))
    message(f"Vol {name} created")
    return 0


def cmd_vol_create(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    pool = _pool(conn, a.text("pool"))
    path = a.text("file")
    xml, prealloc = _read_file(path), a.flag("prealloc_metadata")
    vol = _guard(
        f"Failed to create vol from {path}", lambda: pool.create_volume_xml(xml, prealloc_metadata=prealloc)
    )
    message(f"Vol {vol.name} created from {path}")
    return 0


def cmd_vol_create_from(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    pool = _pool(conn, a.text("pool"))
    source = _volume(conn, a.text("vol"), a.opt("inputpool"), "inputpool")
    path = a.text("file")
    xml, prealloc = _read_file(path), a.flag("prealloc_metadata")
    vol = _guard(
        f"Failed to create vol from {path}",
        lambda: pool.create_volume_from(xml, source, prealloc_metadata=prealloc, reflink=a.flag("reflink")),
    )
    message(f"Vol {vol.name} created from input vol {source.name}")
    return 0


def cmd_vol_clone(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    vol = _volume(conn, a.text("vol"), a.opt("pool"))
    new_name, prealloc = a.text("newname"), a.flag("prealloc_metadata")
    _guard(
        f"Failed to clone vol from {vol.name}",
        lambda: vol.clone(new_name, prealloc_metadata=prealloc, reflink=a.flag("reflink")),
    )
    message(f"Vol {new_name} cloned from {vol.name}")
    return 0


def cmd_vol_resize(opts: GlobalOptions, a: Parsed) -> int:
    text = a.text("capacity").strip()
    delta = a.flag("delta")
    if text.startswith("-"):
        if not a.flag("shrink"):
            raise PyvirtError("negative size requires --shrink")
        text, delta = text[1:], True
    from pyvirt.conf.units import parse_scaled

    capacity = parse_scaled(text)
    conn = opts.connect()
    vol = _volume(conn, a.text("vol"), a.opt("pool"))
    how = "by" if delta else "to"
    _guard(
        f"Failed to change size of volume '{vol.name}' {how} {text}",
        lambda: vol.resize(capacity, delta=delta, shrink=a.flag("shrink"), allocate=a.flag("allocate")),
    )
    message(f"Size of volume '{vol.name}' successfully changed {how} {text}")
    return 0


def cmd_vol_delete(opts: GlobalOptions, a: Parsed) -> int:
    key = a.text("vol")
    if a.flag("delete_snapshots"):  # libvirt supports it only for rbd pools
        raise PyvirtError(
            f"Failed to delete vol {key}\nerror: --delete-snapshots: not supported by pyvirt's "
            "storage pools (a qcow2 file's internal snapshots go with the file)"
        )
    conn = opts.connect()
    _guard(f"Failed to delete vol {key}", _volume(conn, key, a.opt("pool")).delete)
    message(f"Vol {key} deleted")
    return 0


def cmd_vol_wipe(opts: GlobalOptions, a: Parsed) -> int:
    from pyvirt.storage.volumes import WIPE_ALGORITHMS

    conn = opts.connect()
    key = a.text("vol")
    vol = _volume(conn, key, a.opt("pool"))
    algorithm = a.opt("algorithm") or "zero"
    if algorithm not in WIPE_ALGORITHMS:
        raise PyvirtError(f"Unsupported algorithm '{algorithm}'")
    _guard(f"Failed to wipe vol {key}", lambda: vol.wipe(algorithm))
    message(f"Vol {key} wiped")
    return 0


def cmd_vol_path(opts: GlobalOptions, a: Parsed) -> int:
    emit(_volume(opts.connect(), a.text("vol"), a.opt("pool")).path() + "\n\n")
    return 0


def cmd_vol_dumpxml(opts: GlobalOptions, a: Parsed) -> int:
    conn = opts.connect()
    emit(_volume(conn, a.text("vol"), a.opt("pool")).xml())
    return 0


# ---------------------------------------------------------------------------------------- upload/download


def _offsets(a: Parsed) -> tuple[int, int]:
    values = []
    for name in ("offset", "length"):
        text = a.opt(name) or "0"
        if not text.isdigit():
            raise PyvirtError(f"Numeric value '{text}' for <{name}> option is malformed or out of range")
        values.append(int(text))
    return values[0], values[1]


def cmd_vol_upload(opts: GlobalOptions, a: Parsed) -> int:
    offset, length = _offsets(a)
    conn = opts.connect()
    vol = _volume(conn, a.text("vol"), a.opt("pool"))
    name = vol.name
    path = a.text("file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise PyvirtError(f"cannot read {path}") from err
    try:
        vol.upload(fd, offset=offset, length=length, sparse=a.flag("sparse"))
    except (PyvirtError, OSError) as err:
        raise PyvirtError(f"cannot upload to volume {name}\nerror: {err}") from err
    finally:
        os.close(fd)
    return 0


def cmd_vol_download(opts: GlobalOptions, a: Parsed) -> int:
    offset, length = _offsets(a)
    conn = opts.connect()
    vol = _volume(conn, a.text("vol"), a.opt("pool"))
    name = vol.name
    path = a.text("file")
    created = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        created = True
    except FileExistsError:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as err:
            raise PyvirtError(f"cannot create {path}") from err
    except OSError as err:
        raise PyvirtError(f"cannot create {path}") from err
    ok = False
    try:
        vol.download(fd, offset=offset, length=length, sparse=a.flag("sparse"))
        ok = True
    except (PyvirtError, OSError) as err:
        raise PyvirtError(f"cannot download from volume {name}\nerror: {err}") from err
    finally:
        os.close(fd)
        if not ok and created:
            os.unlink(path)
    return 0

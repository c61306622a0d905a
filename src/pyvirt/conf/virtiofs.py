"""Host directories shared over virtiofs: ``<filesystem type='mount'><driver type='virtiofs'>``, as
libvirt 9.0 gives them (docs formatdomain "Filesystems", kbase "virtiofs").

Each share has its own ``virtiofsd`` (Debian's C one, ``/usr/lib/qemu/virtiofsd``, found like libvirt
through the QEMU vhost-user descriptors of type ``fs``, or ``<binary path>``) that the daemon starts
before QEMU (:mod:`pyvirt.daemon.virtiofs`) on a listening socket it made (``--fd``), with ``-o
source=DIR`` and the options of ``<binary xattr>``, ``<cache mode>``, ``<sandbox mode>``, ``<lock posix
flock>`` and ``--thread-pool-size`` of ``<thread_pool size>``. QEMU connects to that socket: ``-chardev
socket,id=chr-vu-ALIAS,path=`` + ``-device vhost-user-fs-pci,chardev=,tag=`` (``queue-size`` of
``<driver queue>``, ``bootindex`` of ``<boot order>``).

libvirt's rules, checked at define: ``accessmode`` passthrough only, no ``<readonly/>``, ``wrpolicy``,
``multidevs``, ``fmode``/``dmode``; the guest's memory must be shared (the daemon maps it):
``<memoryBacking><access mode='shared'/>`` with no NUMA cell saying otherwise, or ``memAccess='shared'``
on every cell. ``<idmap>`` is refused by name.

``<source socket='PATH'>`` instead of ``<source dir>``: a virtiofsd someone else runs, listening on
PATH, as libvirt 9.0 has it: the daemon starts none, QEMU connects to PATH (``-chardev
socket,path=PATH``) and the start is refused by name when nothing listens there. That virtiofsd's
options are its runner's: a ``<binary>`` beside the socket (which libvirt keeps and ignores) is refused
by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.conf.xmlutil import Elem, XNode, on_off, unsupported, x
from pyvirt.errors import UnsupportedConfig
from pyvirt.qemu import keyval

if TYPE_CHECKING:
    from pyvirt.conf.domain import Domain
    from pyvirt.conf.filesystem import FilesystemConfig

CACHE_MODES = ("none", "always")
SANDBOX_MODES = ("namespace", "chroot")
DESCRIPTOR_DIRS = ("/etc/qemu/vhost-user", "/usr/share/qemu/vhost-user")


@dataclass
class VirtiofsConfig:
    """The virtiofs parts of a ``<filesystem>`` (its ``<driver queue>`` and ``<binary>``)."""

    queue: int | None = None
    binary: str | None = None  # <binary path>: else the vhost-user descriptors' virtiofsd
    xattr: bool | None = None
    cache: str | None = None  # none | always
    sandbox: str | None = None  # namespace | chroot
    posix_lock: bool | None = None
    flock: bool | None = None
    thread_pool: int | None = None


def parse(fs_node: Elem, driver: Elem) -> VirtiofsConfig:
    """The ``queue`` of ``driver`` (type virtiofs) and the ``<binary>`` of ``fs_node``."""
    conf = VirtiofsConfig(queue=driver.integer("queue", minimum=1))
    if (binary := fs_node.child("binary")) is None:
        return conf
    path = binary.attr("path")
    if path is not None and not path.startswith("/"):
        raise unsupported(f"binary path '{path}' of '{binary.path}' must be absolute")
    conf.binary = path
    conf.xattr = binary.flag("xattr", "on", "off")
    if (cache := binary.child("cache")) is not None:
        conf.cache = cache.choice("mode", CACHE_MODES)
        cache.done()
    if (sandbox := binary.child("sandbox")) is not None:
        conf.sandbox = sandbox.choice("mode", SANDBOX_MODES)
        sandbox.done()
    if (lock := binary.child("lock")) is not None:
        conf.posix_lock = lock.flag("posix", "on", "off")
        conf.flock = lock.flag("flock", "on", "off")
        lock.done()
    if (pool := binary.child("thread_pool")) is not None:
        conf.thread_pool = pool.integer("size", minimum=0)
        pool.done()
    binary.done()
    return conf


def write_binary(conf: VirtiofsConfig) -> XNode | None:
    children = [
        x("cache", {"mode": conf.cache}) if conf.cache else None,
        x("sandbox", {"mode": conf.sandbox}) if conf.sandbox else None,
        x("lock", {"posix": on_off(conf.posix_lock), "flock": on_off(conf.flock)})
        if conf.posix_lock is not None or conf.flock is not None
        else None,
        x("thread_pool", {"size": conf.thread_pool}) if conf.thread_pool is not None else None,
    ]
    if conf.binary is None and conf.xattr is None and not any(children):
        return None
    return x("binary", {"path": conf.binary, "xattr": on_off(conf.xattr)}).add(*children)


def check_share(fs: FilesystemConfig) -> None:
    """libvirt's refusals of the 9p options virtiofs has not (at parse, naming the option)."""
    what = f"virtiofs filesystem '{fs.target}'"
    if fs.socket is not None and fs.virtiofs is not None and write_binary(fs.virtiofs) is not None:
        raise UnsupportedConfig(
            f"unsupported configuration: {what}: <binary> with <source socket>: the virtiofsd listening "
            f"on {fs.socket} is run by someone else, with their options"
        )
    if fs.readonly:
        raise UnsupportedConfig(
            f"unsupported configuration: {what}: virtiofs does not yet support read-only mode"
        )
    if fs.accessmode not in (None, "passthrough"):
        raise UnsupportedConfig(
            f"unsupported configuration: {what}: virtiofs only supports passthrough accessmode "
            f"(not '{fs.accessmode}')"
        )
    for name, value in (("wrpolicy", fs.wrpolicy), ("multidevs", fs.multidevs)):
        if value is not None:
            raise UnsupportedConfig(f"unsupported configuration: {what}: virtiofs does not support {name}")
    if fs.fmode is not None or fs.dmode is not None:
        raise UnsupportedConfig(
            f"unsupported configuration: {what}: virtiofs does not support fmode and dmode"
        )


def check_memory(dom: Domain, fs: FilesystemConfig) -> None:
    """The guest's memory must be shared with virtiofsd (libvirt's rule for vhost-user devices)."""
    cells = dom.cpu.numa if dom.cpu else []
    if cells:
        shared = all(
            c.mem_access == "shared" or (c.mem_access is None and dom.memory_access == "shared")
            for c in cells
        )
    else:
        shared = dom.memory_access == "shared"
    if not shared:
        raise UnsupportedConfig(
            f"unsupported configuration: 'virtiofs' requires shared memory (filesystem '{fs.target}': "
            "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>, or "
            "memAccess='shared' on every NUMA cell)"
        )


def default_binary(dirs: tuple[str, ...] = DESCRIPTOR_DIRS) -> str | None:
    """The virtiofsd of the first QEMU vhost-user descriptor of type ``fs`` (by file name, a name in
    an earlier folder hiding the same name in a later one), as libvirt finds it."""
    seen: dict[str, Path] = {}
    for folder in dirs:
        base = Path(folder)
        if base.is_dir():
            for path in base.glob("*.json"):
                seen.setdefault(path.name, path)
    for name in sorted(seen):
        try:
            desc = json.loads(seen[name].read_text())
        except (OSError, ValueError):
            continue
        if isinstance(desc, dict) and desc.get("type") == "fs" and isinstance(desc.get("binary"), str):
            return str(desc["binary"])
    return None


def socket_name(alias: str) -> str:
    return f"{alias}-fs.sock"


def chardev_id(alias: str) -> str:
    return f"chr-vu-{alias}"


def chardev_spec(alias: str, socket_path: str) -> str:
    return f"socket,id={chardev_id(alias)},path={socket_path.replace(',', ',,')}"


def device_props(fs: FilesystemConfig, alias: str) -> dict[str, str | int | None]:
    """The ``vhost-user-fs-pci`` properties besides the PCI placement, virtio options and bootindex."""
    assert fs.virtiofs is not None
    return {
        "id": alias,
        "chardev": chardev_id(alias),
        "queue-size": fs.virtiofs.queue,
        "tag": keyval.escape(fs.target),
    }


def daemon_argv(fs: FilesystemConfig, binary: str, fd: int) -> list[str]:
    """virtiofsd's command line, serving ``fs`` on the listening socket ``fd``."""
    conf = fs.virtiofs
    assert conf is not None
    opts = ["source=" + fs.source.replace(",", ",,")]
    if conf.cache:
        opts.append(f"cache={conf.cache}")
    if conf.sandbox:
        opts.append(f"sandbox={conf.sandbox}")
    for name, value in (("xattr", conf.xattr), ("flock", conf.flock), ("posix_lock", conf.posix_lock)):
        if value is not None:
            opts.append(name if value else f"no_{name}")
    argv = [binary, f"--fd={fd}", "-o", ",".join(opts)]
    if conf.thread_pool is not None:
        argv.append(f"--thread-pool-size={conf.thread_pool}")
    return argv

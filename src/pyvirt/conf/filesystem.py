"""Host directories shared with the guest over virtio-9p: ``<filesystem type='mount'>``.

``<source dir>`` is exported under the mount tag ``<target dir>`` as ``-fsdev local`` plus a
``virtio-9p-pci`` device, as libvirt 9.0 writes them: ``accessmode`` (``passthrough``, ``mapped``,
``squash``) as ``security_model``, ``fmode``/``dmode`` (mapped only), ``multidevs``, ``<driver
type='path' wrpolicy='immediate'>`` as ``writeout``, ``<readonly/>``, and the virtio options. The
directory is handed to QEMU's Landlock ruleset; QEMU's own user must be able to use it (files are
created as that user in passthrough mode).

QEMU 7.2 has no ``handle`` fsdev driver any more: refused by name. ``<driver type='virtiofs'>`` is a
virtiofs share (:mod:`pyvirt.conf.virtiofs`): its own virtiofsd and a ``vhost-user-fs-pci`` device, or
with ``<source socket>`` instead of ``<source dir>`` the device on a virtiofsd someone else runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyvirt.conf import virtio_options, virtiofs
from pyvirt.conf.domain import PCIAddress
from pyvirt.conf.virtiofs import VirtiofsConfig
from pyvirt.conf.xmlutil import Elem, XNode, unsupported, x
from pyvirt.errors import InvalidArgument, XMLError
from pyvirt.qemu import keyval

ACCESS_MODES = {"passthrough": "passthrough", "mapped": "mapped", "squash": "none"}
MULTIDEVS = ("default", "remap", "forbid", "warn")
_MODE = re.compile(r"0?[0-7]{3}")


@dataclass
class FilesystemConfig:
    source: str
    target: str
    accessmode: str | None = None  # passthrough (QEMU's default here) | mapped | squash
    fmode: str | None = None
    dmode: str | None = None
    multidevs: str | None = None
    driver_type: str | None = None  # path
    wrpolicy: str | None = None  # immediate
    readonly: bool = False
    virtio: dict[str, str] = field(default_factory=dict)
    address: PCIAddress | None = None
    alias: str | None = None
    virtiofs: VirtiofsConfig | None = None  # <driver type='virtiofs'>
    socket: str | None = None  # virtiofs <source socket>: a virtiofsd someone else runs (source is "")
    boot_order: int | None = None  # <boot order>: virtiofs only (a 9p share has no bootindex)


def parse(e: Elem) -> FilesystemConfig:
    e.choice("type", ("mount",))
    accessmode = e.choice("accessmode", tuple(ACCESS_MODES))
    modes = {name: e.attr(name) for name in ("fmode", "dmode")}
    for name, value in modes.items():
        if value is not None and not _MODE.fullmatch(value):
            raise XMLError(f"invalid {name} '{value}' of '{e.path}' (an octal mode such as 0644)")
        if value is not None and accessmode != "mapped":
            raise InvalidArgument(f"{name} of '{e.path}' needs accessmode='mapped'")
    multidevs = e.choice("multidevs", MULTIDEVS)
    driver_type = wrpolicy = None
    virtio: dict[str, str] = {}
    fs_conf = None
    if (driver := e.child("driver")) is not None:
        kind = driver.attr("type")
        if kind == "handle":
            raise unsupported(f"filesystem driver 'handle' of '{driver.path}': QEMU 7.2 has no such fsdev")
        if kind == "virtiofs":
            fs_conf = virtiofs.parse(e, driver)
        elif kind not in (None, "path"):
            raise unsupported(f"attribute 'type' = '{kind}' of '{driver.path}' is not supported")
        driver_type = kind
        wrpolicy = driver.choice("wrpolicy", ("immediate",))
        virtio = virtio_options.parse(driver)
        driver.done()
    source, target = e.child("source"), e.child("target")
    if source is None or target is None:
        raise XMLError(f"'{e.path}' needs <source dir> and <target dir>")
    sock = source.attr("socket") if fs_conf is not None else None
    if sock is not None:  # a virtiofsd someone else runs, listening there (libvirt: QEMU connects to it)
        if source.attr("dir") is not None:
            raise XMLError(f"'{source.path}' takes either 'dir' or 'socket'")
        if not sock.startswith("/"):
            raise XMLError(f"source socket '{sock}' of '{e.path}' must be an absolute path")
        fs = FilesystemConfig(source="", target=target.require("dir"), socket=sock)
    else:
        fs = FilesystemConfig(source=source.require("dir"), target=target.require("dir"))
        if not fs.source.startswith("/"):
            raise XMLError(f"source dir '{fs.source}' of '{e.path}' must be an absolute path")
    source.done()
    target.done()
    fs.accessmode, fs.fmode, fs.dmode, fs.multidevs = accessmode, modes["fmode"], modes["dmode"], multidevs
    fs.driver_type, fs.wrpolicy, fs.virtio = driver_type, wrpolicy, virtio
    if (node := e.child("readonly")) is not None:
        fs.readonly = True
        node.done()
    if fs_conf is not None:
        fs.virtiofs = fs_conf
        virtiofs.check_share(fs)
    return fs


def write(fs: FilesystemConfig, extra: tuple[XNode | None, ...]) -> XNode:
    attrs = {"type": "mount", "accessmode": fs.accessmode, "fmode": fs.fmode, "dmode": fs.dmode}
    node = x("filesystem", {**attrs, "multidevs": fs.multidevs})
    queue = fs.virtiofs.queue if fs.virtiofs is not None else None
    driver = {
        "type": fs.driver_type,
        "wrpolicy": fs.wrpolicy,
        "queue": queue,
        **virtio_options.attrs(fs.virtio),
    }
    node.add(x("driver", driver) if any(v is not None for v in driver.values()) else None)
    node.add(virtiofs.write_binary(fs.virtiofs) if fs.virtiofs is not None else None)
    source = {"socket": fs.socket} if fs.socket is not None else {"dir": fs.source}
    node.add(x("source", source), x("target", {"dir": fs.target}))
    node.add(x("readonly") if fs.readonly else None)
    return node.add(*extra)


def fsdev(fs: FilesystemConfig, index: int) -> str:
    """The ``-fsdev`` value of share ``index``."""
    parts = ["local", f"security_model={ACCESS_MODES[fs.accessmode or 'passthrough']}"]
    if fs.wrpolicy:
        parts.append("writeout=immediate")
    if fs.readonly:
        parts.append("readonly=on")
    parts += [f"{name}={value}" for name in ("fmode", "dmode") if (value := getattr(fs, name))]
    if fs.multidevs:
        parts.append(f"multidevs={fs.multidevs}")
    parts += [f"id=fsdev-fs{index}", f"path={fs.source.replace(',', ',,')}"]
    return ",".join(parts)


def device_props(fs: FilesystemConfig, index: int) -> dict[str, str]:
    """The ``virtio-9p-pci`` properties besides the PCI placement."""
    return {
        **virtio_options.props(fs.virtio),
        "id": fs.alias or f"fs{index}",
        "fsdev": f"fsdev-fs{index}",
        "mount_tag": keyval.escape(fs.target),
    }

"""Templates: read-only golden images in a storage pool, built from Debian's packages or imported.

A template named ``NAME`` is the volume ``NAME.template.qcow2`` of a directory pool (mode 0444, a
standalone qcow2 without backing file) plus a hidden sidecar ``.NAME.template.json`` in the same
folder holding what it is (OS, source, size, when). Hidden files are not volumes (the pool lists
regular files not starting with a dot), so the sidecar is invisible to ``vol-list``; a volume without
its sidecar is an ordinary volume, a sidecar without its volume is ignored (and removed on delete).

Every template is made in a hidden work folder inside the pool's folder and linked to its name only
when complete, so a build or import that fails part-way leaves nothing behind.

``build`` runs debootstrap on the host (see :mod:`pyvirt.guest.debootstrap`), makes a one-partition
MBR disk whose ext4 file system is filled from the tree (``mkfs.ext4 -d``, no mounts, no loop
devices), then in ONE libguestfs appliance launch: fstab, grub on the disk, the cloud-init NoCloud
datasource, ``customize --prepare-template``, and sysprep's default operations; finally the raw disk
is converted to qcow2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyvirt.errors import AlreadyExists, InvalidArgument, NotFound, OperationFailed
from pyvirt.guest.hardware import Hardware
from pyvirt.store import atomic_write

if TYPE_CHECKING:
    from pyvirt.guest.context import Session

VOLUME_SUFFIX = ".template.qcow2"
SIDECAR_SUFFIX = ".template.json"
TEMPLATE_MODE = 0o444
DEFAULT_SIZE = 10 << 30
MIN_SIZE = 256 << 20
PARTITION_START = 1 << 20  # 1 MiB: the gap before the first partition holds grub's core.img

#: cloud-init reads only the NoCloud seed (and falls back to None): no network probes for EC2 & co.
#: Networking is the template's own (eth0 on DHCP from --prepare-template), so cloud-init does not
#: write a second, competing eth0 stanza. minbase has no locales package: leave the locale alone.
CLOUD_CFG = """# written by pyvirt template build
datasource_list: [ NoCloud, None ]
network: {config: disabled}
locale: false
"""

Say = Callable[[str], None]


def check_name(name: str) -> str:
    """A template name: the one name rule, and not ending like the files a template is made of."""
    from pyvirt.conf.names import validate_name

    validate_name(name, "template")
    if name.endswith((".qcow2", ".json")):
        raise InvalidArgument(f"invalid template name {name!r}: it must not end in .qcow2 or .json")
    return name


@dataclass(frozen=True)
class Template:
    """One template of a pool."""

    name: str
    volume: str  # the volume's name in the pool
    path: str
    os: str  # e.g. debian-12, or "unknown" for an import whose OS was not inspected
    virtual_size: int
    source: str  # "debootstrap bookworm" or the imported file's path
    created: str  # ISO 8601, UTC
    hardware: Hardware = field(default_factory=Hardware)  # what an appliance's disks expect
    extra_paths: tuple[str, ...] = ()  # an appliance's second, third... disks (volumes of the pool)
    cloud_init: str = ""  # the version of cloud-init the image holds, when known (built templates)

    @property
    def paths(self) -> tuple[str, ...]:
        """Every disk of the template, the boot disk first."""
        return (self.path, *self.extra_paths)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hardware"] = self.hardware.to_json()
        data["extra_paths"] = list(self.extra_paths)
        return data


class TemplateStore:
    """The templates of one directory pool, by its folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotFound(f"the pool folder {self.folder} does not exist (is the pool active?)")

    def volume_path(self, name: str, index: int = 0) -> Path:
        """The volume of the template's disk ``index`` (an appliance may have several)."""
        if index == 0:
            return self.folder / f"{name}{VOLUME_SUFFIX}"
        return self.folder / f"{name}.template-{index}.qcow2"

    def sidecar_path(self, name: str) -> Path:
        return self.folder / f".{name}{SIDECAR_SUFFIX}"

    def list(self) -> list[Template]:
        out = []
        for sidecar in sorted(self.folder.glob(f".*{SIDECAR_SUFFIX}")):
            name = sidecar.name[1 : -len(SIDECAR_SUFFIX)]
            with contextlib.suppress(NotFound):
                out.append(self.get(name))
        return out

    def exists(self, name: str) -> bool:
        return self.sidecar_path(name).is_file() and self.volume_path(name).is_file()

    def get(self, name: str) -> Template:
        sidecar, volume = self.sidecar_path(name), self.volume_path(name)
        if not (sidecar.is_file() and volume.is_file()):
            raise NotFound(f"template {name} not found in {self.folder} (see pyvirt template list)")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as err:
            raise OperationFailed(
                f"cannot read the description of template {name} ({sidecar}): {err}"
            ) from err
        return Template(
            name=name,
            volume=volume.name,
            path=str(volume),
            os=str(meta.get("os", "unknown")),
            virtual_size=int(meta.get("virtual_size", 0)),
            source=str(meta.get("source", "")),
            created=str(meta.get("created", "")),
            hardware=Hardware.from_json(meta.get("hardware")),
            extra_paths=tuple(str(self.volume_path(name, i)) for i in range(1, int(meta.get("disks", 1)))),
            cloud_init=str(meta.get("cloud_init", "")),
        )

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A hidden work folder in the pool's folder (same file system: the result is linked in)."""
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".build", dir=self.folder))
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def install(
        self,
        name: str,
        image: Path,
        *,
        os_name: str,
        source: str,
        hardware: Hardware | None = None,
        extra_images: tuple[Path, ...] = (),
        cloud_init: str = "",
    ) -> Template:
        """Publish the finished qcow2 ``image`` (and an appliance's further disks ``extra_images``),
        inside a staging folder, as template ``name``."""
        from pyvirt.image.api import image_info

        images = (image, *extra_images)
        for disk in images:
            info = image_info(str(disk))
            if info.get("format") != "qcow2" or info.get("backing-filename"):
                raise OperationFailed(f"internal error: {disk} is not a standalone qcow2")
        meta: dict[str, Any] = {
            "name": name,
            "os": os_name,
            "virtual_size": int(image_info(str(image))["virtual-size"]),
            "source": source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if hardware is not None and not hardware.is_default():
            meta["hardware"] = hardware.to_json()
        if extra_images:
            meta["disks"] = len(images)
        if cloud_init:
            meta["cloud_init"] = cloud_init
        sidecar = self.sidecar_path(name)
        if sidecar.exists() and not self.volume_path(name).exists():
            sidecar.unlink()  # left by a delete that was interrupted
        linked: list[Path] = []
        try:
            for index, disk in enumerate(images):
                os.chmod(disk, TEMPLATE_MODE)
                volume = self.volume_path(name, index)
                try:
                    os.link(disk, volume)
                except FileExistsError as err:
                    raise AlreadyExists(f"template {name}: the volume {volume.name} exists already") from err
                linked.append(volume)
            atomic_write(sidecar, (json.dumps(meta, indent=1) + "\n").encode(), 0o644)
        except BaseException:
            for volume in linked:
                volume.unlink(missing_ok=True)
            raise
        return self.get(name)

    def remove_sidecar(self, name: str) -> None:
        self.sidecar_path(name).unlink(missing_ok=True)


# --- making templates ---------------------------------------------------------------------------


def import_image(
    store: TemplateStore,
    source: str,
    name: str,
    *,
    os_name: str | None = None,
    say: Say | None = None,
    warn: Say | None = None,
) -> Template:
    """Copy the image file ``source`` (any format pyvirt.image reads, backing chain flattened), or the
    disks of the appliance ``source`` (OVA/OVF: :func:`import_appliance`), into the pool of ``store``
    as template ``name``."""
    from pyvirt.errors import ImageError
    from pyvirt.guest.ovf import is_appliance
    from pyvirt.image.api import convert, image_info

    check_name(name)
    if store.exists(name) or store.volume_path(name).exists():
        raise AlreadyExists(f"template {name} exists already (pyvirt template delete {name} first)")
    src = Path(source)
    if not src.is_file():
        raise NotFound(f"cannot import {source}: no such file")
    if is_appliance(src):
        return import_appliance(store, source, name, os_name=os_name, say=say, warn=warn)
    try:
        fmt = str(image_info(str(src))["format"])
    except ImageError as err:
        raise InvalidArgument(f"cannot import {source}: not a disk image pyvirt can read ({err})") from err
    with store.staging(name) as work:
        out = work / "disk.qcow2"
        if say:
            say(f"Copying {source} ({fmt}) into {store.folder} as template {name}")
        try:
            convert(str(src), str(out), "qcow2", src_fmt=fmt)
        except ImageError as err:
            raise OperationFailed(f"cannot import {source}: {err}") from err
        return store.install(name, out, os_name=os_name or "unknown", source=str(src.resolve()))


def import_appliance(
    store: TemplateStore,
    source: str,
    name: str,
    *,
    os_name: str | None = None,
    say: Say | None = None,
    warn: Say | None = None,
) -> Template:
    """Template ``name`` from the OVA/OVF ``source``: its disks converted to qcow2 (the boot disk
    first), its machine (CPUs, memory, firmware, buses, NIC model) kept with the template; what is
    not carried over is said through ``warn``."""
    from pyvirt.guest.ovf import convert_disks, read_appliance

    app = read_appliance(source)
    if not app.disks:
        raise InvalidArgument(f"cannot import {source}: the appliance has no disk")
    hardware = app.hardware()
    if say:
        say(f"Appliance {app.name} ({app.os}): {hardware.describe()}, {len(app.disks)} disk(s)")
    for note in app.notes:
        (warn or say or (lambda _text: None))(f"Not carried over: {note}")
    with store.staging(name) as work:
        disks = convert_disks(app, work, say=say)
        return store.install(
            name,
            disks[0],
            os_name=os_name or app.os,
            source=str(Path(source).resolve()),
            hardware=hardware,
            extra_images=tuple(disks[1:]),
        )


# --- building from Debian's packages -----------------------------------------------------------


def default_cache_dir() -> Path:
    """Where debootstrap trees are kept: ``$PYVIRT_TEMPLATE_CACHE`` or the layout's cache folder."""
    env = os.environ.get("PYVIRT_TEMPLATE_CACHE")
    if env:
        return Path(env)
    from pyvirt.paths import default_mode, layout_for

    return layout_for(default_mode()).cache_dir / "templates"


def _run(argv: list[str], what: str, *, input: str | None = None) -> None:
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise OperationFailed(f"{what}: {argv[0]} is not installed") from err
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise OperationFailed(f"{what} failed (exit {proc.returncode}): {' / '.join(detail)}")


def make_disk(raw: Path, tree: Path, size: int, fs_uuid: str) -> None:
    """A raw disk of ``size`` bytes: an MBR with one bootable Linux partition from 1 MiB to the end,
    holding an ext4 file system (label ``root``) filled with ``tree``."""
    size = -(-size // (1 << 20)) << 20
    with open(raw, "wb") as f:
        f.truncate(size)
    _run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)],
        "partitioning the disk (sfdisk)",
        input=f"label: dos\nstart={PARTITION_START // 512}, type=83, bootable\n",
    )
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-U",
            fs_uuid,
            "-E",
            f"offset={PARTITION_START}",
            "-d",
            str(tree),
            str(raw),
            f"{(size - PARTITION_START) // 1024}k",
        ],
        f"making the root file system from {tree} (mkfs.ext4 -d; is --size big enough?)",
    )


def _set_grub_default(text: str, key: str, value: str) -> str:
    lines = text.splitlines()
    out = [f"{key}={value}" if re.match(rf"^\s*#?\s*{key}=", ln) else ln for ln in lines]
    if out == lines and not any(ln.startswith(f"{key}=") for ln in lines):
        out.append(f"{key}={value}")
    return "\n".join(out) + "\n"


def configure_debian(s: Session, fs_uuid: str) -> None:
    """The boot and cloud set-up of a freshly bootstrapped Debian root (mounted in the appliance)."""
    s.say("Writing /etc/fstab, the hostname and the cloud-init NoCloud datasource")
    s.write(
        "/etc/fstab",
        f"# <file system> <mount point> <type> <options> <dump> <pass>\n"
        f"UUID={fs_uuid} / ext4 errors=remount-ro 0 1\n",
    )
    s.write("/etc/hostname", "debian\n")
    s.write(
        "/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    s.mkdir("/etc/cloud/cloud.cfg.d")
    s.write("/etc/cloud/cloud.cfg.d/90_pyvirt.cfg", CLOUD_CFG)
    grub = s.read_if_exists("/etc/default/grub") or ""
    grub = _set_grub_default(grub, "GRUB_TIMEOUT", "1")
    s.write("/etc/default/grub", grub)
    s.say("Installing grub on the disk holding the root file system")
    # libguestfs's device names (/dev/sda = the first drive added) are not the appliance kernel's: when
    # the kernel enumerates the appliance's own disk first, /dev/sda in a shell is that disk. The root
    # file system's UUID names the kernel's partition; its parent is the disk to install on.
    guest_command(
        s,
        f'part=$(blkid -U {fs_uuid}) && disk=/dev/$(lsblk -no PKNAME "$part") && echo "on $disk" '
        '&& grub-install --target=i386-pc "$disk"',
        "grub-install",
    )


def guest_command(s: Session, command: str, what: str) -> str:
    """Run ``command`` in the guest; on failure the error carries its output, stdout and stderr both."""
    s.record("run", command)
    try:
        out = str(s.g.sh(f'{{ {command} ; }} 2>&1; echo "pyvirt-rc=$?"'))
    except RuntimeError as err:
        raise OperationFailed(f"{what} failed in the guest: {err}") from err
    body, _, rc = out.rstrip("\n").rpartition("pyvirt-rc=")
    if rc.strip() != "0":
        tail = " / ".join(body.strip().splitlines()[-8:])
        raise OperationFailed(f"{what} failed in the guest (exit {rc.strip()}): {tail}")
    return body


def build(
    store: TemplateStore,
    name: str,
    os_name: str,
    *,
    size: int = DEFAULT_SIZE,
    cache_dir: Path | None = None,
    quiet: bool = False,
    verbose: bool = False,
) -> Template:
    """Build template ``name`` of ``os_name`` (``debian-12``) in ``store``; nothing is left on failure."""
    from pyvirt.guest import debootstrap
    from pyvirt.guest.appliance import log

    check_name(name)
    rel = debootstrap.release(os_name)
    if size < MIN_SIZE:
        raise InvalidArgument(f"--size {size} is too small: a {rel.pretty} template needs at least 256M")
    if store.exists(name) or store.volume_path(name).exists():
        raise AlreadyExists(f"template {name} exists already (pyvirt template delete {name} first)")
    started = time.monotonic()

    def progress(message: str) -> None:
        log(message, quiet=quiet, start=started)

    tree = debootstrap.ensure_tree(cache_dir or default_cache_dir(), rel, say=progress)
    with store.staging(name) as work:
        raw = work / "disk.raw"
        fs_uuid = str(uuidlib.uuid4())
        progress(f"Making a {size >> 30} GiB disk with an ext4 root from the tree")
        make_disk(raw, tree, size, fs_uuid)
        _configure_in_appliance(raw, fs_uuid, progress, quiet=quiet, start=started, verbose=verbose)
        progress("Converting to qcow2")
        out = work / "disk.qcow2"
        from pyvirt.image.api import convert

        convert(str(raw), str(out), "qcow2", src_fmt="raw")
        raw.unlink()
        tmpl = store.install(
            name,
            out,
            os_name=rel.name,
            source=f"debootstrap {rel.suite} {rel.mirror}",
            cloud_init=debootstrap.package_version(tree, "cloud-init"),
        )
    progress(f"Template {name} ready: {tmpl.path}")
    return tmpl


def _configure_in_appliance(
    raw: Path, fs_uuid: str, say: Say, *, quiet: bool, start: float, verbose: bool
) -> None:
    """One appliance launch: boot set-up, --prepare-template, then sysprep's default operations."""
    from pyvirt.guest.appliance import Disk, launched
    from pyvirt.guest.context import Session
    from pyvirt.guest.inspect import inspect, mount_all
    from pyvirt.guest.prepare import prepare_template
    from pyvirt.guest.sysprep import OPERATIONS, default_operations

    say("Starting the libguestfs appliance")
    with launched([Disk(str(raw), "raw")], verbose=verbose) as g:
        s = Session(g=g, info=inspect(g, str(raw)), quiet=quiet, start=start)
        mount_all(g, s.info)
        configure_debian(s, fs_uuid)
        say("Preparing the template (customize --prepare-template)")
        prepare_template(s)
        say("Sysprep: " + ", ".join(sorted(default_operations() - {"customize"})))
        for op in sorted((OPERATIONS[n] for n in default_operations()), key=lambda op: (op.order, op.name)):
            op.perform(s, ())
        g.umount_all()

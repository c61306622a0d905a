"""The daemon's side of confining QEMU: which identity and cgroup a domain's QEMU gets, which files are
handed to it (:mod:`pyvirt.qemu.ownership`) and given back when it stops, across daemon restarts, and
which files alone it may open (:mod:`pyvirt.qemu.landlock`: every QEMU runs as the same user, so the
mode bits alone would not keep one domain's QEMU out of another running domain's disks).

A system daemon running as root confines every QEMU; a session daemon (or one configured with
``user = "root"``) starts QEMU with its own credentials and no cgroup, and hands nothing over.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from pyvirt.conf import backing_chain, smartcard
from pyvirt.conf.domain import DiskConfig, Domain
from pyvirt.daemon import chardev_sockets
from pyvirt.errors import OperationFailed
from pyvirt.paths import Layout
from pyvirt.qemu import cgroup, cgtune, cpuacct, ownership
from pyvirt.qemu.ownership import Handover, Identity, Owner
from pyvirt.qemu.process import RunRecord

log = logging.getLogger(__name__)


class Confinement:
    """One daemon's QEMU identity, cgroup root and the files its running domains hold."""

    def __init__(self, ident: Identity | None, cgroup_mount: Path | None, cgroup_tag: str) -> None:
        self.ident = ident
        self.cgroup_mount = cgroup_mount
        self.cgroup_tag = cgroup_tag
        self._handed: dict[str, dict[str, Owner]] = {}  # domain name → files handed, with their owners

    @classmethod
    def for_daemon(cls, layout: Layout, user: str, group: str) -> Confinement:
        """System mode as root: QEMU as ``user``:``group`` (created when missing) in a cgroup."""
        if layout.mode != "system" or os.geteuid() != 0:
            log.info("QEMU runs with the daemon's credentials (session mode)")
            return cls(None, None, "")
        ident = ownership.resolve(user, group)
        mount = cgroup.mount_point()
        if mount is None:
            log.warning("no writable cgroup v2 mount: domains get no cgroup of their own")
        tag = "" if layout.run_dir == Path("/run/pyvirt") else str(layout.run_dir)
        if ident is not None:
            log.info("QEMU runs as %s:%s (%s)", ident.user, ident.group, ident.label)
        return cls(ident, mount, tag)

    @property
    def tap_owner(self) -> int | None:
        """The uid taps are created for, so that QEMU can attach to them without CAP_NET_ADMIN."""
        return self.ident.uid if self.ident is not None else None

    @property
    def model(self) -> str:
        """virsh dominfo's "Security model": ``dac`` when QEMU runs as its own user."""
        return "dac" if self.ident is not None else "none"

    def label(self, record: RunRecord | None) -> str | None:
        """virsh dominfo's "Security label" of a running domain (libvirt's DAC form ``+UID:+GID``)."""
        if record is None or record.credentials is None:
            return None
        return f"+{record.credentials[0]}:+{record.credentials[1]}"

    def adopt(self, record: RunRecord) -> None:
        """A domain left running by an earlier daemon: the files it holds are still held."""
        if record.owners:
            self._handed[record.name] = dict(record.owners)

    def held(self, name: str) -> dict[str, Owner]:
        """The files domains other than ``name`` hold, with the owner they had before."""
        out: dict[str, Owner] = {}
        for other, owners in self._handed.items():
            if other != name:
                for path, owner in owners.items():
                    out.setdefault(path, owner)
        return out

    def prepare(
        self,
        dom: Domain,
        record: RunRecord,
        *,
        disk_paths: dict[int, str],
        nvram: Path | None,
        channel_dir: Path,
        pidfile: Path,
        nbd_tls_dir: str | None = None,
    ) -> None:
        """Hand ``dom``'s files to QEMU's user and make its cgroup; filled into ``record``. On failure
        nothing is left changed. ``nbd_tls_dir``: the client credentials of NBD disks over TLS."""
        ident = self.ident
        ownership.make_owned_dir(channel_dir, ident)
        ownership.make_owned_file(pidfile, ident)
        if ident is not None:
            record.credentials = [ident.uid, ident.gid, *ident.groups]
            handover = Handover(ident, self.held(dom.name))
            self._handed[dom.name] = handover.owners
            try:
                _hand_over(handover, dom, disk_paths, channel_dir)
                for overlay in record.transient:  # those of shareBacking disks (daemon/transient_disks)
                    handover.writable(overlay, "transient overlay")
                from pyvirt.conf import nbd_tls

                if nbd_tls_dir and nbd_tls.in_use(dom):
                    from pyvirt.conf.nbd_tls import FILES

                    for name in FILES:  # QEMU's tls-creds-x509 opens them by name in the directory
                        handover.readable(f"{nbd_tls_dir}/{name}", "NBD TLS credentials")
                if nvram is not None:
                    handover.writable(str(nvram), "NVRAM file")
            except BaseException:
                self.release(dom.name, handover.owners)
                raise
            record.owners = handover.owners
            record.access = {**handover.access, str(channel_dir): "dir", str(pidfile): "rw"}
        if self.cgroup_mount is not None:
            parent = cgroup.parent_for(self.cgroup_tag, dom.resource_partition)
            try:
                record.cgroup = str(cgroup.create(self.cgroup_mount, parent, dom.name))
            except BaseException:
                self.release(dom.name, record.owners)
                raise
            try:
                cpuacct.create(record.cgroup)
            except OperationFailed as err:  # the domain runs; cpu-stats will say it has no per-CPU figures
                log.warning("domain %s: %s", dom.name, err)

    def hand_over_more(self, record: RunRecord, path: str, *, writable: bool, what: str) -> None:
        """A file that joins a running domain (a block copy's target, a base image that becomes the
        disk's top): handed to its QEMU user like those it was started with, kept in ``record``."""
        if self.ident is None:
            return
        handover = Handover(self.ident, self.held(record.name))
        if writable:
            handover.writable(path, what)
        else:
            handover.readable(path, what)
        for file, owner in handover.owners.items():
            record.owners.setdefault(file, owner)
        record.access.setdefault(path, "rw" if writable else "ro")
        self._handed[record.name] = record.owners

    def give_back(self, record: RunRecord, paths: list[str]) -> None:
        """Files a running domain's QEMU no longer uses (the layers a block job dropped)."""
        owners = {path: record.owners.pop(path) for path in paths if path in record.owners}
        for path in paths:
            record.access.pop(path, None)
        self._handed[record.name] = record.owners
        ownership.restore(owners, self.held(record.name))

    def hand_over(
        self, name: str, record: RunRecord, files: list[tuple[str, bool]], what: str = "storage file"
    ) -> list[str]:
        """Files joining running domain ``name`` (a hot-plugged disk and its backing chain; ``True``:
        QEMU writes it), handed to its user as at start and kept in ``record`` so that they are given
        back when it stops. Returns the files this call took over (for :meth:`give_back`); on failure
        nothing is left changed. QEMU gets them as descriptors: Landlock keeps it from the paths."""
        if self.ident is None or record.credentials is None:
            return []
        before = set(record.owners)
        handover = Handover(self.ident, self.held(name))
        handover.owners = dict(record.owners)
        try:
            for path, writable in files:
                if writable:
                    handover.writable(path, what)
                else:
                    handover.readable(path, what)
        except BaseException:
            new = {path: owner for path, owner in handover.owners.items() if path not in before}
            ownership.restore(new, self.held(name))
            raise
        record.owners = handover.owners
        self._handed[name] = record.owners
        return [path for path in record.owners if path not in before]

    def release(self, name: str, owners: dict[str, Owner], cgroup_path: str | None = None) -> None:
        """Give back the files ``name``'s QEMU held (except those another domain still holds) and
        remove its cgroup; its QEMU has exited."""
        self._handed.pop(name, None)
        ownership.restore(owners, self.held(name))
        if cgroup_path:
            cgroup.remove(cgroup_path)
            cgtune.remove_twins(cgroup_path)
            cpuacct.remove(cgroup_path)

    def release_record(self, record: RunRecord) -> None:
        self.release(record.name, record.owners, record.cgroup)


def _hand_over(handover: Handover, dom: Domain, disk_paths: dict[int, str], channel_dir: Path) -> None:
    for index, disk in enumerate(dom.devices.disks):
        path = disk_paths.get(index, disk.source)
        if path is not None and disk.type == "vhostuser":  # the backend's socket, connected to by path
            if os.path.exists(path):
                handover.writable(path, "vhost-user socket")
            else:
                ownership.check_traversable(path, handover.ident, "vhost-user socket")
            continue
        if path is not None and disk.type == "dir":  # vvfat: QEMU reads the tree
            ownership.check_traversable(path, handover.ident, "disk directory")
            handover.access[path] = "rodir"
            continue
        if disk.type == "network" and disk.backing_given is not None:  # local layers under a server's image
            for layer_file in _given_files(disk):
                handover.readable(layer_file, f"backing file of disk '{disk.target_dev}'")
            continue
        if path is None or disk.type not in ("file", "block", "volume"):
            continue
        readonly = disk.readonly or disk.device == "cdrom" or disk.layers.share_backing
        if readonly:
            handover.readable(path, "storage file")
        else:
            handover.writable(path, "storage file")
        members, backing_files = _image_files(path, disk.driver_type, disk)
        for member in members:
            if readonly:
                handover.readable(member, f"extent of storage file '{path}'")
            else:
                handover.writable(member, f"extent of storage file '{path}'")
        for backing in backing_files:
            handover.readable(backing, f"backing file of storage file '{path}'")
    os_ = dom.os
    if os_.loader is not None and os_.loader.path:
        if os_.loader.readonly:
            handover.readable(os_.loader.path, "loader")
        else:
            handover.writable(os_.loader.path, "loader")
    for path, what in ((os_.kernel, "kernel"), (os_.initrd, "initrd")):
        if path:
            handover.readable(path, what)
    for nic in dom.devices.interfaces:
        if nic.type == "vhostuser" and os.path.exists(nic.socket["path"]):  # the backend's, QEMU connects
            handover.writable(nic.socket["path"], "vhost-user socket")
        if nic.type == "vdpa" and nic.source_dev:  # QEMU opens the vDPA device (libvirt passes its fd)
            handover.writable(nic.source_dev, "vDPA device")
    tpm = dom.devices.tpm
    if tpm is not None and tpm.backend == "external" and tpm.path:  # the emulator's, QEMU connects
        handover.writable(tpm.path, "TPM emulator socket")
    for gfx in dom.devices.graphics:  # OpenGL: QEMU renders on the host's DRM render node
        from pyvirt.conf.graphics_local import render_node

        if (render := render_node(gfx)) is not None:
            handover.writable(render, "DRM render node")
    for inp in dom.devices.inputs:
        if inp.evdev:  # a host input device passed through: QEMU's user reads it, as libvirt relabels it
            handover.writable(inp.evdev, "input device")
    for share in dom.devices.filesystems:  # a virtio-9p export: the whole tree, as QEMU's user may use it
        if share.virtiofs is not None:  # its virtiofsd (root, daemon/virtiofs.py) serves it, not QEMU
            continue
        ownership.check_traversable(share.source, handover.ident, "filesystem source")
        handover.access[share.source] = "dir"
    for card in dom.devices.smartcards:  # an emulated card: libcacard reads its NSS database at start
        if card.mode != "passthrough":
            _nss_database(handover, smartcard.database(card))
    # the character devices of an EGD RNG backend and of a socket USB redirection, as a serial's
    others = [r.egd for r in dom.devices.rngs if r.egd] + [
        r.source for r in dom.devices.redirdevs if r.source
    ]
    others += [card.source for card in dom.devices.smartcards if card.source]
    for dev in (
        *dom.devices.serials,
        *dom.devices.parallels,
        *dom.devices.consoles,
        *dom.devices.channels,
        *others,
    ):
        if dev.type == "dev" and dev.source_path:  # a host serial or parallel port, as libvirt relabels it
            handover.writable(dev.source_path, f"host {dev.kind} device")
        if dev.type == "pipe" and dev.source_path:  # the FIFO pair QEMU opens, else the one FIFO
            pair = [f"{dev.source_path}.in", f"{dev.source_path}.out"]
            for path in pair if all(os.path.exists(p) for p in pair) else [dev.source_path]:
                handover.writable(path, f"{dev.kind} pipe")
        files = [dev.source_path] if dev.type == "file" and dev.source_path else []
        files += [path] if (path := dev.source_extra.get("log.file")) else []  # <log file>
        for path in files:
            if not os.path.exists(path):
                ownership.check_traversable(path, handover.ident, "file")
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            handover.writable(path, "file")
    for dev in chardev_sockets.outside(dom, channel_dir):
        # QEMU connects to these by path (Landlock does not govern connecting); those it listens on
        # the daemon binds and hands over as descriptors (daemon/chardev_sockets.py).
        path = dev.source_path
        if path is None or chardev_sockets.listens(dev):
            continue
        if os.path.exists(path):
            handover.writable(path, f"{dev.kind} socket")
        else:
            ownership.check_traversable(path, handover.ident, f"{dev.kind} socket")


def _nss_database(handover: Handover, path: str) -> None:
    """An emulated smartcard's NSS database (a directory QEMU only reads: cert9.db, key4.db...), its
    files made readable by QEMU's user for as long as the domain runs."""
    ownership.check_traversable(path, handover.ident, "smartcard NSS database")
    handover.access[path] = "rodir"
    for name in sorted(os.listdir(path)):
        if os.path.isfile(file := os.path.join(path, name)):
            handover.readable(file, "smartcard NSS database file")


def _image_files(path: str, fmt: str, disk: DiskConfig | None = None) -> tuple[list[str], list[str]]:
    """The files QEMU opens for ``path`` besides it: its own data files (a VMDK's extents), then its
    backing files and theirs (opened read-only), nearest first: those of the disk's given chain
    (conf.backing_chain), else those its header names."""
    if fmt not in ("qcow2", "qed", "vmdk", "vhdx", "vdi", "vpc"):
        return [], []
    if disk is not None and disk.backing_given is not None and disk.backing is not None:
        own, _ = _read_files(path, fmt, backing=False)
        return own, _given_files(disk)
    return _read_files(path, fmt, backing=True)


def _given_files(disk: DiskConfig) -> list[str]:
    """The files of the disk's given chain (conf.backing_chain), and what an open chain's last layer
    names below it; none for the layers on a server."""
    files: list[str] = []
    for index, layer in enumerate(disk.backing or []):
        if layer.type == "network":  # on its server: QEMU opens no file for it
            continue
        last = index == len(disk.backing or []) - 1
        rest = last and disk.backing_given == backing_chain.OPEN  # the header names the rest
        members, below = _read_files(layer.source, layer.format, backing=rest)
        files += [layer.source, *members, *below]
    return files


def _read_files(path: str, fmt: str, *, backing: bool) -> tuple[list[str], list[str]]:
    """``path``'s own data files and (``backing``: else none) those of the chain its header names."""
    if fmt not in ("qcow2", "qed", "vmdk", "vhdx", "vdi", "vpc"):
        return [], []
    from pyvirt.image.opener import open_image

    try:
        with open_image(
            path, fmt=fmt, readonly=True, force_share=True, allow_backing_outside=True, backing=backing
        ) as img:
            layers = img.chain()
            files: list[str] = []
            for layer in layers[1:]:
                files += [str(layer.path), *layer.member_files()]
            return layers[0].member_files(), files
    except Exception as err:  # QEMU reports a broken chain in its own words
        log.debug("cannot read the files of %s: %s", path, err)
        return [], []

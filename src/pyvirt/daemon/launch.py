"""Starting a domain's QEMU: disks, taps, channels, firmware, the command line, the process, and
what is read back from it (ptys, VNC port) before the domain runs.

Everything is undone if any step fails: taps unplugged, run files removed, the process ended. The
caller (:meth:`DomainRegistry.start`/``create``) holds the domain's lock and has checked it is shut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyvirt.conf import (
    audio,
    graphics_local,
    memory_backing,
    nbd_tls,
    net_sockets,
    net_vdpa,
    qemu_ns,
    smartcard,
    tpm,
    vsock,
)
from pyvirt.conf.domain import Domain
from pyvirt.daemon import (
    blockdevs,
    blockjobs,
    chardev_sockets,
    disk_secrets,
    guest_memory,
    hostdevs,
    iotune,
    pr_helper,
    transient_disks,
    tuning,
)
from pyvirt.daemon import tpm as tpm_emulator
from pyvirt.daemon import virtiofs as virtiofs_daemons
from pyvirt.daemon.console import ConsoleRelay
from pyvirt.daemon.lifecycle import DomainState, Paused, Running, Shutoff
from pyvirt.daemon.qmpevents import event_handler
from pyvirt.errors import OperationFailed, UnsupportedConfig
from pyvirt.network import shaping
from pyvirt.qemu import affinity, balloon, cpuacct, firmware, graphics
from pyvirt.qemu.command import RuntimeContext, build_argv
from pyvirt.qemu.process import QemuProcess, RunRecord
from pyvirt.revert import Revert

if TYPE_CHECKING:
    from pyvirt.daemon.domains import DomainObject, DomainRegistry

log = logging.getLogger(__name__)

S = DomainState

#: Loads a saved machine state into a QEMU started with ``-incoming defer`` (a restore) and returns
#: once it is loaded; the domain is RESTORING meanwhile.
Incoming = Callable[[QemuProcess], Awaitable[None]]


def apply_startup_policies(dom: Domain, *, incoming: bool) -> None:
    """A missing source of a disk with a ``startupPolicy`` (libvirt's rules): ``optional`` empties a
    cdrom or floppy and leaves a hard disk out of this run (``dom`` is the running definition; the
    domain's configuration keeps it); ``requisite`` does that on a restore or an incoming migration
    only. Otherwise (``mandatory``, none) check_disks refuses the start."""
    kept = []
    for disk in dom.devices.disks:
        policy = disk.startup_policy
        missing = (
            disk.type in ("file", "block") and disk.source is not None and not os.path.exists(disk.source)
        )
        if missing and (policy == "optional" or (policy == "requisite" and incoming)):
            log.warning(
                "%s: the source '%s' of disk %s is missing: %s (startupPolicy='%s')",
                dom.name,
                disk.source,
                disk.target_dev,
                "the drive starts empty" if disk.device in ("cdrom", "floppy") else "the disk is left out",
                policy,
            )
            if disk.device not in ("cdrom", "floppy"):
                continue
            disk.source = None
        kept.append(disk)
    dom.devices.disks = kept


def check_disks(reg: DomainRegistry, dom: Domain) -> dict[int, str]:
    """Paths of volume disks; a missing file, or one the storage driver has busy (being cloned, resized,
    uploaded to), is refused before anything is started."""
    paths: dict[int, str] = {}
    for index, disk in enumerate(dom.devices.disks):
        if disk.type == "volume":
            if reg.storage is None or not disk.source_pool or not disk.source_volume:
                raise UnsupportedConfig("unsupported configuration: storage pools are not available")
            paths[index] = reg.storage.volume_path(disk.source_pool, disk.source_volume)
            continue
        if disk.source is None or disk.type == "vhostuser":  # the backend's socket: QEMU connects
            continue
        if not os.path.exists(disk.source):
            raise OperationFailed(f"Cannot access storage file '{disk.source}': No such file or directory")
        if reg.storage is not None and disk.type == "file":
            reg.storage.volumes_in_use([disk.source])
    return paths


async def start_qemu(
    reg: DomainRegistry,
    obj: DomainObject,
    dom: Domain,
    *,
    paused: bool,
    autostart: bool = False,
    incoming: Incoming | None = None,
) -> None:
    """Start ``dom`` as ``obj``'s QEMU (``obj.lock`` held, ``obj`` shut off); on failure nothing is left.

    With ``incoming``, QEMU starts waiting for its machine state, which ``incoming`` feeds it (a
    restore), before the domain runs (or stays paused)."""
    usable, reason = reg.accel_check() if dom.type == "kvm" else (False, "")
    if dom.type == "kvm" and not usable:
        raise UnsupportedConfig(
            f"unsupported configuration: KVM is not usable on this host ({reason}); "
            "use <domain type='qemu'> to run under TCG emulation"
        )
    accel = "kvm" if dom.type == "kvm" else "tcg"
    apply_startup_policies(dom, incoming=incoming is not None)
    transient_disks.check_start(dom, incoming=incoming is not None)
    pr_helper.require_host(dom)
    virtiofs_daemons.require_host(dom)
    disk_paths = check_disks(reg, dom)
    audio.require_host_backends(dom)
    vsock.require_host(dom)
    if dom.devices.vsock is not None and dom.devices.vsock.cid is None:  # <cid auto='yes'/>: in the live XML
        running = [other.live for other in reg.all() if other.live is not None and other is not obj]
        dom.devices.vsock.cid = vsock.free_cid(vsock.cids_in_use(running))
    tpm.require_host(dom)
    net_vdpa.require_host(dom)
    hostdev_claims = hostdevs.check(reg.hostdevs, dom.name, dom)  # and the memlock limit vDPA wants
    smartcard.require_host(dom)
    net_sockets.require_host(dom)
    graphics_local.require_host(dom)
    hugepage_mounts = memory_backing.require_host(dom)
    nbd_tls.require_host(dom, str(reg.layout.pki_dir / "qemu"))
    passphrases = disk_secrets.passphrases(reg, dom)
    network_secrets = disk_secrets.network_values(reg, dom)
    blockjobs.fill_chains(dom, disk_paths)
    run_dir = reg.layout.qemu_run_dir
    name = dom.name
    revert = Revert()
    revert.add(lambda: reg.remove_run_files(name), f"remove the run files of {name}")
    try:
        taps = await _plug_interfaces(reg, dom, revert)
        channel_paths: dict[int, str] = {}
        channel_dir = reg.layout.qemu_run_dir / f"{name}.channels"
        for index, channel in enumerate(dom.devices.channels):
            if channel.type == "unix":
                if not channel.source_path:
                    channel.source_path = str(channel_dir / (channel.target_name or f"channel{index}"))
                channel_paths[index] = channel.source_path
                if Path(channel.source_path).parent != channel_dir:
                    Path(channel.source_path).parent.mkdir(parents=True, exist_ok=True)
        firmware.fill_domain(dom)
        nvram = reg.nvram_path(dom)
        if nvram is not None and not nvram.exists():
            firmware.make_nvram(dom, nvram)
        dom.id = reg.next_id
        reg.next_id += 1
        record = RunRecord(
            name=name,
            uuid=dom.uuid,
            pid=0,
            id=dom.id,
            monitor=str(run_dir / f"{name}.monitor"),
            started_at=time.time(),
            accel=accel,
            taps=list(taps.values()),
        )
        pidfile = run_dir / f"{name}.pid"
        if dom.clock is not None and dom.clock.offset == "variable":  # QEMU's RTC changes add to it
            record.rtc_adjustment0 = dom.clock.adjustment or 0
        shared_overlays = transient_disks.make_shared_overlays(dom, disk_paths, record)
        revert.add(lambda: transient_disks.remove(record), "delete the transient overlays")
        reg.confinement.prepare(
            dom,
            record,
            disk_paths=disk_paths,
            nvram=nvram,
            channel_dir=channel_dir,
            pidfile=pidfile,
            nbd_tls_dir=str(reg.layout.pki_dir / "qemu"),
        )
        revert.add(lambda: reg.confinement.release_record(record), f"give back the files of {name}")
        await hostdevs.prepare(reg, dom, record, hostdev_claims, revert)
        sockets = chardev_sockets.bind(dom, channel_dir)
        record.sockets = list(sockets)
        revert.add(lambda: chardev_sockets.remove(record.sockets), f"remove the chardev sockets of {name}")
        revert.add(lambda: chardev_sockets.close(sockets), "close the chardev sockets")
        hugepage_dirs = guest_memory.prepare(reg.confinement, dom, record, hugepage_mounts)
        helper_socket = None
        if pr_helper.needed(dom):
            record.pr_helper, helper_socket = await pr_helper.start(channel_dir, reg.confinement.ident)
            revert.add(lambda: pr_helper.release(record), "end the qemu-pr-helper")
        master_key, sealed, net_sealed = disk_secrets.seal_all(
            passphrases, network_secrets, channel_dir, reg.confinement.ident
        )
        revert.add(lambda: tpm_emulator.stop(channel_dir), f"stop the TPM emulator of {name}")
        tpm_socket = await tpm_emulator.start(
            reg, obj, dom, record, channel_dir, incoming=incoming is not None
        )
        revert.add(lambda: virtiofs_daemons.stop(record), f"end the virtiofsds of {name}")
        fs_sockets = await virtiofs_daemons.start(reg, obj, dom, record, channel_dir)
        # Recorded before the spawn (pid 0 until the domain runs): a daemon killed from here on leaves
        # a record its successor cleans up after; the QEMU itself it finds by its -pidfile and ends.
        record.save(run_dir / f"{name}.json")
        ctx = RuntimeContext(
            accel=accel,
            taps=taps,
            channel_paths=channel_paths,
            disk_paths=disk_paths,
            nvram_path=str(nvram) if nvram else None,
            pidfile=str(pidfile),
            incoming=incoming is not None,
            master_key_path=master_key,
            disk_secrets=sealed,
            net_secrets=net_sealed,
            pr_helper_socket=helper_socket,
            shared_overlays=shared_overlays,
            socket_fds={path: sock.fileno() for path, sock in sockets.items()},
            hugepage_dirs=hugepage_dirs,
            memory_dir=str(channel_dir),
            nbd_tls_dir=str(reg.layout.pki_dir / "qemu"),
            tpm_socket=tpm_socket,
            virtiofs_sockets=fs_sockets,
        )
        for gfx in dom.devices.graphics[:1]:
            if gfx.listen_socket and not gfx.socket:
                gfx.socket = ctx.graphics_socket = str(channel_dir / f"{gfx.type}.sock")
            if graphics.needs_port(gfx):
                gfx.port = ctx.graphics_port = graphics.free_port(gfx.listen or "127.0.0.1")

        def argv_for_fd(fd: int) -> list[str]:
            ctx.monitor_fd = fd
            return build_argv(dom, ctx)

        from pyvirt.daemon import ethernet

        ctx.tap_fds = await ethernet.open_fds(reg, dom)

        obj.stop_reason = None
        obj.fake_reboot = False
        obj.generation += 1
        t0 = time.monotonic()
        try:
            proc = await reg.spawn(
                argv_for_fd=argv_for_fd,
                record=record,
                log_path=reg.layout.domain_log(name),
                on_event=event_handler(reg, obj, obj.generation),
                pass_fds=(*ctx.socket_fds.values(), *ctx.tap_fds.values()),
                env={**audio.environment(dom), **graphics_local.environment(dom), **qemu_ns.environment(dom)},
            )
        finally:
            chardev_sockets.close(sockets)
            ethernet.close_fds(ctx.tap_fds)
        t1 = time.monotonic()
        _log_taints(reg.layout.domain_log(name), dom)
        try:
            await _finish_start(reg, obj, dom, proc, paused=paused, autostart=autostart, incoming=incoming)
            log.debug(
                "started %s (pid %d): QEMU up and monitor connected in %.0f ms, running %.0f ms later",
                name,
                proc.pid,
                (t1 - t0) * 1000,
                (time.monotonic() - t1) * 1000,
            )
        except BaseException:
            if obj.proc is proc:  # a restore that failed once the domain was RESTORING
                obj.proc = None
                if obj.config is not None:
                    obj.live = None
                reg.transition(obj, S.SHUTOFF, Shutoff.FAILED)
            await proc.monitor.close()
            await proc.terminate(graceful=False)
            raise
    except BaseException:
        revert.fail()
        raise


async def _finish_start(
    reg: DomainRegistry,
    obj: DomainObject,
    dom: Domain,
    proc: QemuProcess,
    *,
    paused: bool,
    autostart: bool,
    incoming: Incoming | None = None,
) -> None:
    if incoming is not None:
        obj.live, obj.proc = dom, proc
        reg.transition(obj, S.RESTORING, Paused.STARTING_UP)
        await incoming(proc)
    ptys = await proc.monitor.chardev_ptys()
    for index, serial in enumerate(dom.devices.serials):
        path = ptys.get(f"charserial{index}")
        if path:
            serial.source_path = path
    for index, console in enumerate(dom.devices.consoles):
        if console.target_type in (None, "serial"):
            port = console.target_port or 0
            if port < len(dom.devices.serials):
                console.source_path = dom.devices.serials[port].source_path
        else:
            console.source_path = ptys.get(f"charconsole{index}", console.source_path)
    proc.record.ptys = ptys
    if dom.devices.graphics and dom.devices.graphics[0].type == "spice":
        await graphics.configure_spice(proc.monitor, dom.devices.graphics[0])
    elif dom.devices.graphics and dom.devices.graphics[0].listen_socket:
        if dom.devices.graphics[0].passwd:
            await proc.monitor.set_vnc_password(dom.devices.graphics[0].passwd)
    elif dom.devices.graphics and dom.devices.graphics[0].type == "vnc":
        gfx = dom.devices.graphics[0]
        vnc_port = await proc.monitor.vnc_port()
        gfx.port = vnc_port
        proc.record.vnc_port = vnc_port
        if gfx.passwd:
            await proc.monitor.set_vnc_password(gfx.passwd)
    for gfx in dom.devices.graphics[:1]:
        await graphics.expire_password(proc.monitor, gfx)
    for index, iface in enumerate(dom.devices.interfaces):
        iface.alias = iface.alias or f"net{index}"  # the ids build_argv gave the device and its netdev
        proc.record.netdevs[iface.alias] = f"hostnet{index}"
        if iface.link_state == "down":
            await proc.monitor.set_link(iface.alias, False)
    blockdevs.record_disks(dom, proc.record)
    if incoming is None:  # refused at the start of a restore (check_start)
        await transient_disks.add_overlays(reg, dom, proc)
    await iotune.apply_at_start(proc.monitor, dom)
    await balloon.configure(proc.monitor, dom)
    await affinity.apply(proc.monitor, proc.pid, dom)
    await cpuacct.place(proc.monitor, proc.record.cgroup)
    tuning.apply_at_start(proc, dom)
    started = ("started", "restored" if incoming else "autostart" if autostart else "booted")
    if not paused:
        await proc.monitor.cont()
    obj.live = dom
    obj.proc = proc
    if paused:
        reg.transition(obj, S.PAUSED, Paused.USER, started, ("suspended", "paused"))
    else:
        reg.transition(obj, S.RUNNING, Running.RESTORED if incoming else Running.BOOTED, started)
    open_console(obj)
    reg.watch_exit(obj, proc)


async def _plug_interfaces(reg: DomainRegistry, dom: Domain, revert: Revert) -> dict[int, str]:
    taps: dict[int, str] = {}
    for index, iface in enumerate(dom.devices.interfaces):
        if iface.type == "ethernet":
            from pyvirt.daemon import ethernet

            if (made := await ethernet.plug(reg, iface, revert)) is not None:
                taps[index] = made
            if iface.bandwidth and iface.target_dev:
                await asyncio.to_thread(shaping.apply, iface.target_dev, iface.bandwidth)
            continue
        if iface.type not in ("network", "bridge"):
            if iface.bandwidth:
                raise UnsupportedConfig(
                    f"unsupported configuration: <bandwidth> of interface type '{iface.type}': it has no tap"
                )
            continue
        if reg.networks is None:
            raise UnsupportedConfig(
                f"unsupported configuration: interface type '{iface.type}' needs the network driver"
            )
        assert iface.mac is not None
        tap = await reg.networks.plug_tap(
            network=iface.source_network if iface.type == "network" else None,
            bridge=iface.source_bridge if iface.type == "bridge" else None,
            mac=iface.mac,
            tap=iface.target_dev,  # a user-given <target dev=...>, validated at define; None: vnetN
            owner=reg.confinement.tap_owner,
        )
        hook = reg.networks
        revert.add(lambda hook=hook, tap=tap: hook.unplug_tap(tap), f"unplug {tap}")  # type: ignore[misc]
        iface.target_dev = tap
        taps[index] = tap
        if iface.bandwidth:
            await asyncio.to_thread(shaping.apply, tap, iface.bandwidth)
    return taps


def open_console(obj: DomainObject) -> None:
    """Hold the running domain's first serial pty (the console), if it has one."""
    if obj.live is None or not obj.live.devices.serials:
        return
    path = obj.live.devices.serials[0].source_path
    if not path or obj.live.devices.serials[0].type != "pty":
        return
    relay = ConsoleRelay(obj.name, path)
    try:
        relay.open()
    except OSError as err:
        log.warning("cannot open the console pty %s of %s: %s", path, obj.name, err)
        return
    obj.console = relay


def _log_taints(log_path: Path, dom: Domain) -> None:
    """libvirt's taint lines in the domain's log (QEMU appends to it too: one write each)."""
    for flag in qemu_ns.taints(dom):
        log.warning("domain %s is tainted: %s", dom.name, flag)
        with contextlib.suppress(OSError), open(log_path, "a") as out:
            out.write(f"Domain name='{dom.name}' uuid={dom.uuid} is tainted: {flag}\n")

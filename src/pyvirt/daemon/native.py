"""domxml-to-native: the QEMU command line a domain XML would start with, built as ``start`` builds it.

The firmware comes from this host's descriptors, volumes from its pools, the NVRAM path from its layout;
nothing is created or started. What start decides only when it runs shows as start would name it: taps
as the interface's ``<target dev>`` or ``vnetN``, the monitor as its socket path (start passes it as a
descriptor), an encrypted disk's passphrase as a secret object encrypted under a master key that exists
nowhere (:func:`pyvirt.daemon.disk_secrets.pretend`): as libvirt's, the secrets must have values.
"""

from __future__ import annotations

import shlex

from pyvirt.conf import virtiofs, vsock
from pyvirt.conf.disk_reservations import MANAGED_SOCKET
from pyvirt.conf.domain_xml import load_domain_xml
from pyvirt.daemon import disk_secrets
from pyvirt.daemon.domains import DomainRegistry
from pyvirt.daemon.transient_disks import overlay_path
from pyvirt.errors import InvalidArgument
from pyvirt.qemu import firmware, graphics, swtpm
from pyvirt.qemu.command import RuntimeContext, build_argv

FORMATS = ("qemu-argv",)


def native_argv(reg: DomainRegistry, fmt: str, xml: str) -> list[str]:
    if fmt not in FORMATS:
        raise InvalidArgument(f"unsupported config type {fmt} (supported: {', '.join(FORMATS)})")
    dom = load_domain_xml(xml)
    firmware.fill_domain(dom)
    run = reg.layout.qemu_run_dir
    disk_paths: dict[int, str] = {}
    for index, disk in enumerate(dom.devices.disks):
        if disk.type == "volume" and reg.storage is not None and disk.source_pool and disk.source_volume:
            disk_paths[index] = reg.storage.volume_path(disk.source_pool, disk.source_volume)
    channels = run / f"{dom.name}.channels"
    passphrases, network = disk_secrets.passphrases(reg, dom), disk_secrets.network_values(reg, dom)
    master_key, sealed, net_sealed = disk_secrets.pretend_all(passphrases, network, channels)
    nvram = reg.nvram_path(dom)
    ctx = RuntimeContext(
        accel="kvm" if dom.type == "kvm" else "tcg",
        monitor_path=str(run / f"{dom.name}.monitor"),
        taps={
            index: nic.target_dev or f"vnet{index}"
            for index, nic in enumerate(dom.devices.interfaces)
            if nic.type in ("network", "bridge")
        },
        channel_paths={
            index: channel.source_path or str(channels / (channel.target_name or f"channel{index}"))
            for index, channel in enumerate(dom.devices.channels)
            if channel.type == "unix"
        },
        disk_paths=disk_paths,
        nvram_path=str(nvram) if nvram else None,
        pidfile=str(run / f"{dom.name}.pid"),
        master_key_path=master_key,
        disk_secrets=sealed,
        net_secrets=net_sealed,
        tpm_socket=str(channels / swtpm.SOCKET),  # where start has the domain's swtpm listen
        virtiofs_sockets={  # where start has each share's virtiofsd listen
            i: str(channels / virtiofs.socket_name(fs.alias or f"fs{i}"))
            for i, fs in enumerate(dom.devices.filesystems)
            if fs.virtiofs is not None
        },
        pr_helper_socket=str(channels / MANAGED_SOCKET),  # where start's helper listens
        shared_overlays={  # where start makes them
            index: overlay_path(disk_paths.get(index, disk.source or ""), dom.name)
            for index, disk in enumerate(dom.devices.disks)
            if disk.layers.share_backing
        },
    )
    if dom.devices.vsock is not None and dom.devices.vsock.cid is None:  # as start would choose it
        running = [obj.live for obj in reg.all() if obj.live is not None]
        ctx.vsock_cid = vsock.free_cid(vsock.cids_in_use(running))
    for gfx in dom.devices.graphics[:1]:
        ctx.graphics_socket = str(channels / f"{gfx.type}.sock")
        if graphics.needs_port(gfx):
            ctx.graphics_port = graphics.free_port(gfx.listen or "127.0.0.1")
    return build_argv(dom, ctx)


def shell_line(argv: list[str]) -> str:
    """One line a shell runs as ``argv`` (virsh prints the command line so)."""
    return " ".join(shlex.quote(arg) for arg in argv) + "\n"

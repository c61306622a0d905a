"""The Python API: ``pyvirt.open(uri)`` returns a :class:`Connection`.

Example::

    import pyvirt

    conn = pyvirt.open("qemu:///system")
    for summary in conn.list_domains():
        print(summary["name"], summary["state"])
    web = conn.domain("web01")        # NotFound at once if there is no such domain
    web.start()
    print(web.info()["state"])        # "running"
    web.shutdown()

    lan = conn.network("default")
    print(lan.info()["active"], [lease["ip"] for lease in lan.leases()])
    pool = conn.pool("default")
    vol = pool.create_volume("web02.qcow2", 10 * 2**30, fmt="qcow2")
    print(vol.path())

Every method is one action of the API table (:mod:`pyvirt.api.table`), called by its name; replies
are the TypedDicts of :mod:`pyvirt.api.types`. The CLI is built on this module.

A handle (:class:`Domain`, :class:`Network`, :class:`StoragePool`, :class:`Volume`) is made by a
lookup (``conn.domain(key)``, ``conn.network(key)``, ``conn.pool(key)``, ``pool.volume(name)``: one
call, NotFound at once for a name that does not exist) or returned by the call that created the
object. It holds the object's name; ``info(cached=True)`` returns what the lookup read, without a
call. (One module, not two: each module costs the CLI's start-up.)
"""

from __future__ import annotations

import _socket
import os

from pyvirt.api.table import BY_NAME
from pyvirt.client.transport import Transport, connect_unix, quote
from pyvirt.uri import URI, default_uri, parse_uri

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyvirt.api import types
    from pyvirt.client.streams import EventStream
    from pyvirt.client.websocket import WebSocket

__all__ = ["Connection", "Domain", "Network", "StoragePool", "Volume"]


def action_path(action: str, params: Mapping[str, str] | None, query: Mapping[str, object] | None) -> str:
    """The path of ``action`` with its path parameters and query (False, None and 0 left out)."""
    path = BY_NAME[action].path
    for key, value in (params or {}).items():
        path = path.replace("{" + key + "}", quote(value))
    args = []
    for key, arg in (query or {}).items():
        if arg is True:
            args.append(f"{key}=1")
        elif arg is not None and arg is not False and arg != 0:
            args.append(f"{key}={quote(str(arg))}")
    return path + ("?" + "&".join(args) if args else "")


class Connection:
    """A connection to one pyvirtd."""

    def __init__(self, transport: Transport, uri: URI, readonly: bool = False) -> None:
        self.transport = transport
        self.uri = uri
        self.readonly = readonly

    @classmethod
    def open(cls, uri: str | None = None, *, readonly: bool = False) -> Connection:
        parsed = parse_uri(uri or default_uri())
        return cls(open_transport(parsed, readonly), parsed, readonly)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        action: str,
        params: Mapping[str, str] | None = None,
        body: object = None,
        query: Mapping[str, object] | None = None,
    ) -> Any:
        """Make the API call ``action`` (a name of the API table) and return its decoded reply."""
        if not _usable(self.transport):
            self.transport.close()
            self.transport = open_transport(self.uri, self.readonly)
        return self.transport.request(BY_NAME[action].method, action_path(action, params, query), body)

    def stream(
        self, action: str, params: Mapping[str, str] | None = None, query: Mapping[str, object] | None = None
    ) -> WebSocket:
        """A new connection to the same daemon, made a WebSocket for the stream action ``action``."""
        from pyvirt.client.websocket import WebSocket

        transport = open_transport(self.uri, self.readonly)
        try:
            return WebSocket(transport, action_path(action, params, query))
        except BaseException:
            transport.close()
            raise

    # Host

    def openapi(self) -> dict[str, Any]:
        """The daemon's OpenAPI 3.1 document (the same as ``docs/openapi.json``)."""
        return dict(self.call("api.openapi"))

    def version(self) -> types.Version:
        version: types.Version = self.call("host.version")
        return version

    def nodeinfo(self) -> types.NodeInfo:
        info: types.NodeInfo = self.call("host.nodeinfo")
        return info

    def capabilities(self) -> str:
        return str(self.call("host.capabilities")["xml"])

    def domxml_to_native(self, fmt: str, xml: str) -> types.NativeConfig:
        """The native configuration (``qemu-argv``) the daemon would start ``xml`` with."""
        native: types.NativeConfig = self.call("host.domxml_to_native", body={"format": fmt, "xml": xml})
        return native

    def cpu_stats(self, cpu: int | None = None) -> dict[str, int]:
        """nodecpustats: user, system, idle, iowait (ns) of every CPU, or of CPU ``cpu``."""
        return dict(self.call("host.cpustats", query={"cpu": None if cpu is None else str(cpu)}))

    def memory_stats(self, cell: int | None = None) -> dict[str, int]:
        """nodememstats (KiB): total, free, buffers, cached; a NUMA cell's total and free."""
        return dict(self.call("host.memstats", query={"cell": None if cell is None else str(cell)}))

    def nodedev_list(self, cap: str | None = None) -> list[types.NodedevInfo]:
        """nodedev-list: the host's node devices, those with one of ``cap``'s capabilities."""
        devices: list[types.NodedevInfo] = self.call("nodedev.list", query={"cap": cap} if cap else None)
        return devices

    def nodedev_info(self, device: str) -> types.NodedevInfo:
        info: types.NodedevInfo = self.call("nodedev.info", {"device": device})
        return info

    def nodedev_dumpxml(self, device: str) -> str:
        return str(self.call("nodedev.dumpxml", {"device": device})["xml"])

    def nodedev_detach(self, device: str, driver: str | None = None) -> None:
        """nodedev-detach: host PCI device ``device`` (``pci_0000_06_12_5``) onto vfio-pci."""
        self.call("nodedev.detach", {"device": device}, {"driver": driver} if driver else {})

    def nodedev_reattach(self, device: str) -> None:
        self.call("nodedev.reattach", {"device": device})

    def nodedev_reset(self, device: str) -> None:
        self.call("nodedev.reset", {"device": device})

    def free_cells(self) -> list[types.FreeCell]:
        return list(self.call("host.freecells"))

    def max_vcpus(self, virt_type: str | None = None) -> int:
        return int(self.call("host.maxvcpus", query={"type": virt_type})["max"])

    def cpu_models(self, arch: str) -> list[str]:
        return list(self.call("host.cpu_models", query={"arch": arch}))

    def sysinfo(self) -> str:
        return str(self.call("host.sysinfo")["xml"])

    def domain_capabilities(
        self,
        *,
        virttype: str | None = None,
        emulator: str | None = None,
        arch: str | None = None,
        machine: str | None = None,
    ) -> str:
        query = {"virttype": virttype, "emulator": emulator, "arch": arch, "machine": machine}
        return str(self.call("host.domcapabilities", query=query)["xml"])

    def metrics(self) -> str:
        """The daemon's Prometheus metrics, in the text exposition format (also at GET /metrics)."""
        return str(self.call("host.metrics"))

    def hostname(self) -> str:
        return str(self.call("host.hostname")["hostname"])

    def validate_host(self) -> list[types.HostCheck]:
        return list(self.call("host.validate")["checks"])

    def events(self) -> EventStream:
        """Lifecycle events of domains, networks, pools and volumes: iterate for dicts
        (:class:`pyvirt.api.types.Event`); close when done."""
        from pyvirt.client.streams import EventStream

        return EventStream(self.stream("host.events"))

    # Domains

    def list_domains(self) -> list[types.DomainSummary]:
        return list(self.call("domain.list"))

    def define_xml(self, xml: str) -> Domain:
        """Define (or redefine) a domain from its XML."""
        return Domain(self, self.call("domain.define", body={"xml": xml})["name"])

    def create_xml(self, xml: str, *, paused: bool = False, autodestroy: bool = False) -> Domain:
        """Create a transient domain from its XML and start it (``paused`` if asked); with
        ``autodestroy`` it is destroyed when this connection closes."""
        body: types.DomainDefineRequest = {"xml": xml, "start": True, "paused": paused}
        if autodestroy:
            body["autodestroy"] = True
        return Domain(self, self.call("domain.define", body=body)["name"])

    def domain(self, key: str) -> Domain:
        """The domain with this name, id or UUID (one call; NotFound if there is none)."""
        info: types.DomainInfo = self.call("domain.info", {"name": key})
        return Domain(self, info["name"], info)

    def domain_stats(
        self,
        domains: list[str] | None = None,
        *,
        groups: list[str] | None = None,
        filters: list[str] | None = None,
    ) -> list[types.DomainStats]:
        """domstats in one request: the ``groups`` (state, cpu-total, balloon, vcpu, interface, block;
        None: all) of ``domains`` (None: every domain passing ``filters``: active, inactive, persistent,
        transient, running, paused, shutoff, other)."""
        query = {
            "domains": ",".join(domains or []),
            "groups": ",".join(groups or []),
            "filters": ",".join(filters or []),
        }
        return list(self.call("domain.stats", query=query))

    def restore(
        self,
        file: str,
        *,
        xml: str | None = None,
        running: bool = False,
        paused: bool = False,
        bypass_cache: bool = False,
    ) -> Domain:
        """restore: start the domain saved in ``file`` (a path on the daemon's host), with ``xml``
        instead of the image's if given (compatible with it); ``running``/``paused`` override the
        state saved; ``bypass_cache`` reads with O_DIRECT."""
        body: types.RestoreRequest = {"file": file}
        if xml is not None:
            body["xml"] = xml
        for key, value in (("running", running), ("paused", paused), ("bypass_cache", bypass_cache)):
            if value:
                body[key] = True  # type: ignore[literal-required]
        return Domain(self, self.call("saveimage.restore", body=body)["name"])

    def save_image_xml(self, file: str, *, security_info: bool = False) -> str:
        """save-image-dumpxml: the domain XML kept in the save image ``file``."""
        query = {"file": file, "security_info": security_info}
        return str(self.call("saveimage.xml", query=query)["xml"])

    def save_image_define(self, file: str, xml: str, *, running: bool = False, paused: bool = False) -> None:
        """save-image-define: replace the domain XML of the save image ``file`` (compatible with it);
        ``running``/``paused`` change the state a restore gives the domain."""
        body: types.SaveImageFileDefineRequest = {"file": file, "xml": xml}
        if running:
            body["running"] = True
        if paused:
            body["paused"] = True
        self.call("saveimage.define", body=body)

    def clone(self, original: str, name: str, **options: Any) -> types.CloneResult:
        """``pyvirt clone``: domain ``name`` from the template or shut-off domain ``original``, made by
        the daemon. ``options`` are :class:`pyvirt.api.types.CloneRequest`'s (None: left out)."""
        body = {"original": original, "name": name, **{k: v for k, v in options.items() if v is not None}}
        result: types.CloneResult = self.call("domain.clone", body=body)
        return result

    def launch(self, template: str, name: str, **options: Any) -> types.LaunchResult:
        """``pyvirt launch``: domain ``name`` from ``template``, cloned (linked unless ``full=True``),
        given its cloud-init identity and started, by the daemon in one call. ``options`` are
        :class:`pyvirt.api.types.LaunchRequest`'s (None: left out); see also
        :meth:`Domain.wait_address`."""
        body = {"template": template, "name": name, **{k: v for k, v in options.items() if v is not None}}
        result: types.LaunchResult = self.call("domain.launch", body=body)
        return result

    def install(self, **options: Any) -> types.InstallResult:
        """``pyvirt install``: a new domain from virt-install's options, made by the daemon;
        ``options`` are :class:`pyvirt.api.types.InstallRequest`'s (None: left out)."""
        body = {k: v for k, v in options.items() if v is not None}
        result: types.InstallResult = self.call("domain.install", body=body)
        return result

    # Networks

    def list_networks(self) -> list[types.NetworkStatus]:
        return list(self.call("network.list"))

    def define_network(self, xml: str) -> Network:
        return Network(self, self.call("network.define", body={"xml": xml})["name"])

    def create_network(self, xml: str) -> Network:
        """Create a transient network from its XML and start it."""
        return Network(self, self.call("network.define", body={"xml": xml, "start": True})["name"])

    def network(self, key: str) -> Network:
        """The network with this name or UUID (one call; NotFound if there is none)."""
        status: types.NetworkStatus = self.call("network.info", {"name": key})
        return Network(self, status["name"], status)

    # Secrets

    def list_secrets(self) -> list[types.SecretInfo]:
        return list(self.call("secret.list"))

    def define_secret(self, xml: str) -> Secret:
        info: types.SecretInfo = self.call("secret.define", body={"xml": xml})
        return Secret(self, info["uuid"], info)

    def secret(self, uuid: str) -> Secret:
        """The secret with this UUID (one call; NotFound if there is none)."""
        info: types.SecretInfo = self.call("secret.info", {"uuid": uuid})
        return Secret(self, info["uuid"], info)

    # Storage

    def list_pools(self) -> list[types.PoolStatus]:
        return list(self.call("pool.list"))

    def define_pool(self, xml: str) -> StoragePool:
        return StoragePool(self, self.call("pool.define", body={"xml": xml})["name"])

    def create_pool(self, xml: str, *, build: bool = False) -> StoragePool:
        """Like ``pool-create``: a transient pool, started at once (its folder made first with ``build``)."""
        body: types.PoolDefineRequest = {"xml": xml, "start": True, "build": build}
        return StoragePool(self, self.call("pool.define", body=body)["name"])

    def pool(self, key: str) -> StoragePool:
        """The pool with this name or UUID (one call; NotFound if there is none)."""
        status: types.PoolStatus = self.call("pool.info", {"pool": key})
        return StoragePool(self, status["name"], status)

    def volume_by_path(self, path: str) -> Volume:
        """The volume whose key or path is ``path`` (NotFound if no active pool holds it)."""
        ref: types.VolumeRef = self.call("volume.find", query={"path": path})
        return StoragePool(self, ref["pool"]).volume(ref["name"])


class Domain:
    """A domain; its methods are the ``domain.*`` actions."""

    def __init__(self, conn: Connection, name: str, info: types.DomainInfo | None = None) -> None:
        self.conn = conn
        self.name = name
        self._info = info

    def __repr__(self) -> str:
        return f"<Domain {self.name}>"

    def _call(self, action: str, body: object = None, **params: str) -> types.DomainSummary:
        summary: types.DomainSummary = self.conn.call(action, {"name": self.name, **params}, body)
        return summary

    def info(self, *, cached: bool = False) -> types.DomainInfo:
        """dominfo; with ``cached``, what the lookup read if this handle came from one."""
        if not cached or self._info is None:
            self._info = self.conn.call("domain.info", {"name": self.name})
        assert self._info is not None
        return self._info

    def xml(self, *, inactive: bool = False, security_info: bool = False, migratable: bool = False) -> str:
        """dumpxml: passwords only with ``security_info`` (refused on a read-only connection);
        ``migratable``: without the runtime-only state (id, aliases, pty paths, generated tap names)."""
        query = {"inactive": inactive, "security_info": security_info, "migratable": migratable}
        return str(self.conn.call("domain.xml", {"name": self.name}, query=query)["xml"])

    def devices(self, *, inactive: bool = False) -> types.DomainDevices:
        """Disks, NICs and VNC display: of the running domain, or with ``inactive`` of its definition."""
        query = {"inactive": inactive}
        devices: types.DomainDevices = self.conn.call("domain.devices", {"name": self.name}, query=query)
        return devices

    def start(
        self,
        *,
        paused: bool = False,
        autodestroy: bool = False,
        force_boot: bool = False,
        bypass_cache: bool = False,
    ) -> types.DomainSummary:
        """Start; with ``autodestroy`` the domain is destroyed when this connection closes. A domain
        with a managed save resumes from it (read with O_DIRECT with ``bypass_cache``), unless
        ``force_boot``, which discards it."""
        body: types.DomainStartRequest = {"paused": paused}
        for key, value in (
            ("autodestroy", autodestroy),
            ("force_boot", force_boot),
            ("bypass_cache", bypass_cache),
        ):
            if value:
                body[key] = True  # type: ignore[literal-required]
        return self._call("domain.start", body)

    def save(
        self,
        file: str,
        *,
        xml: str | None = None,
        running: bool = False,
        paused: bool = False,
        bypass_cache: bool = False,
    ) -> types.DomainSummary:
        """save: the domain's state into ``file`` (a path on the daemon's host), then it stops; ``xml``
        is kept in the image instead of the running definition (compatible with it);
        ``running``/``paused`` set the state a restore gives it."""
        body: types.SaveRequest = {"file": file}
        if xml is not None:
            body["xml"] = xml
        for key, value in (("running", running), ("paused", paused), ("bypass_cache", bypass_cache)):
            if value:
                body[key] = True  # type: ignore[literal-required]
        return self._call("domain.save", body)

    def managed_save(
        self, *, running: bool = False, paused: bool = False, bypass_cache: bool = False
    ) -> types.DomainSummary:
        """managedsave: save the domain's state where the next ``start`` resumes it from."""
        body: types.ManagedSaveRequest = {}
        for key, value in (("running", running), ("paused", paused), ("bypass_cache", bypass_cache)):
            if value:
                body[key] = True  # type: ignore[literal-required]
        return self._call("domain.managed_save", body)

    def managed_save_remove(self) -> bool:
        """managedsave-remove: discard the managed save image; False if there was none."""
        return bool(self.conn.call("domain.managed_save_remove", {"name": self.name})["removed"])

    def managed_save_xml(self, *, security_info: bool = False) -> str:
        """managedsave-dumpxml: the domain XML kept in the managed save image."""
        query = {"security_info": security_info}
        return str(self.conn.call("domain.managed_save_xml", {"name": self.name}, query=query)["xml"])

    def managed_save_define(self, xml: str, *, running: bool = False, paused: bool = False) -> None:
        """managedsave-define: replace the domain XML of the managed save image (compatible with it)."""
        body: types.SaveImageDefineRequest = {"xml": xml}
        if running:
            body["running"] = True
        if paused:
            body["paused"] = True
        self.conn.call("domain.managed_save_define", {"name": self.name}, body)

    def shutdown(self, *, mode: str | None = None) -> types.DomainSummary:
        """Ask the guest to power off; ``mode``: "acpi", "agent" or a comma list tried in order."""
        return self._call("domain.shutdown", {"mode": mode} if mode else None)

    def reboot(self, *, mode: str | None = None) -> types.DomainSummary:
        return self._call("domain.reboot", {"mode": mode} if mode else None)

    def reset(self) -> types.DomainSummary:
        return self._call("domain.reset")

    def destroy(self, *, graceful: bool = False, remove_logs: bool = False) -> types.DomainSummary:
        """destroy; ``remove_logs`` deletes the domain's QEMU log files once it stopped."""
        body: types.DomainDestroyRequest = {"graceful": graceful}
        if remove_logs:
            body["remove_logs"] = True
        return self._call("domain.destroy", body)

    def suspend(self) -> types.DomainSummary:
        return self._call("domain.suspend")

    def resume(self) -> types.DomainSummary:
        return self._call("domain.resume")

    def set_autostart(self, enabled: bool) -> types.DomainSummary:
        return self._call("domain.autostart", {"enabled": enabled})

    def undefine(
        self,
        *,
        remove_storage: bool = False,
        nvram: bool = False,
        keep_nvram: bool = False,
        snapshots_metadata: bool = False,
        managed_save: bool = False,
        tpm: bool = False,
        keep_tpm: bool = False,
    ) -> types.DomainUndefined:
        """Undefine; a domain with an NVRAM file needs ``nvram`` (delete it) or ``keep_nvram``, a
        shut-off one with snapshots ``snapshots_metadata`` (their metadata is removed), one with a
        managed save image ``managed_save`` (delete it). An emulated TPM's state is removed unless
        ``keep_tpm`` (one with ``persistent_state='yes'`` is kept unless ``tpm``)."""
        query = {
            "remove_storage": remove_storage,
            "nvram": nvram,
            "keep_nvram": keep_nvram,
            "tpm": tpm,
            "keep_tpm": keep_tpm,
            "snapshots_metadata": snapshots_metadata,
            "managed_save": managed_save,
        }
        done: types.DomainUndefined = self.conn.call("domain.undefine", {"name": self.name}, query=query)
        return done

    def console(self, *, force: bool = False, history: bool = False, devname: str | None = None) -> WebSocket:
        """The serial console: binary messages both ways (``send`` keystrokes, ``receive`` output).

        ``force`` takes the console over from another client; ``history`` first sends the recent output;
        ``devname`` names the pty device (libvirt's names: serial0, console0, serial1, channel0...).
        """
        query = {"force": force, "history": history, "devname": devname}
        return self.conn.stream("domain.console", {"name": self.name}, query)

    # Snapshots (snapshot-* verbs)

    def snapshots(self, **filters: bool | str | None) -> list[types.SnapshotInfo]:
        """snapshot-list; ``filters`` are the ``snapshot.list`` query flags (roots, leaves, no_leaves,
        from_ (a snapshot's name), current, descendants, inactive, active, disk_only, internal,
        external, metadata, no_metadata, topological)."""
        query = {("from" if k == "from_" else k): v for k, v in filters.items()}
        return list(self.conn.call("snapshot.list", {"name": self.name}, query=query))

    def create_snapshot(self, xml: str, **flags: bool) -> types.SnapshotInfo:
        """snapshot-create from domainsnapshot XML; ``flags`` as :class:`types.SnapshotCreateRequest`."""
        body = {"xml": xml, **{k: v for k, v in flags.items() if v}}
        info: types.SnapshotInfo = self.conn.call("snapshot.create", {"name": self.name}, body)
        return info

    def snapshot(self, name: str) -> types.SnapshotInfo:
        """snapshot-info of snapshot ``name`` (NotFound if the domain has none of that name)."""
        info: types.SnapshotInfo = self.conn.call("snapshot.info", {"name": self.name, "snapshot": name})
        return info

    def snapshot_xml(self, name: str, *, security_info: bool = False) -> str:
        params = {"name": self.name, "snapshot": name}
        return str(self.conn.call("snapshot.xml", params, query={"security_info": security_info})["xml"])

    def current_snapshot(self) -> types.SnapshotInfo:
        """The current snapshot (NotFound if there is none)."""
        info: types.SnapshotInfo = self.conn.call("snapshot.current", {"name": self.name})
        return info

    def set_current_snapshot(self, name: str) -> types.SnapshotInfo:
        info: types.SnapshotInfo = self.conn.call(
            "snapshot.set_current", {"name": self.name, "snapshot": name}
        )
        return info

    def revert_to_snapshot(
        self, name: str, *, running: bool = False, paused: bool = False, force: bool = False,
        reset_nvram: bool = False,
    ) -> types.DomainSummary:  # fmt: skip
        body: types.SnapshotRevertRequest = {}
        for key, value in (("running", running), ("paused", paused), ("force", force),
                           ("reset_nvram", reset_nvram)):  # fmt: skip
            if value:
                body[key] = True  # type: ignore[literal-required]
        return self._call("snapshot.revert", body, snapshot=name)

    def delete_snapshot(
        self, name: str, *, children: bool = False, children_only: bool = False, metadata: bool = False
    ) -> list[str]:
        """snapshot-delete; returns the names deleted, children first."""
        query = {"children": children, "children_only": children_only, "metadata": metadata}
        done = self.conn.call("snapshot.delete", {"name": self.name, "snapshot": name}, query=query)
        return list(done["deleted"])

    def attach_interface(
        self,
        type: str,
        source: str | None = None,
        *,
        mac: str | None = None,
        model: str | None = None,
        target: str | None = None,
        inbound: types.BandwidthRates | None = None,
        outbound: types.BandwidthRates | None = None,
        live: bool = False,
        config: bool = False,
    ) -> types.AttachedInterface:
        """attach-interface (``type`` network, bridge or user); neither ``live`` nor ``config``: current;
        ``target`` names the tap; ``inbound``/``outbound`` its <bandwidth> (KiB/s, KiB)."""
        body: dict[str, object] = {"type": type, "live": live, "config": config}
        pairs = (("source", source), ("mac", mac), ("model", model), ("target", target))
        for key, value in (*pairs, ("inbound", inbound), ("outbound", outbound)):
            if value is not None:
                body[key] = value
        params = {"name": self.name}
        attached: types.AttachedInterface = self.conn.call("domain.attach_interface", params, body)
        return attached

    def detach_interface(self, mac: str, *, live: bool = False, config: bool = False) -> None:
        query = {"live": live, "config": config}
        self.conn.call("domain.detach_interface", {"name": self.name, "mac": mac}, query=query)

    def set_link(self, device: str, up: bool, *, config: bool = False) -> None:
        """domif-setlink: the link of the NIC with this MAC or tap name, up or down; with ``config``
        (or while the domain does not run) in its definition."""
        body: types.LinkStateRequest = {"state": "up" if up else "down"}
        if config:
            body["config"] = True
        self.conn.call("domain.set_link", {"name": self.name, "device": device}, body)

    # Block jobs: ``disk`` is a disk's target (vda) or its source's path; bandwidths in bytes/s.

    def block_commit(
        self,
        disk: str,
        *,
        base: str | None = None,
        top: str | None = None,
        active: bool = False,
        shallow: bool = False,
        bandwidth: int = 0,
        keep_relative: bool = False,
        delete: bool = False,
    ) -> types.BlockJobInfo:
        """blockcommit: start merging ``top`` (with ``active``, the disk's source) down into ``base``."""
        body: dict[str, object] = {
            "active": active,
            "shallow": shallow,
            "bandwidth": bandwidth,
            "keep_relative": keep_relative,
            "delete": delete,
        }
        for key, value in (("base", base), ("top", top)):
            if value is not None:
                body[key] = value
        job: types.BlockJobInfo = self.conn.call(
            "domain.blockcommit", {"name": self.name, "disk": disk}, body
        )
        return job

    def block_pull(
        self, disk: str, *, base: str | None = None, bandwidth: int = 0, keep_relative: bool = False
    ) -> types.BlockJobInfo:
        """blockpull: start copying the backing images' data (down to ``base``) into the source."""
        body: dict[str, object] = {"bandwidth": bandwidth, "keep_relative": keep_relative}
        if base is not None:
            body["base"] = base
        job: types.BlockJobInfo = self.conn.call("domain.blockpull", {"name": self.name, "disk": disk}, body)
        return job

    def block_copy(
        self,
        disk: str,
        dest: str,
        *,
        format: str | None = None,
        blockdev: bool = False,
        shallow: bool = False,
        reuse_external: bool = False,
        bandwidth: int = 0,
        granularity: int | None = None,
        buf_size: int | None = None,
        synchronous_writes: bool = False,
    ) -> types.BlockJobInfo:
        """blockcopy: start mirroring the disk to ``dest``; ``block_job_abort(disk, pivot=True)`` once
        ready switches the disk to the copy."""
        body: dict[str, object] = {
            "dest": dest,
            "blockdev": blockdev,
            "shallow": shallow,
            "reuse_external": reuse_external,
            "bandwidth": bandwidth,
            "synchronous_writes": synchronous_writes,
        }
        for key, value in (("format", format), ("granularity", granularity), ("buf_size", buf_size)):
            if value is not None:
                body[key] = value
        job: types.BlockJobInfo = self.conn.call("domain.blockcopy", {"name": self.name, "disk": disk}, body)
        return job

    def block_job(self, disk: str) -> types.BlockJobInfo:
        """The disk's block job and its progress, or how its last one ended."""
        job: types.BlockJobInfo = self.conn.call("domain.blockjob", {"name": self.name, "disk": disk})
        return job

    def block_job_abort(self, disk: str, *, pivot: bool = False, wait: bool = True) -> types.BlockJobInfo:
        """End the disk's block job (``pivot``: switch to the copy or base); ``wait`` False: at once."""
        body: types.BlockJobAbortRequest = {"pivot": pivot, "wait": wait}
        job: types.BlockJobInfo = self.conn.call(
            "domain.blockjob_abort", {"name": self.name, "disk": disk}, body
        )
        return job

    def block_job_set_speed(self, disk: str, bandwidth: int) -> None:
        body: types.BlockJobSpeedRequest = {"bandwidth": bandwidth}
        self.conn.call("domain.blockjob_speed", {"name": self.name, "disk": disk}, body)

    def block_resize(self, disk: str, size: int) -> None:
        """blockresize: the disk's new size in bytes, seen by the guest at once."""
        body: types.BlockResizeRequest = {"size": size}
        self.conn.call("domain.blockresize", {"name": self.name, "disk": disk}, body)

    def block_info(self, disk: str) -> types.BlockInfo:
        info: types.BlockInfo = self.conn.call("domain.blkinfo", {"name": self.name, "disk": disk})
        return info

    def block_errors(self) -> list[types.BlockError]:
        return list(self.conn.call("domain.blkerrors", {"name": self.name}))

    def attach_device(self, xml: str, *, live: bool = False, config: bool = False) -> types.DeviceChange:
        """attach-device: plug the device ``xml`` describes and/or add it to the definition (neither
        ``live`` nor ``config``: the current state)."""
        body: types.DeviceRequest = {"xml": xml, "live": live, "config": config}
        done: types.DeviceChange = self.conn.call("domain.attach_device", {"name": self.name}, body)
        return done

    def detach_device(self, xml: str, *, live: bool = False, config: bool = False) -> types.DeviceChange:
        """detach-device: a disk by its target, an interface by its MAC, others by alias or XML; a
        live removal returns once the guest let go of the device."""
        body: types.DeviceRequest = {"xml": xml, "live": live, "config": config}
        done: types.DeviceChange = self.conn.call("domain.detach_device", {"name": self.name}, body)
        return done

    def update_device(
        self, xml: str, *, live: bool = False, config: bool = False, force: bool = False
    ) -> None:
        """update-device (change-media is one: the cdrom's XML with its new source, or none)."""
        body: types.DeviceRequest = {"xml": xml, "live": live, "config": config}
        if force:
            body["force"] = True
        self.conn.call("domain.update_device", {"name": self.name}, body)

    def detach_device_alias(self, alias: str, *, live: bool = False, config: bool = False) -> None:
        query = {"live": live, "config": config}
        self.conn.call("domain.detach_device_alias", {"name": self.name, "alias": alias}, query=query)

    def interface_addresses(self, source: str | None = None) -> list[types.InterfaceAddress]:
        """domifaddr, from the networks' DHCP leases (``source`` lease, the default), the host's ARP
        table (``arp``) or the guest agent (``agent``)."""
        return list(self.conn.call("domain.ifaddr", {"name": self.name}, query={"source": source}))

    def wait_address(self, timeout: float = 300.0, interval: float = 0.5) -> types.InterfaceAddress:
        """The guest's first IPv4 address once it has one: its DHCP lease from a pyvirt network, else
        (a guest with an agent) the agent's answer. TimeoutError after ``timeout`` seconds."""
        from pyvirt.client.addresses import wait_address

        return wait_address(self, timeout, interval)

    # Statistics and resources

    def percpu_stats(self, *, count: bool = False) -> types.PerCpuStats:
        """cpu-stats' per-CPU figures (ns) of the running domain; ``count``: only the host's CPU count."""
        reply: types.PerCpuStats = self.conn.call(
            "domain.cpu_stats", {"name": self.name}, query={"count": count}
        )
        return reply

    def memory_stats(self) -> dict[str, int]:
        """dommemstat: actual, the guest's balloon statistics, rss (libvirt's names, KiB or counts)."""
        return dict(self.conn.call("domain.memstats", {"name": self.name})["stats"])

    def set_memory_stats_period(self, seconds: int, *, live: bool = False, config: bool = False) -> None:
        """dommemstat --period; neither ``live`` nor ``config``: the current state."""
        body: types.ScopedValueRequest = {"value": seconds, "live": live, "config": config}
        self.conn.call("domain.memstats_period", {"name": self.name}, body)

    # The guest agent

    def agent_command(self, command: str, *, timeout: int = -1) -> str:
        """qemu-agent-command: ``command`` as JSON text; the reply as JSON text ("" if not waited for).
        ``timeout``: seconds, -1 the default, -2 as long as it takes, 0 no wait."""
        return str(
            self.conn.call(
                "domain.agent_command", {"name": self.name}, {"command": command, "timeout": timeout}
            )["reply"]
        )

    def guest_info(self, types: list[str] | None = None) -> dict[str, Any]:
        """guestinfo's typed parameters, of the ``types`` given (user, os, ...) or of all."""
        query = {"types": ",".join(types)} if types else None
        return dict(self.conn.call("domain.guestinfo", {"name": self.name}, None, query)["params"])

    def fs_info(self) -> list[types.FSInfo]:
        return list(self.conn.call("domain.fsinfo", {"name": self.name}, None))

    def fs_freeze(self, mountpoints: list[str] | None = None) -> int:
        return int(
            self.conn.call("domain.fsfreeze", {"name": self.name}, {"mountpoints": mountpoints or []})[
                "count"
            ]
        )

    def fs_thaw(self, mountpoints: list[str] | None = None) -> int:
        body = {"mountpoints": mountpoints} if mountpoints else None
        return int(self.conn.call("domain.fsthaw", {"name": self.name}, body)["count"])

    def fs_trim(self, *, minimum: int = 0, mountpoint: str | None = None) -> None:
        body: dict[str, object] = {"minimum": minimum}
        if mountpoint is not None:
            body["mountpoint"] = mountpoint
        self.conn.call("domain.fstrim", {"name": self.name}, body)

    def set_user_password(self, user: str, password: str, *, encrypted: bool = False) -> None:
        body = {"password": password, "encrypted": encrypted}
        self.conn.call("domain.set_user_password", {"name": self.name, "user": user}, body)

    def user_ssh_keys(self, user: str) -> list[str]:
        return list(self.conn.call("domain.sshkeys", {"name": self.name, "user": user}, None)["keys"])

    def set_user_ssh_keys(
        self, user: str, keys: list[str], *, reset: bool = False, remove: bool = False
    ) -> None:
        self.conn.call(
            "domain.set_sshkeys",
            {"name": self.name, "user": user},
            {"keys": keys, "reset": reset, "remove": remove},
        )

    def guest_hostname(self, source: str | None = None) -> str:
        """domhostname, from the guest agent (the default) or a DHCP lease (``source`` "lease")."""
        return str(
            self.conn.call("domain.hostname", {"name": self.name}, None, {"source": source})["hostname"]
        )

    def guest_time(self) -> types.DomainTime:
        reply: types.DomainTime = self.conn.call("domain.time", {"name": self.name}, None)
        return reply

    def set_guest_time(self, seconds: int | None = None, nseconds: int = 0, *, sync: bool = False) -> None:
        """Set the guest's clock to ``seconds`` (since the epoch), or with ``sync`` from its RTC."""
        body: dict[str, object] = {"sync": True} if sync else {"seconds": seconds, "nseconds": nseconds}
        self.conn.call("domain.set_time", {"name": self.name}, body)

    def pm_suspend(self, target: str, *, duration: int = 0) -> types.DomainSummary:
        summary: types.DomainSummary = self.conn.call(
            "domain.pmsuspend", {"name": self.name}, {"target": target, "duration": duration}
        )
        return summary

    def pm_wakeup(self) -> types.DomainSummary:
        return self._call("domain.pmwakeup")

    # Screen, keyboard, monitor and jobs

    def screenshot(self, screen: int = 0) -> bytes:
        """screenshot: the screen as PNG."""
        import base64

        reply = self.conn.call("domain.screenshot", {"name": self.name}, None, {"screen": screen})
        return base64.b64decode(reply["data"])

    def send_key(self, keycodes: list[str], *, codeset: str = "linux", holdtime: int = 0) -> None:
        """send-key: ``keycodes`` (numbers or names) pressed together, released after ``holdtime`` ms."""
        body = {"keycodes": keycodes, "codeset": codeset, "holdtime": holdtime}
        self.conn.call("domain.send_key", {"name": self.name}, body)

    def monitor_command(self, command: str, *, hmp: bool = False) -> str:
        """qemu-monitor-command: QMP JSON text (the reply as JSON text), or with ``hmp`` an HMP line."""
        body = {"command": command, "hmp": hmp}
        return str(self.conn.call("domain.monitor_command", {"name": self.name}, body)["reply"])

    def inject_nmi(self) -> None:
        self.conn.call("domain.inject_nmi", {"name": self.name})

    def job_info(self) -> types.JobInfo:
        info: types.JobInfo = self.conn.call("domain.jobinfo", {"name": self.name})
        return info

    def abort_job(self) -> None:
        self.conn.call("domain.jobabort", {"name": self.name})

    def set_memory(
        self, kib: int, *, maximum: bool = False, live: bool = False, config: bool = False
    ) -> None:
        """setmem (the balloon, ``<currentMemory>``), or with ``maximum`` setmaxmem; neither ``live``
        nor ``config``: the current state."""
        body: types.SetMemoryRequest = {"kib": kib, "maximum": maximum, "live": live, "config": config}
        self.conn.call("domain.set_memory", {"name": self.name}, body)

    def vcpus(self, *, config: bool = False) -> types.VcpuInfo:
        """vcpucount's counts and vcpuinfo's vCPUs: of the running domain, or of the definition (while
        it does not run, or with ``config``)."""
        query = {"config": config}
        info: types.VcpuInfo = self.conn.call("domain.vcpus", {"name": self.name}, query=query)
        return info

    def set_vcpus(
        self, count: int, *, maximum: bool = False, live: bool = False, config: bool = False
    ) -> None:
        """setvcpus: live by vCPU hot-plug (up to the maximum); ``maximum``: the definition's maximum."""
        body: types.SetVcpusRequest = {"count": count, "maximum": maximum, "live": live, "config": config}
        self.conn.call("domain.set_vcpus", {"name": self.name}, body)

    def iotune(self, device: str, *, config: bool = False) -> dict[str, int | str]:
        """blkdeviotune: the running disk's I/O limits (virsh's names)."""
        params = {"name": self.name, "device": device}
        return dict(self.conn.call("domain.iotune", params, query={"config": config}))

    def set_iotune(
        self, device: str, *, live: bool = False, config: bool = False, **limits: int | str
    ) -> None:
        """blkdeviotune: set I/O limits (virsh's names: total_bytes_sec=..., group_name=...)."""
        body = {**limits, "live": live, "config": config}
        self.conn.call("domain.set_iotune", {"name": self.name, "device": device}, body)

    def iftune(self, device: str, *, config: bool = False) -> dict[str, int]:
        """domiftune: the NIC's (MAC or tap) inbound.average ... outbound.burst (KiB/s, KiB)."""
        params = {"name": self.name, "device": device}
        return dict(self.conn.call("domain.iftune", params, query={"config": config}))

    def set_iftune(
        self,
        device: str,
        *,
        inbound: types.BandwidthRates | None = None,
        outbound: types.BandwidthRates | None = None,
        live: bool = False,
        config: bool = False,
    ) -> None:
        """domiftune: set a direction's limits (average 0 clears it); a direction left None is kept."""
        body: types.IfTuneRequest = {"live": live, "config": config}
        if inbound is not None:
            body["inbound"] = inbound
        if outbound is not None:
            body["outbound"] = outbound
        self.conn.call("domain.set_iftune", {"name": self.name, "device": device}, body)

    def memtune(self, *, config: bool = False) -> dict[str, int]:
        """memtune: hard_limit, soft_limit, swap_hard_limit in KiB (UNLIMITED_KIB: none)."""
        return dict(self.conn.call("domain.memtune", {"name": self.name}, query={"config": config}))

    def set_memtune(self, *, live: bool = False, config: bool = False, **limits: int) -> None:
        """memtune: set limits in KiB (hard_limit=..., soft_limit=..., swap_hard_limit=...)."""
        self.conn.call("domain.set_memtune", {"name": self.name}, {**limits, "live": live, "config": config})

    def schedinfo(self, *, config: bool = False) -> dict[str, int]:
        """schedinfo: cpu_shares, global_period, global_quota."""
        return dict(self.conn.call("domain.schedinfo", {"name": self.name}, query={"config": config}))

    def set_schedinfo(self, *, live: bool = False, config: bool = False, **params: int) -> None:
        """schedinfo --set: cpu_shares=..., global_period=..., global_quota=... (-1: unlimited)."""
        self.conn.call(
            "domain.set_schedinfo", {"name": self.name}, {**params, "live": live, "config": config}
        )

    def iothreads(self, *, config: bool = False) -> list[types.IOThread]:
        """iothreadinfo: each I/O thread's id and CPU affinity."""
        return list(self.conn.call("domain.iothreads", {"name": self.name}, query={"config": config}))

    def pin(self, cpulist: str, *, vcpu: int | None = None, live: bool = False, config: bool = False) -> None:
        """vcpupin (``vcpu``) or emulatorpin: a libvirt CPU list, ``r`` for every host CPU."""
        body: types.PinRequest = {"cpulist": cpulist, "live": live, "config": config}
        if vcpu is not None:
            body["vcpu"] = vcpu
        self.conn.call("domain.pin", {"name": self.name}, body)


class Network:
    """A virtual network; its methods are the ``network.*`` actions."""

    def __init__(self, conn: Connection, name: str, status: types.NetworkStatus | None = None) -> None:
        self.conn = conn
        self.name = name
        self._status = status

    def __repr__(self) -> str:
        return f"<Network {self.name}>"

    def _call(self, action: str, body: object = None) -> types.NetworkStatus:
        status: types.NetworkStatus = self.conn.call(action, {"name": self.name}, body)
        return status

    def info(self, *, cached: bool = False) -> types.NetworkStatus:
        if not cached or self._status is None:
            self._status = self._call("network.info")
        return self._status

    def xml(self, *, inactive: bool = False) -> str:
        return str(self.conn.call("network.xml", {"name": self.name}, query={"inactive": inactive})["xml"])

    def start(self) -> types.NetworkStatus:
        return self._call("network.start")

    def destroy(self) -> types.NetworkStatus:
        return self._call("network.destroy")

    def set_autostart(self, enabled: bool) -> types.NetworkStatus:
        return self._call("network.autostart", {"enabled": enabled})

    def undefine(self) -> None:
        self.conn.call("network.undefine", {"name": self.name})

    def leases(self, mac: str | None = None) -> list[types.Lease]:
        return list(self.conn.call("network.leases", {"name": self.name}, query={"mac": mac}))


class Secret:
    """A secret; its methods are the ``secret.*`` actions. Values are bytes here, base64 on the wire."""

    def __init__(self, conn: Connection, uuid: str, info: types.SecretInfo | None = None) -> None:
        self.conn = conn
        self.uuid = uuid
        self._info = info

    def __repr__(self) -> str:
        return f"<Secret {self.uuid}>"

    def info(self, *, cached: bool = False) -> types.SecretInfo:
        if not cached or self._info is None:
            self._info = self.conn.call("secret.info", {"uuid": self.uuid})
        assert self._info is not None
        return self._info

    def xml(self) -> str:
        return str(self.conn.call("secret.xml", {"uuid": self.uuid})["xml"])

    def set_value(self, value: bytes) -> None:
        import base64

        self.conn.call("secret.set_value", {"uuid": self.uuid}, {"value": base64.b64encode(value).decode()})

    def value(self) -> bytes:
        import base64

        return base64.b64decode(self.conn.call("secret.get_value", {"uuid": self.uuid})["value"])

    def undefine(self) -> None:
        self.conn.call("secret.undefine", {"uuid": self.uuid})


class StoragePool:
    """A storage pool; its methods are the ``pool.*`` actions and the volume ones that make volumes."""

    def __init__(self, conn: Connection, name: str, status: types.PoolStatus | None = None) -> None:
        self.conn = conn
        self.name = name
        self._status = status

    def __repr__(self) -> str:
        return f"<StoragePool {self.name}>"

    def _call(self, action: str, body: object = None) -> types.PoolStatus:
        status: types.PoolStatus = self.conn.call(action, {"pool": self.name}, body)
        return status

    def info(self, *, cached: bool = False) -> types.PoolStatus:
        if not cached or self._status is None:
            self._status = self._call("pool.info")
        return self._status

    def xml(self, *, inactive: bool = False) -> str:
        return str(self.conn.call("pool.xml", {"pool": self.name}, query={"inactive": inactive})["xml"])

    def build(self) -> types.PoolStatus:
        return self._call("pool.build")

    def start(self) -> types.PoolStatus:
        return self._call("pool.start")

    def destroy(self) -> types.PoolStatus:
        return self._call("pool.destroy")

    def refresh(self) -> types.PoolStatus:
        return self._call("pool.refresh")

    def set_autostart(self, enabled: bool) -> types.PoolStatus:
        return self._call("pool.autostart", {"enabled": enabled})

    def undefine(self) -> None:
        self.conn.call("pool.undefine", {"pool": self.name})

    def list_volumes(self) -> list[types.VolumeInfo]:
        return list(self.conn.call("volume.list", {"pool": self.name}))

    def volume(self, name: str) -> Volume:
        """The volume ``name`` of this pool (one call; NotFound if there is none)."""
        info: types.VolumeInfo = self.conn.call("volume.info", {"pool": self.name, "vol": name})
        return Volume(self, info["name"], info)

    def _create(self, body: types.VolumeCreateRequest) -> Volume:
        info: types.VolumeInfo = self.conn.call("volume.create", {"pool": self.name}, body)
        return Volume(self, info["name"], info)

    def create_volume_xml(self, xml: str, *, prealloc_metadata: bool = False) -> Volume:
        """vol-create: a volume from its XML."""
        return self._create({"xml": xml, "prealloc_metadata": prealloc_metadata})

    def create_volume_from(
        self, xml: str, source: Volume, *, prealloc_metadata: bool = False, reflink: bool = False
    ) -> Volume:
        """Like ``vol-create-from``: a volume defined by ``xml`` holding a copy of ``source``'s content
        (with ``reflink``, sharing its blocks: raw to raw, on a copy-on-write file system)."""
        ref: types.VolumeRef = {"pool": source.pool.name, "name": source.name}
        body: types.VolumeCreateRequest = {"xml": xml, "prealloc_metadata": prealloc_metadata, "input": ref}
        if reflink:
            body["reflink"] = True
        return self._create(body)

    def create_volume(
        self,
        name: str,
        capacity: int,
        *,
        fmt: str = "qcow2",
        backing: str | None = None,
        backing_fmt: str | None = None,
    ) -> Volume:
        """Like ``vol-create-as``: ``capacity`` in bytes; ``backing`` a path or volume of this pool."""
        from xml.sax.saxutils import escape, quoteattr

        backing_xml = ""
        if backing:
            backing_xml = (
                f"<backingStore><path>{escape(backing)}</path>"
                f"<format type={quoteattr(backing_fmt or 'qcow2')}/></backingStore>"
            )
        xml = (
            f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<target><format type={quoteattr(fmt)}/></target>{backing_xml}</volume>"
        )
        return self.create_volume_xml(xml)


class Volume:
    """A storage volume; its methods are the ``volume.*`` actions on one volume."""

    def __init__(self, pool: StoragePool, name: str, info: types.VolumeInfo | None = None) -> None:
        self.pool = pool
        self.name = name
        self._info = info

    def __repr__(self) -> str:
        return f"<Volume {self.pool.name}/{self.name}>"

    @property
    def _params(self) -> dict[str, str]:
        return {"pool": self.pool.name, "vol": self.name}

    def _call(self, action: str, body: object = None) -> types.VolumeInfo:
        info: types.VolumeInfo = self.pool.conn.call(action, self._params, body)
        return info

    def info(self, *, cached: bool = False) -> types.VolumeInfo:
        if not cached or self._info is None:
            self._info = self._call("volume.info")
        return self._info

    def path(self) -> str:
        """The volume's path (its key), as the lookup read it."""
        return self.info(cached=True)["path"]

    def xml(self) -> str:
        return str(self.pool.conn.call("volume.xml", self._params)["xml"])

    def delete(self) -> None:
        self.pool.conn.call("volume.delete", self._params)

    def clone(self, name: str, *, prealloc_metadata: bool = False, reflink: bool = False) -> Volume:
        """vol-clone: a copy named ``name`` in the same pool; with ``reflink`` sharing the blocks
        (FICLONE), an error where the file system cannot."""
        body: types.VolumeCloneRequest = {"name": name, "prealloc_metadata": prealloc_metadata}
        if reflink:
            body["reflink"] = True
        info = self._call("volume.clone", body)
        return Volume(self.pool, info["name"], info)

    def resize(
        self, capacity: int, *, delta: bool = False, shrink: bool = False, allocate: bool = False
    ) -> types.VolumeInfo:
        """vol-resize: to ``capacity`` bytes, or by it with ``delta`` (down with ``shrink``)."""
        body: types.ResizeRequest = {
            "capacity": capacity,
            "delta": delta,
            "shrink": shrink,
            "allocate": allocate,
        }
        return self._call("volume.resize", body)

    def wipe(self, algorithm: str = "zero") -> types.VolumeInfo:
        """Like ``vol-wipe``: overwrite the volume (``zero``, or one of scrub's patterns such as ``nnsa``)."""
        return self._call("volume.wipe", {"algorithm": algorithm})

    def upload(self, source: int | str, *, offset: int = 0, length: int = 0, sparse: bool = False) -> int:
        """Like ``vol-upload``: write a file (a path, or an open descriptor read from its start) into
        the volume at ``offset``, at most ``length`` bytes of it (0: all); with ``sparse``, its holes
        are sent as holes. Returns the bytes written."""
        from pyvirt.client import streams

        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC) if isinstance(source, str) else source
        try:
            size = os.fstat(fd).st_size
            end = min(size, length) if length else size
            query = {"offset": offset, "length": length}
            ws = self.pool.conn.stream("volume.upload", self._params, query)
            return streams.upload(ws, fd, end, sparse=sparse)
        finally:
            if isinstance(source, str):
                os.close(fd)

    def download(self, target: int | str, *, offset: int = 0, length: int = 0, sparse: bool = False) -> int:
        """Like ``vol-download``: the volume's bytes from ``offset`` (``length`` of them; 0: to its end)
        into a file (a path, created or truncated, or an open descriptor written from its start);
        with ``sparse``, holes stay holes. Returns the bytes covered."""
        from pyvirt.client import streams

        query = {"offset": offset, "length": length, "sparse": sparse}
        ws = self.pool.conn.stream("volume.download", self._params, query)
        if not isinstance(target, str):
            return streams.download(ws, target)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError:
            ws.close()
            raise
        try:
            return streams.download(ws, fd)
        finally:
            os.close(fd)


def _usable(transport: Transport) -> bool:
    """Whether the daemon may still answer on ``transport``: not once it said ``Connection: close``
    (a refusal sent before the body was read), nor once it ended the connection (an idle one, after
    its read timeout); then the next call reconnects."""
    if transport.spent:
        return False
    sock = transport.sock
    timeout = sock.gettimeout()
    sock.setblocking(False)  # with a timeout, recv would wait for data instead of failing at once
    try:
        return sock.recv(1, _socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # open, nothing to read
    except ValueError:
        return True  # a TLS socket takes no flags: assume open
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)


def local_socket(mode: str, readonly: bool = False) -> str:
    """The daemon socket of ``mode``: pyvirt.paths' rule, in os.path terms (pathlib costs the CLI ~5 ms)."""
    root = os.environ.get("PYVIRT_ROOT")
    if root or mode == "system":
        run = os.path.join(root or "/", "run/pyvirt")
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        run = os.path.join(runtime, "pyvirt") if runtime else f"/tmp/pyvirt-{os.getuid()}"
    return os.path.join(run, "pyvirt-sock-ro" if readonly else "pyvirt-sock")


def open_transport(uri: URI, readonly: bool) -> Transport:
    if uri.transport == "unix":
        socket_path = uri.params.get("socket")
        if not socket_path:
            socket_path = local_socket(uri.mode, readonly)
        elif readonly and not socket_path.endswith("-ro"):
            socket_path += "-ro"  # read-only is the socket's property: never fall back to the main one
        return connect_unix(socket_path)
    from pyvirt.client import remote

    return remote.open_remote(uri, readonly)

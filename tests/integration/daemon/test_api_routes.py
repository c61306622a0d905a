"""Every route of the API on a real daemon, against the OpenAPI document and the read-only rules.

One daemon (in a network namespace this test makes, so that a network can run) holds a network with
a DHCP range, the default pool with volumes, and a running TCG guest with a NIC on the network, a
volume disk and a VNC display. The walk makes every call of the table twice: on the read-only socket,
where exactly the mutating and secret calls are refused, then on the read-write one, where each
succeeds and its reply is checked against the action's response schema in the OpenAPI document
(the one the daemon serves, itself equal to the generated one). Bad requests get 400s naming the
field or query parameter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pyvirt.api import openapi
from pyvirt.api.table import ACTIONS, BY_NAME
from pyvirt.api.validate import hints, resolve
from pyvirt.client.api import action_path
from pyvirt.client.transport import connect_unix
from pyvirt.client.websocket import WebSocket
from pyvirt.errors import AccessDenied
from tests.support.daemon import Console, Daemon, netns_daemon
from tests.support.guest import domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]

NET_XML = """<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='off' delay='0'/>
  <ip address='10.{n}.0.1' netmask='255.255.255.0'>
    <dhcp><range start='10.{n}.0.100' end='10.{n}.0.200'/></dhcp>
  </ip>
</network>
"""
MAC = "52:54:00:ab:00:01"
AGENT = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
# qemu-guest-agent sets passwords with chpasswd, which busybox-static lacks: one that takes the lines.
CHPASSWD = "printf '#!/bin/sh\\ncat >/dev/null\\n' >/usr/sbin/chpasswd && chmod 755 /usr/sbin/chpasswd"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    with netns_daemon("pva") as d:
        yield d


class Walk:
    """Makes each call on the read-only and the read-write connection and checks what comes back."""

    def __init__(self, daemon: Daemon) -> None:
        self.rw = daemon.connect()
        self.ro = daemon.connect(readonly=True)
        self.document = self.rw.openapi()
        self.done: set[str] = set()

    def close(self) -> None:
        self.rw.close()
        self.ro.close()

    def check_reply(self, action: str, reply: Any) -> None:
        spec = BY_NAME[action]
        operation = self.document["paths"][spec.path][spec.method.lower()]
        content = operation["responses"]["200"]["content"]
        if "application/json" not in content:  # the metrics' text format
            assert isinstance(reply, str) and reply, (action, reply)
            return
        schema = content["application/json"]["schema"]
        root = {**schema, "components": self.document["components"]}
        jsonschema.validate(reply, root, cls=jsonschema.Draft202012Validator)

    def readonly_refused(self, action: str, query: dict[str, Any] | None) -> bool:
        words = {k: "1" if v is True else str(v) for k, v in (query or {}).items() if v not in (None, False)}
        return BY_NAME[action].refused_readonly(words)

    def call(
        self,
        action: str,
        params: dict[str, str] | None = None,
        body: object = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        if self.readonly_refused(action, query):
            with pytest.raises(AccessDenied, match="read-only"):
                self.ro.call(action, params, body, query)
        else:
            self.check_reply(action, self.ro.call(action, params, body, query))
        reply = self.rw.call(action, params, body, query)
        self.check_reply(action, reply)
        self.done.add(action)
        return reply

    def fails(
        self,
        action: str,
        code: str,
        params: dict[str, str] | None = None,
        body: object = None,
        query: dict[str, Any] | None = None,
    ) -> None:
        """A call that can only fail in the walk's state (domjobabort with no job): refused on the
        read-only socket when it should be, else the error ``code`` (one the table declares) on both."""
        from pyvirt.api.table import error_codes
        from pyvirt.errors import PyvirtError

        assert code in error_codes(BY_NAME[action]), (action, code)
        connections = [self.rw]
        if self.readonly_refused(action, query):
            with pytest.raises(AccessDenied, match="read-only"):
                self.ro.call(action, params, body, query)
        else:
            connections.append(self.ro)
        for conn in connections:
            with pytest.raises(PyvirtError) as failed:
                conn.call(action, params, body, query)
            assert failed.value.code == code, (action, failed.value)
        self.done.add(action)

    def stream(
        self, action: str, params: dict[str, str] | None = None, query: dict[str, Any] | None = None
    ) -> None:
        """Open the stream on both connections (refused on the read-only one when it should be)."""
        if self.readonly_refused(action, query):
            with pytest.raises(AccessDenied, match="read-only"):
                self.ro.stream(action, params, query).close()
        else:
            self.ro.stream(action, params, query).close()
        ws: WebSocket = self.rw.stream(action, params, query)
        ws.close()
        self.done.add(action)


def test_every_route_on_both_sockets(daemon: Daemon, tmp_path: Path) -> None:
    walk = Walk(daemon)
    try:
        _walk(walk, daemon, tmp_path)
    finally:
        walk.close()
    missed = sorted({a.name for a in ACTIONS} - walk.done)
    assert not missed, f"actions the walk missed: {', '.join(missed)}"


def _walk(w: Walk, d: Daemon, tmp_path: Path) -> None:
    assert w.document == openapi.document()
    w.call("api.openapi")
    for name in ("host.version", "host.nodeinfo", "host.capabilities", "host.hostname", "host.validate"):
        w.call(name)
    for name in ("host.cpustats", "host.memstats", "host.freecells", "host.maxvcpus", "host.sysinfo"):
        w.call(name)
    assert "qemu64" in w.call("host.cpu_models", query={"arch": "x86_64"})
    w.call("host.domcapabilities", query={"virttype": "qemu"})
    for action in ("nodedev.detach", "nodedev.reattach", "nodedev.reset"):  # no such device on any host
        w.fails(
            action, "not-found", {"device": "pci_0000_fe_1f_7"}, {} if action == "nodedev.detach" else None
        )
    assert [d["name"] for d in w.call("nodedev.list", query={"cap": "system"})] == ["computer"]
    assert w.call("nodedev.info", {"device": "computer"})["persistent"] is True
    assert "<capability type='system'>" in w.call("nodedev.dumpxml", {"device": "computer"})["xml"]
    w.stream("host.events")

    # Storage: volumes for the guest's disk and the clone's source.
    w.call("pool.list")
    pool = {"pool": "default"}
    w.call("pool.info", pool)
    w.call("pool.xml", pool, query={"inactive": True})
    qcow2 = (
        "<volume><name>{}</name><capacity>16777216</capacity><target><format type='qcow2'/></target></volume>"
    )
    data = w.call("volume.create", pool, {"xml": qcow2.format("data.qcow2"), "prealloc_metadata": False})
    w.call("volume.create", pool, {"xml": qcow2.format("src.qcow2")})
    vol = {"pool": "default", "vol": "data.qcow2"}
    w.call("volume.list", pool)
    w.call("volume.info", vol)
    w.call("volume.xml", vol)
    assert w.call("volume.find", query={"path": data["path"]}) == {"pool": "default", "name": "data.qcow2"}

    # A network with DHCP, and a guest on it.
    lan = {"name": "lan"}
    w.call("network.define", body={"xml": NET_XML.format(name="lan", bridge="pva0", n=91)})
    w.call("network.start", lan)
    w.call("network.autostart", lan, {"enabled": True})
    w.call("network.list")
    w.call("network.info", lan)
    w.call("network.xml", lan, query={"inactive": True})

    volume_disk = (
        "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source pool='default' volume='data.qcow2'/><target dev='vdb' bus='virtio'/></disk>"
    )
    # vdc: top.qcow2 over mid.qcow2 over base.qcow2, for the block jobs.
    chain = [tmp_path / f"{layer}.qcow2" for layer in ("base", "mid", "top")]
    for below, layer in zip([None, *chain], chain, strict=False):
        backing = ["-b", str(below), "-F", "qcow2"] if below else []
        d.cli("img", "create", "-q", "-f", "qcow2", *backing, str(layer), "16M").ok()
    chain_disk = (
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{chain[2]}'/>"
        "<target dev='vdc' bus='virtio'/></disk>"
    )
    xml = domain_xml(
        "api1", nic_network="lan", mac=MAC, vnc=True, balloon=True,
        extra_devices=volume_disk + chain_disk + AGENT + "<video><model type='vga'/></video>",
    ).replace("<devices>", "<pm><suspend-to-mem enabled='yes'/></pm><devices>", 1)  # fmt: skip
    native = w.call("host.domxml_to_native", body={"format": "qemu-argv", "xml": xml})
    assert data["path"] in native["text"] and native["argv"][0].startswith("/")  # the volume, resolved
    w.call("domain.define", body={"xml": xml})
    dom = {"name": "api1"}
    w.call("domain.start", dom, {"paused": False})
    console = Console(d, "api1")
    try:
        console.expect(r"(?s)(?=.*agent on vport)(?=.*eth0 lease 10\.91\.0\.\d+\s)", 120)
        console.run(CHPASSWD)
    finally:
        console.close()
    w.call("domain.list")
    info = w.call("domain.info", dom)
    assert info["state"] == "running" and info["id"] is not None
    w.call("domain.xml", dom, query={"inactive": False})
    w.call("domain.xml", dom, query={"security_info": True})
    devices = w.call("domain.devices", dom)
    assert devices["vnc"] is not None and [d["target"] for d in devices["disks"]] == ["vdb", "vdc"]
    assert w.call("domain.ifaddr", dom), "no address from the lease"
    assert w.call("network.leases", lan, query={"mac": MAC})
    w.stream("domain.console", dom, {"force": True})

    # Statistics and resources.
    assert "pyvirt_domain_state" in w.call("host.metrics")
    stats = w.call("domain.stats", query={"domains": "api1", "groups": "state,block"})
    assert stats[0]["fields"]["state.state"] == 1 and stats[0]["fields"]["block.0.name"] == "vdb"
    assert w.call("domain.memstats", dom)["stats"]["actual"] == 131072
    # This daemon (in a network namespace, without the cgroup mounts) gives domains no cgroup: no
    # per-CPU figures (they are shown in tests/integration/daemon/test_tuning.py), only the CPU count.
    assert w.call("domain.cpu_stats", dom, query={"count": True})["host_cpus"] >= 1
    w.fails("domain.cpu_stats", "invalid-state", dom)
    w.call("domain.memstats_period", dom, {"value": 2, "live": True})
    w.call("domain.set_memory", dom, {"kib": 131072, "config": True})
    assert w.call("domain.vcpus", dom)["current_live"] == 1
    w.call("domain.set_vcpus", dom, {"count": 1, "config": True})
    w.call("domain.pin", dom, {"cpulist": "r", "vcpu": 0, "config": True})
    vdb = {"name": "api1", "device": "vdb"}
    w.call("domain.set_iotune", vdb, {"total_iops_sec": 1000, "group_name": "api", "live": True})
    assert w.call("domain.iotune", vdb, query={"config": False})["total_iops_sec"] == 1000
    assert w.call("domain.iothreads", dom, query={"config": False}) == []
    nic = {"name": "api1", "device": MAC}
    rates = {"average": 1000, "burst": 64}
    w.call("domain.set_iftune", nic, {"inbound": rates, "live": True, "config": True})
    assert w.call("domain.iftune", nic, query={"config": False})["inbound.average"] == 1000
    w.call("domain.set_iftune", nic, {"inbound": {"average": 0}, "live": True, "config": True})
    # On a domain of their own, never started: this daemon gives domains no cgroup, and a start with
    # <memtune> would be refused (test_tuning.py has the live side).
    tune = {"name": "apitune"}
    tune_xml = (
        "<domain type='qemu'><name>apitune</name><memory>65536</memory><os><type>hvm</type></os></domain>"
    )
    w.call("domain.define", body={"xml": tune_xml})
    w.call("domain.set_memtune", tune, {"soft_limit": 262144, "config": True})
    assert w.call("domain.memtune", tune, query={"config": True})["soft_limit"] == 262144
    w.call("domain.set_schedinfo", tune, {"cpu_shares": 512, "config": True})
    assert w.call("domain.schedinfo", tune, query={"config": False})["cpu_shares"] == 512
    w.call("domain.undefine", tune)

    # NICs: the live one's link, and one added to the definition only (no guest in the loop).
    w.call("domain.set_link", {"name": "api1", "device": MAC}, {"state": "down"})
    w.call("domain.set_link", {"name": "api1", "device": MAC}, {"state": "up"})
    added = w.call("domain.attach_interface", dom, {"type": "user", "config": True})
    w.call("domain.detach_interface", {"name": "api1", "mac": added["mac"]}, query={"config": True})
    # Devices, in the definition only (the live paths have tests of their own: test_hotplug_disks.py).
    rng = "<rng model='virtio'><backend model='random'>/dev/urandom</backend>{}</rng>"
    w.call("domain.attach_device", dom, {"xml": rng.format("<alias name='ua-rng'/>"), "config": True})
    w.call("domain.detach_device_alias", {"name": "api1", "alias": "ua-rng"}, query={"config": True})
    vnc = "<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>"
    w.call("domain.update_device", dom, {"xml": vnc, "config": True})
    rng = rng.format("")
    w.call("domain.attach_device", dom, {"xml": rng, "config": True})
    w.call("domain.detach_device", dom, {"xml": rng, "config": True})

    _walk_agent(w, d)
    _walk_screen_and_jobs(w)
    _walk_snapshots(w)
    _walk_block_jobs(w, tmp_path)

    # Lifecycle.
    w.call("domain.suspend", dom)
    w.call("domain.resume", dom)

    # Save and restore, and a managed save resumed by start (the NIC, volume disk and VNC come back).
    image = str(tmp_path / "api1.save")
    w.call("domain.save", dom, {"file": image})
    w.call("saveimage.xml", query={"file": image})
    w.call("saveimage.xml", query={"file": image, "security_info": True})
    saved = w.rw.save_image_xml(image, security_info=True)
    w.call("saveimage.define", body={"file": image, "xml": saved, "paused": True})
    w.call("saveimage.restore", body={"file": image, "running": True})
    w.call("domain.managed_save", dom, {})
    assert w.call("domain.info", dom)["managed_save"]
    managed = w.rw.domain("api1").managed_save_xml(security_info=True)
    w.call("domain.managed_save_xml", dom, query={"security_info": True})
    w.call("domain.managed_save_define", dom, {"xml": managed})
    w.call("domain.start", dom, {"bypass_cache": True})
    assert w.call("domain.info", dom)["reason"] == "restored"
    w.call("domain.managed_save", dom, {"running": True})
    assert w.call("domain.managed_save_remove", dom) == {"removed": True}
    w.call("domain.start", dom, {"force_boot": True})
    w.call("domain.reset", dom)
    w.call("domain.reboot", dom)
    w.call("domain.shutdown", dom)
    w.call("domain.destroy", dom, {"graceful": False})
    w.call("domain.autostart", dom, {"enabled": False})

    # Volume transfers, and the other volume actions.
    content = tmp_path / "content"
    content.write_bytes(b"pyvirt" * 1000)
    volume = w.rw.pool("default").volume("data.qcow2")
    with pytest.raises(AccessDenied, match="read-only"):
        w.ro.pool("default").volume("data.qcow2").upload(str(content))
    volume.upload(str(content))
    with pytest.raises(AccessDenied, match="read-only"):
        w.ro.pool("default").volume("data.qcow2").download(str(tmp_path / "nothing"))
    volume.download(str(tmp_path / "back"), length=6000)
    assert (tmp_path / "back").read_bytes() == content.read_bytes()
    w.stream("volume.upload", vol, {"offset": 0})
    w.stream("volume.download", vol, {"length": 512})
    w.call("volume.clone", vol, {"name": "copy.qcow2", "prealloc_metadata": False})
    copy = {"pool": "default", "vol": "copy.qcow2"}
    w.call("volume.resize", copy, {"capacity": 32 << 20, "shrink": False})
    w.call("volume.wipe", copy, {"algorithm": "zero"})
    w.call("volume.delete", copy)

    # A clone of a shut-off domain, then every definition removed.
    source_disk = volume_disk.replace("data.qcow2", "src.qcow2").replace("vdb", "vda")
    w.call("domain.define", body={"xml": domain_xml("src", extra_devices=source_disk)})
    clone = w.call(
        "domain.clone", body={"original": "src", "name": "src-c", "network": "none", "linked": False}
    )
    assert clone["name"] == "src-c"
    install = w.call(
        "domain.install",
        body={
            "name": "inst", "memory": {"memory": "256"}, "os_variant": {"name": "debian11"},
            "disk": [{"size": "1"}], "import_install": True, "network": [{"type": "none"}], "dry_run": True,
        },
    )  # fmt: skip
    assert install["name"] == "inst" and install["dry_run"] and not install["created"]
    w.call("domain.undefine", {"name": "src-c"}, query={"remove_storage": True})
    w.call("domain.undefine", {"name": "src"})
    w.call("domain.undefine", dom)
    w.call("network.destroy", lan)
    w.call("network.undefine", lan)

    _walk_launch(w, d, tmp_path)

    # A second pool through its whole life.
    folder = tmp_path / "p2"
    p2 = {"pool": "p2"}
    w.call(
        "pool.define",
        body={"xml": f"<pool type='dir'><name>p2</name><target><path>{folder}</path></target></pool>"},
    )
    w.call("pool.build", p2)
    w.call("pool.start", p2)
    w.call("pool.refresh", p2)
    w.call("pool.autostart", p2, {"enabled": True})
    w.call("pool.destroy", p2)
    w.call("pool.undefine", p2)

    # A secret through its whole life (its value only on the read-write socket).
    sec = {"uuid": "5b2a81f5-8403-7b23-c8d6-21ccc2f80d6f"}
    w.call("secret.define", body={"xml": f"<secret private='no'><uuid>{sec['uuid']}</uuid></secret>"})
    w.call("secret.list")
    w.call("secret.info", sec)
    w.call("secret.xml", sec)
    w.call("secret.set_value", sec, {"value": "c2VjcmV0"})
    assert w.call("secret.get_value", sec) == {"value": "c2VjcmV0"}
    w.call("secret.undefine", sec)


def _walk_agent(w: Walk, d: Daemon) -> None:
    """The guest agent's calls, on api1's qemu-guest-agent."""
    dom = {"name": "api1"}
    assert (
        "guest-ping" in w.call("domain.agent_command", dom, {"command": '{"execute":"guest-info"}'})["reply"]
    )
    w.call("domain.guestinfo", dom)
    w.call("domain.guestinfo", dom, query={"types": "os,hostname"})
    w.call("domain.hostname", dom, query={"source": "agent"})
    w.call("domain.fsinfo", dom)
    w.call("domain.fsfreeze", dom, {})
    w.call("domain.fsthaw", dom, {})
    w.call("domain.fstrim", dom, {})
    w.call("domain.time", dom)
    w.call("domain.set_time", dom, {"sync": True})
    root = {"name": "api1", "user": "root"}
    w.call("domain.set_user_password", root, {"password": "s3cret"})
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq3bm9ZbP1oW1Vr1Ux1rWfQqkYt0n0yS1k8m4b9cXyZ walk@test"
    w.call("domain.set_sshkeys", root, {"keys": [key]})
    assert key in w.call("domain.sshkeys", root)["keys"]
    w.call("domain.pmsuspend", dom, {"target": "mem"})
    d.wait_state("api1", "pmsuspended", 60)
    w.call("domain.pmwakeup", dom)
    d.wait_state("api1", "running", 60)


def _walk_screen_and_jobs(w: Walk) -> None:
    """Screen, keys, monitor, NMI, and the domain job (none running: domjobabort has nothing to stop)."""
    dom = {"name": "api1"}
    w.call("domain.screenshot", dom)
    w.call("domain.screenshot", dom, query={"screen": 0})
    w.call("domain.send_key", dom, {"keycodes": ["KEY_LEFTSHIFT"]})
    w.call("domain.monitor_command", dom, {"command": '{"execute":"query-status"}'})
    w.call("domain.monitor_command", dom, {"command": "info status", "hmp": True})
    w.call("domain.inject_nmi", dom)
    assert w.call("domain.jobinfo", dom)["type"] == "None"
    w.fails("domain.jobabort", "invalid-state", dom)


def _walk_snapshots(w: Walk) -> None:
    """An internal snapshot of the running guest (RAM and qcow2 disks) through its whole life."""
    dom = {"name": "api1"}
    w.call("snapshot.create", dom, {"xml": "<domainsnapshot><name>s1</name></domainsnapshot>"})
    snap = {"name": "api1", "snapshot": "s1"}
    assert [row["name"] for row in w.call("snapshot.list", dom)] == ["s1"]
    w.call("snapshot.list", dom, query={"roots": True, "internal": True})
    assert w.call("snapshot.info", snap)["state"] == "running"
    w.call("snapshot.xml", snap)
    w.call("snapshot.xml", snap, query={"security_info": True})
    w.call("snapshot.current", dom)
    w.call("snapshot.set_current", snap)
    w.call("snapshot.revert", snap, {"running": True})
    w.call("snapshot.delete", snap)


def _walk_block_jobs(w: Walk, tmp_path: Path) -> None:
    """vdc's chain (top over mid over base): mid committed into base, the rest pulled into top, top
    copied to a new file and pivoted to it, and grown."""
    vdc = {"name": "api1", "disk": "vdc"}
    w.call("domain.blkinfo", vdc)
    w.call("domain.blkerrors", {"name": "api1"})
    base, mid = str(tmp_path / "base.qcow2"), str(tmp_path / "mid.qcow2")
    assert w.call("domain.blockcommit", vdc, {"top": mid, "base": base})["disk"] == "vdc"
    assert _job_reaches(w, vdc, "completed")
    w.call("domain.blockpull", vdc, {})
    assert _job_reaches(w, vdc, "completed")
    w.call("domain.blockcopy", vdc, {"dest": str(tmp_path / "copy.qcow2"), "format": "qcow2"})
    w.call("domain.blockjob_speed", vdc, {"bandwidth": 0})
    assert _job_reaches(w, vdc, "ready")
    w.call("domain.blockjob_abort", vdc, {"pivot": True, "wait": True})
    w.call("domain.blockresize", vdc, {"size": 32 << 20})


def _job_reaches(w: Walk, disk: dict[str, str], state: str) -> bool:
    """Poll the disk's block job until ``state`` (a generous limit only keeps a broken job from hanging)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if w.call("domain.blockjob", disk)["state"] == state:
            return True
        time.sleep(0.3)
    return False


def _walk_launch(w: Walk, d: Daemon, tmp_path: Path) -> None:
    """A template (a blank disk imported), launched and removed."""
    blank = tmp_path / "blank.qcow2"
    d.cli("img", "create", "-q", "-f", "qcow2", str(blank), "16M").ok()
    d.cli("template", "import", "--os", "busybox", str(blank), "tpl").ok()
    launched = w.call(
        "domain.launch", body={"template": "tpl", "name": "l1", "network": "none", "memory": 64 << 20}
    )
    assert launched["state"] == "running"
    w.call("domain.destroy", {"name": "l1"}, {"graceful": False})
    w.call("domain.undefine", {"name": "l1"}, query={"remove_storage": True})
    d.cli("template", "delete", "tpl").ok()


def wrong_value(tp: Any) -> object:
    """A JSON value no field of type ``tp`` accepts."""
    return "not-a-list" if getattr(tp, "__origin__", None) is list else [1]


def valid_value(tp: Any) -> object:
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", ())
    if tp is str:
        return "x"
    if tp is bool:
        return True
    if tp is int:
        return 1
    if origin is list:
        return []
    if hasattr(tp, "__required_keys__"):
        return {k: valid_value(v) for k, v in hints(tp).items() if k in tp.__required_keys__}
    if args:  # Literal or a union: its first option
        return args[0] if not isinstance(args[0], type) else valid_value(args[0])
    raise AssertionError(f"no valid value for {tp!r}")


def raw(daemon: Daemon, method: str, path: str, body: object) -> tuple[int, dict[str, Any]]:
    """One request on a fresh connection: the status and the JSON reply."""
    from pyvirt.client import jsonwire

    transport = connect_unix(str(daemon.socket))
    try:
        transport.send_request(method, path, body)
        status, _headers, data = transport.read_response()
        return status, jsonwire.loads(data)
    finally:
        transport.close()


def test_bad_requests_name_the_field(daemon: Daemon) -> None:
    for action in ACTIONS:
        params = {name: "nothing-here" for name in action.path_params}
        path = action_path(action.name, params, None)
        if action.request is not None:
            td = resolve(action.request)
            status, reply = raw(daemon, action.method, path, {"bogus_field": 1})
            assert status == 400 and "'bogus_field'" in reply["error"]["message"], (action, reply)
            for field, tp in hints(td).items():
                body = {k: valid_value(v) for k, v in hints(td).items() if k in td.__required_keys__}
                body[field] = wrong_value(tp)
                status, reply = raw(daemon, action.method, path, body)
                assert status == 400, (action, field, reply)
                assert reply["error"]["code"] == "invalid-argument"
                assert f"'{field}" in reply["error"]["message"], (action, field, reply)
        elif action.method != "GET":
            status, reply = raw(daemon, action.method, path, {"bogus_field": 1})
            assert status == 400 and "'bogus_field'" in reply["error"]["message"], (action, reply)
        status, reply = raw(
            daemon, action.method, path + ("&" if "?" in path else "?") + "bogus_param=1", None
        )
        assert status == 400 and "'bogus_param'" in reply["error"]["message"], (action, reply)


def test_missing_objects_get_declared_errors(daemon: Daemon) -> None:
    """Every action on a domain, network, pool or volume that does not exist: an error the table
    declares for it (so the OpenAPI document lists it)."""
    from pyvirt.api.table import error_codes

    for action in ACTIONS:
        if not action.path_params or action.stream:
            continue
        path = action_path(action.name, {name: "nothing-here" for name in action.path_params}, None)
        body = valid_value(resolve(action.request)) if action.request else None
        status, reply = raw(daemon, action.method, path, body)
        assert status >= 400, (action, reply)
        assert reply["error"]["code"] in error_codes(action), (action, reply)

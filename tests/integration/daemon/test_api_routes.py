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

import subprocess
import uuid
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
from tests.support.daemon import Console, Daemon
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


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    ns = f"pva-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    d = Daemon(netns=ns)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
        subprocess.run(["ip", "netns", "del", ns], check=False)


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
    xml = domain_xml("api1", nic_network="lan", mac=MAC, vnc=True, balloon=True, extra_devices=volume_disk)
    native = w.call("host.domxml_to_native", body={"format": "qemu-argv", "xml": xml})
    assert data["path"] in native["text"] and native["argv"][0].startswith("/")  # the volume, resolved
    w.call("domain.define", body={"xml": xml})
    dom = {"name": "api1"}
    w.call("domain.start", dom, {"paused": False})
    console = Console(d, "api1")
    try:
        console.expect(r"eth0 lease (10\.91\.0\.\d+)\s", 120)
    finally:
        console.close()
    w.call("domain.list")
    info = w.call("domain.info", dom)
    assert info["state"] == "running" and info["id"] is not None
    w.call("domain.xml", dom, query={"inactive": False})
    w.call("domain.xml", dom, query={"security_info": True})
    devices = w.call("domain.devices", dom)
    assert devices["vnc"] is not None and [d["target"] for d in devices["disks"]] == ["vdb"]
    assert w.call("domain.ifaddr", dom), "no address from the lease"
    assert w.call("network.leases", lan, query={"mac": MAC})
    w.stream("domain.console", dom, {"force": True})

    # Statistics and resources.
    assert "pyvirt_domain_state" in w.call("host.metrics")
    stats = w.call("domain.stats", query={"domains": "api1", "groups": "state,block"})
    assert stats[0]["fields"]["state.state"] == 1 and stats[0]["fields"]["block.0.name"] == "vdb"
    assert w.call("domain.memstats", dom)["stats"]["actual"] == 131072
    w.call("domain.memstats_period", dom, {"value": 2, "live": True})
    w.call("domain.set_memory", dom, {"kib": 131072, "config": True})
    assert w.call("domain.vcpus", dom)["current_live"] == 1
    w.call("domain.set_vcpus", dom, {"count": 1, "config": True})
    w.call("domain.pin", dom, {"cpulist": "r", "vcpu": 0, "config": True})
    vdb = {"name": "api1", "device": "vdb"}
    w.call("domain.set_iotune", vdb, {"total_iops_sec": 1000, "group_name": "api", "live": True})
    assert w.call("domain.iotune", vdb, query={"config": False})["total_iops_sec"] == 1000
    assert w.call("domain.iothreads", dom, query={"config": False}) == []

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

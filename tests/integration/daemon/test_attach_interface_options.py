"""attach-interface's --alias, --source-mode, --script, --managed and --print-xml on a real pyvirtd and
a running TCG domain (started paused: what is checked is what QEMU gets, and the test's vhost-user
backend could not serve a guest's driver): the alias is QEMU's device id (its QOM path) and the
domain's, a vhost-user NIC's socket reaches QEMU, which negotiates with the backend, and what pyvirt
cannot honour is refused by name with nothing plugged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.guest import domain_xml
from tests.support.vhost_user_net import Backend

pytestmark = pytest.mark.slow
NAME = "aio1"


def _qmp(d: Daemon, command: str, arguments: dict[str, Any]) -> Any:
    request = {"execute": command, "arguments": arguments}
    return json.loads(d.cli("qemu-monitor-command", NAME, json.dumps(request)).ok().out)["return"]


def _peripherals(d: Daemon) -> set[str]:
    return {item["name"] for item in _qmp(d, "qom-list", {"path": "/machine/peripheral"})}


@pytest.fixture(scope="module")
def backend(module_daemon: Daemon) -> Iterator[Backend]:
    """The domain, running (paused), and a vhost-user backend listening in a folder QEMU's user reads."""
    d = module_daemon
    scratch = d.root / "aio"
    scratch.mkdir(mode=0o755)
    (scratch / f"{NAME}.xml").write_text(domain_xml(NAME))
    d.cli("define", str(scratch / f"{NAME}.xml")).ok()
    d.cli("start", NAME, "--paused").ok()
    server = Backend(scratch / "vhu.sock")
    try:
        yield server
    finally:
        d.cli("destroy", NAME)
        d.cli("undefine", NAME)
        server.close()


def test_print_xml_attaches_nothing(module_daemon: Daemon, backend: Backend) -> None:
    d = module_daemon
    args = ("vhostuser", str(backend.path), "--source-mode", "client", "--alias", "ua-vhu", "--print-xml")
    printed = d.cli("attach-interface", NAME, *args).ok().out
    assert printed == (
        "<interface type='vhostuser'>\n"
        f"  <source type='unix' path='{backend.path}' mode='client'/>\n"
        "  <alias name='ua-vhu'/>\n"
        "</interface>\n\n"
    )
    assert d.cli("attach-interface", "no-such-domain", *args).ok().out == printed  # no lookup, as virsh
    assert "vhostuser" not in d.cli("dumpxml", NAME).ok().out
    assert backend.requests == []


def test_vhostuser_with_source_mode_and_alias_reaches_qemu(module_daemon: Daemon, backend: Backend) -> None:
    d = module_daemon
    mac = "52:54:00:a1:0e:01"
    # without --model: libvirt's default NIC model (rtl8139) refused for vhostuser, in libvirt's words
    plain = d.cli("attach-interface", NAME, "vhostuser", str(backend.path), "--source-mode", "client")
    assert plain.rc == 1 and "vhostuser requires the virtio-net* frontend" in plain.err, plain.err
    vhu = ("attach-interface", NAME, "vhostuser", str(backend.path), "--model", "virtio")
    server = d.cli(*vhu, "--source-mode", "server")
    assert server.rc == 1 and "in mode 'server'" in server.err, server.err
    d.cli(
        "attach-interface", NAME, "vhostuser", str(backend.path), "--source-mode", "client",
        "--alias", "ua-vhu", "--mac", mac, "--model", "virtio",
    ).ok()  # fmt: skip
    # QEMU negotiated with the backend over the socket the daemon connected and handed over
    assert backend.requests[:2] == ["GET_FEATURES", "SET_OWNER"], backend.requests
    assert "ua-vhu" in _peripherals(d)
    path = "/machine/peripheral/ua-vhu"
    assert _qmp(d, "qom-get", {"path": path, "property": "type"}) == "virtio-net-pci"
    assert _qmp(d, "qom-get", {"path": path, "property": "mac"}) == mac
    live = d.cli("dumpxml", NAME).ok().out
    assert f"<source type='unix' path='{backend.path}' mode='client'/>" in live
    assert "<alias name='ua-vhu'/>" in live
    assert "vhostuser" not in d.cli("dumpxml", "--inactive", NAME).ok().out  # --current: live only
    chardevs = [c["label"] for c in _qmp(d, "query-chardev", {})]
    assert any(label.startswith("charnet") for label in chardevs), chardevs


def test_alias_names_the_device_in_qemu_and_the_definition(module_daemon: Daemon, backend: Backend) -> None:
    d = module_daemon
    d.cli(
        "attach-interface", NAME, "user", "-", "--model", "e1000", "--alias", "ua-nic7", "--persistent"
    ).ok()
    assert _qmp(d, "qom-get", {"path": "/machine/peripheral/ua-nic7", "property": "type"}) == "e1000"
    assert "<alias name='ua-nic7'/>" in d.cli("dumpxml", NAME).ok().out
    assert "<alias name='ua-nic7'/>" in d.cli("dumpxml", "--inactive", NAME).ok().out
    taken = d.cli("attach-interface", NAME, "user", "-", "--alias", "ua-nic7")
    assert taken.rc == 1 and "non unique alias detected: ua-nic7" in taken.err
    unprefixed = d.cli("attach-interface", NAME, "user", "-", "--alias", "nic8")  # libvirt drops it
    assert unprefixed.rc == 1 and "--alias nic8: a user alias must start with 'ua-'" in unprefixed.err


def test_script_and_managed_refused_by_name(module_daemon: Daemon, backend: Backend) -> None:
    d = module_daemon
    before = _peripherals(d)
    script = d.cli("attach-interface", NAME, "bridge", "br0", "--script", "/bin/true")
    assert script.rc == 1 and "scripts are not supported on interfaces of type bridge" in script.err
    managed = d.cli("attach-interface", NAME, "bridge", "br0", "--managed")
    assert managed.rc == 1 and "--managed" in managed.err
    hostdev = d.cli("attach-interface", NAME, "hostdev", "0000:00:19.0", "--managed")
    assert hostdev.rc == 1 and "hostdev" in hostdev.err
    assert _peripherals(d) == before


def test_a_mac_the_domain_uses_as_libvirt_takes_it(module_daemon: Daemon, backend: Backend) -> None:
    """libvirt 9.0 plugs a NIC whose MAC a plugged one has, and adds one to the definition (checked on
    its libvirtd): so does pyvirt, and detaching by that MAC is then refused in virsh's words."""
    d = module_daemon
    mac = "52:54:00:a1:0e:07"
    d.cli("attach-interface", NAME, "user", "-", "--mac", mac, "--alias", "ua-m1", "--persistent").ok()
    d.cli("attach-interface", NAME, "user", "-", "--mac", mac, "--alias", "ua-m2", "--persistent").ok()
    # QEMU has both NICs, of that MAC; so have the running domain and its definition
    assert _qmp(d, "qom-get", {"path": "/machine/peripheral/ua-m1", "property": "mac"}) == mac
    assert _qmp(d, "qom-get", {"path": "/machine/peripheral/ua-m2", "property": "mac"}) == mac
    assert d.cli("dumpxml", NAME).ok().out.count(f"<mac address='{mac}'/>") == 2
    assert d.cli("dumpxml", "--inactive", NAME).ok().out.count(f"<mac address='{mac}'/>") == 2
    ambiguous = d.cli("detach-interface", NAME, "user", "--mac", mac, "--config")
    assert ambiguous.rc == 1
    assert ambiguous.err == (
        f"error: Domain has multiple interfaces matching MAC address {mac}. You must use detach-device "
        "and specify the device pci address to remove it.\nerror: Failed to detach interface\n"
    )

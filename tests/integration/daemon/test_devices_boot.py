"""Devices of libvirt's XML on one real TCG guest: a watchdog whose ``dump`` action fires, a smartcard
reader passing a card through a socket, and the QEMU namespace's command line and environment.

The guest boots once for the module; each test looks at one device.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Console, Daemon
from tests.support.guest import domain_xml

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
NAME = "devs1"
NS = "http://libvirt.org/schemas/domain/qemu/1.0"
DEVICES = """
<watchdog model='ib700' action='dump'/>
<smartcard mode='passthrough' type='unix'>
  <source mode='bind' path='{card}'/><alias name='ua-card'/>
</smartcard>
"""
QEMU_NS = """
<qemu:commandline>
  <qemu:arg value='-object'/><qemu:arg value='secret,id=nssecret,data=from-the-xml'/>
  <qemu:env name='PYVIRT_NS_TEST' value='ns'/><qemu:env name='PYVIRT_NS_EMPTY'/>
</qemu:commandline>
<qemu:override>
  <qemu:device alias='ua-card'><qemu:frontend>
    <qemu:property name='debug' type='unsigned' value='3'/>
  </qemu:frontend></qemu:device>
</qemu:override>
"""


def _qmp(d: Daemon, command: str, arguments: dict[str, Any] | None = None) -> Any:
    request: dict[str, Any] = {"execute": command}
    if arguments is not None:
        request["arguments"] = arguments
    return json.loads(d.cli("qemu-monitor-command", NAME, json.dumps(request)).ok().out)["return"]


@pytest.fixture(scope="module")
def guest(module_daemon: Daemon) -> Iterator[Console]:
    d = module_daemon
    scratch = d.root / "scratch"
    scratch.mkdir(mode=0o755)
    path = scratch / f"{NAME}.xml"
    xml = domain_xml(NAME, extra_devices=DEVICES.format(card=scratch / "card.sock"))
    xml = xml.replace("<domain ", f"<domain xmlns:qemu='{NS}' ", 1).replace(
        "</domain>", QEMU_NS + "</domain>"
    )
    path.write_text(xml)
    d.cli("define", str(path)).ok()
    d.cli("start", NAME).ok()
    console = Console(d, NAME)
    console.expect(READY)
    try:
        yield console
    finally:
        console.close()
        d.cli("destroy", NAME)


def test_watchdog_dump_writes_guest_memory_and_resumes(module_daemon: Daemon, guest: Console) -> None:
    d = module_daemon
    dump_dir = d.root / "var/lib/pyvirt/qemu/dump"
    assert "-watchdog-action pause" in (d.root / f"var/log/pyvirt/qemu/{NAME}.log").read_text()
    # The ib700 is armed by writing a timeout index to its I/O port 0x443 (14: two seconds); the
    # guest has no driver for it, so /dev/port does it, and nothing pets it afterwards.
    # The guest sleeps past the timeout (both count the guest's virtual time); the dump done, the
    # daemon resumes it and it answers.
    arm = "printf '\\016' | dd of=/dev/port bs=1 seek=1091 count=1 2>/dev/null"
    assert guest.run(f"{arm}; sleep 6; echo alive-after-dump", timeout=180) == "alive-after-dump"
    dumps = list(dump_dir.glob(f"{NAME}-*")) if dump_dir.exists() else []
    assert len(dumps) == 1, f"expected one dump in {dump_dir}: {dumps}"
    with dumps[0].open("rb") as f:
        assert f.read(4) == b"\x7fELF"  # dump-guest-memory's ELF core
    assert dumps[0].stat().st_size > 100 * 1024 * 1024  # the guest's 128 MiB of RAM
    assert d.state(NAME) == "running"
    assert "memory dumped to" in d.log.read_text()


def test_smartcard_passthrough_reader_and_socket(module_daemon: Daemon, guest: Console) -> None:
    d = module_daemon
    peripherals = {item["name"] for item in _qmp(d, "qom-list", {"path": "/machine/peripheral"})}
    assert {"ccid0", "ua-card"} <= peripherals, peripherals
    card = _qmp(d, "qom-get", {"path": "/machine/peripheral/ua-card", "property": "type"})
    assert card == "ccid-card-passthru"
    # The daemon listens on the card's socket for QEMU: a vscclient can connect there.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(d.root / "scratch/card.sock"))
    dumped = d.cli("dumpxml", NAME).ok().out
    assert "<smartcard mode='passthrough' type='unix'>" in dumped


def test_emulated_smartcard_without_its_database_is_refused_at_start(
    module_daemon: Daemon, tmp_path: Path
) -> None:
    d = module_daemon
    card = (
        "<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate>"
        "<certificate>c</certificate><database>/nonexistent/nssdb</database></smartcard>"
    )
    path = tmp_path / "sc2.xml"
    path.write_text(domain_xml("sc2", extra_devices=card))
    d.cli("define", str(path)).ok()
    result = d.cli("start", "sc2")
    assert result.rc == 1
    assert "smartcard mode 'host-certificates' needs the NSS database /nonexistent/nssdb" in result.err
    assert d.state("sc2") == "shut off"


def test_qemu_namespace_argv_env_override_and_taint(module_daemon: Daemon, guest: Console) -> None:
    d = module_daemon
    objects = {item["name"] for item in _qmp(d, "qom-list", {"path": "/objects"})}
    assert "nssecret" in objects  # <qemu:arg>s reached QEMU's command line
    environ = Path(f"/proc/{d.qemu_pids()[NAME]}/environ").read_bytes().split(b"\0")
    assert b"PYVIRT_NS_TEST=ns" in environ and b"PYVIRT_NS_EMPTY=" in environ
    debug = _qmp(d, "qom-get", {"path": "/machine/peripheral/ua-card", "property": "debug"})
    assert debug == 3  # the override set the card's property
    info = d.cli("dominfo", NAME).ok().out
    assert "Messages:       tainted: custom configuration parameters specified" in info
    assert "tainted: custom device configuration" in info
    log = (d.root / f"var/log/pyvirt/qemu/{NAME}.log").read_text()
    assert "is tainted: custom-argv" in log and "is tainted: custom-device" in log
    dumped = d.cli("dumpxml", NAME).ok().out
    assert "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" in dumped
    assert "<qemu:env name='PYVIRT_NS_EMPTY'/>" in dumped
    assert "<qemu:property name='debug' type='unsigned' value='3'/>" in dumped

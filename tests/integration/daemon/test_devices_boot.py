"""Devices of libvirt's XML on one real TCG guest: a watchdog whose ``dump`` action fires (with its
events), a smartcard reader passing a card through a socket, a NIC whose frames go over a TCP socket
(``type='server'``), a serial port on a FIFO pair (``type='pipe'``), the QEMU
namespace's command line and environment, and a VNC password whose
``passwdValidTo`` has passed; displays this host cannot open and vhost-user NICs without a backend
refused by name at start.

The guest boots once for the module; each test looks at one device.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyvirt.qemu.graphics import free_port
from tests.support.daemon import Console, Daemon
from tests.support.events import listening, read_until, watch
from tests.support.guest import domain_xml
from tests.support.vhost_user_net import Backend

pytestmark = pytest.mark.slow
READY = r"pyvirt-guest: ready"
NAME = "devs1"
NS = "http://libvirt.org/schemas/domain/qemu/1.0"
DEVICES = """
<watchdog model='ib700' action='dump'/>
<graphics type='vnc' autoport='yes' passwd='s3cret' passwdValidTo='2011-05-31T16:11:22'/>
<interface type='server'><mac address='52:54:00:5e:00:02'/><source address='127.0.0.1' port='{port}'/>
  <model type='virtio'/></interface>
<serial type='pipe'><source path='{pipe}'/><target port='1'/></serial>
<smartcard mode='passthrough' type='unix'>
  <source mode='bind' path='{card}'/><alias name='ua-card'/>
</smartcard>
"""
QEMU_NS = """
<qemu:commandline>
  <qemu:arg value='-object'/><qemu:arg value='secret,id=nssecret,data=from-the-xml'/>
  <qemu:env name='PYVIRT_NS_TEST' value='ns'/><qemu:env name='PYVIRT_NS_EMPTY'/>
  <qemu:env name='LC_ALL' value='C.UTF-8'/>
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


def _refused_at_start(d: Daemon, xml: str, name: str, message: str) -> None:
    """The domain defined from ``xml`` is refused at start with ``message`` and left shut off."""
    d.define(xml)
    try:
        result = d.cli("start", name)
        assert result.rc == 1 and message in result.err, result.err
        assert d.state(name) == "shut off"
    finally:
        d.cli("undefine", name).ok()


@pytest.fixture(scope="module")
def guest(module_daemon: Daemon) -> Iterator[Console]:
    d = module_daemon
    scratch = d.root / "scratch"
    scratch.mkdir(mode=0o755)
    path = scratch / f"{NAME}.xml"
    port = free_port("127.0.0.1")
    (scratch / "port").write_text(str(port))
    for end in ("in", "out"):
        os.mkfifo(scratch / f"pipe.{end}", 0o600)  # handed to QEMU's user at start
    devices = DEVICES.format(card=scratch / "card.sock", port=port, pipe=scratch / "pipe")
    xml = domain_xml(NAME, extra_devices=devices)
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
    watcher = watch(d, "--all", "--domain", NAME)
    try:
        listening(d, watcher, NAME, d.root / "scratch")
        # The ib700 is armed by writing a timeout index to its I/O port 0x443 (14: two seconds); the
        # guest has no driver for it, so /dev/port does it, and nothing pets it afterwards.
        # The guest sleeps past the timeout (both count the guest's virtual time); the dump done, the
        # daemon resumes it and it answers.
        arm = "printf '\\016' | dd of=/dev/port bs=1 seek=1091 count=1 2>/dev/null"
        assert guest.run(f"{arm}; sleep 6; echo alive-after-dump", timeout=180) == "alive-after-dump"
        seen = read_until(watcher, b"Resumed Unpaused\n").decode()
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait()
    # libvirt's order: the watchdog event with QEMU's action (a dump runs QEMU's pause), the pause, the resume
    events = seen[seen.index(f"event 'watchdog' for domain '{NAME}'") :].splitlines()
    assert events == [
        f"event 'watchdog' for domain '{NAME}': pause",
        f"event 'lifecycle' for domain '{NAME}': Suspended Watchdog",
        f"event 'lifecycle' for domain '{NAME}': Resumed Unpaused",
    ], seen
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


def test_emulated_smartcard_without_its_database_is_refused_at_start(module_daemon: Daemon) -> None:
    d = module_daemon
    card = (
        "<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate>"
        "<certificate>c</certificate><database>/nonexistent/nssdb</database></smartcard>"
    )
    d.define(domain_xml("sc2", extra_devices=card))
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
    assert b"LC_ALL=C.UTF-8" in environ and b"LC_ALL=C" not in environ  # the domain's value wins (libvirt)
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


def _vnc_auth(port: int, password: str) -> bool:
    """Whether QEMU's VNC server accepts ``password`` (RFB 3.8, VNC authentication)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        stream = sock.makefile("rwb")
        assert stream.read(12) == b"RFB 003.008\n"
        stream.write(b"RFB 003.008\n")
        stream.flush()
        count = stream.read(1)[0]
        assert 2 in stream.read(count)  # VNC authentication offered: the display has a password
        stream.write(b"\x02")
        stream.flush()
        challenge = stream.read(16)
        # VNC's DES key is the password with each byte's bits reversed
        key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode().ljust(8, b"\0")[:8])
        encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
        stream.write(encryptor.update(challenge) + encryptor.finalize())
        stream.flush()
        return stream.read(4) == b"\0\0\0\0"


def test_vnc_password_expired_by_passwd_valid_to(module_daemon: Daemon, guest: Console) -> None:
    d = module_daemon
    port = int(_qmp(d, "query-vnc")["service"])
    assert not _vnc_auth(port, "s3cret")  # valid until 2011: expired at start
    graphics = d.root / "scratch/vnc.xml"
    graphics.write_text("<graphics type='vnc' autoport='yes' passwd='n3w'/>")
    d.cli("update-device", NAME, str(graphics), "--live").ok()
    assert _vnc_auth(port, "n3w")  # a new password without a limit: accepted
    assert "passwdValidTo='2011-05-31T16:11:22'" in d.cli("dumpxml", NAME, "--inactive").ok().out


@pytest.mark.parametrize(
    ("graphics", "message"),
    [
        ("<graphics type='sdl' display=':0'/>", "graphics type 'sdl' needs QEMU's ui-sdl.so module"),
        (
            "<graphics type='egl-headless'/>",
            "graphics type 'egl-headless' with OpenGL needs a DRM render node",
        ),
        (
            "<graphics type='spice' autoport='yes'>"
            "<gl enable='yes' rendernode='/dev/dri/renderD200'/></graphics>",
            "graphics type 'spice' with OpenGL: this host has no render node /dev/dri/renderD200",
        ),
        (
            "<video><model type='virtio'><acceleration accel3d='yes'/></model></video>",
            "video with accel3d='yes' needs a display with OpenGL",
        ),
    ],
)
def test_displays_this_host_cannot_open_are_refused_at_start(
    module_daemon: Daemon, graphics: str, message: str
) -> None:
    d = module_daemon
    if "'sdl'" in message and Path("/usr/lib/x86_64-linux-gnu/qemu/ui-sdl.so").exists():
        pytest.skip("this host has QEMU's SDL display")
    if "needs a DRM render node" in message and any(Path("/dev/dri").glob("renderD*")):
        pytest.skip("this host has a DRM render node")
    _refused_at_start(d, domain_xml("gfx1", extra_devices=graphics), "gfx1", message)


GUEST_MAC = bytes.fromhex("5254005e0002")
OUR_MAC = bytes.fromhex("020000000001")


def _arp_request() -> bytes:
    """Who has 10.77.0.2? Tell 10.77.0.1 (from OUR_MAC)."""
    arp = (
        bytes.fromhex("0001080006040001")
        + OUR_MAC
        + bytes([10, 77, 0, 1])
        + b"\0" * 6
        + bytes([10, 77, 0, 2])
    )
    return b"\xff" * 6 + OUR_MAC + b"\x08\x06" + arp


def test_server_socket_nic_carries_the_guests_frames(module_daemon: Daemon, guest: Console) -> None:
    d = module_daemon
    port = int((d.root / "scratch/port").read_text())
    guest.run("ip addr add 10.77.0.2/24 dev eth0 && ip link set eth0 up")
    # QEMU's socket netdev: each Ethernet frame as a 4-byte big-endian length and the frame
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        stream = sock.makefile("rwb")
        frame = _arp_request()
        stream.write(len(frame).to_bytes(4, "big") + frame)
        stream.flush()
        for _ in range(50):  # the guest may send other frames first (IPv6 neighbour discovery)
            reply = stream.read(int.from_bytes(stream.read(4), "big"))
            if reply[12:14] == b"\x08\x06" and reply[20:22] == b"\0\x02":
                break
        else:
            raise AssertionError("no ARP reply from the guest")
    assert reply[:6] == OUR_MAC and reply[6:12] == GUEST_MAC
    assert reply[28:32] == bytes([10, 77, 0, 2])  # the guest's address, answered over the socket


@pytest.mark.parametrize(
    ("memory", "mode", "message"),
    [
        ("<memoryBacking><access mode='shared'/></memoryBacking>", "server", "in mode 'server'"),
        ("<memoryBacking><access mode='shared'/></memoryBacking>", "client", "no vhost-user backend listens"),
    ],
)
def test_vhostuser_nic_start_refusals(
    module_daemon: Daemon, tmp_path: Path, memory: str, mode: str, message: str
) -> None:
    d = module_daemon
    nic = (
        f"<interface type='vhostuser'><source type='unix' path='{tmp_path}/vhu.sock' mode='{mode}'/>"
        "<model type='virtio'/></interface>"
    )
    xml = domain_xml("vhu1", extra_devices=nic).replace("<vcpu>", memory + "<vcpu>", 1)
    _refused_at_start(d, xml, "vhu1", message)


def test_vhostuser_nic_without_shared_memory_starts_as_libvirt_starts_it(module_daemon: Daemon) -> None:
    """libvirt 9.0 starts a vhost-user NIC on plain guest RAM (the NIC fails only once the guest's
    driver starts it): QEMU starts and negotiates with the backend, the daemon's log warns. Paused: the
    guest never starts the NIC, which the test backend could not serve."""
    d = module_daemon
    scratch = d.root / "vhu"
    scratch.mkdir(mode=0o755, exist_ok=True)
    backend = Backend(scratch / "vhu.sock")
    nic = (
        f"<interface type='vhostuser'><source type='unix' path='{backend.path}' mode='client'/>"
        "<model type='virtio'/></interface>"
    )
    d.define(domain_xml("vhu2", extra_devices=nic))
    try:
        d.cli("start", "vhu2", "--paused").ok()
        assert d.state("vhu2") == "paused"
        assert backend.requests[:2] == ["GET_FEATURES", "SET_OWNER"], backend.requests  # QEMU's start
        assert "the guest's memory is not shared" in d.log.read_text()
        argv = (d.root / "var/log/pyvirt/qemu/vhu2.log").read_text()
        assert '"type":"vhost-user"' in argv and "share=on" not in argv  # plain RAM, as libvirt's
    finally:
        d.cli("destroy", "vhu2")
        d.cli("undefine", "vhu2").ok()
        backend.close()


def test_pipe_serial_carries_both_ways(module_daemon: Daemon, guest: Console) -> None:
    """<serial type='pipe'>: QEMU on PATH.in and PATH.out, the guest's ttyS1 writing into one and
    reading from the other."""
    scratch = module_daemon.root / "scratch"
    guest.run("exec 3<>/dev/ttyS1; stty -F /dev/ttyS1 raw -echo")  # open: its input is kept
    guest.run("echo from-guest > /dev/ttyS1")
    out = os.open(scratch / "pipe.out", os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = b""
        while b"from-guest" not in data and select.select([out], [], [], 30)[0]:
            data += os.read(out, 4096)
        assert b"from-guest" in data, data
    finally:
        os.close(out)
    into = os.open(scratch / "pipe.in", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(into, b"to-guest")
    finally:
        os.close(into)
    assert guest.run("head -c 8 <&3; exec 3<&-") == "to-guest"


def test_two_nics_with_one_mac_defined_and_ambiguous_lookups_refused(module_daemon: Daemon) -> None:
    """libvirt 9.0 defines two NICs sharing a MAC address; a NIC named by that MAC is ambiguous."""
    d = module_daemon
    nic = "<interface type='user'><mac address='52:54:00:5e:00:09'/><model type='virtio'/></interface>"
    d.define(domain_xml("mac2", extra_devices=nic * 2))
    try:
        assert d.cli("dumpxml", "mac2").ok().out.count("52:54:00:5e:00:09") == 2
        result = d.cli("detach-interface", "mac2", "user", "--mac", "52:54:00:5e:00:09", "--config")
        assert result.rc == 1 and (  # virsh 9.0's words
            "Domain has multiple interfaces matching MAC address 52:54:00:5e:00:09. You must use "
            "detach-device and specify the device pci address to remove it." in result.err
        ), result.err
        result = d.cli("domif-setlink", "mac2", "52:54:00:5e:00:09", "down", "--config")
        assert result.rc == 1 and "multiple devices matching MAC address" in result.err
        assert d.cli("dumpxml", "mac2").ok().out.count("52:54:00:5e:00:09") == 2  # nothing changed
    finally:
        d.cli("undefine", "mac2").ok()

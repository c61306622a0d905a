"""The screen, keyboard and monitor of a real TCG guest through a real pyvirtd: domdisplay, screenshot
(a PNG whose pixels show the text console, and change as keys are typed), send-key in five codesets
typing onto the guest's VGA console and --holdtime seen in the guest's evdev timestamps,
qemu-monitor-command (QMP and HMP), inject-nmi, domjobinfo/domjobabort with no job and on a save held
before its switch-over, and console --devname on a virtio console."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemon import BIN, Console, Daemon
from tests.support.guest import domain_xml
from tests.support.png import read_png

pytestmark = pytest.mark.slow

READY = "pyvirt-guest: ready"
EXTRA = "<video><model type='vga'/></video><console type='pty'><target type='virtio'/></console>"


def pixels(path: Path) -> tuple[int, int, set[bytes], list[bytes]]:
    width, height, bpp, rows = read_png(path.read_bytes())
    colours = {row[x : x + bpp] for row in rows[::4] for x in range(0, len(row), bpp * 4)}
    return width, height, colours, rows


def test_screen_keys_and_monitor(daemon: Daemon, tmp_path: Path) -> None:
    xml = tmp_path / "kb1.xml"
    text = domain_xml("kb1", vnc=True, extra_devices=EXTRA)
    xml.write_text(text.replace("<graphics ", "<graphics passwd='s3cret' ", 1))
    daemon.cli("define", str(xml)).ok()
    daemon.cli("start", "kb1").ok()
    console = Console(daemon, "kb1")
    console.expect(READY, 180)

    # domdisplay: the VNC display as a URI (vncdisplay's display number); the password on request.
    display = daemon.cli("vncdisplay", "kb1").ok().out.strip().rsplit(":", 1)[1]
    assert daemon.cli("domdisplay", "kb1").ok().out == f"vnc://127.0.0.1:{display}\n"
    assert (
        daemon.cli("domdisplay", "kb1", "--include-password").ok().out
        == f"vnc://:s3cret@127.0.0.1:{display}\n"
    )
    assert (
        daemon.cli("domdisplay", "kb1", "--type", "vnc", "--all").ok().out == f"vnc://127.0.0.1:{display}\n\n"
    )
    result = daemon.cli("domdisplay", "kb1", "--type", "spice")
    assert result.rc == 1 and result.err == "error: No graphical display with type 'spice' found\n"

    # A reader on the VGA console's tty: what send-key types lands there (and is echoed on screen).
    console.send("(head -n1 /dev/tty1 > /tmp/typed; echo TYPED-DONE) &\n")
    console.run("true")
    before = tmp_path / "before.png"
    out = daemon.cli("screenshot", "kb1", "--file", str(before)).ok().out
    assert out == f"Screenshot saved to {before}, with type of image/png\n"
    width, height, colours, rows_before = pixels(before)
    assert (width, height) == (720, 400) or width >= 640, (width, height)  # VGA text mode, or graphics
    assert len(colours) > 1, "the screenshot is one flat colour: no text console in it"

    # send-key: one key per call (keys of one call are pressed together), a codeset each.
    daemon.cli("send-key", "kb1", "KEY_H").ok()  # linux, by name
    daemon.cli("send-key", "kb1", "--codeset", "usb", "0x0c").ok()  # usb: i
    daemon.cli("send-key", "kb1", "--codeset", "qnum", "0x2d").ok()  # qnum: x
    daemon.cli("send-key", "kb1", "--codeset", "win32", "VK_LSHIFT", "VK_A").ok()  # shift+a together
    daemon.cli("send-key", "kb1", "--codeset", "xt", "--holdtime", "50", "--keycode", "0x1c").ok()  # Enter
    console.expect("TYPED-DONE", 60)
    assert console.run("cat /tmp/typed") == "hixA"
    after = tmp_path / "after.png"
    daemon.cli("screenshot", "kb1", "--file", str(after), "--screen", "0").ok()
    assert pixels(after)[3] != rows_before, "typing changed nothing on the screen"

    held_in_the_guest(daemon, console)

    # Bad keys and screens: clear errors.
    result = daemon.cli("send-key", "kb1", "KEY_BOGUS")
    assert result.rc == 1 and result.err == "error: invalid keycode: 'KEY_BOGUS'\n"
    result = daemon.cli("send-key", "kb1", "--codeset", "klingon", "1")
    assert result.rc == 1 and result.err == "error: unknown codeset: 'klingon'\n"
    # No --file: virsh's name, DOMAIN-DATE-TIME.png, in the current directory.
    shots = tmp_path / "shots"
    shots.mkdir()
    out = daemon.cli("screenshot", "kb1", cwd=shots).ok().out
    match = re.fullmatch(
        r"Screenshot saved to (kb1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.png), with type of image/png\n", out
    )
    assert match, out
    assert [p.name for p in shots.iterdir()] == [match.group(1)] and pixels(shots / match.group(1))[0] > 0
    result = daemon.cli("screenshot", "kb1", "--file", str(tmp_path / "x.png"), "--screen", "3")
    assert result.rc == 1 and "no screen with index 3" in result.err
    assert not (tmp_path / "x.png").exists()

    # qemu-monitor-command: QMP (compact, --pretty, --return-value), HMP, and QEMU's error reply.
    out = daemon.cli("qemu-monitor-command", "kb1", '{"execute":"query-status"}').ok().out
    assert re.fullmatch(r'\{"return":\{"status":"running","singlestep":false,"running":true\}\}\n\n', out), (
        out
    )
    out = daemon.cli("qemu-monitor-command", "kb1", "--pretty", '{"execute":"query-status"}').ok().out
    assert out.startswith('{\n  "return": {\n    "status": "running",'), out
    out = daemon.cli("qemu-monitor-command", "kb1", "--return-value", '{"execute":"query-name"}').ok().out
    assert out == '{"name":"kb1"}\n', out
    out = daemon.cli("qemu-monitor-command", "kb1", "--hmp", "info", "status").ok().out
    assert out.startswith("VM status: running"), out
    out = daemon.cli("qemu-monitor-command", "kb1", '{"execute":"no-such-command"}').ok().out
    assert re.fullmatch(r'\{"error":\{"class":"CommandNotFound","desc":"[^"]+"\}\}\n\n', out), out
    # A command's own "id": libvirt 9.0 adds one to each command it sends and refuses a second.
    for ident in ('"x"', "7"):
        result = daemon.cli("qemu-monitor-command", "kb1", f'{{"execute":"query-status","id":{ident}}}')
        assert (result.rc, result.out) == (1, ""), result
        assert result.err == "error: internal error: Unable to append command 'id' string\n", result.err
    for flag in ("--pretty", "--return-value"):  # HMP replies are text: nothing to pretty-print or extract
        result = daemon.cli("qemu-monitor-command", "kb1", "--hmp", flag, "info", "status")
        assert result.rc == 1 and result.err == f"error: Options --hmp and {flag} are mutually exclusive\n"
    result = daemon.cli("qemu-monitor-command", "kb1", "--pass-fds", "3", '{"execute":"query-status"}')
    assert result.rc == 1 and "--pass-fds" in result.err

    # inject-nmi: the guest's kernel sees the NMI.
    daemon.cli("inject-nmi", "kb1").ok()
    assert "NMI" in console.run("dmesg | grep -i nmi | tail -n 3")

    # domjobinfo/domjobabort: no job.
    assert daemon.cli("domjobinfo", "kb1").ok().out == "Job type:         None        \n\n"
    assert daemon.cli("domjobinfo", "kb1", "--rawstats").ok().out.startswith("Job type: 0\n")
    result = daemon.cli("domjobabort", "kb1")
    assert result.rc == 1 and "no job is active on the domain" in result.err
    for flag in ("--completed", "--keep-completed", "--anystats"):  # no finished job is kept to show
        result = daemon.cli("domjobinfo", "kb1", flag)
        assert result.rc == 1 and flag in result.err
    result = daemon.cli("domjobabort", "kb1", "--postcopy")
    assert result.rc == 1 and "--postcopy" in result.err

    # domjobinfo/domjobabort on a real job: a save held before its switch-over (QEMU's
    # pause-before-switchover, set through the monitor) shows its progress; domjobabort cancels it, the
    # guest runs on and no image is left.
    capability = {"capability": "pause-before-switchover", "state": True}
    command = {"execute": "migrate-set-capabilities", "arguments": {"capabilities": [capability]}}
    daemon.cli("qemu-monitor-command", "kb1", json.dumps(command)).ok()
    image = tmp_path / "kb1.save"
    saving = subprocess.Popen(
        [str(BIN / "pyvirt"), "save", "kb1", str(image)],
        env=daemon.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, deadline = "", time.monotonic() + 120
    while not ("Operation:        Save" in out and "Data total:" in out):  # until the save has begun
        assert saving.poll() is None and time.monotonic() < deadline, (out, saving.poll())
        out = daemon.cli("domjobinfo", "kb1").ok().out
    assert re.match(  # then libvirt's memory lines (compared with virsh's in test_libvirt_jobs_oracle.py)
        r"Job type:         Unbounded   \nOperation:        Save        \nTime elapsed:     \d+ +ms\n"
        r"Data processed:   \d+\.\d{3} [KMG]?i?B\nData remaining:   \d+\.\d{3} [KMG]?i?B\n"
        r"Data total:       \d+\.\d{3} [KMG]iB\nMemory processed: ",
        out,
    ), out
    assert "\nConstant pages:   " in out and "\nExpected downtime: " in out and out.endswith(" ms\n\n"), out
    raw = daemon.cli("domjobinfo", "kb1", "--rawstats").ok().out
    assert raw.startswith("Job type: 2\n\noperation: 2\ntime_elapsed: ") and "\ndata_total: " in raw, raw
    assert daemon.cli("domstate", "kb1", "--reason").ok().out == "paused (saving)\n\n"
    daemon.cli("domjobabort", "kb1").ok()
    _, err = saving.communicate(timeout=120)
    assert saving.returncode == 1 and "migration cancelled" in err, err
    assert daemon.cli("domstate", "kb1", "--reason").ok().out == "running (save canceled)\n\n"
    assert not image.exists()
    assert daemon.cli("domjobinfo", "kb1").ok().out == "Job type:         None        \n\n"
    assert console.run("echo still-$((1+1))") == "still-2"

    # console --devname console1: the virtio console (the guest's hvc0), beside the serial one.
    conn = daemon.connect()
    hvc = conn.domain("kb1").console(devname="console1")
    console.send("echo from-hvc0 > /dev/hvc0\n")
    seen = b""
    while b"from-hvc0" not in seen:
        message = hvc.receive(timeout=60)
        assert isinstance(message, bytes), message
        seen += message
    hvc.close()
    conn.close()
    console.close()
    daemon.cli("destroy", "kb1").ok()


def held_in_the_guest(daemon: Daemon, console: Console) -> None:
    """send-key --holdtime as the guest sees it: the PS/2 keyboard's press and release events, read
    from its evdev device with the guest kernel's timestamps, are --holdtime apart (QEMU's default hold
    is 100 ms). (The emulated keyboard has no typematic repeat, so a held key does not repeat.)"""
    devices = console.run("cat /proc/bus/input/devices")
    block = next(b for b in devices.split("\n\n") if "AT Translated Set 2 keyboard" in b)
    event = re.search(r"Handlers=.*\b(event\d+)", block)
    assert event, block
    console.send(
        f"(dd if=/dev/input/{event.group(1)} of=/tmp/ev bs=24 count=12 2>/dev/null; echo EV-DONE) &\n"
    )
    console.run("true")
    daemon.cli("send-key", "kb1", "KEY_LEFTSHIFT").ok()  # no character: nothing typed on the tty
    daemon.cli("send-key", "kb1", "--holdtime", "1000", "KEY_LEFTSHIFT").ok()
    console.expect("EV-DONE", 120)
    raw = bytes.fromhex("".join(console.run("od -A n -v -t x1 /tmp/ev").split()))
    events = [struct.unpack_from("<qqHHi", raw, offset) for offset in range(0, len(raw), 24)]
    shift = [(sec + usec / 1e6, value) for sec, usec, kind, code, value in events if (kind, code) == (1, 42)]
    assert [value for _, value in shift] == [1, 0, 1, 0], events  # press, release, twice
    default, held = shift[1][0] - shift[0][0], shift[3][0] - shift[2][0]
    assert held >= 0.95 and held > default, (default, held)  # QEMU releases it no sooner

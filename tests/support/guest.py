"""The project's test guest: find (or build) it, describe it as libvirt domain XML, boot it with QEMU.

The guest is built by ``scripts/build-test-guest.sh`` into ``$GUEST_DIR`` (``<repo>/.cache/test-guest``):
Debian's kernel, a busybox initramfs and an ext4 qcow2 disk. Its serial console speaks a tiny protocol:

* ``pyvirt-guest: ready`` once boot is complete; a root shell with the prompt ``guest# `` follows;
* ``pyvirt-guest: power button`` when an ACPI power-button event arrives (then it syncs and powers off);
* ``pyvirt-guest: eth0 lease 10.0.2.15`` when DHCP configured an interface.

``echo c > /proc/sysrq-trigger`` panics it (with a pvpanic device QEMU then reports GUEST_PANICKED).

Typical use in a product test::

    art = guest_artifacts()
    disk = copy_disk(art, tmp_path / "vm1.qcow2")      # never boot the cached disk itself
    xml = domain_xml("vm1", disk=disk, nic_network="default")

``boot_qemu_direct``, :class:`Expect` and :class:`Qmp` drive plain QEMU, for tests of the guest itself.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-test-guest.sh"

READY = "pyvirt-guest: ready"
POWER_BUTTON = "pyvirt-guest: power button"
PROMPT = "guest# "
#: A generous default for waiting on boot: TCG on a loaded 2-core CI machine can be slow.
BOOT_TIMEOUT = float(os.environ.get("PYVIRT_GUEST_BOOT_TIMEOUT", "120"))


@dataclass(frozen=True)
class GuestArtifacts:
    """Paths and kernel command lines of the built test guest.

    ``kernel`` is the uncompressed ``vmlinux`` (QEMU boots it through its PVH entry, about twice as fast
    under TCG as decompressing the bzImage); ``vmlinuz`` is Debian's bzImage of the same kernel, for
    boot paths that need one (UEFI firmware). ``disk`` is the cached qcow2 template: copy it first.
    """

    kernel: Path
    initrd: Path
    disk: Path
    cmdline: str
    disk_cmdline: str
    vmlinuz: Path | None = None
    kernel_version: str = ""
    disk_format: str = "qcow2"


def guest_dir() -> Path:
    """The directory holding the built guest: ``$GUEST_DIR`` or ``<repo>/.cache/test-guest``."""
    return Path(os.environ.get("GUEST_DIR") or REPO / ".cache" / "test-guest").resolve()


def build_guest(directory: Path | None = None, *, force: bool = False) -> None:
    """Run the build script (a no-op when the cache is current)."""
    argv = ["bash", str(BUILD_SCRIPT), str(directory or guest_dir())]
    if force:
        argv.append("--force")
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


@functools.cache
def _load(directory: Path) -> GuestArtifacts:
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        build_guest(directory)
    data: dict[str, Any] = json.loads(manifest.read_text())
    names = [data["kernel"], data["initrd"], data["disk"]]
    if not all((directory / name).is_file() for name in names):
        build_guest(directory)
    vmlinuz = data.get("vmlinuz")
    return GuestArtifacts(
        kernel=directory / data["kernel"],
        initrd=directory / data["initrd"],
        disk=directory / data["disk"],
        cmdline=data["cmdline"],
        disk_cmdline=data["disk_cmdline"],
        vmlinuz=directory / vmlinuz if vmlinuz else None,
        kernel_version=data.get("kernel_version", ""),
        disk_format=data.get("disk_format", "qcow2"),
    )


def guest_artifacts() -> GuestArtifacts:
    """The test guest in :func:`guest_dir`, built first if it is missing."""
    return _load(guest_dir())


def copy_disk(artifacts: GuestArtifacts, dest: Path) -> Path:
    """A private, writable copy of the guest disk at ``dest`` (about 7 MB); returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifacts.disk, dest)
    return dest


def overlay_disk(artifacts: GuestArtifacts, dest: Path) -> Path:
    """A qcow2 overlay at ``dest`` whose backing file is the cached disk; returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", artifacts.disk_format,
         "-b", str(artifacts.disk), str(dest)],
        check=True,
    )  # fmt: skip
    return dest


def domain_xml(
    name: str,
    *,
    memory_mib: int = 128,
    vcpus: int = 1,
    disk: Path | None = None,
    disk_format: str = "qcow2",
    nic_network: str | None = None,
    nic_bridge: str | None = None,
    nic_user: bool = False,
    mac: str | None = None,
    on_poweroff: str | None = None,
    on_reboot: str | None = None,
    on_crash: str | None = None,
    panic: bool = False,
    vnc: bool = False,
    balloon: bool = False,
    extra_devices: str = "",
    artifacts: GuestArtifacts | None = None,
) -> str:
    """Libvirt domain XML (``type='qemu'``) that boots the test guest's kernel directly.

    With ``disk`` the guest's root is that disk (``vda``, virtio; pass a copy, see :func:`copy_disk`),
    else the initramfs. Interfaces come in the order network, bridge, user; ``mac`` goes on the first.
    ``extra_devices`` is raw XML appended inside ``<devices>``.
    """
    art = artifacts or guest_artifacts()
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "vcpu").text = str(vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(art.kernel)
    ET.SubElement(os_el, "initrd").text = str(art.initrd)
    ET.SubElement(os_el, "cmdline").text = art.disk_cmdline if disk is not None else art.cmdline
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    for tag, value in (("on_poweroff", on_poweroff), ("on_reboot", on_reboot), ("on_crash", on_crash)):
        if value is not None:
            ET.SubElement(dom, tag).text = value

    devices = ET.SubElement(dom, "devices")
    if disk is not None:
        disk_el = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk_el, "driver", name="qemu", type=disk_format)
        ET.SubElement(disk_el, "source", file=str(Path(disk).resolve()))
        ET.SubElement(disk_el, "target", dev="vda", bus="virtio")
    nics: list[tuple[str, dict[str, str]]] = []
    if nic_network is not None:
        nics.append(("network", {"network": nic_network}))
    if nic_bridge is not None:
        nics.append(("bridge", {"bridge": nic_bridge}))
    if nic_user:
        nics.append(("user", {}))
    for index, (kind, source) in enumerate(nics):
        nic = ET.SubElement(devices, "interface", type=kind)
        if mac is not None and index == 0:
            ET.SubElement(nic, "mac", address=mac)
        if source:
            ET.SubElement(nic, "source", source)
        ET.SubElement(nic, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    if panic:
        ET.SubElement(devices, "panic", model="isa")
    if vnc:
        ET.SubElement(devices, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
    ET.SubElement(devices, "memballoon", model="virtio" if balloon else "none")
    if extra_devices.strip():
        wrapper = ET.fromstring(f"<devices>{extra_devices}</devices>")
        devices.extend(list(wrapper))
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


# --- plain QEMU, for tests of the guest itself ---------------------------------------------------------


def qemu_direct_argv(
    artifacts: GuestArtifacts,
    *,
    disk: Path | None = None,
    extra_args: Sequence[str] = (),
    memory_mib: int = 128,
    kernel: Path | None = None,
) -> list[str]:
    """The qemu-system-x86_64 command line :func:`boot_qemu_direct` runs (serial console on stdio)."""
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", str(memory_mib),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0",
        "-kernel", str(kernel or artifacts.kernel), "-initrd", str(artifacts.initrd),
        "-append", artifacts.disk_cmdline if disk is not None else artifacts.cmdline,
    ]  # fmt: skip
    if disk is not None:
        argv += ["-drive", f"file={disk},format={artifacts.disk_format},if=virtio"]
    return argv + list(extra_args)


def boot_qemu_direct(
    artifacts: GuestArtifacts,
    *,
    disk: Path | None = None,
    extra_args: Sequence[str] = (),
    memory_mib: int = 128,
    kernel: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start QEMU (TCG) on the guest; its serial console is the process's stdin/stdout (stderr merged).

    The caller must stop it (:func:`stop_process`); :func:`running_qemu` does so for you.
    """
    argv = qemu_direct_argv(artifacts, disk=disk, extra_args=extra_args, memory_mib=memory_mib, kernel=kernel)
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate ``proc`` (then kill it) unless it has exited; never raises for an exited process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class Expect:
    """Expect-style reading of a console stream: a thread collects output; :meth:`wait_for` scans it.

    Text is decoded as UTF-8 with ``\\r`` removed. Each successful :meth:`wait_for` moves a cursor past the
    match, so the next one only sees newer output.
    """

    def __init__(self, reader: IO[bytes], writer: IO[bytes] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = ""
        self._pos = 0
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name="expect-reader", daemon=True)
        self._thread.start()

    @classmethod
    def for_process(cls, proc: subprocess.Popen[bytes]) -> Expect:
        """Read ``proc``'s stdout, write to its stdin."""
        assert proc.stdout is not None
        return cls(proc.stdout, proc.stdin)

    def _pump(self) -> None:
        fd = self._reader.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if chunk:
                    self._text += self._decoder.decode(chunk).replace("\r", "")
                else:
                    self._text += self._decoder.decode(b"", final=True)
                    self._eof = True
                self._cond.notify_all()
            if not chunk:
                return

    @property
    def text(self) -> str:
        """Everything read so far."""
        with self._cond:
            return self._text

    @property
    def eof(self) -> bool:
        """True once the stream has closed."""
        with self._cond:
            return self._eof

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = BOOT_TIMEOUT) -> re.Match[str]:
        """Wait until ``pattern`` (a regex; escape literals) appears after the cursor; return the match.

        Raises :class:`TimeoutError` (or :class:`EOFError` when the stream closes first) showing the tail of
        the output.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search(self._text, self._pos)
                if match is not None:
                    self._pos = match.end()
                    return match
                remaining = deadline - time.monotonic()
                if self._eof:
                    raise EOFError(
                        f"stream closed before {regex.pattern!r}; output ends:\n{self._text[-2000:]}"
                    )
                if remaining <= 0:
                    raise TimeoutError(
                        f"no {regex.pattern!r} within {timeout:.0f} s; output ends:\n{self._text[-2000:]}"
                    )
                self._cond.wait(min(remaining, 1.0))

    def send(self, text: str) -> None:
        """Write ``text`` as it is."""
        if self._writer is None:
            raise RuntimeError("this Expect has no writer")
        self._writer.write(text.encode())
        self._writer.flush()

    def sendline(self, line: str) -> None:
        """Write ``line`` and a newline (the guest shell reads a tty in canonical mode)."""
        self.send(line + "\n")

    def run(self, command: str, timeout: float = 30.0) -> str:
        """Run a shell command in the guest, return its output (needs the ``guest# `` prompt shell).

        The command's output is framed with markers, so the echoed command line is not part of it.
        """
        tag = f"pyvirt-{time.monotonic_ns()}"
        self.sendline(f"echo {tag}-B; {command}; echo {tag}-E")
        match = self.wait_for(re.compile(rf"(?m)^{tag}-B\n(.*?)^{tag}-E$", re.S), timeout)
        return match.group(1)


def wait_for(stream: Expect, pattern: str | re.Pattern[str], timeout: float = BOOT_TIMEOUT) -> re.Match[str]:
    """Function form of :meth:`Expect.wait_for`."""
    return stream.wait_for(pattern, timeout)


@dataclass
class QemuRun:
    """A QEMU started by :func:`running_qemu`: the process, its console and its QMP socket path."""

    proc: subprocess.Popen[bytes]
    console: Expect
    qmp_path: Path


@contextlib.contextmanager
def running_qemu(
    artifacts: GuestArtifacts,
    workdir: Path,
    *,
    disk: Path | None = None,
    extra_args: Sequence[str] = (),
    memory_mib: int = 128,
    kernel: Path | None = None,
) -> Iterator[QemuRun]:
    """Boot the guest with a QMP socket in ``workdir``; always stop QEMU on the way out."""
    qmp_path = workdir / "qmp.sock"
    args = ["-qmp", f"unix:{qmp_path},server=on,wait=off", *extra_args]
    proc = boot_qemu_direct(artifacts, disk=disk, extra_args=args, memory_mib=memory_mib, kernel=kernel)
    try:
        yield QemuRun(proc, Expect.for_process(proc), qmp_path)
    finally:
        stop_process(proc)


class QmpError(Exception):
    """A QMP command failed, or the monitor went away."""


class Qmp:
    """A minimal synchronous QMP client (tests only; the product has its own monitor)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._sock.connect(str(path))
                break
            except OSError as err:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP at {path}: {err}") from err
                time.sleep(0.1)
        self._sock.settimeout(timeout)
        self._file = self._sock.makefile("rwb")
        self.events: list[dict[str, Any]] = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except OSError as err:
            raise QmpError(f"QMP read failed: {err}") from err
        if not line:
            raise QmpError("QMP connection closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run ``command``; return its ``return`` value (events seen meanwhile go to :attr:`events`)."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise QmpError(f"{command}: {reply['error'].get('desc', reply['error'])}")
            elif "return" in reply:
                return reply["return"]

    def wait_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the event ``name`` (or return one already received)."""
        for event in self.events:
            if event["event"] == name:
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no QMP event {name} within {timeout:.0f} s")
            self._sock.settimeout(remaining)
            try:
                message = self._read()
            except QmpError as err:
                if isinstance(err.__cause__, TimeoutError):
                    raise TimeoutError(f"no QMP event {name} within {timeout:.0f} s") from err
                raise
            if message.get("event") == name:
                return message
            if "event" in message:
                self.events.append(message)

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self._file.close()
        self._sock.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A real pyvirtd in a scratch PYVIRT_ROOT, and helpers to drive it as a user would (the CLI) or as a
program would (the Python API), including an expect-style serial console."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvirt.client.api import Connection

BIN = Path(sys.executable).parent


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def ok(self) -> Result:
        assert self.rc == 0, f"exit {self.rc}\nstdout: {self.out}\nstderr: {self.err}"
        return self


class Daemon:
    """One pyvirtd process over a scratch root; restartable, killable."""

    def __init__(
        self,
        root: Path | None = None,
        extra_env: dict[str, str] | None = None,
        netns: str | None = None,
        user: str | None = None,
    ) -> None:
        # Unix socket paths are limited to 107 bytes: keep the root short.
        self.root = root or Path(tempfile.mkdtemp(prefix="pv-", dir="/tmp"))
        # Like /run and /etc: traversable, so dnsmasq can read its hosts file after dropping privileges.
        os.chmod(self.root, 0o755)
        self.user = user  # run the daemon as this user (a session daemon), owner of the root
        if user is not None:
            shutil.chown(self.root, user)
        self.env = {**os.environ, "PYVIRT_ROOT": str(self.root), **(extra_env or {})}
        self.env.pop("PYVIRT_DEFAULT_URI", None)
        self.netns = netns  # run the daemon (and so its QEMUs, taps, bridges) in this namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "pyvirtd.log"

    @property
    def socket(self) -> Path:
        return self.root / "run/pyvirt/pyvirt-sock"

    @property
    def config_dir(self) -> Path:
        return self.root / "etc/pyvirt/qemu"

    @property
    def run_dir(self) -> Path:
        return self.root / "run/pyvirt/qemu"

    @property
    def pool_dir(self) -> Path:
        """The default storage pool's folder."""
        return self.root / "var/lib/pyvirt/images"

    def start(self, *args: str, wait: float = 30.0, verbose: bool = True) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        logfh = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                *(["ip", "netns", "exec", self.netns] if self.netns else []),
                str(BIN / "pyvirtd"),
                *(["--verbose"] if verbose else []),
                *args,
            ],
            env=self.env,
            stdout=logfh,
            stderr=logfh,
            start_new_session=True,
            user=self.user,
        )
        logfh.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pyvirtd exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.socket.exists():
                with socket.socket(socket.AF_UNIX) as sock:
                    try:
                        sock.connect(str(self.socket))
                        return
                    except OSError:
                        pass
            time.sleep(0.05)
        raise RuntimeError(f"pyvirtd did not come up:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def qemu_pids(self) -> dict[str, int]:
        pids = {}
        for record in self.run_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(json.loads(record.read_text())["pid"])
                if pid > 0:  # 0: recorded before the spawn, not running yet
                    pids[record.stem] = pid
        return pids

    def cleanup(self) -> None:
        """Stop the daemon and every QEMU it left behind, then remove the root."""
        self.stop()
        for pid in self.qemu_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Anything whose command line points into our root: QEMUs whose record was not written yet,
        # and the dnsmasq of every network left running (they are daemons, not our children).
        for proc_dir in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                cmdline = (proc_dir / "cmdline").read_bytes()
                if f"{self.root}/".encode() in cmdline and int(proc_dir.name) != os.getpid():
                    os.kill(int(proc_dir.name), signal.SIGKILL)
        self._remove_cgroups()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_cgroups(self) -> None:
        """The groups of domains whose QEMU was killed with a killed daemon, and the daemon's slice: a
        test daemon's root goes with the test, nothing else would remove them."""
        from pyvirt.paths import system_layout
        from pyvirt.qemu import cgroup, cgtune, cpuacct

        run_dir = system_layout(str(self.root)).run_dir
        parent = cgroup.parent_for(str(run_dir), None)
        for mount in (cgroup.mount_point(), *cgtune.v1_mounts().values(), cpuacct.hierarchy()):
            if mount is not None and (mount / parent).is_dir():
                for scope in (mount / parent).glob("pyvirt-*.scope"):
                    for vcpu in scope.glob("vcpu*"):  # cpuacct's vCPU groups
                        cgroup.remove(vcpu)
                    cgroup.remove(scope)
                cgroup.drop_daemon_slice(mount / parent)

    def cli(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Result:
        proc = subprocess.run(
            [str(BIN / "pyvirt"), *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr + self._internal_error_details(proc.stderr))

    def define(self, xml: str) -> Result:
        """``define FILE`` of this domain XML, from a file in the root (as a user defines one)."""
        fd, path = tempfile.mkstemp(prefix="define-", suffix=".xml", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(xml)
        return self.cli("define", path).ok()

    def vnc_display(self, name: str) -> int:
        """The VNC display QEMU listens on for the running domain ``name`` (its own ``query-vnc``): an
        autoport display is the first free one from 5900, which another guest on the host may hold."""
        reply = self.cli("qemu-monitor-command", name, '{"execute":"query-vnc"}').ok().out
        return int(json.loads(reply)["return"]["service"]) - 5900

    def _internal_error_details(self, err: str) -> str:
        """The daemon's traceback of an 'internal error (request ID; ...)', for the test's report."""
        found = re.search(r"internal error \(request ([0-9a-f]+);", err)
        if found is None:
            return ""
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").splitlines()
            for k, line in enumerate(lines):
                if f"(request {found.group(1)})" in line:
                    return "daemon log:\n" + "\n".join(lines[k : k + 60]) + "\n"
        return ""

    def connect(self, readonly: bool = False) -> Connection:
        from pyvirt.client.api import Connection

        sock = self.root / "run/pyvirt/pyvirt-sock-ro" if readonly else self.socket
        return Connection.open(f"qemu+unix:///system?socket={sock}", readonly=readonly)

    def state(self, name: str) -> str:
        return self.cli("domstate", name).ok().out.strip()

    def wait_state(self, name: str, state: str, timeout: float = 60) -> None:
        """Wait until ``domstate --reason`` says ``state`` (``shut off``), or, where it names a reason
        too, that state for that reason (``shut off (crashed)``)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            result = self.cli("domstate", "--reason", name)
            last = result.out.strip() or result.err.strip()
            if state in (last, last.split(" (")[0]):
                return
            time.sleep(0.2)
        raise AssertionError(f"domain {name} did not reach '{state}' in {timeout}s (last: {last})")


@contextlib.contextmanager
def running_daemon(extra_env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """A started daemon over a scratch root of its own, cleaned up at the end."""
    d = Daemon(extra_env=extra_env)
    d.start()
    try:
        yield d
    finally:
        d.cleanup()


@contextlib.contextmanager
def netns_daemon(prefix: str) -> Iterator[Daemon]:
    """A started daemon in a network namespace of its own (loopback up), so that its bridges, taps
    and traffic stay inside; the namespace goes with it."""
    import uuid

    ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    d = Daemon(netns=ns)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
        subprocess.run(["ip", "netns", "del", ns], check=False)


class Console:
    """An attached serial console through the daemon's WebSocket stream, with expect()."""

    def __init__(self, daemon: Daemon | Connection, name: str, *, history: bool = True) -> None:
        """The console of ``name`` through the daemon's local socket, or through any connection."""
        conn = daemon.connect() if isinstance(daemon, Daemon) else daemon
        self.ws = conn.domain(name).console(history=history)
        self.buffer = b""

    def send(self, text: str) -> None:
        self.ws.send(text.encode())

    def expect(self, pattern: str, timeout: float = 120) -> re.Match[bytes]:
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer)
            if match:
                self.buffer = self.buffer[match.end() :]
                return match
            if time.monotonic() > deadline:
                tail = self.buffer[-2000:].decode(errors="replace")
                raise AssertionError(f"console: {pattern!r} not seen in {timeout}s; last output:\n{tail}")
            try:
                message = self.ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            if message is None:
                tail = self.buffer[-2000:].decode(errors="replace")
                raise AssertionError(f"console closed before {pattern!r}; last output:\n{tail}")
            assert isinstance(message, bytes), f"console sent a text message: {message!r}"
            self.buffer += message

    def run(self, command: str, timeout: float = 60) -> str:
        """Type a shell command in the guest and return its output (between two markers)."""
        marker = f"M{time.monotonic_ns()}"
        self.send(f"echo {marker}-begin; {command}; echo {marker}-end\n")
        self.expect(f"\n{marker}-begin", timeout)
        match = self.expect(f"(?s)(.*?){marker}-end", timeout)
        return match.group(1).decode(errors="replace").strip()

    def virtio_disk(self, serial: str, present: bool = True) -> str:
        """The guest's name of the virtio disk with this serial (the guest names its disks in its own
        order: a target is libvirt's name, not the guest's), once it appeared, or once it is gone."""
        find = (
            "for b in /sys/block/vd*; do "
            f'[ "$(cat $b/serial 2>/dev/null)" = {serial} ] && echo ${{b##*/}}; done'
        )
        test = "-n" if present else "-z"
        self.run(f'for i in $(seq 120); do [ {test} "$({find})" ] && break; sleep 0.5; done', 90)
        name = self.run(find)
        assert bool(name) == present, f"disk {serial}: {name!r}"
        return name

    def close(self) -> None:
        self.ws.close()

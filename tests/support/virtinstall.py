"""virt-install 4.1 as an oracle: a private libvirtd (system mode) in its own mount and network
namespace, and ``virt-install --print-xml --dry-run`` run inside it.

The libvirtd sees scratch copies of /etc/libvirt, /run/libvirt, /var/lib/libvirt and /var/log/libvirt,
so it never meets the machine's own libvirt state (nor another test's), and its network namespace holds
only loopback. QEMU's capability probe is cached across runs under ``.cache/virtinst-oracle``.
``Oracle.missing()`` says why the oracle cannot run here (no virt-install, no libvirtd, not root).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
CACHE = REPO / ".cache/virtinst-oracle"
UNSHARE = ("unshare", "--mount", "--net", "--propagation", "private", "--fork")

_SETUP = r"""
set -e
S="$1"
mount -t tmpfs tmpfs "$S/run"
mkdir -p "$S/lib/boot" "$S/lib/images"
cp -a /etc/libvirt/. "$S/etc/"
if [ -f "$S/qemu.conf.extra" ]; then cat "$S/qemu.conf.extra" >> "$S/etc/qemu.conf"; fi
rm -f "$S/etc/qemu/networks/autostart/"*
mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
mount --bind "$S/etc" /etc/libvirt
mount --bind "$S/run" /run/libvirt
mount --bind "$S/lib" /var/lib/libvirt
mount --bind "$S/cache" /var/cache/libvirt
mount --bind "$S/log" /var/log/libvirt
ip link set lo up
exec libvirtd --pid-file /run/libvirt/libvirtd.pid  # its own: /run/libvirtd.pid may be another one's
"""


_DEFAULT_NETWORK = """<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'/>
</network>
"""


class Oracle:
    """One private libvirtd; :meth:`run` runs virt-install against it."""

    def __init__(self, qemu_conf: str = "") -> None:
        """``qemu_conf``: settings appended to the private copy of qemu.conf (to run guests)."""
        self.scratch = Path(tempfile.mkdtemp(prefix="vi-oracle-", dir="/tmp"))
        self.proc: subprocess.Popen[bytes] | None = None
        if qemu_conf:
            (self.scratch / "qemu.conf.extra").write_text(qemu_conf)

    @staticmethod
    def missing() -> str | None:
        """Why virt-install cannot be the oracle on this machine, or None when it can."""
        for tool in ("virt-install", "libvirtd", "unshare", "nsenter"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (Debian's virtinst and libvirt-daemon-system are the oracle)"
        if os.geteuid() != 0:
            return "the oracle's private libvirtd needs root (mount and network namespaces)"
        return None

    def start(self) -> None:
        for sub in ("etc", "run", "lib", "log"):
            (self.scratch / sub).mkdir()
        CACHE.mkdir(parents=True, exist_ok=True)
        (self.scratch / "cache").symlink_to(CACHE)
        log = open(self.scratch / "libvirtd.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [*UNSHARE, "sh", "-c", _SETUP, "sh", str(self.scratch)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.libvirtd_pid() is not None and self._virsh("uri").returncode == 0:
                self._default_network()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the oracle's libvirtd did not start: {(self.scratch / 'libvirtd.log').read_text()}"
        )

    def _default_network(self) -> None:
        """A network named ``default`` (defined, not started), as a Debian host has one: virt-install's
        default NIC is on it."""
        if self._virsh("net-info", "default").returncode == 0:
            return
        xml = self.scratch / "default-net.xml"
        xml.write_text(_DEFAULT_NETWORK)
        self.virsh("net-define", str(xml))

    def libvirtd_pid(self) -> int | None:
        """The libvirtd inside the namespace (a child of unshare's forked shell, or that shell exec'd)."""
        if self.proc is None:
            return None
        out = subprocess.run(
            ["pgrep", "-s", str(self.proc.pid), "-x", "libvirtd"], capture_output=True, text=True
        ).stdout.split()
        return int(out[0]) if out else None

    def _enter(self) -> list[str]:
        pid = self.libvirtd_pid()
        assert pid is not None, "the oracle's libvirtd is not running"
        return ["nsenter", "--target", str(pid), "--mount", "--net"]

    def _virsh(self, *args: str) -> subprocess.CompletedProcess[str]:
        pid = self.libvirtd_pid()
        if pid is None:
            return subprocess.CompletedProcess([], 1, "", "")
        return subprocess.run(
            [*self._enter(), "virsh", "-c", "qemu:///system", *args], capture_output=True, text=True
        )

    def virsh_command(self, *args: str) -> list[str]:
        """The argv that runs ``virsh ARGS`` against the private libvirtd."""
        return [*self._enter(), "virsh", "-c", "qemu:///system", *args]

    def virsh(self, *args: str) -> str:
        result = self._virsh(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def runs(self, *args: str) -> bool:
        """Whether ``virsh ARGS`` succeeds against the private libvirtd."""
        return self._virsh(*args).returncode == 0

    def command(self, *args: str) -> list[str]:
        """The argv that runs ``virt-install ARGS`` against the private libvirtd."""
        return [*self._enter(), "virt-install", "--connect", "qemu:///system", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True)

    def __enter__(self) -> Oracle:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def native_argv(self, xml: Path) -> list[str]:
        """libvirt's QEMU command line for the domain XML file ``xml`` (``virsh domxml-to-native``)."""
        return shlex.split(self.virsh("domxml-to-native", "qemu-argv", str(xml)))

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.proc = None
        shutil.rmtree(self.scratch, ignore_errors=True)

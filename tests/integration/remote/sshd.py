"""A throw-away OpenSSH server on 127.0.0.1 for the remote tests and the remote benchmark.

Everything lives in one scratch directory: a generated host key, a client key pair whose public half
is the only authorized key, and an sshd_config that lets root in with that key alone. ``SetEnv``
puts the venv's ``bin`` first on the session's PATH, so ``pyvirt`` is found there as on a host where
it is installed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

SSHD = "/usr/sbin/sshd"
BIN = Path(sys.executable).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


class Sshd:
    """``sshd -D`` on 127.0.0.1:PORT; ``uri()`` builds a qemu+ssh:// URI that logs in with our key."""

    def __init__(self, workdir: Path | None = None, *, path_dirs: list[Path] | None = None) -> None:
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="pv-sshd-", dir="/tmp"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.host_key = keygen(self.dir / "ssh_host_ed25519_key")
        self.client_key = keygen(self.dir / "id_ed25519")
        self.stranger_key = keygen(self.dir / "id_stranger")  # never authorized
        (self.dir / "authorized_keys").write_text((self.dir / "id_ed25519.pub").read_text())
        path = ":".join([*(str(p) for p in (path_dirs or [BIN])), "/usr/sbin:/usr/bin:/sbin:/bin"])
        self.config = self.dir / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    "PermitRootLogin yes",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "MaxStartups 100:30:200",
                    "MaxSessions 100",
                    f"SetEnv PATH={path}",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "sshd.log"

    def start(self, prefix: list[str] | None = None) -> None:
        # sshd refuses to start without its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        argv = [*(prefix or []), SSHD, "-D", "-e", "-f", str(self.config)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self._listening(prefix):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start listening:\n{self.log.read_text()}")

    def _listening(self, prefix: list[str] | None) -> bool:
        if prefix:  # inside a namespace: ask ss there
            out = subprocess.run([*prefix, "ss", "-ltnH"], capture_output=True, text=True).stdout
            return f"{self.host}:{self.port} " in out
        with socket.socket() as sock:
            return sock.connect_ex((self.host, self.port)) == 0

    def close_shared_connections(self) -> None:
        """End the ssh master connections pyvirt commands left open to this server (one per key)."""
        from pyvirt.client.remote import shared_connection_options
        from pyvirt.uri import parse_uri

        for key in (self.client_key, self.stranger_key):
            options = shared_connection_options(parse_uri(self.uri(key=key)))
            if options:
                subprocess.run(
                    ["ssh", *options, "-p", str(self.port), "-O", "exit", f"root@{self.host}"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )

    def stop(self) -> None:
        self.close_shared_connections()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def uri(
        self,
        *,
        socket_path: Path | str | None = None,
        key: Path | None = None,
        port: int | None = None,
        command: str | None = None,
        user: str = "root",
        mode: str = "system",
    ) -> str:
        params = {
            "keyfile": str(key or self.client_key),
            "no_verify": "1",
            "no_tty": "1",
        }
        if socket_path:
            params["socket"] = str(socket_path)
        if command:
            params["command"] = command
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
        return f"qemu+ssh://{user}@{self.host}:{port or self.port}/{mode}?{query}"

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            for child in self.dir.iterdir():
                child.unlink()
            os.rmdir(self.dir)

"""Remote transports: ``qemu+ssh://`` through ``ssh … pyvirt proxy``, and ``qemu+tls://``."""

from __future__ import annotations

import shlex
import socket
import subprocess

from pyvirt.client.transport import Transport
from pyvirt.errors import ConnectionFailed, InvalidArgument
from pyvirt.uri import URI


def ssh_argv(uri: URI, readonly: bool) -> list[str]:
    argv = ["ssh"]
    if uri.port:
        argv += ["-p", str(uri.port)]
    if uri.params.get("keyfile"):
        argv += ["-i", uri.params["keyfile"]]
    if uri.params.get("no_verify") == "1":
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    if uri.params.get("no_tty") == "1":
        argv += ["-T", "-o", "BatchMode=yes"]
    argv += ["-o", "ConnectTimeout=20", "-e", "none"]
    argv.append(f"{uri.user}@{uri.host}" if uri.user else str(uri.host))
    remote = [uri.params.get("command", "pyvirt"), "proxy", "--mode", uri.mode]
    if uri.params.get("socket"):
        remote += ["--socket", uri.params["socket"]]
    if readonly:
        remote.append("--readonly")
    argv.append(" ".join(shlex.quote(a) for a in remote))
    return argv


class SSHTransport(Transport):
    """A Transport whose socket is one end of a socketpair wired to an ssh process's stdio."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes], description: str) -> None:
        super().__init__(sock, description)
        self.proc = proc

    def close(self) -> None:
        super().close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def open_ssh(uri: URI, readonly: bool) -> Transport:
    ours, theirs = socket.socketpair()
    argv = ssh_argv(uri, readonly)
    try:
        proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.PIPE)
    except FileNotFoundError as err:
        raise ConnectionFailed("cannot run 'ssh': install the openssh-client package") from err
    finally:
        theirs.close()
    transport = SSHTransport(ours, proc, uri.canonical())
    # The proxy greets with one line once it reached the daemon; ssh failures show up as EOF here.
    try:
        greeting = transport._recv_until(b"\n")
    except ConnectionFailed:
        proc.wait(timeout=30)
        stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        transport.sock.close()
        raise ConnectionFailed(_explain_ssh_failure(uri, proc.returncode, stderr)) from None
    if greeting != b"pyvirt-proxy 1":
        transport.close()
        raise ConnectionFailed(f"unexpected greeting from pyvirt proxy on {uri.host}: {greeting[:80]!r}")
    return transport


def _explain_ssh_failure(uri: URI, code: int | None, stderr: str) -> str:
    host = uri.host
    last = stderr.splitlines()[-1] if stderr else f"ssh exited with status {code}"
    if "Connection refused" in stderr or "No route to host" in stderr or "timed out" in stderr:
        what = f"cannot reach {host}" + (f" on port {uri.port}" if uri.port else "")
    elif "Permission denied" in stderr or "Too many authentication failures" in stderr:
        what = f"ssh authentication to {host} was refused (check the user and key)"
    elif "Host key verification failed" in stderr:
        what = f"the host key of {host} is unknown or changed (add it to known_hosts, or use no_verify=1)"
    elif "not found" in stderr or code == 127:
        what = f"pyvirt is not installed on {host} (the remote 'pyvirt proxy' command was not found)"
    elif "Could not resolve hostname" in stderr:
        what = f"cannot resolve host name {host}"
    else:
        what = f"ssh connection to {host} failed"
    return f"{what}: {last}"


def open_remote(uri: URI, readonly: bool) -> Transport:
    if uri.transport == "ssh":
        return open_ssh(uri, readonly)
    if uri.transport == "tls":
        from pyvirt.client.tls import open_tls

        return open_tls(uri, readonly)
    raise InvalidArgument(f"unsupported transport '{uri.transport}'")
